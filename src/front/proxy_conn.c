/* proxy_conn: one relayed connection, a struct pconn with two symmetric
 * sides, SIDE_CLIENT (accepted) and SIDE_SERVER (upstream), from accept to
 * pconn_teardown, the only place its final record is written and its
 * resources freed.
 *
 * A connection goes through up to three phases: REQUEST (connect mode
 * only: reading the client's CONNECT request), CONNECTING (resolving and
 * connecting to the server; what the client sends meanwhile waits in the
 * server side's output, which libevent does not write before the connect
 * completes) and RELAY (relay.c); or ANSWERED, when the proxy itself
 * answers a CONNECT request with an error and closes.  What is relayed is
 * shown to the connection's observer and written to the capture here
 * (the tap), and the verdict is logged the moment it is final. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "analysis/evidence.h"
#include "front/netaddr.h"
#include "front/proxy_int.h"
#include "front/sourcecap.h"
#include "out/metrics.h"
#include "out/json.h"
#include "out/pcapout.h"
#include "out/report.h"
#include "wire/cursor.h"
#include "wire/keylog.h"
#include "wire/preamble.h"

/* While the verdict waits for the conversation after the handshake, the
 * timer wakes this often: an open, quiet session after its answer has gone
 * on (conversation.h), and its record should not wait for the close. */
#define VERDICT_POLL_S 1
/* About what an open connection takes besides its handshake bytes (its
 * observer's facts and verdict, the bufferevents): counted as freed at
 * its end, towards the next malloc_trim. */
#define CONN_FOOTPRINT (16 * 1024)

/* A name being resolved for a connection.  The lookup outlives the
 * connection when the connection ends first: it is cancelled, and its
 * callback (which libevent always makes) frees it. */
struct dns_lookup {
	struct pconn *c;             /* NULL once the connection is gone */
	struct evdns_getaddrinfo_request *req;
};

static const char CONNECT_OK_ANSWER[] = "HTTP/1.1 200 Connection established\r\n\r\n";

enum side pconn_side_of(const struct pconn *c, const struct bufferevent *bev)
{
	return c->side[SIDE_SERVER].bev == bev ? SIDE_SERVER : SIDE_CLIENT;
}

void pconn_now(const struct pconn *c, struct timeval *tv)
{
	event_base_gettimeofday_cached(c->w->base, tv);
}

void pconn_note_end(struct pconn *c, enum closer who, enum end_kind how)
{
	if (c->closed_by == CLOSER_NONE) {
		c->closed_by = who;
		c->end = how;
	}
}

/* ---- closing from inside a callback ---- */

/* A close decided inside a relay callback, which goes on using c after
 * this returns: nothing more is read (nor spliced), and the timer tears c
 * down as soon as the loop gets back to it. */
static void close_soon(struct pconn *c, enum end_kind how)
{
	int s;

	pconn_note_end(c, CLOSER_PROXY, how);
	if (c->closing || !c->timer)
		return;
	c->closing = true;
	for (s = 0; s < 2; s++) {
		c->side[s].read_done = true;
		if (c->side[s].bev)
			bufferevent_disable(c->side[s].bev, EV_READ);
	}
	evtimer_del(c->timer);
	event_active(c->timer, EV_TIMEOUT, 1);
}

/* ---- the handshake budget ---- */

/* Brings c's share of the proxy's handshake total up to date (what its
 * observer holds now); returns the new total. */
static size_t budget_account(struct pconn *c)
{
	struct proxy *px = c->w->px;
	size_t now = c->obs ? obs_conn_buffered(c->obs) : 0, was = c->hs_counted;

	if (now == was)   /* the common case while relaying: no shared write */
		return atomic_load(&px->hs_total);
	c->hs_counted = now;
	if (now > was)
		return atomic_fetch_add(&px->hs_total, now - was) + (now - was);
	proxy_note_freed(px, was - now);
	return atomic_fetch_sub(&px->hs_total, was - now) - (was - now);
}

/* c went over the handshake budget (why): its observer stops and frees
 * what it held; c is relayed on unobserved, or closed (--over-budget). */
