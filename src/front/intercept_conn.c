/* intercept_conn: one intercepted connection (struct icpt_conn), from
 * accept to icpt_teardown, the only place its record is written and its
 * resources freed.
 *
 * The client leg is a TLS server of the proxy's on the accepted socket
 * (libevent's bufferevent_openssl); once its handshake completes the
 * stand-in decides: a client that --verify require refuses gets, once its
 * request has arrived, nginx's 400 page (IP_REFUSING, then IP_ANSWERED);
 * any other is forwarded: the proxy connects to the real server (a plain
 * socket, then TLS as a client on it: IP_CONNECTING) and relays the
 * plaintext both ways (IP_RELAY), each leg's output bounded
 * (backpressure), a close on one leg passed on as close_notify on the
 * other.  A server that cannot be reached is answered 502 (IP_ANSWERED).
 *
 * With --post-handshake-auth a TLS 1.3 client is not asked for its
 * certificate in the handshake: once its first request's head is in
 * (IP_PHA_WAIT) the stand-in sends a CertificateRequest
 * (SSL_verify_client_post_handshake, RFC 8446 4.6.2), holds the request
 * until the answer (IP_PHA_ASKED), and then decides as above.
 *
 * Both sockets' BIOs carry a callback that hands every byte read or
 * written to that leg's observer, the raw TLS a capture would see, and
 * OpenSSL hands the secrets to the leg's key log (intercept.c). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "analysis/verdict.h"
#include "front/intercept_int.h"
#include "front/netaddr.h"
#include "out/metrics.h"
#include "wire/http1.h"
#include "wire/keylog.h"
#include "wire/x509info.h"

#define HEAD_MAX 65536          /* the first request's head, for --forward-identity and refusals */
#define LINGER_S 2              /* after a close passed on, the other end's close is waited for this long */
#define TICK_S 1

static void icpt_teardown(struct icpt_conn *c);
static void start_upstream_tls(struct icpt_conn *c, evutil_socket_t fd);

static struct icpt_leg *other(struct icpt_leg *leg)
{
	return &leg->c->leg[leg->id == ICPT_CLIENT_LEG ? ICPT_UPSTREAM_LEG : ICPT_CLIENT_LEG];
}

/* The proxy is the server on the client leg, the client on its own. */
static enum side own_side(const struct icpt_leg *leg)
{
	return leg->id == ICPT_CLIENT_LEG ? SIDE_SERVER : SIDE_CLIENT;
}

static enum side peer_side(const struct icpt_leg *leg)
{
	return leg->id == ICPT_CLIENT_LEG ? SIDE_CLIENT : SIDE_SERVER;
}

static void now_of(const struct icpt_conn *c, struct timeval *tv)
{
	event_base_gettimeofday_cached(c->w->base, tv);
}

/* The client is not yet forwarded nor refused. */
static bool undecided(const struct icpt_conn *c)
{
	return c->phase == IP_HANDSHAKE || c->phase == IP_PHA_WAIT || c->phase == IP_PHA_ASKED;
}

static void note_end(struct icpt_conn *c, enum closer who, enum end_kind how)
{
	if (c->closed_by == CLOSER_NONE) {
		c->closed_by = who;
		c->end = how;
	}
}

/* ---- the tap: the socket's bytes to the leg's observer ---- */

static long bio_tap(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
		    size_t *processed)
{
	struct icpt_leg *leg = (struct icpt_leg *)BIO_get_callback_arg(b);
	struct timeval tv;

	(void)len;
	(void)argi;
	(void)argl;
	if (!leg || !leg->obs || ret <= 0 || !processed || *processed == 0 || !obs_conn_wants_bytes(leg->obs))
		return ret;
	now_of(leg->c, &tv);
	if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
		ticket_tap_data(leg->tap, peer_side(leg), (const uint8_t *)argp, *processed, &tv);
		obs_conn_feed(leg->obs, peer_side(leg), (const uint8_t *)argp, *processed, &tv);
	} else if (oper == (BIO_CB_WRITE | BIO_CB_RETURN)) {
		ticket_tap_data(leg->tap, own_side(leg), (const uint8_t *)argp, *processed, &tv);
		obs_conn_feed(leg->obs, own_side(leg), (const uint8_t *)argp, *processed, &tv);
	}
	return ret;
}

static void leg_tap_close(struct icpt_leg *leg, enum side s, enum close_kind how)
{
	struct timeval tv;

	if (!leg->obs || leg->tap_closed[s])
		return;
	leg->tap_closed[s] = true;
	now_of(leg->c, &tv);
	ticket_tap_close(leg->tap, s, how, &tv);
	obs_conn_close(leg->obs, s, how, &tv);
}

/* The leg's observer, endpoint of its own connection: it holds every key. */
static int leg_observe(struct icpt_leg *leg)
{
	struct observer_config cfg = leg->c->w->ocfg;
	struct timeval tv;

	if (!(leg->keys = keylog_new(NULL, NULL)))
		return 0;
	cfg.endpoint = true;
	cfg.keylog = leg->keys;
	cfg.keylog_wait = true;
	now_of(leg->c, &tv);
	if (leg->id == ICPT_CLIENT_LEG)
		leg->obs = obs_conn_new(&cfg, &leg->peer, &leg->local, &tv, true);
	else
		leg->obs = obs_conn_new(&cfg, &leg->local, &leg->peer, &tv, true);
	/* --evidence: the client's leg is the connection the record is about */
	if (leg->obs && leg->id == ICPT_CLIENT_LEG && leg->c->w->px->ticket)
		leg->tap = ticket_tap_new();   /* NULL: its folder goes without handshake.pcap */
	return leg->obs != NULL;
}

