/* proxy: the static-mode relay (see proxy.h).  Each connection is one
 * struct pconn with two symmetric sides, SIDE_CLIENT (accepted) and
 * SIDE_SERVER (upstream); every callback finds "this side" and "the other
 * side" the same way, and pconn_teardown is the only place a connection's
 * final record is written and its resources freed. */
#include "config.h"

#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "observer.h"
#include "report.h"
#include "x509info.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_IDLE_TIMEOUT_S 300
#define DEFAULT_DRAIN_TIMEOUT_S 10
#define DEFAULT_BUFFER_LIMIT (256 * 1024)
#define MAX_SINGLE_READ 65536
#define ACCEPT_RETRY_S 1

/* Who ended the connection first, for the final record. */
enum closer { CLOSER_NONE = -1, CLOSER_CLIENT = SIDE_CLIENT, CLOSER_SERVER = SIDE_SERVER, CLOSER_PROXY = 2 };

/* How the connection ended, as the final record names it. */
enum end_kind { END_NONE, END_FIN, END_RST, END_TIMEOUT, END_SHUTDOWN, END_UPSTREAM_ERROR };

struct worker;

struct pconn_side {
	struct bufferevent *bev;
	bool read_done;      /* nothing more will be read from this side (FIN, error) */
	bool write_done;     /* nothing more will be written to it (shut down, error) */
	bool shut_pending;   /* the other side sent FIN: shut this one down once drained */
	bool paused;         /* not read because the other side's output is full */
	bool dead;           /* error or reset: the socket is unusable */
	bool rst_on_close;   /* close with SO_LINGER 0: pass a reset on */
	bool obs_closed;     /* its close was reported to the observer */
	uint64_t bytes;      /* read from this side (= relayed to the other) */
};

struct pconn {
	struct worker *w;
	struct pconn *prev, *next;
	struct pconn_side side[2];
	struct obs_conn *obs;        /* created once the upstream is connected */
	struct event *timer;         /* connect timeout, then idle timeout */
	struct endpoint client;
	struct timeval start, last_activity;
	bool connected;
	bool early_logged;
	bool torn_down;
	enum closer closed_by;
	enum end_kind end;
};

struct proxy {
	const struct proxy_config *cfg;
	size_t buffer_limit;
	unsigned connect_timeout_s, idle_timeout_s, drain_timeout_s;
	char up_host[256];
	uint16_t up_port;
	struct worker *workers;
	unsigned n_workers;
};

struct worker {
	struct proxy *px;
	unsigned id;
	pthread_t thread;
	bool thread_started;
	struct event_base *base;
	struct evdns_base *dns;
	struct evconnlistener *listener;
	struct event *stop_ev, *deadline_ev, *retry_ev;
	struct observer_config ocfg;
	struct pconn *conns;
	size_t n_conns;
	bool draining;
};

/* ---- output ---- */

static void emit_line(FILE *out, const char *line)
{
	flockfile(out);
	fputs(line, out);
	putc('\n', out);
	fflush(out);
	funlockfile(out);
}

static void __attribute__((format(printf, 2, 3)))
emit_fmt(FILE *out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit_line(out, line);
}

static const char *closer_name(enum closer c)
{
	switch (c) {
	case CLOSER_CLIENT: return "client";
	case CLOSER_SERVER: return "server";
	case CLOSER_PROXY: return "proxy";
	default: break;
	}
	return "none";
}

static const char *end_name(enum end_kind e)
{
	switch (e) {
	case END_FIN: return "fin";
	case END_RST: return "rst";
	case END_TIMEOUT: return "timeout";
	case END_SHUTDOWN: return "shutdown";
	case END_UPSTREAM_ERROR: return "upstream_error";
	default: break;
	}
	return "none";
}

static uint64_t ms_between(const struct timeval *a, const struct timeval *b)
{
	struct timeval d;

	if (timercmp(b, a, <))
		return 0;
	timersub(b, a, &d);
	return (uint64_t)d.tv_sec * 1000 + (uint64_t)d.tv_usec / 1000;
}

/* The final record: report.c's JSON object with the relay's own members
 * appended (closed_by, close, duration_ms, relayed bytes each way). */