static void over_budget(struct pconn *c, const char *why)
{
	char text[VERDICT_EVIDENCE_LEN];
	bool close = c->w->px->cfg->over_budget_close;

	snprintf(text, sizeof(text), "%s; %s", why,
		 close ? "connection closed (--over-budget close)" : "relayed on unobserved");
	obs_conn_abandon(c->obs, text);
	c->unobserved = true;
	(void)budget_account(c);
	emit_note(c, text);
	if (close)
		close_soon(c, END_OVER_BUDGET);
}

/* After the observer was fed: this connection past --max-handshake-bytes,
 * or the total past --max-handshake-total as this one grew. */
static void budget_check(struct pconn *c)
{
	struct proxy *px = c->w->px;
	size_t was = c->hs_counted, need, total;
	char why[VERDICT_EVIDENCE_LEN];

	if (obs_conn_over_budget(c->obs, &need)) {
		snprintf(why, sizeof(why),
			 "handshake over budget: %zu bytes to hold for this connection, over --max-handshake-bytes %zu",
			 need, px->max_handshake);
		over_budget(c, why);
		return;
	}
	total = budget_account(c);
	if (total > px->max_handshake_total && c->hs_counted > was) {
		snprintf(why, sizeof(why),
			 "handshake over budget: %zu bytes held for all connections, over --max-handshake-total %zu",
			 total, px->max_handshake_total);
		over_budget(c, why);
	}
}

/* ---- the observer and the capture see what was relayed ---- */

static void pcap_locked(struct proxy *px, void (*fn)(struct pconn *, enum side, enum close_kind,
						    const uint8_t *, size_t, const struct timeval *),
			struct pconn *c, enum side s, enum close_kind how, const uint8_t *p, size_t n,
			const struct timeval *ts)
{
	pthread_mutex_lock(&px->pcap_lock);
	fn(c, s, how, p, n, ts);
	pthread_mutex_unlock(&px->pcap_lock);
}

static void pcap_write(struct pconn *c, enum side s, enum close_kind how, const uint8_t *p, size_t n,
		       const struct timeval *ts)
{
	(void)how;
	pcapout_skip(c->pcap, s, c->side[s].unrecorded);
	c->side[s].unrecorded = 0;
	pcapout_data(c->pcap, s, p, n, ts);
}

static void pcap_end(struct pconn *c, enum side s, enum close_kind how, const uint8_t *p, size_t n,
		     const struct timeval *ts)
{
	(void)p;
	(void)n;
	pcapout_skip(c->pcap, s, c->side[s].unrecorded);
	c->side[s].unrecorded = 0;
	pcapout_close(c->pcap, s, how, ts);
}

/* Bytes side `from` sent, in order: to the observer while it still wants
 * them, and to the capture (all of them with --pcap-full; otherwise as
 * long as the observer reads, then only counted). */
static void tap_bytes(struct pconn *c, enum side from, const uint8_t *p, size_t n,
		      const struct timeval *now)
{
	bool wanted = obs_conn_wants_bytes(c->obs);

	/* a secret the client has not written yet may be there by now */
	if (wanted && c->w->ocfg.keylog && obs_conn_awaiting_keys(c->obs))
		keylog_refresh(c->w->ocfg.keylog);
	if (wanted) {
		ticket_tap_data(c->tap, from, p, n, now);
		obs_conn_feed(c->obs, from, p, n, now);
		budget_check(c);
		if (c->w->px->metrics && !c->hs_ended && c->obs && obs_conn_handshake_over(c->obs) &&
		    obs_conn_facts(c->obs)->is_tls) {
			c->hs_ended = true;
			c->hs_end = *now;
		}
	}
	if (!c->pcap)
		return;
	if (wanted || c->w->px->cfg->pcap_full)
		pcap_locked(c->w->px, pcap_write, c, from, CLOSE_FIN, p, n, now);
	else
		c->side[from].unrecorded += n;
}

void tap_buffer(struct pconn *c, enum side from, struct evbuffer *buf, const struct timeval *now)
{
	struct evbuffer_iovec small[16], *vec = small;
	int n, i;

	if (!c->obs || (!c->pcap && !obs_conn_wants_bytes(c->obs)))
		return;
	n = evbuffer_peek(buf, -1, NULL, NULL, 0);
	if (n <= 0)
		return;
	if (n > 16 && !(vec = malloc((size_t)n * sizeof(*vec))))
		return;
	n = evbuffer_peek(buf, -1, NULL, vec, n);
	for (i = 0; i < n; i++)
		tap_bytes(c, from, vec[i].iov_base, vec[i].iov_len, now);
	if (vec != small)
		free(vec);
}