static void leg_endpoints(struct icpt_leg *leg, evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		netaddr_endpoint((struct sockaddr *)&ss, &leg->local);
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		netaddr_endpoint((struct sockaddr *)&ss, &leg->peer);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void upstream_connect(struct icpt_conn *c);
static void drop_upstream(struct icpt_conn *c);
static void begin_relay(struct icpt_conn *c);
static void pha_ask(struct icpt_conn *c);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* TLS on fd for leg (the SSL made and set up by the caller, its BIO the
 * tapped socket); 0 out of memory (the caller still owns fd and ssl). */
static int leg_start(struct icpt_leg *leg, evutil_socket_t fd, SSL *ssl, enum bufferevent_ssl_state state)
{
	struct proxy *px = leg->c->w->px;
	BIO *bio = BIO_new_socket((int)fd, BIO_NOCLOSE);

	if (!bio)
		return 0;
	BIO_set_callback_ex(bio, bio_tap);
	BIO_set_callback_arg(bio, (char *)leg);
	SSL_set_bio(ssl, bio, bio);
	leg->ssl = ssl;
	leg->bev = bufferevent_openssl_socket_new(leg->c->w->base, fd, ssl, state, BEV_OPT_CLOSE_ON_FREE);
	if (!leg->bev) {
		leg->ssl = NULL;
		return 0;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(leg->bev, 1);
	bufferevent_setcb(leg->bev, read_cb, write_cb, event_cb, leg);
	bufferevent_setwatermark(leg->bev, EV_WRITE, px->buffer_limit / 2, 0);
	/* a leg whose bytes cannot move on yet stops being read at the limit */
	bufferevent_setwatermark(leg->bev, EV_READ, 0, px->buffer_limit);
	bufferevent_enable(leg->bev, EV_READ | EV_WRITE);
	return 1;
}

static size_t out_len(const struct icpt_leg *leg)
{
	return leg->bev ? evbuffer_get_length(bufferevent_get_output(leg->bev)) : 0;
}

/* close_notify, then FIN: nothing more goes to this leg. */
static void leg_shut(struct icpt_leg *leg)
{
	if (leg->shut || !leg->bev)
		return;
	leg->shut = true;
	leg->shut_pending = false;
	if (!leg->dead && leg->tls_done) {
		(void)SSL_shutdown(leg->ssl);
		ERR_clear_error();
		(void)shutdown(bufferevent_getfd(leg->bev), SHUT_WR);
	}
	leg_tap_close(leg, own_side(leg), CLOSE_FIN);
}

/* Shut leg once what waits for it is written. */
static void leg_shut_when_drained(struct icpt_leg *leg)
{
	if (!leg->bev || leg->shut)
		return;
	if (out_len(leg) == 0 || leg->dead)
		leg_shut(leg);
	else
		leg->shut_pending = true;
}

static bool leg_done(const struct icpt_leg *leg)
{
	return !leg->bev || leg->parked || ((leg->eof || leg->dead) && (leg->shut || leg->dead));
}

static void maybe_done(struct icpt_conn *c)
{
	if (leg_done(&c->leg[ICPT_CLIENT_LEG]) && leg_done(&c->leg[ICPT_UPSTREAM_LEG]) &&
	    !c->leg[ICPT_UPSTREAM_LEG].connecting)
		icpt_teardown(c);
}

static void arm(struct icpt_conn *c, unsigned seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(c->timer, &tv);
}

/* ---- the proxy answers itself ---- */

/* An error page to the client, then its leg closes. */
static void answer(struct icpt_conn *c, int status, const char *phrase, const char *title, const char *detail)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	struct evbuffer *in;

	c->phase = IP_ANSWERED;
	arm(c, c->w->px->connect_timeout_s);   /* for the answer to be taken */
	if (!cl->bev || cl->dead || cl->shut) {
		maybe_done(c);
		return;
	}
	in = bufferevent_get_input(cl->bev);
	cl->bytes += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	icpt_http_page(bufferevent_get_output(cl->bev), status, phrase, title, detail);
	leg_shut_when_drained(cl);
}

/* Refused (--verify require): once the request is in, nginx's answer. */
static void refuse_now(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	char detail[900];

	snprintf(detail, sizeof(detail), "The client certificate was refused: %s.", c->refusal);
	answer(c, 400, "Bad Request", cl->peer_cert ? "400 The SSL certificate error"
						    : "400 No required SSL certificate was sent", detail);
}

/* The real server cannot be reached (or went away before the request):
 * said to the client as a 502 once it is known that the client is to be
 * forwarded; while its handshake is on, only noted. */
static void upstream_failed(struct icpt_conn *c, const char *why)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	char detail[700];

	if (!up->error[0])
		snprintf(up->error, sizeof(up->error), "%s", why);
	if (up->connecting) {
		bufferevent_free(up->connecting);
		up->connecting = NULL;
	}
	if (up->bev && !up->dead) {
		up->dead = true;
		bufferevent_disable(up->bev, EV_READ | EV_WRITE);
		leg_tap_close(up, own_side(up), CLOSE_FIN);
	}
	if (undecided(c))
		return;
	c->outcome = IO_UPSTREAM_FAILED;
	note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
	snprintf(detail, sizeof(detail), "The server could not be reached for this request: %s.", why);
	answer(c, 502, "Bad Gateway", "502 Bad Gateway", detail);
}

/* ---- the relay ---- */

/* --forward-identity cannot rewrite the first request: sent as it is,
 * identity headers of the client's own would reach a server that trusts
 * them, so the proxy answers 400 itself (nginx's page for a head too
 * large), and the connection to the server goes unused. */
static void identity_refused(struct icpt_conn *c, const char *why)
{
	char detail[300];

	snprintf(c->identity_note, sizeof(c->identity_note), "%s: refused", why);
	snprintf(c->refusal, sizeof(c->refusal), "--forward-identity: %s", why);
	snprintf(detail, sizeof(detail), "The request was refused: %s, so its headers could not be checked.", why);
	c->outcome = IO_REFUSED_HTTP;
	drop_upstream(c);   /* nothing of it reached the server */
	answer(c, 400, "Bad Request", "400 Request Header Or Cookie Too Large", detail);
}

/* The first request with the client's identity in its headers
 * (--forward-identity): 1 done, 0 while its head is incomplete, -1
 * refused (identity_refused). */