static void emit_json(FILE *out, const struct pconn *c, const struct conn_facts *f,
		      const struct verdict *v, uint64_t duration_ms)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	report_json(m, f, v);
	if (fclose(m) != 0 || len < 2 || buf[len - 2] != '}') {
		free(buf);
		return;
	}
	flockfile(out);
	fwrite(buf, 1, len - 2, out);
	fprintf(out, ",\"closed_by\":\"%s\",\"close\":\"%s\",\"duration_ms\":%llu,"
		"\"relayed\":{\"client\":%llu,\"server\":%llu}}\n",
		closer_name(c->closed_by), end_name(c->end), (unsigned long long)duration_ms,
		(unsigned long long)c->side[SIDE_CLIENT].bytes,
		(unsigned long long)c->side[SIDE_SERVER].bytes);
	fflush(out);
	funlockfile(out);
	free(buf);
}

/* ---- addresses ---- */

int proxy_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen, i;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return 0;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return 0;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return 0;   /* an IPv6 address needs brackets */
	}
	if (hlen == 0 || hlen >= hostlen || !colon[1])
		return 0;
	for (i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)h[i];

		/* a name or an address (':' and '%' zone only inside brackets) */
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
		    ch != '.' && ch != '-' && ch != '_' && !(h != s && (ch == ':' || ch == '%')))
			return 0;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535 || colon[1] == '+' || colon[1] == '-' || colon[1] == ' ')
		return 0;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 1;
}

/* A numeric listen address ("localhost" is 127.0.0.1). */
static int listen_sockaddr(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[256];
	uint16_t port;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (!proxy_split_hostport(spec, host, sizeof(host), &port))
		return 0;
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*sslen = sizeof(*sin);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sslen = sizeof(*sin6);
		return 1;
	}
	return 0;
}

static void sockaddr_endpoint(const struct sockaddr *sa, struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, ep->ip, sizeof(ep->ip));
		ep->port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))   /* a v4 client on a dual-stack listener */
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ep->ip, sizeof(ep->ip));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, ep->ip, sizeof(ep->ip));
		ep->port = ntohs(sin6->sin6_port);
	} else {
		snprintf(ep->ip, sizeof(ep->ip), "?");
	}
}

static void set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	/* we forward each chunk as it comes: Nagle would only add latency */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- one connection ---- */

static enum side side_of(const struct pconn *c, const struct bufferevent *bev)
{
	return c->side[SIDE_SERVER].bev == bev ? SIDE_SERVER : SIDE_CLIENT;
}

static enum side other(enum side s)
{
	return s == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;
}

static void now_of(const struct pconn *c, struct timeval *tv)
{
	event_base_gettimeofday_cached(c->w->base, tv);
}

static void note_end(struct pconn *c, enum closer who, enum end_kind how)
{
	if (c->closed_by == CLOSER_NONE) {
		c->closed_by = who;
		c->end = how;
	}
}

static void obs_close(struct pconn *c, enum side s, enum close_kind how)
{
	struct timeval now;

	if (!c->obs || c->side[s].obs_closed)
		return;
	now_of(c, &now);
	c->side[s].obs_closed = true;
	obs_conn_close(c->obs, s, how, &now);
}

static void pconn_teardown(struct pconn *c);

static void feed_observer(struct pconn *c, enum side from, struct evbuffer *buf,
			  const struct timeval *now)
{
	struct evbuffer_iovec small[16], *vec = small;
	int n = evbuffer_peek(buf, -1, NULL, NULL, 0), i;

	if (n <= 0)
		return;
	if (n > 16 && !(vec = malloc((size_t)n * sizeof(*vec))))
		return;
	n = evbuffer_peek(buf, -1, NULL, vec, n);
	for (i = 0; i < n && obs_conn_wants_bytes(c->obs); i++)
		obs_conn_feed(c->obs, from, vec[i].iov_base, vec[i].iov_len, now);
	if (vec != small)
		free(vec);
}

/* The verdict the moment the observer calls it final. */
static void check_early(struct pconn *c)
{
	const struct verdict *v;
	char line[2048];

	if (c->early_logged || !c->obs)
		return;
	v = obs_conn_early_verdict(c->obs);
	if (!v)
		return;
	c->early_logged = true;
	report_line(line, sizeof(line), obs_conn_facts(c->obs), v);
	emit_line(c->w->px->cfg->log, line);
}

static void maybe_done(struct pconn *c)
{
	int s;

	for (s = 0; s < 2; s++)
		if (!c->side[s].read_done || !c->side[s].write_done)
			return;
	pconn_teardown(c);
}