void tap_close(struct pconn *c, enum side s, enum close_kind how)
{
	struct timeval now;

	if (!c->obs || c->side[s].tap_closed)
		return;
	pconn_now(c, &now);
	c->side[s].tap_closed = true;
	ticket_tap_close(c->tap, s, how, &now);
	obs_conn_close(c->obs, s, how, &now);
	if (c->pcap)
		pcap_locked(c->w->px, pcap_end, c, s, how, NULL, 0, &now);
}

/* ---- the verdict, the end ---- */

/* The verdict the moment the observer calls it final. */
void pconn_check_early(struct pconn *c)
{
	const struct verdict *v;
	char line[2048];

	if (c->early_logged || !c->obs)
		return;
	v = obs_conn_early_verdict(c->obs);
	(void)budget_account(c);   /* a settled verdict frees the decoding state */
	if (!v)
		return;
	c->early_logged = true;
	report_line(line, sizeof(line), obs_conn_facts(c->obs), v);
	emit_verdict(c->w->px, line, obs_conn_facts(c->obs), v, false);
	/* said: until its end the connection only relays (and is spliced),
	 * and the finish decides again from the facts */
	obs_conn_shrink(c->obs);
}

void pconn_maybe_done(struct pconn *c)
{
	int s;

	for (s = 0; s < 2; s++)
		if (!c->side[s].read_done || !c->side[s].write_done)
			return;
	pconn_teardown(c);
}

/* ---- the proxy answers itself ---- */

/* Connect mode: the connection ends with an HTTP answer from the proxy
 * itself (the CONNECT refused, or its target unreachable); the client's
 * side is shut once the answer is written. */
static void answer_and_close(struct pconn *c, int status, const char *phrase, const char *text)
{
	struct pconn_side *cl = &c->side[SIDE_CLIENT], *up = &c->side[SIDE_SERVER];
	struct timeval flush = { c->w->px->connect_timeout_s, 0 };

	c->phase = PH_ANSWERED;
	evtimer_add(c->timer, &flush);   /* for the answer to be read */
	relay_close_side(up);
	up->dead = up->read_done = up->write_done = true;
	cl->read_done = true;
	bufferevent_disable(cl->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(cl->bev), evbuffer_get_length(bufferevent_get_input(cl->bev)));
	if (cl->write_done || cl->dead) {
		pconn_maybe_done(c);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(cl->bev),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\nProxy-Agent: mtlsdiag\r\n\r\n%s\n",
			    status, phrase, strlen(text) + 1, text);
	cl->shut_pending = true;
}

static void upstream_failed(struct pconn *c, const char *why, bool timed_out)
{
	char text[600];

	emit_failure(c, "upstream_error", "upstream unreachable", why);
	pconn_note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
	if (c->wl->l->cfg->mode != PROXY_CONNECT) {
		pconn_teardown(c);
		return;
	}
	snprintf(text, sizeof(text), "mtlsdiag proxy: cannot reach %s: %s", c->target, why);
	if (timed_out)
		answer_and_close(c, 504, "Gateway Timeout", text);
	else
		answer_and_close(c, 502, "Bad Gateway", text);
}

static void refuse_connect(struct pconn *c, int status, const char *phrase, const char *why)
{
	char text[600], what[64];

	snprintf(what, sizeof(what), "refused with %d %s", status, phrase);
	emit_failure(c, "connect_refused", what, why);
	pconn_note_end(c, CLOSER_PROXY, END_REFUSED);
	snprintf(text, sizeof(text), "mtlsdiag proxy: %s", why);
	answer_and_close(c, status, phrase, text);
}

/* The client went away before its CONNECT request was complete. */
void pconn_request_abandoned(struct pconn *c, enum end_kind how)
{
	emit_failure(c, "connect_refused", "abandoned",
		     how == END_RST ? "the client reset the connection before its CONNECT request was complete"
				    : "the client closed before its CONNECT request was complete");
	pconn_note_end(c, CLOSER_CLIENT, how);
	pconn_teardown(c);
}

/* ---- connected, events and timers ---- */