static int forward_identity(struct icpt_conn *c, struct evbuffer *in, struct evbuffer *out)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	struct evbuffer *head;
	long n = icpt_http_head_len(in, HEAD_MAX);
	const uint8_t *p;
	char why[80];

	if (n == 0)
		return 0;
	c->identity_added = false;
	if (n < 0) {
		snprintf(why, sizeof(why), "the first request's head is longer than %d bytes", HEAD_MAX);
		identity_refused(c, why);
		return -1;
	}
	if (!(head = evbuffer_new()) || !(p = evbuffer_pullup(in, n))) {
		evbuffer_free(head);
		identity_refused(c, "out of memory");
		return -1;
	}
	if (icpt_http_add_identity(head, p, (size_t)n, cl->ssl, &cl->verify, c->identity_note,
				   sizeof(c->identity_note))) {
		cl->bytes += (uint64_t)n;
		evbuffer_drain(in, (size_t)n);
		evbuffer_add_buffer(out, head);
		c->identity_added = true;
	}
	evbuffer_free(head);
	return 1;
}

/* ---- --upstream-keepalive ---- */

/* Connections to the server are kept between clients: on, and not with
 * --forward-identity (whose headers hold for one client's first request:
 * it asks the server to close after it). */
static bool keepalive_on(const struct icpt_conn *c)
{
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;

	return cfg->upstream_keepalive > 0 && !cfg->forward_identity;
}

static void drop_resend(struct icpt_conn *c)
{
	if (c->resend)
		evbuffer_free(c->resend);
	c->resend = NULL;
}

/* The bytes of `in`, about to go from leg `from` to the other, through
 * the framer of their direction; the client's also into the copy kept
 * for a resend, the server's ending it (an answer has begun). */
static void frame(struct icpt_conn *c, const struct icpt_leg *from, struct evbuffer *in)
{
	struct h1f *f = from->id == ICPT_CLIENT_LEG ? &c->requests : &c->responses;
	size_t left = evbuffer_get_length(in);
	struct evbuffer_ptr at;
	struct evbuffer_iovec v;

	if (!keepalive_on(c) || !left)
		return;
	if (from->id == ICPT_UPSTREAM_LEG)
		drop_resend(c);   /* an answer has begun */
	else if (c->resend && evbuffer_get_length(c->resend) + left > HEAD_MAX)
		drop_resend(c);   /* too large to keep: not sent again */
	/* a stream the framer lost is not looked at again */
	if ((f->lost && (from->id == ICPT_UPSTREAM_LEG || !c->resend)) ||
	    evbuffer_ptr_set(in, &at, 0, EVBUFFER_PTR_SET) != 0)
		return;
	while (left && evbuffer_peek(in, (ev_ssize_t)left, &at, &v, 1) > 0 && v.iov_len) {
		size_t n = v.iov_len < left ? v.iov_len : left;

		if (!f->lost)
			h1f_feed(f, v.iov_base, n);
		if (from->id == ICPT_CLIENT_LEG && c->resend && evbuffer_add(c->resend, v.iov_base, n) != 0) {
			drop_resend(c);
		}
		left -= n;
		if (evbuffer_ptr_set(in, &at, n, EVBUFFER_PTR_ADD) != 0)
			break;
	}
}

/* The client left between two exchanges, on a connection to the server
 * that may carry another: it is kept for the next client. */
static bool can_park(const struct icpt_conn *c)
{
	const struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];

	return keepalive_on(c) && !c->w->draining && up->bev && up->tls_done && !up->eof && !up->dead && !up->shut &&
	       !up->error[0] && out_len(up) == 0 && evbuffer_get_length(bufferevent_get_input(up->bev)) == 0 &&
	       c->requests.messages > 0 && c->requests.messages == c->responses.messages &&
	       h1f_between(&c->requests) && h1f_between(&c->responses) && c->requests.persistent &&
	       c->responses.persistent;
}

/* A kept connection for this client (decided to be forwarded), in place
 * of a new one: 1 taken, its handshake long done. */
static int take_kept(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];

	if (!keepalive_on(c) || c->retried ||
	    !icpt_pool_take(c->wl, icpt_pool_key(c->leg[ICPT_CLIENT_LEG].ssl), up))
		return 0;
	up->c = c;
	up->id = ICPT_UPSTREAM_LEG;
	up->reused = true;
	up->parked = false;
	up->bytes = 0;
	up->paused = false;
	up->tap_closed[0] = up->tap_closed[1] = false;
	up->alert_sent = up->alert_received = -1;
	icpt_ssl_adopt(up->ssl, up);
	bufferevent_setcb(up->bev, read_cb, write_cb, event_cb, up);
	bufferevent_enable(up->bev, EV_READ | EV_WRITE);
	c->up_started = true;
	c->resend = evbuffer_new();   /* NULL: the request cannot be sent again */
	return 1;
}

/* Whether the request kept for a resend may go again: nothing was sent
 * yet, or every request begun is idempotent (RFC 9110 9.2.2). */
static bool may_resend(const struct icpt_conn *c)
{
	return c->resend && !c->retried && (evbuffer_get_length(c->resend) == 0 || h1f_idempotent(&c->requests));
}

/* The kept connection the client was given ended before any answer: the
 * server had closed it (a race every connection reuse has).  The request
 * goes again on a new connection when it may; else the client is
 * answered 502. */
static void kept_ended(struct icpt_conn *c, bool reset)
{
	if (may_resend(c) && !c->leg[ICPT_CLIENT_LEG].dead) {
		c->retried = true;
		drop_upstream(c);
		c->phase = IP_CONNECTING;
		arm(c, c->w->px->connect_timeout_s);
		upstream_connect(c);
		return;
	}
	upstream_failed(c, reset ? "the server reset a kept connection before answering; the request was not sent again (not idempotent, or too large to keep)"
				 : "the server closed a kept connection before answering; the request was not sent again (not idempotent, or too large to keep)");
	maybe_done(c);
}