static void shut_side(struct pconn *c, enum side s)
{
	evutil_socket_t fd = bufferevent_getfd(c->side[s].bev);

	c->side[s].shut_pending = false;
	c->side[s].write_done = true;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_WR);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	enum side s = side_of(c, bev), o = other(s);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	struct evbuffer *out;

	if (n == 0)
		return;
	now_of(c, &c->last_activity);
	c->side[s].bytes += n;
	if (c->obs && obs_conn_wants_bytes(c->obs))
		feed_observer(c, s, in, &c->last_activity);
	if (c->side[o].dead || c->side[o].write_done) {
		evbuffer_drain(in, n);   /* nowhere to send it */
	} else {
		out = bufferevent_get_output(c->side[o].bev);
		evbuffer_add_buffer(out, in);
		if (evbuffer_get_length(out) >= c->w->px->buffer_limit) {
			bufferevent_disable(bev, EV_READ);
			c->side[s].paused = true;
		}
	}
	check_early(c);
}

/* Side s's output has drained to the low watermark (or to nothing). */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	enum side s = side_of(c, bev), o = other(s);
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	now_of(c, &c->last_activity);
	if (c->side[o].paused && !c->side[o].read_done && left < c->w->px->buffer_limit) {
		c->side[o].paused = false;
		bufferevent_enable(c->side[o].bev, EV_READ);
	}
	if (left == 0 && !c->side[s].write_done) {
		if (c->side[s].shut_pending)
			shut_side(c, s);
		else if (c->side[o].dead)
			shut_side(c, s);   /* what the dead side had sent is delivered: end this one */
	}
	maybe_done(c);
}

static void on_eof(struct pconn *c, enum side s)
{
	enum side o = other(s);

	c->side[s].read_done = true;
	note_end(c, (enum closer)s, END_FIN);
	obs_close(c, s, CLOSE_FIN);
	if (!c->side[o].write_done) {
		if (evbuffer_get_length(bufferevent_get_output(c->side[o].bev)) == 0 &&
		    (o == SIDE_CLIENT || c->connected))
			shut_side(c, o);
		else
			c->side[o].shut_pending = true;
	}
	maybe_done(c);
}

static void on_error(struct pconn *c, enum side s)
{
	enum side o = other(s);
	struct pconn_side *dead = &c->side[s], *peer = &c->side[o];

	dead->dead = dead->read_done = dead->write_done = true;
	bufferevent_disable(dead->bev, EV_READ | EV_WRITE);
	note_end(c, (enum closer)s, END_RST);
	obs_close(c, s, CLOSE_RST);
	/* nothing the peer sends can be delivered any more */
	peer->read_done = true;
	bufferevent_disable(peer->bev, EV_READ);
	if (!peer->write_done && evbuffer_get_length(bufferevent_get_output(peer->bev)) == 0) {
		peer->write_done = true;
		peer->rst_on_close = true;   /* pass the reset on */
	}
	maybe_done(c);
}

static void upstream_failed(struct pconn *c, const char *why)
{
	struct proxy *px = c->w->px;
	char ts[40], client[80], up[300];

	report_time(ts, sizeof(ts), &c->start, 3);
	report_endpoint(client, sizeof(client), c->client.ip, c->client.port);
	report_endpoint(up, sizeof(up), px->up_host, px->up_port);
	emit_fmt(px->cfg->log, "%s %s -> %s upstream unreachable: %s (client connection closed)",
		 ts, client, up, why);
	if (px->cfg->json) {
		FILE *j = px->cfg->json;

		flockfile(j);
		fprintf(j, "{\"type\":\"upstream_error\",\"ts\":\"");
		report_time(ts, sizeof(ts), &c->start, 6);
		/* the strings here are ours (addresses, strerror): no escaping needed
		 * beyond what the upstream name could hold, which the parser refused */
		fprintf(j, "%s\",\"client\":{\"ip\":\"%s\",\"port\":%u},\"upstream\":\"%s\",\"error\":\"%s\"}\n",
			ts, c->client.ip, c->client.port, up, why);
		fflush(j);
		funlockfile(j);
	}
	note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
	pconn_teardown(c);
}