/* The observer (and the capture), once the server's address is known, or
 * for a connection that ended before the upstream answered. */
static void start_observer(struct pconn *c, const struct endpoint *server, const struct timeval *now)
{
	struct proxy *px = c->w->px;
	struct pconn_side *up = &c->side[SIDE_SERVER];

	c->obs = obs_conn_new(&c->w->ocfg, &c->client, server, &c->start, true);
	if (!c->obs)
		return;
	if (px->ticket)
		c->tap = ticket_tap_new();   /* NULL: its folder goes without handshake.pcap */
	if (px->pcap) {
		pthread_mutex_lock(&px->pcap_lock);
		c->pcap = pcapout_conn_new(px->pcap, &c->client, server, &c->start);
		pthread_mutex_unlock(&px->pcap_lock);
	}
	if (c->request) {
		/* connect mode answered here: the exchange the client saw comes
		 * first, as a capture on the client's side would show it */
		tap_buffer(c, SIDE_CLIENT, c->request, &c->start);
		evbuffer_free(c->request);
		c->request = NULL;
		if (c->phase == PH_RELAY) {
			bufferevent_write(c->side[SIDE_CLIENT].bev, CONNECT_OK_ANSWER, sizeof(CONNECT_OK_ANSWER) - 1);
			tap_bytes(c, SIDE_SERVER, (const uint8_t *)CONNECT_OK_ANSWER, sizeof(CONNECT_OK_ANSWER) - 1, now);
		}
	}
	/* What the client sent while we connected waits, unsent, in the
	 * upstream's output: libevent writes nothing before the connection. */
	if (up->bev)
		tap_buffer(c, SIDE_CLIENT, bufferevent_get_output(up->bev), now);
	if (c->side[SIDE_CLIENT].read_done)   /* the client left while we connected */
		tap_close(c, SIDE_CLIENT, c->side[SIDE_CLIENT].dead ? CLOSE_RST : CLOSE_FIN);
}

static void configured_upstream(const struct pconn *c, struct endpoint *server)
{
	memset(server, 0, sizeof(*server));
	/* a name longer than an address is cut here; the record's `upstream`
	 * member carries it whole */
	snprintf(server->ip, sizeof(server->ip), "%.*s", (int)sizeof(server->ip) - 1, c->up_host);
	server->port = c->up_port;
}

static void on_connected(struct pconn *c)
{
	struct proxy *px = c->w->px;
	struct pconn_side *up = &c->side[SIDE_SERVER];
	evutil_socket_t fd = bufferevent_getfd(up->bev);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct endpoint server;
	struct timeval now, idle = { px->idle_timeout_s, 0 };

	c->phase = PH_RELAY;
	pconn_now(c, &now);
	c->last_activity = now;
	proxy_set_nodelay(fd);
	/* a numeric upstream is where we connected: no getpeername needed */
	if (netaddr_numeric(c->up_host, c->up_port, &ss) != 0 ||
	    getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
		netaddr_endpoint((struct sockaddr *)&ss, &server);
	else
		configured_upstream(c, &server);
	start_observer(c, &server, &now);
	if (idle.tv_sec > VERDICT_POLL_S)
		idle.tv_sec = VERDICT_POLL_S;
	evtimer_add(c->timer, &idle);
	if (up->shut_pending && evbuffer_get_length(bufferevent_get_output(up->bev)) == 0)
		relay_shut_side(c, SIDE_SERVER);
	pconn_check_early(c);
	pconn_maybe_done(c);
}

void pconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pconn *c = arg;
	enum side s = pconn_side_of(c, bev);
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		on_connected(c);
		return;
	}
	if (s == SIDE_SERVER && c->phase == PH_CONNECTING) {
		char why[300];

		snprintf(why, sizeof(why), "connect: %s", err ? evutil_socket_error_to_string(err) : "failed");
		upstream_failed(c, why, false);
		return;
	}
	if (what & BEV_EVENT_EOF)
		relay_eof(c, s);
	else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		relay_error(c, s);
}