/* The client's first request: a one-request client asks the server to
 * close after it ("Connection: close", a hop-by-hop header, RFC 9110
 * 7.6.1).  The line is left out, so that the server keeps the connection
 * for the next client, and the proxy closes the client's leg itself once
 * the answer is through, as the server would have.  0 while what the
 * client sent may still become an HTTP/1.1 head (then it waits); 1 go on. */
static int first_head(struct icpt_conn *c, struct icpt_leg *cl, struct evbuffer *in)
{
	size_t have = evbuffer_get_length(in), look, at, n;
	long end = icpt_http_head_len(in, HEAD_MAX);
	const uint8_t *p;
	struct cursor cur;
	struct evbuffer *before;
	char line[8];

	if (!have)
		return 0;
	look = end > 0 ? (size_t)end : have < 8193 ? have : 8193;
	if (!(p = evbuffer_pullup(in, (ev_ssize_t)look))) {
		c->head_seen = true;   /* out of memory: relayed as it is */
		return 1;
	}
	cursor_init(&cur, p, look);
	switch (http1_request_line(&cur, line, sizeof(line))) {
	case HTTP1_MORE:
		return 0;
	case HTTP1_NOT_HTTP:
		c->head_seen = true;   /* not HTTP: relayed as it is, never kept */
		return 1;
	default:
		break;
	}
	if (end == 0)
		return 0;
	c->head_seen = true;
	if (end < 0 || !icpt_http_close_line(p, (size_t)end, &at, &n) || !(before = evbuffer_new()))
		return 1;
	if (evbuffer_remove_buffer(in, before, at) == (int)at && evbuffer_drain(in, n) == 0 &&
	    evbuffer_prepend_buffer(in, before) == 0) {
		cl->bytes += n;
		c->close_after = true;
	}
	evbuffer_free(before);
	return 1;
}

/* The answer to a client that asked for the close is through: its leg is
 * closed, and the connection to the server kept if it can be. */
static void answered_close(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG], *up = &c->leg[ICPT_UPSTREAM_LEG];

	if (!c->close_after || !c->requests.messages || c->responses.messages < c->requests.messages ||
	    !h1f_between(&c->responses) || cl->shut)
		return;
	note_end(c, CLOSER_PROXY, END_FIN);
	if (can_park(c))
		up->parked = true;
	else
		leg_shut_when_drained(up);
	leg_shut_when_drained(cl);
}

/* What leg `from` sent, on to the other leg. */
static void relay(struct icpt_leg *from)
{
	struct icpt_conn *c = from->c;
	struct icpt_leg *to = other(from);
	struct evbuffer *in = bufferevent_get_input(from->bev), *out;

	if (!to->bev || to->dead || to->shut) {
		from->bytes += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));   /* nowhere to go */
		from->parked = false;   /* a server that sends past its answer is not kept */
		return;
	}
	out = bufferevent_get_output(to->bev);
	if (from->id == ICPT_CLIENT_LEG && keepalive_on(c) && !c->head_seen && !first_head(c, from, in))
		return;
	if (from->id == ICPT_CLIENT_LEG && c->wl->l->icpt->cfg->forward_identity && !c->identity_note[0] &&
	    !c->identity_added && forward_identity(c, in, out) <= 0)
		return;
	frame(c, from, in);
	from->bytes += evbuffer_get_length(in);
	evbuffer_add_buffer(out, in);
	if (from->id == ICPT_UPSTREAM_LEG)
		answered_close(c);
	if (evbuffer_get_length(out) >= c->w->px->buffer_limit) {
		bufferevent_disable(from->bev, EV_READ);
		from->paused = true;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct icpt_leg *leg = arg;
	struct icpt_conn *c = leg->c;
	struct evbuffer *in = bufferevent_get_input(bev);
	long head;

	(void)bev;
	now_of(c, &c->last_activity);
	switch (c->phase) {
	case IP_PHA_WAIT:
		if (icpt_http_head_len(in, HEAD_MAX) != 0)
			pha_ask(c);
		break;
	case IP_REFUSING:
		/* nginx reads the request before it answers */
		head = icpt_http_head_len(in, HEAD_MAX);
		if (head != 0)
			refuse_now(c);
		break;
	case IP_RELAY:
		relay(leg);
		break;
	case IP_ANSWERED:
		leg->bytes += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	default:
		break;   /* kept until the server is there (bounded by the read watermark) */
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct icpt_leg *leg = arg, *o = other(arg);
	struct icpt_conn *c = leg->c;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	now_of(c, &c->last_activity);
	if (o->paused && !o->eof && !o->dead && left < c->w->px->buffer_limit) {
		o->paused = false;
		bufferevent_enable(o->bev, EV_READ);
	}
	if (left == 0 && leg->shut_pending)
		leg_shut(leg);
	maybe_done(c);
}

/* The peer closed (close_notify or FIN), or reset the connection (reset):
 * after a close the other leg is closed in turn once what this one sent is
 * delivered. */
static void leg_ended(struct icpt_leg *leg, bool reset)
{
	struct icpt_conn *c = leg->c;

	leg->eof = true;
	if (reset)
		leg->dead = true;
	bufferevent_disable(leg->bev, reset ? EV_READ | EV_WRITE : EV_READ);
	leg_tap_close(leg, peer_side(leg), reset ? CLOSE_RST : CLOSE_FIN);
	if (leg->id == ICPT_UPSTREAM_LEG && leg->reused && !leg->bytes && c->phase == IP_RELAY) {
		kept_ended(c, reset);
		return;
	}
	if (leg->id == ICPT_UPSTREAM_LEG && c->phase != IP_RELAY) {
		upstream_failed(c, reset ? "the server reset the connection before the client's request"
					 : "the server closed the connection before the client's request");
		maybe_done(c);
		return;
	}
	note_end(c, leg->id == ICPT_CLIENT_LEG ? CLOSER_CLIENT : CLOSER_SERVER, reset ? END_RST : END_FIN);
	if (leg->id == ICPT_CLIENT_LEG && undecided(c)) {
		/* gone before its certificate was asked or answered */
		if (c->pha == PHA_WAITING)
			c->pha = PHA_NO_REQUEST;
		drop_upstream(c);
	}
	if (c->phase == IP_RELAY && leg->id == ICPT_CLIENT_LEG && can_park(c)) {
		other(leg)->parked = true;   /* kept at teardown */
		if (!reset)
			leg_shut_when_drained(leg);
	} else if (c->phase == IP_RELAY) {
		leg_shut_when_drained(other(leg));
	} else if (leg->id == ICPT_CLIENT_LEG && c->phase == IP_CONNECTING)
		upstream_failed(c, "the client left before the server was reached");
	if (!reset && leg->id == ICPT_CLIENT_LEG && c->phase != IP_RELAY)
		leg_shut_when_drained(leg);
	arm(c, LINGER_S);
	maybe_done(c);
}

/* OpenSSL's reason for a failed handshake, one line. */
static void ssl_error_text(struct bufferevent *bev, struct icpt_leg *leg, char *out, size_t len)
{
	unsigned long e, first = 0;
	const char *reason;

	while ((e = bufferevent_get_openssl_error(bev)))
		if (!first)
			first = e;
	ERR_clear_error();
	reason = first ? ERR_reason_error_string(first) : NULL;
	if (leg->alert_received >= 0)
		snprintf(out, len, "the %s sent alert %s (%d)", leg->id == ICPT_CLIENT_LEG ? "client" : "server",
			 icpt_alert_name(leg->alert_received), leg->alert_received);
	else if (reason)
		snprintf(out, len, "%s", reason);
	else
		snprintf(out, len, "the %s closed the connection during the handshake",
			 leg->id == ICPT_CLIENT_LEG ? "client" : "server");
}

/* ---- the client's handshake and the decision ---- */

/* TCP to the real server, begun as soon as the client's hello is read:
 * the server's handshake then runs while the client completes its own. */
static void upstream_connect(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	struct sockaddr_storage ss;
	socklen_t len = netaddr_numeric(c->wl->l->up_host, c->wl->l->up_port, &ss);
	int r;

	c->up_started = true;
	up->connecting = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!up->connecting) {
		upstream_failed(c, "out of memory");
		return;
	}
	bufferevent_setcb(up->connecting, NULL, NULL, event_cb, up);
	if (len)
		r = bufferevent_socket_connect(up->connecting, (struct sockaddr *)&ss, (int)len);
	else
		r = bufferevent_socket_connect_hostname(up->connecting, c->w->dns, AF_UNSPEC, c->wl->l->up_host,
							c->wl->l->up_port);
	if (r != 0)
		upstream_failed(c, "connect: cannot start");
}