static void on_connected(struct pconn *c)
{
	struct pconn_side *up = &c->side[SIDE_SERVER];
	evutil_socket_t fd = bufferevent_getfd(up->bev);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct endpoint server;
	struct evbuffer *pending = bufferevent_get_output(up->bev);
	struct timeval now, idle = { c->w->px->idle_timeout_s, 0 };

	c->connected = true;
	now_of(c, &now);
	c->last_activity = now;
	set_nodelay(fd);
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0) {
		sockaddr_endpoint((struct sockaddr *)&ss, &server);
	} else {
		memset(&server, 0, sizeof(server));
		snprintf(server.ip, sizeof(server.ip), "%s", c->w->px->up_host);
		server.port = c->w->px->up_port;
	}
	c->obs = obs_conn_new(&c->w->ocfg, &c->client, &server, &c->start, true);
	/* What the client sent while we connected waits, unsent, in the
	 * upstream's output: libevent writes nothing before this callback. */
	if (c->obs)
		feed_observer(c, SIDE_CLIENT, pending, &now);
	if (c->obs && c->side[SIDE_CLIENT].read_done)   /* the client left while we connected */
		obs_close(c, SIDE_CLIENT, c->side[SIDE_CLIENT].dead ? CLOSE_RST : CLOSE_FIN);
	evtimer_add(c->timer, &idle);
	if (up->shut_pending && evbuffer_get_length(pending) == 0)
		shut_side(c, SIDE_SERVER);
	check_early(c);
	maybe_done(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pconn *c = arg;
	enum side s = side_of(c, bev);
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		on_connected(c);
		return;
	}
	if (s == SIDE_SERVER && !c->connected) {
		char why[256];
		int dns = bufferevent_socket_get_dns_error(bev);

		if (dns)
			snprintf(why, sizeof(why), "cannot resolve %s: %s", c->w->px->up_host, evutil_gai_strerror(dns));
		else
			snprintf(why, sizeof(why), "connect: %s", err ? evutil_socket_error_to_string(err) : "failed");
		upstream_failed(c, why);
		return;
	}
	if (what & BEV_EVENT_EOF)
		on_eof(c, s);
	else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		on_error(c, s);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;
	struct timeval now, idle_end, left;
	int s;

	if (!c->connected) {
		char why[64];

		snprintf(why, sizeof(why), "connect: timed out after %u s", c->w->px->connect_timeout_s);
		upstream_failed(c, why);
		return;
	}
	now_of(c, &now);
	idle_end = c->last_activity;
	idle_end.tv_sec += c->w->px->idle_timeout_s;
	if (timercmp(&now, &idle_end, <)) {
		timersub(&idle_end, &now, &left);
		evtimer_add(c->timer, &left);
		return;
	}
	note_end(c, CLOSER_PROXY, END_TIMEOUT);
	for (s = 0; s < 2; s++)
		obs_close(c, (enum side)s, CLOSE_TIMEOUT);
	pconn_teardown(c);
}