/* The connection's one timer: the CONNECT request, connecting, then
 * while relaying the handshake deadline (--handshake-timeout, from the
 * accept until obs_conn_handshake_over), the idle timeout, and polling
 * for the verdict of a session gone quiet. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;
	struct proxy *px = c->w->px;
	struct timeval now, idle_end, hs_end, left;
	enum end_kind how = END_TIMEOUT;
	bool hs_pending;
	int s;

	(void)fd;
	(void)what;
	if (c->phase == PH_ANSWERED) {   /* the client did not take the answer */
		pconn_teardown(c);
		return;
	}
	if (c->closing) {
		for (s = 0; s < 2; s++)
			tap_close(c, (enum side)s, CLOSE_TIMEOUT);
		pconn_teardown(c);
		return;
	}
	if (c->phase == PH_REQUEST) {
		char why[100];

		snprintf(why, sizeof(why), "no complete CONNECT request within %u s", px->connect_timeout_s);
		emit_failure(c, "connect_refused", "timed out", why);
		pconn_note_end(c, CLOSER_PROXY, END_TIMEOUT);
		pconn_teardown(c);
		return;
	}
	if (c->phase == PH_CONNECTING) {
		char why[300];

		if (c->lookup)
			snprintf(why, sizeof(why), "resolving %s timed out after %u s", c->up_host, px->connect_timeout_s);
		else
			snprintf(why, sizeof(why), "connect: timed out after %u s", px->connect_timeout_s);
		upstream_failed(c, why, true);
		return;
	}
	pconn_now(c, &now);
	if (!c->early_logged && c->obs) {
		obs_conn_quiet_until(c->obs, &now);
		pconn_check_early(c);
	}
	idle_end = c->last_activity;
	idle_end.tv_sec += px->idle_timeout_s;
	hs_end = c->start;
	hs_end.tv_sec += px->handshake_timeout_s;
	hs_pending = c->obs && !c->unobserved && !obs_conn_handshake_over(c->obs);
	if (hs_pending && !timercmp(&now, &hs_end, <)) {
		how = END_HANDSHAKE_TIMEOUT;
	} else if (timercmp(&now, &idle_end, <)) {
		if (hs_pending && timercmp(&hs_end, &idle_end, <))
			idle_end = hs_end;
		timersub(&idle_end, &now, &left);
		if (!c->early_logged && left.tv_sec >= VERDICT_POLL_S) {
			left.tv_sec = VERDICT_POLL_S;
			left.tv_usec = 0;
		}
		evtimer_add(c->timer, &left);
		return;
	}
	pconn_note_end(c, CLOSER_PROXY, how);
	for (s = 0; s < 2; s++)
		tap_close(c, (enum side)s, CLOSE_TIMEOUT);
	pconn_teardown(c);
}