void icpt_client_hello(struct icpt_leg *cl)
{
	struct icpt_conn *c = cl->c;

	/* a kept connection will do, if it is still there when the client
	 * is decided */
	if (!c->up_started && c->phase == IP_HANDSHAKE &&
	    !(keepalive_on(c) && icpt_pool_has(c->wl, icpt_pool_key(cl->ssl))))
		upstream_connect(c);
}

/* A client that is not forwarded leaves no trace of a server connection
 * begun for it: the record's upstream leg says it was not opened. */
static void drop_upstream(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];

	icpt_leg_free(up);
	up->c = c;
	up->id = ICPT_UPSTREAM_LEG;
	up->alert_sent = up->alert_received = -1;
}

/* Why a client without a certificate is refused. */
static void no_cert_refusal(struct icpt_conn *c)
{
	switch (c->pha) {
	case PHA_NOT_OFFERED:
		snprintf(c->refusal, sizeof(c->refusal),
			 "no client certificate could be asked for after the handshake: the client did not offer post-handshake authentication (TLS 1.3 post_handshake_auth)");
		break;
	case PHA_UNANSWERED:
		snprintf(c->refusal, sizeof(c->refusal),
			 "the client did not answer the certificate request sent after the handshake within %u s",
			 c->w->px->connect_timeout_s);
		break;
	default:
		snprintf(c->refusal, sizeof(c->refusal), "%s",
			 c->pha == PHA_ANSWERED ? "no client certificate was sent when asked after the handshake"
						: "no client certificate was sent");
		break;
	}
}

/* The client's certificate is in (or is not coming): refused, or on to
 * the real server. */
static void decide(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG], *up = &c->leg[ICPT_UPSTREAM_LEG];
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;
	bool verified;

	cl->peer_cert = SSL_get0_peer_certificate(cl->ssl) != NULL;
	if (cl->peer_cert && !cl->verify.ran)   /* a chain OpenSSL did not get to check */
		cl->verify.err = (int)SSL_get_verify_result(cl->ssl);
	verified = cl->peer_cert && cl->verify.err == X509_V_OK;
	if (cfg->verify == ICPT_VERIFY_REQUIRE && !verified) {
		if (!cl->peer_cert)
			no_cert_refusal(c);
		else
			icpt_verify_text(&cl->verify, c->refusal, sizeof(c->refusal));
		c->outcome = IO_REFUSED_HTTP;
		c->phase = IP_REFUSING;
		drop_upstream(c);
		arm(c, c->w->px->connect_timeout_s);
		if (icpt_http_head_len(bufferevent_get_input(cl->bev), HEAD_MAX) != 0)
			refuse_now(c);
		return;
	}
	c->outcome = IO_FORWARDED;
	c->phase = IP_CONNECTING;
	arm(c, c->w->px->connect_timeout_s);
	if (!c->up_started && !take_kept(c))
		upstream_connect(c);
	if (up->error[0])
		upstream_failed(c, up->error);
	else if (up->tls_done)
		begin_relay(c);
}

/* --post-handshake-auth: the first request is in (or none came in time):
 * the CertificateRequest goes out now.  A client that did not offer
 * post_handshake_auth cannot be asked: decided without a certificate. */