static void close_side(struct pconn_side *side)
{
	if (!side->bev)
		return;
	if (side->rst_on_close) {
		struct linger lg = { 1, 0 };
		evutil_socket_t fd = bufferevent_getfd(side->bev);

		if (fd >= 0)
			(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	bufferevent_free(side->bev);
	side->bev = NULL;
}

/* The one teardown: the final record, then everything freed. */
static void pconn_teardown(struct pconn *c)
{
	struct worker *w = c->w;
	struct proxy *px = w->px;
	struct timeval now;
	int s;

	if (c->torn_down)
		return;
	c->torn_down = true;
	now_of(c, &now);
	if (c->obs) {
		const struct verdict *v;
		const struct conn_facts *f;
		uint64_t ms = ms_between(&c->start, &now);
		char line[2048];
		size_t used;

		/* sides the proxy closed itself did not close: nothing to report */
		v = obs_conn_finish(c->obs, false, &now);
		f = obs_conn_facts(c->obs);
		report_line(line, sizeof(line), f, v);
		used = strlen(line);
		if (used < sizeof(line))
			snprintf(line + used, sizeof(line) - used,
				 " [closed by %s: %s; %llu ms; client sent %llu B, server sent %llu B]",
				 closer_name(c->closed_by), end_name(c->end), (unsigned long long)ms,
				 (unsigned long long)c->side[SIDE_CLIENT].bytes,
				 (unsigned long long)c->side[SIDE_SERVER].bytes);
		emit_line(px->cfg->log, line);
		if (px->cfg->json)
			emit_json(px->cfg->json, c, f, v, ms);
		obs_conn_free(c->obs);
	}
	for (s = 0; s < 2; s++)
		close_side(&c->side[s]);
	if (c->timer)
		event_free(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	free(c);
	if (w->draining && w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
}

static struct bufferevent *side_bev(struct pconn *c, evutil_socket_t fd)
{
	struct bufferevent *bev = bufferevent_socket_new(c->w->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev)
		return NULL;
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	/* the write callback is where a paused reader resumes */
	bufferevent_setwatermark(bev, EV_WRITE, c->w->px->buffer_limit / 2, 0);
	bufferevent_set_max_single_read(bev, MAX_SINGLE_READ);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct worker *w = arg;
	struct proxy *px = w->px;
	struct pconn *c;
	struct timeval ct = { px->connect_timeout_s, 0 };

	if (w->draining || !(c = calloc(1, sizeof(*c)))) {
		evutil_closesocket(fd);
		return;
	}
	c->w = w;
	c->closed_by = CLOSER_NONE;
	event_base_gettimeofday_cached(w->base, &c->start);
	c->last_activity = c->start;
	sockaddr_endpoint(sa, &c->client);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	set_nodelay(fd);
	c->side[SIDE_CLIENT].bev = side_bev(c, fd);
	if (!c->side[SIDE_CLIENT].bev)
		evutil_closesocket(fd);
	c->side[SIDE_SERVER].bev = side_bev(c, -1);
	c->timer = evtimer_new(w->base, timer_cb, c);
	if (!c->side[SIDE_CLIENT].bev || !c->side[SIDE_SERVER].bev || !c->timer) {
		emit_fmt(px->cfg->log, "mtlsdiag proxy: out of memory: connection from %s dropped", c->client.ip);
		pconn_teardown(c);
		return;
	}
	evtimer_add(c->timer, &ct);
	/* Last: with a numeric upstream the callbacks may run before it returns. */
	if (bufferevent_socket_connect_hostname(c->side[SIDE_SERVER].bev, w->dns, AF_UNSPEC,
						px->up_host, px->up_port) != 0)
		upstream_failed(c, "connect: cannot start");
}

/* ---- workers ---- */

static void retry_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (!w->draining)
		evconnlistener_enable(w->listener);
}

/* Out of descriptors or memory is a state, not a crash: stop accepting for
 * a moment instead of spinning on the ready listener. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker *w = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval retry = { ACCEPT_RETRY_S, 0 };

	emit_fmt(w->px->cfg->log, "mtlsdiag proxy: accept: %s; pausing accepts for %d s (%zu connections open)",
		 evutil_socket_error_to_string(err), ACCEPT_RETRY_S, w->n_conns);
	evconnlistener_disable(l);
	evtimer_add(w->retry_ev, &retry);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	while (w->conns) {
		struct pconn *c = w->conns;
		int s;

		note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		for (s = 0; s < 2; s++)
			obs_close(c, (enum side)s, CLOSE_TIMEOUT);
		pconn_teardown(c);
	}
	event_base_loopexit(w->base, NULL);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval deadline = { w->px->drain_timeout_s, 0 };

	if (w->draining) {   /* asked twice: stop now */
		deadline_cb(-1, 0, w);
		return;
	}
	w->draining = true;
	evconnlistener_disable(w->listener);
	evtimer_del(w->retry_ev);
	if (w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
	else
		evtimer_add(w->deadline_ev, &deadline);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;
	unsigned i;

	emit_fmt(px->cfg->log, "mtlsdiag proxy: %s: no longer accepting; closing once the open connections end (at most %u s)",
		 sig == SIGINT ? "SIGINT" : "SIGTERM", px->drain_timeout_s);
	for (i = 0; i < px->n_workers; i++)
		event_active(px->workers[i].stop_ev, EV_TIMEOUT, 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

static int worker_init(struct worker *w, const struct sockaddr *sa, socklen_t salen, bool reuseport)
{
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;

	if (!(w->base = event_base_new()))
		return 0;
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns) {   /* no usable resolv.conf: names from /etc/hosts only */
		w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns)
			evdns_base_load_hosts(w->dns, NULL);
	}
	w->ocfg.at_set = w->px->cfg->at_set;
	w->ocfg.at = w->px->cfg->at;
	w->ocfg.ca_bundle = w->px->cfg->ca_bundle;
	w->ocfg.certs = cert_cache_new(4096);
	w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
	w->deadline_ev = evtimer_new(w->base, deadline_cb, w);
	w->retry_ev = evtimer_new(w->base, retry_accept_cb, w);
	if (!w->dns || !w->ocfg.certs || !w->stop_ev || !w->deadline_ev || !w->retry_ev)
		return 0;
	if (reuseport)
		flags |= LEV_OPT_REUSEABLE_PORT;
	w->listener = evconnlistener_new_bind(w->base, accept_cb, w, flags, -1, sa, (int)salen);
	if (!w->listener)
		return -1;
	evconnlistener_set_error_cb(w->listener, accept_error_cb);
	return 1;
}

static void worker_free(struct worker *w)
{
	while (w->conns) {
		note_end(w->conns, CLOSER_PROXY, END_SHUTDOWN);
		pconn_teardown(w->conns);
	}
	if (w->listener)
		evconnlistener_free(w->listener);
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->deadline_ev)
		event_free(w->deadline_ev);
	if (w->retry_ev)
		event_free(w->retry_ev);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	cert_cache_free(w->ocfg.certs);
	if (w->base)
		event_base_free(w->base);
}

int proxy_run(const struct proxy_config *cfg)
{
	struct proxy px = { .cfg = cfg };
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	struct event *sig_int = NULL, *sig_term = NULL;
	sigset_t block, old;
	unsigned i;
	int ret = 2, r;
	char up[300];

	px.n_workers = cfg->workers ? cfg->workers : 1;
	px.connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
	px.idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
	px.drain_timeout_s = cfg->drain_timeout_s ? cfg->drain_timeout_s : DEFAULT_DRAIN_TIMEOUT_S;
	px.buffer_limit = cfg->buffer_limit ? cfg->buffer_limit : DEFAULT_BUFFER_LIMIT;
	if (!listen_sockaddr(cfg->listen, &ss, &sslen)) {
		fprintf(stderr, "mtlsdiag proxy: --listen '%s': expected ADDR:PORT with a numeric address and a port 1-65535 (127.0.0.1:8443, [::1]:8443, 0.0.0.0:8443)\n",
			cfg->listen);
		return 2;
	}
	if (!proxy_split_hostport(cfg->upstream, px.up_host, sizeof(px.up_host), &px.up_port)) {
		fprintf(stderr, "mtlsdiag proxy: --upstream '%s': expected HOST:PORT with a port 1-65535 (server.example:443, 10.0.0.5:443, [2001:db8::5]:443)\n",
			cfg->upstream);
		return 2;
	}
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "mtlsdiag proxy: cannot set up libevent threading\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);   /* a peer gone mid-write is an error to handle, not a reason to die */
	px.workers = calloc(px.n_workers, sizeof(*px.workers));
	if (!px.workers) {
		fprintf(stderr, "mtlsdiag proxy: out of memory\n");
		return 2;
	}
	for (i = 0; i < px.n_workers; i++) {
		px.workers[i].px = &px;
		px.workers[i].id = i;
		r = worker_init(&px.workers[i], (struct sockaddr *)&ss, sslen, px.n_workers > 1);
		if (r < 0) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: cannot listen: %s\n", cfg->listen,
				evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			goto Exit;
		}
		if (r == 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot set up worker %u (out of memory?)\n", i);
			goto Exit;
		}
	}
	sig_int = evsignal_new(px.workers[0].base, SIGINT, signal_cb, &px);
	sig_term = evsignal_new(px.workers[0].base, SIGTERM, signal_cb, &px);
	if (!sig_int || !sig_term || evsignal_add(sig_int, NULL) != 0 || evsignal_add(sig_term, NULL) != 0) {
		fprintf(stderr, "mtlsdiag proxy: cannot install signal handlers\n");
		goto Exit;
	}
	report_endpoint(up, sizeof(up), px.up_host, px.up_port);
	emit_fmt(cfg->log, "mtlsdiag proxy: listening on %s, relaying to %s (%u worker%s)",
		 cfg->listen, up, px.n_workers, px.n_workers == 1 ? "" : "s");
	/* signals are taken by worker 0's loop, on this thread */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 1; i < px.n_workers; i++) {
		if (pthread_create(&px.workers[i].thread, NULL, worker_main, &px.workers[i]) != 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot start worker thread %u\n", i);
			break;
		}
		px.workers[i].thread_started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (i < px.n_workers) {
		for (i = 1; i < px.n_workers; i++)
			if (px.workers[i].thread_started)
				event_active(px.workers[i].stop_ev, EV_TIMEOUT, 0);
	} else {
		ret = 0;
		event_base_dispatch(px.workers[0].base);
	}
	for (i = 1; i < px.n_workers; i++)
		if (px.workers[i].thread_started)
			pthread_join(px.workers[i].thread, NULL);
	emit_fmt(cfg->log, "mtlsdiag proxy: stopped");
Exit:
	if (sig_int)
		event_free(sig_int);
	if (sig_term)
		event_free(sig_term);
	for (i = 0; i < px.n_workers; i++)
		worker_free(&px.workers[i]);
	free(px.workers);
	return ret;
}