/* The one teardown: the final record, then everything freed. */
void pconn_teardown(struct pconn *c)
{
	struct worker *w = c->w;
	struct proxy *px = w->px;
	struct timeval now;
	int s;

	if (c->torn_down)
		return;
	c->torn_down = true;
	pconn_now(c, &now);
	if (!c->obs && c->phase == PH_CONNECTING && c->closed_by != CLOSER_NONE &&
	    c->end != END_UPSTREAM_ERROR) {
		/* It ended before the upstream connected (a client that reset at
		 * once, a stop while connecting): it still gets its one record,
		 * with the upstream as configured for the server.  An upstream
		 * error has written its own. */
		struct endpoint server;

		configured_upstream(c, &server);
		start_observer(c, &server, &now);
	}
	if (c->obs) {
		const struct verdict *v;
		const struct conn_facts *f;
		uint64_t ms = ms_between(&c->start, &now);
		char line[2048];
		size_t used;

		/* the client has written its secrets by the time it closes */
		if (c->w->ocfg.keylog && obs_conn_awaiting_keys(c->obs)) {
			keylog_refresh(c->w->ocfg.keylog);
			obs_conn_retry_keys(c->obs);
		}
		/* sides the proxy closed itself did not close: nothing to report */
		v = obs_conn_finish(c->obs, false, &now);
		if (c->end == END_HANDSHAKE_TIMEOUT)
			(void)verdict_line_kept(obs_conn_verdict_for_update(c->obs),
						"the proxy closed the connection: its TLS handshake was not over %u s after it was accepted (--handshake-timeout %u)",
						px->handshake_timeout_s, px->handshake_timeout_s);
		f = obs_conn_facts(c->obs);
		report_line(line, sizeof(line), f, v);
		used = strlen(line);
		if (used < sizeof(line))
			snprintf(line + used, sizeof(line) - used,
				 " [closed by %s: %s; %llu ms; client sent %llu B, server sent %llu B]",
				 closer_name(c->closed_by), end_name(c->end), (unsigned long long)ms,
				 (unsigned long long)c->side[SIDE_CLIENT].bytes,
				 (unsigned long long)c->side[SIDE_SERVER].bytes);
		emit_verdict(px, line, f, v, true);
		line[used < sizeof(line) ? used : sizeof(line) - 1] = '\0';   /* the record's summary: without the relay's part */
		if (px->cfg->json)
			emit_json(px->cfg->json, c, f, v, line, ms);
		if (px->ticket) {
			struct json *rec = &w->record;

			/* its connection.json: the record as --json writes it */
			json_reset(rec);
			conn_record(rec, c, f, v, line, ms);
			ticket_add(px->ticket, &(struct ticket_conn){ .f = f, .v = v, .line = line, .tap = c->tap,
								      .certs = w->ocfg.certs, .keylog = w->ocfg.keylog,
								      .record = rec->failed ? NULL : json_text(rec) });
		}
		if (px->metrics) {
			metrics_connection(px->metrics, f, v);
			if (c->hs_ended)
				metrics_handshake(px->metrics, &c->start, &c->hs_end);
		}
		obs_conn_free(c->obs);
		c->obs = NULL;
	}
	ticket_tap_free(c->tap);
	c->tap = NULL;
	if (px->metrics)
		metrics_relayed(px->metrics, c->side[SIDE_CLIENT].bytes, c->side[SIDE_SERVER].bytes);
	(void)budget_account(c);
	proxy_note_freed(px, CONN_FOOTPRINT);
	if (c->pcap) {
		pthread_mutex_lock(&px->pcap_lock);
		pcapout_conn_free(c->pcap);
		if (pcapout_flush(px->pcap) != 0 && !atomic_exchange(&px->pcap_failed, true)) {
			int error;

			(void)pcapout_lost(px->pcap, &error);
			emit_fmt(px->cfg->log, "mtlsdiag proxy: --pcap-out %s: %s: packets are being lost (the file "
				 "keeps its whole packets; the relay goes on)", px->cfg->pcap_out, strerror(error));
		}
		pthread_mutex_unlock(&px->pcap_lock);
	}
	if (c->request)
		evbuffer_free(c->request);
	if (c->lookup) {   /* its callback, cancelled, frees it */
		c->lookup->c = NULL;
		evdns_getaddrinfo_cancel(c->lookup->req);
	}
	if (c->own_port)
		atomic_fetch_sub(&px->own_ports[c->own_port], 1);
	if (c->source_counted)
		sourcecap_release(px->sources, c->client.ip);
	for (s = 0; s < 2; s++)
		relay_close_side(&c->side[s]);
	if (c->timer)
		event_free(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	worker_conn_closed(w);
}

/* ---- connecting ---- */

static void resolved_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct dns_lookup *l = arg;
	struct pconn *c = l->c;
	char why[300];

	free(l);
	if (!c) {   /* cancelled: the connection ended while its name was resolved */
		if (ai)
			evutil_freeaddrinfo(ai);
		return;
	}
	c->lookup = NULL;
	if (err || !ai) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", c->up_host,
			 evutil_gai_strerror(err ? err : EVUTIL_EAI_NONAME));
		if (ai)
			evutil_freeaddrinfo(ai);
		upstream_failed(c, why, false);
		return;
	}
	/* Last: the callbacks may run before it returns */
	if (bufferevent_socket_connect(c->side[SIDE_SERVER].bev, ai->ai_addr, (int)ai->ai_addrlen) != 0)
		upstream_failed(c, "connect: cannot start", false);
	evutil_freeaddrinfo(ai);
}

/* A name is resolved by the worker's evdns base, without blocking (the
 * first address is connected to, as libevent's own connect_hostname does). */