static void pha_ask(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];

	if (SSL_verify_client_post_handshake(cl->ssl) != 1) {
		ERR_clear_error();
		c->pha = PHA_NOT_OFFERED;
		decide(c);
		return;
	}
	c->pha = PHA_ASKED;
	c->phase = IP_PHA_ASKED;
	arm(c, c->w->px->connect_timeout_s);
	/* writes the request; the answer is read as the leg's data is */
	(void)SSL_do_handshake(cl->ssl);
	ERR_clear_error();
}

void icpt_pha_answered(struct icpt_leg *cl)
{
	struct icpt_conn *c = cl->c;
	struct timeval now = { 0, 0 };

	if (c->phase != IP_PHA_ASKED || c->pha != PHA_ASKED)
		return;
	c->pha = PHA_ANSWERED;
	evtimer_add(c->timer, &now);
}

static void client_handshake_done(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;

	cl->tls_done = true;
	now_of(c, &c->hs_end);
	if (cfg->post_handshake_auth) {
		c->pha = SSL_version(cl->ssl) == TLS1_3_VERSION ? PHA_WAITING : PHA_IN_HANDSHAKE;
		if (c->pha == PHA_WAITING) {
			c->phase = IP_PHA_WAIT;
			arm(c, c->w->px->connect_timeout_s);
			if (icpt_http_head_len(bufferevent_get_input(cl->bev), HEAD_MAX) != 0)
				pha_ask(c);
			return;
		}
	}
	decide(c);
}

/* The client's handshake failed: refused with an alert (--refuse alert),
 * or for a reason that is not the stand-in's. */
static void client_handshake_failed(struct icpt_conn *c)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;
	char why[400];

	if (!cl->error[0])
		ssl_error_text(cl->bev, cl, cl->error, sizeof(cl->error));
	if (cfg->verify == ICPT_VERIFY_REQUIRE && cfg->refuse == ICPT_REFUSE_ALERT && cl->alert_sent >= 0 &&
	    (cl->verify.err != X509_V_OK || !cl->verify.ran)) {
		c->outcome = IO_REFUSED_ALERT;
		if (cl->verify.err != X509_V_OK) {
			icpt_verify_text(&cl->verify, why, sizeof(why));
			snprintf(c->refusal, sizeof(c->refusal), "%s; alert %s sent", why,
				 icpt_alert_name(cl->alert_sent));
		} else {
			snprintf(c->refusal, sizeof(c->refusal), "no client certificate was sent; alert %s sent",
				 icpt_alert_name(cl->alert_sent));
		}
		note_end(c, CLOSER_PROXY, END_FIN);
	} else {
		c->outcome = IO_HANDSHAKE_FAILED;
		note_end(c, cl->alert_sent >= 0 ? CLOSER_PROXY : CLOSER_CLIENT, END_FIN);
	}
	cl->dead = true;
	leg_tap_close(cl, own_side(cl), CLOSE_FIN);
	drop_upstream(c);
	icpt_teardown(c);
}

/* ---- the real server ---- */

/* Both legs are up and the client is forwarded: the plaintext flows. */
static void begin_relay(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG], *cl = &c->leg[ICPT_CLIENT_LEG];

	c->phase = IP_RELAY;
	arm(c, TICK_S);
	/* a request sent again: the kept connection it went on was closed */
	if (c->retried && c->resend && up->bev) {
		evbuffer_add_buffer(bufferevent_get_output(up->bev), c->resend);
		drop_resend(c);
	}
	/* what the client sent meanwhile */
	if (cl->bev && evbuffer_get_length(bufferevent_get_input(cl->bev)))
		relay(cl);
	if (cl->eof || cl->dead)
		leg_shut_when_drained(up);
	maybe_done(c);
}

static void upstream_handshake_done(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];

	up->tls_done = true;
	up->peer_cert = SSL_get0_peer_certificate(up->ssl) != NULL;
	if (c->phase == IP_CONNECTING)   /* else the client's handshake is still on */
		begin_relay(c);
}

static void upstream_handshake_failed(struct icpt_conn *c)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	char why[500], verify[400];

	ssl_error_text(up->bev, up, why, sizeof(why));
	if (up->verify.err != X509_V_OK) {
		icpt_verify_text(&up->verify, verify, sizeof(verify));
		snprintf(up->error, sizeof(up->error), "the server's certificate was refused: %.300s", verify);
	} else {
		snprintf(up->error, sizeof(up->error), "TLS handshake with the server failed: %.300s", why);
	}
	upstream_failed(c, up->error);
}

/* TCP to the real server is up: TLS on that socket, the proxy as client. */
static void start_upstream_tls(struct icpt_conn *c, evutil_socket_t fd)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG], *cl = &c->leg[ICPT_CLIENT_LEG];
	struct intercept *ic = c->wl->l->icpt;
	const char *host = c->wl->l->up_host;
	const char *sni = SSL_get_servername(cl->ssl, TLSEXT_NAMETYPE_host_name);
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	unsigned char addr[16];
	bool numeric = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	SSL *ssl = icpt_ssl_new(ic, up);

	proxy_set_nodelay(fd);
	leg_endpoints(up, fd);
	if (!ssl || !leg_observe(up)) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		upstream_failed(c, "out of memory");
		return;
	}
	/* the name the client asked for goes on; the server's chain must be
	 * for the upstream as configured */
	if (sni && *sni)
		SSL_set_tlsext_host_name(ssl, sni);
	else if (!numeric)
		SSL_set_tlsext_host_name(ssl, host);
	if (numeric)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else
		SSL_set1_host(ssl, host);
	SSL_get0_alpn_selected(cl->ssl, &alpn, &alpn_len);
	if (alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0)
		SSL_set_alpn_protos(ssl, (const unsigned char *)"\x08http/1.1", 9);
	if (c->wl->up_session)
		SSL_set_session(ssl, c->wl->up_session);
	ERR_clear_error();
	if (!leg_start(up, fd, ssl, BUFFEREVENT_SSL_CONNECTING)) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		upstream_failed(c, "out of memory");
	}
}

static void connecting_event(struct icpt_conn *c, struct bufferevent *bev, short what)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	char why[300];

	if (what & BEV_EVENT_CONNECTED) {
		evutil_socket_t fd = bufferevent_getfd(bev);

		bufferevent_setfd(bev, -1);   /* the socket goes on under TLS */
		bufferevent_free(bev);
		up->connecting = NULL;
		start_upstream_tls(c, fd);
		return;
	}
	{
		int dns = bufferevent_socket_get_dns_error(bev);
		int err = EVUTIL_SOCKET_ERROR();

		if (dns)
			snprintf(why, sizeof(why), "cannot resolve %s: %s", c->wl->l->up_host, evutil_gai_strerror(dns));
		else
			snprintf(why, sizeof(why), "connect: %s", err ? evutil_socket_error_to_string(err) : "failed");
	}
	upstream_failed(c, why);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct icpt_leg *leg = arg;
	struct icpt_conn *c = leg->c;

	now_of(c, &c->last_activity);
	if (leg->id == ICPT_UPSTREAM_LEG && bev == leg->connecting) {
		connecting_event(c, bev, what);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		if (leg->id == ICPT_CLIENT_LEG)
			client_handshake_done(c);
		else
			upstream_handshake_done(c);
		return;
	}
	/* a certificate exchange after the handshake failing is the
	 * handshake's failure: refused with an alert, or the client's own */
	if (!leg->tls_done || (leg->id == ICPT_CLIENT_LEG && c->phase == IP_PHA_ASKED && (what & BEV_EVENT_ERROR))) {
		if (leg->id == ICPT_CLIENT_LEG)
			client_handshake_failed(c);
		else
			upstream_handshake_failed(c);
		return;
	}
	leg_ended(leg, !(what & BEV_EVENT_EOF));
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct icpt_conn *c = arg;
	struct proxy *px = c->w->px;
	struct timeval now, idle_end;
	unsigned limit;
	char why[100];

	(void)fd;
	(void)what;
	now_of(c, &now);
	switch (c->phase) {
	case IP_HANDSHAKE:
		snprintf(c->leg[ICPT_CLIENT_LEG].error, sizeof(c->leg[0].error),
			 "the client did not complete its handshake within %u s", px->connect_timeout_s);
		c->outcome = IO_HANDSHAKE_FAILED;
		note_end(c, CLOSER_PROXY, END_TIMEOUT);
		drop_upstream(c);
		icpt_teardown(c);
		return;
	case IP_REFUSING:   /* no request came: the answer goes all the same */
		refuse_now(c);
		return;
	case IP_PHA_WAIT:   /* no request came: asked all the same */
		pha_ask(c);
		return;
	case IP_PHA_ASKED:  /* answered (icpt_pha_answered), or not in time */
		if (c->pha != PHA_ANSWERED)
			c->pha = PHA_UNANSWERED;
		decide(c);
		return;
	case IP_CONNECTING:
		snprintf(why, sizeof(why), "%s: timed out after %u s",
			 c->leg[ICPT_UPSTREAM_LEG].bev ? "TLS handshake with the server" : "connect", px->connect_timeout_s);
		upstream_failed(c, why);
		return;
	case IP_ANSWERED:
		note_end(c, CLOSER_PROXY, END_FIN);
		icpt_teardown(c);
		return;
	case IP_RELAY:
		break;
	}
	/* a close passed on: the other end has LINGER_S to answer it */
	limit = c->leg[0].eof || c->leg[1].eof || c->leg[0].dead || c->leg[1].dead ? LINGER_S : px->idle_timeout_s;
	idle_end = c->last_activity;
	idle_end.tv_sec += limit;
	if (timercmp(&now, &idle_end, <)) {
		arm(c, TICK_S);
		return;
	}
	note_end(c, CLOSER_PROXY, limit == LINGER_S ? END_FIN : END_TIMEOUT);
	icpt_teardown(c);
}

/* ---- the end ---- */

static bool refusal_verdict(enum verdict_code code)
{
	return code == V_SERVER_REJECTED_CHAIN || code == V_CLIENT_SENT_NO_CERT;
}

/* The stand-in knows what it did: its own verification is evidence, and
 * a refusal it relayed from the real server (about the proxy's identity,
 * on the upstream leg) is not a refusal of the client's certificate. */
static void correct_client_verdict(struct icpt_conn *c, struct verdict *v)
{
	struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	char text[400];

	if (cl->peer_cert && cl->verify.err != X509_V_OK) {
		icpt_verify_text(&cl->verify, text, sizeof(text));
		verdict_add_evidence(v, text);
	} else if (cl->peer_cert && cl->tls_done) {
		verdict_add_evidence(v, "the stand-in verified the client's chain against --ca-bundle: ok");
	}
	if (c->outcome == IO_FORWARDED && refusal_verdict(v->code) && (!cl->peer_cert || cl->verify.err == X509_V_OK)) {
		verdict_overrule(v, cl->peer_cert ? V_CLIENT_CERT_ACCEPTED : V_NO_CERT_ACCEPTED, F_NONE, v->basis,
				 "the stand-in accepted the client; the refusal relayed to it came from the real server, about the proxy's own certificate (see the upstream leg)");
	}
}

/* The proxy refused the real server's chain: OpenSSL stopped reading the
 * server's flight at the certificate (it reads no further than it needs),
 * so the observer saw it cut short; the proxy knows why it ended. */
static void correct_upstream_verdict(struct icpt_conn *c, struct verdict *v)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	char text[400];

	if (up->tls_done || up->verify.err == X509_V_OK)
		return;
	icpt_verify_text(&up->verify, text, sizeof(text));
	if (v->code == V_CLIENT_REJECTED_SERVER_CERT)
		verdict_add_evidence(v, text);
	else
		verdict_overrule(v, V_CLIENT_REJECTED_SERVER_CERT, F_SERVER, v->basis == B_INFERRED ? B_OBSERVED : v->basis,
				 text);
}