static void start_lookup(struct pconn *c)
{
	struct evutil_addrinfo hints;
	struct dns_lookup *l = calloc(1, sizeof(*l));
	struct evdns_getaddrinfo_request *req;
	char port[8];

	if (!l) {
		upstream_failed(c, "cannot resolve: out of memory", false);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%u", c->up_port);
	l->c = c;
	c->lookup = l;
	/* Last: an answer known at once (an /etc/hosts name, a failure) comes
	 * through the callback before it returns, and then NULL is returned
	 * (l and possibly c are gone by then) */
	req = evdns_getaddrinfo(c->w->dns, c->up_host, port, &hints, resolved_cb, l);
	if (req)
		l->req = req;
}

static void start_connect(struct pconn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = netaddr_numeric(c->up_host, c->up_port, &ss);

	c->phase = PH_CONNECTING;
	if (!len) {
		start_lookup(c);
		return;
	}
	/* Last: the callbacks may run before it returns. */
	if (bufferevent_socket_connect(c->side[SIDE_SERVER].bev, (struct sockaddr *)&ss, (int)len) != 0)
		upstream_failed(c, "connect: cannot start", false);
}

/* Transparent mode: the upstream socket is bound to its local port before
 * it connects, and the port noted, so that the loop recognises this very
 * connection should a REDIRECT rule send it back here (redirected_back). */
static void start_connect_transparent(struct pconn *c, const struct sockaddr_storage *dst)
{
	struct proxy *px = c->w->px;
	struct sockaddr_storage any = { .ss_family = dst->ss_family }, local;
	socklen_t len = dst->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	socklen_t llen = sizeof(local);
	struct endpoint ep;
	evutil_socket_t fd;
	char why[200];

	c->phase = PH_CONNECTING;
	fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&any, len) != 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		upstream_failed(c, why, false);
		return;
	}
	netaddr_endpoint((struct sockaddr *)&local, &ep);
	c->own_port = ep.port;
	atomic_fetch_add(&px->own_ports[c->own_port], 1);
	bufferevent_setfd(c->side[SIDE_SERVER].bev, fd);
	/* Last: the callbacks may run before it returns. */
	if (bufferevent_socket_connect(c->side[SIDE_SERVER].bev, (const struct sockaddr *)dst, (int)len) != 0)
		upstream_failed(c, "connect: cannot start", false);
}

/* Connect mode: the client's request, once its header block is complete. */
void pconn_connect_request(struct pconn *c)
{
	const struct proxy_listen_config *lc = c->wl->l->cfg;
	struct evbuffer *in = bufferevent_get_input(c->side[SIDE_CLIENT].bev);
	size_t len = evbuffer_get_length(in), i;
	size_t view_len = len < CONNECT_HEAD_MAX ? len : CONNECT_HEAD_MAX;
	const uint8_t *view = evbuffer_pullup(in, (ev_ssize_t)view_len);
	struct connect_request req;
	struct cursor cur;
	char host[256];
	uint16_t port;
	bool allowed;

	if (!view)
		return;
	cursor_init(&cur, view, view_len);
	switch (preamble_parse_connect(&cur, &req)) {
	case CONNECT_MORE:
		return;
	case CONNECT_BAD:
		refuse_connect(c, 400, "Bad Request", req.error);
		return;
	case CONNECT_OK:
		break;
	}
	snprintf(c->target, sizeof(c->target), "%s", req.target);
	if (!proxy_split_hostport(req.target, host, sizeof(host), &port)) {
		refuse_connect(c, 400, "Bad Request", "the CONNECT target is not host:port");
		return;
	}
	allowed = lc->n_allow == 0;
	for (i = 0; i < lc->n_allow && !allowed; i++)
		allowed = proxy_allow_match(lc->allow[i], host, port);
	if (!allowed) {
		refuse_connect(c, 403, "Forbidden", "destination not allowed (see --allow)");
		return;
	}
	if (lc->via) {
		/* the gateway gets the request as the client wrote it (its
		 * Proxy-Authorization included) and answers it itself */
		snprintf(c->up_host, sizeof(c->up_host), "%s", c->wl->l->up_host);
		c->up_port = c->wl->l->up_port;
	} else {
		c->request = evbuffer_new();
		if (!c->request || evbuffer_remove_buffer(in, c->request, req.head_len) != (int)req.head_len) {
			refuse_connect(c, 500, "Internal Server Error", "out of memory");
			return;
		}
		c->side[SIDE_CLIENT].bytes += req.head_len;
		snprintf(c->up_host, sizeof(c->up_host), "%s", host);
		c->up_port = port;
	}
	c->side[SIDE_CLIENT].bytes += evbuffer_get_length(in);
	relay_input(c, SIDE_CLIENT);
	start_connect(c);
}