/* The leg's observer, its evidence tap and its key log go. */
static void leg_unobserve(struct icpt_leg *leg)
{
	obs_conn_free(leg->obs);
	ticket_tap_free(leg->tap);
	keylog_free(leg->keys);
	leg->obs = NULL;
	leg->tap = NULL;
	leg->keys = NULL;
}

void icpt_leg_free(struct icpt_leg *leg)
{
	if (leg->connecting)
		bufferevent_free(leg->connecting);
	if (leg->ssl)
		icpt_ssl_forget(leg->ssl);
	if (leg->bev)
		bufferevent_free(leg->bev);   /* frees the SSL and closes the socket */
	else
		SSL_free(leg->ssl);
	leg_unobserve(leg);
	memset(leg, 0, sizeof(*leg));
}

/* A parked connection to the server (the client left between two
 * exchanges) goes to the idle ones, unless something went wrong on it
 * since; its observer has made its record and goes. */
static void keep_upstream(struct icpt_conn *c, const struct verdict *uv)
{
	struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	char key[256];

	if (!up->parked || !up->bev || up->eof || up->dead || up->shut || out_len(up) || c->w->draining ||
	    icpt_upstream_failed(c, uv) || c->responses.messages != c->requests.messages ||
	    !h1f_between(&c->responses))
		return;
	snprintf(key, sizeof(key), "%s", icpt_pool_key(c->leg[ICPT_CLIENT_LEG].ssl));
	leg_unobserve(up);
	up->served++;
	up->parked = false;
	icpt_pool_put(c->wl, key, up);   /* up is cleared */
	up->c = c;
	up->id = ICPT_UPSTREAM_LEG;
}

static void icpt_teardown(struct icpt_conn *c)
{
	struct worker *w = c->w;
	const struct verdict *cv = NULL, *uv = NULL;
	struct timeval now;
	int i;

	if (c->torn_down)
		return;
	c->torn_down = true;
	now_of(c, &now);
	for (i = 0; i < 2; i++) {
		struct icpt_leg *leg = &c->leg[i];

		if (!leg->obs)
			continue;
		leg_tap_close(leg, own_side(leg), CLOSE_FIN);
		if (i == ICPT_CLIENT_LEG)
			cv = obs_conn_finish(leg->obs, false, &now);
		else
			uv = obs_conn_finish(leg->obs, false, &now);
	}
	if (uv)
		correct_upstream_verdict(c, obs_conn_verdict_for_update(c->leg[ICPT_UPSTREAM_LEG].obs));
	if (cv)
		correct_client_verdict(c, obs_conn_verdict_for_update(c->leg[ICPT_CLIENT_LEG].obs));
	icpt_record(c, cv, uv, ms_between(&c->start, &now));
	if (w->px->metrics) {
		if (cv)
			metrics_connection(w->px->metrics, obs_conn_facts(c->leg[ICPT_CLIENT_LEG].obs), cv);
		if (c->leg[ICPT_CLIENT_LEG].tls_done)
			metrics_handshake(w->px->metrics, &c->start, &c->hs_end);
		metrics_relayed(w->px->metrics, c->leg[ICPT_CLIENT_LEG].bytes, c->leg[ICPT_UPSTREAM_LEG].bytes);
		metrics_upstream_kept(w->px->metrics, c->leg[ICPT_UPSTREAM_LEG].reused, c->retried);
	}
	if (icpt_upstream_failed(c, uv) && c->wl->up_session) {
		/* a session the server refused is not to be resumed: the next
		 * connection shows it the certificate exchange again */
		SSL_SESSION_free(c->wl->up_session);
		c->wl->up_session = NULL;
	}
	keep_upstream(c, uv);
	for (i = 0; i < 2; i++)
		icpt_leg_free(&c->leg[i]);
	drop_resend(c);
	if (c->timer)
		event_free(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->iconns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	worker_conn_closed(w);
}

void icpt_close_all(struct worker *w)
{
	size_t i;

	while (w->iconns) {
		note_end(w->iconns, CLOSER_PROXY, END_SHUTDOWN);
		icpt_teardown(w->iconns);
	}
	for (i = 0; w->wls && i < w->px->n_ls; i++) {
		icpt_pool_close_all(&w->wls[i]);
		SSL_SESSION_free(w->wls[i].up_session);
		w->wls[i].up_session = NULL;
	}
}

/* ---- accepted ---- */

void icpt_accept(struct wlistener *wl, evutil_socket_t fd, const struct sockaddr *sa)
{
	struct worker *w = wl->w;
	struct icpt_conn *c = calloc(1, sizeof(*c));
	struct icpt_leg *cl;
	SSL *ssl = NULL;
	int i;

	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->w = w;
	c->wl = wl;
	c->closed_by = CLOSER_NONE;
	for (i = 0; i < 2; i++) {
		c->leg[i].c = c;
		c->leg[i].id = (enum icpt_leg_id)i;
		c->leg[i].alert_sent = c->leg[i].alert_received = -1;
	}
	cl = &c->leg[ICPT_CLIENT_LEG];
	h1f_init(&c->requests, H1F_REQUESTS);
	h1f_init(&c->responses, H1F_RESPONSES);
	h1f_pair(&c->responses, &c->requests);
	event_base_gettimeofday_cached(w->base, &c->start);
	c->last_activity = c->start;
	netaddr_endpoint(sa, &c->client);
	c->next = w->iconns;
	if (w->iconns)
		w->iconns->prev = c;
	w->iconns = c;
	worker_conn_opened(w);
	leg_endpoints(cl, fd);
	c->timer = evtimer_new(w->base, timer_cb, c);
	if (!c->timer || !(ssl = icpt_ssl_new(wl->l->icpt, cl)) || !leg_observe(cl) ||
	    !leg_start(cl, fd, ssl, BUFFEREVENT_SSL_ACCEPTING)) {
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: out of memory: connection from %s dropped", c->client.ip);
		SSL_free(ssl);
		evutil_closesocket(fd);
		note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		icpt_teardown(c);
		return;
	}
	arm(c, w->px->connect_timeout_s);
}