/* ---- accepted ---- */

/* Whether a transparent connection's client is one of our own upstream
 * sockets: its port is one we connect from, and its address is ours. */
static bool redirected_back(const struct proxy *px, evutil_socket_t fd, const struct endpoint *client)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct endpoint local;

	if (!px->own_ports || atomic_load(&px->own_ports[client->port]) == 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	netaddr_endpoint((struct sockaddr *)&ss, &local);
	return strcmp(local.ip, client->ip) == 0;
}

/* Closes a connection refused at accept, with a reset: the client learns
 * at once, and no TIME_WAIT stays behind here. */
static void refuse_at_accept(evutil_socket_t fd)
{
	struct linger lg = { 1, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	evutil_closesocket(fd);
}

void pconn_accept(const struct wlistener *wl, evutil_socket_t fd, const struct sockaddr *sa)
{
	struct worker *w = wl->w;
	struct proxy *px = w->px;
	struct pconn *c;
	struct timeval ct = { px->connect_timeout_s, 0 }, now;
	struct endpoint client;
	char why[200];

	/* the record's time: the accept's own, not the loop's cached time
	 * that every connection accepted in this pass would share */
	gettimeofday(&now, NULL);
	event_base_update_cache_time(w->base);
	netaddr_endpoint(sa, &client);
	if (px->sources) {
		struct sourcecap_report report;

		if (!sourcecap_take(px->sources, client.ip, &now, &report)) {
			refuse_at_accept(fd);
			atomic_fetch_add(&px->refused, 1);
			if (report.refused)
				emit_refused(px, &report);
			return;
		}
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		if (px->sources)
			sourcecap_release(px->sources, client.ip);
		evutil_closesocket(fd);
		return;
	}
	c->w = w;
	c->wl = wl;
	c->side[SIDE_CLIENT].fd = c->side[SIDE_SERVER].fd = -1;
	c->closed_by = CLOSER_NONE;
	c->source_counted = px->sources != NULL;
	c->start = c->last_activity = now;
	c->client = client;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	worker_conn_opened(w);   /* TCP_NODELAY comes from the listener */
	c->side[SIDE_CLIENT].bev = relay_side_new(c, fd);
	if (!c->side[SIDE_CLIENT].bev)
		evutil_closesocket(fd);
	c->side[SIDE_SERVER].bev = relay_side_new(c, -1);
	c->timer = evtimer_new(w->base, timer_cb, c);
	if (!c->side[SIDE_CLIENT].bev || !c->side[SIDE_SERVER].bev || !c->timer) {
		emit_fmt(px->cfg->log, "mtlsdiag proxy: out of memory: connection from %s dropped", c->client.ip);
		pconn_teardown(c);
		return;
	}
	evtimer_add(c->timer, &ct);
	switch (wl->l->cfg->mode) {
	case PROXY_STATIC:
		snprintf(c->up_host, sizeof(c->up_host), "%s", wl->l->up_host);
		c->up_port = wl->l->up_port;
		start_connect(c);
		break;
	case PROXY_TRANSPARENT: {
		struct sockaddr_storage dst;
		struct endpoint ep;

		if (redirected_back(px, fd, &c->client)) {
			emit_failure(c, "upstream_error", "redirect loop",
				     "this connection comes from the proxy's own upstream connection: exclude the proxy's traffic from the REDIRECT rule (e.g. iptables -m owner ! --uid-owner USER, with --user USER)");
			pconn_note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
			pconn_teardown(c);
			return;
		}
		if (!netaddr_original_dst(fd, &dst, why, sizeof(why))) {
			emit_failure(c, "upstream_error", "no destination", why);
			pconn_note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
			pconn_teardown(c);
			return;
		}
		netaddr_endpoint((struct sockaddr *)&dst, &ep);
		snprintf(c->up_host, sizeof(c->up_host), "%s", ep.ip);
		c->up_port = ep.port;
		start_connect_transparent(c, &dst);
		break;
	}
	case PROXY_CONNECT:
		c->phase = PH_REQUEST;   /* relay.c's read_cb takes it from here */
		break;
	}
}
