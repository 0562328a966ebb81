/* proxy: the relay (see proxy.h).  Each connection is one struct pconn
 * with two symmetric sides, SIDE_CLIENT (accepted) and SIDE_SERVER
 * (upstream); every callback finds "this side" and "the other side" the
 * same way, and pconn_teardown is the only place a connection's final
 * record is written and its resources freed.
 *
 * A connection goes through up to three phases: REQUEST (connect mode
 * only: reading the client's CONNECT request), CONNECTING (resolving and
 * connecting to the server; what the client sends meanwhile waits in the
 * server side's output, which libevent does not write before the connect
 * completes) and RELAY; or ANSWERED, when the proxy itself answers a
 * CONNECT request with an error and closes.
 *
 * In RELAY a connection is first copied through libevent bufferevents,
 * each chunk shown to the observer.  Once the observer wants no more bytes
 * (its verdict is settled) and nothing waits in a buffer, it is spliced:
 * the bufferevents are let go and splice(2) moves each side's bytes to the
 * other socket through the worker's one pipe without copying them into
 * the process; what a socket does not take at once is read back out of
 * the pipe into a small per-side spill buffer, so the pipe is empty
 * between callbacks and no connection holds one of its own. */
#include "config.h"

#include "front/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "analysis/chain.h"
#include "wire/cursor.h"
#include "wire/keylog.h"
#include "front/netaddr.h"
#include "analysis/observer.h"
#include "out/outfile.h"
#include "out/pcapout.h"
#include "wire/preamble.h"
#include "out/report.h"
#include "wire/x509info.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_IDLE_TIMEOUT_S 300
#define DEFAULT_DRAIN_TIMEOUT_S 10
#define DEFAULT_BUFFER_LIMIT (256 * 1024)
#define MAX_SINGLE_READ 65536
#define ACCEPT_RETRY_S 1
/* While the verdict waits for the conversation after the handshake, the
 * timer wakes this often: an open, quiet session after its answer has gone
 * on (conversation.h), and its record should not wait for the close. */
#define VERDICT_POLL_S 1
#define SPLICE_PIPE_SIZE (1024 * 1024) /* asked for; the kernel may give less (fs.pipe-max-size) */
#define FDS_RESERVED 64          /* descriptors kept for files, DNS, listeners */

static const char CONNECT_OK_ANSWER[] = "HTTP/1.1 200 Connection established\r\n\r\n";

/* Who ended the connection first, for the final record. */
enum closer { CLOSER_NONE = -1, CLOSER_CLIENT = SIDE_CLIENT, CLOSER_SERVER = SIDE_SERVER, CLOSER_PROXY = 2 };

/* How the connection ended, as the final record names it. */
enum end_kind { END_NONE, END_FIN, END_RST, END_TIMEOUT, END_SHUTDOWN, END_UPSTREAM_ERROR, END_REFUSED };

enum phase { PH_REQUEST, PH_CONNECTING, PH_RELAY, PH_ANSWERED };

struct worker;
struct wlistener;

struct pconn_side {
	struct bufferevent *bev;
	bool read_done;      /* nothing more will be read from this side (FIN, error) */
	bool write_done;     /* nothing more will be written to it (shut down, error) */
	bool shut_pending;   /* the other side sent FIN: shut this one down once drained */
	bool paused;         /* not read because the other side's output is full */
	bool dead;           /* error or reset: the socket is unusable */
	bool rst_on_close;   /* close with SO_LINGER 0: pass a reset on */
	bool tap_closed;     /* its close was reported to the observer and capture */
	uint64_t bytes;      /* read from this side */
	uint64_t unrecorded; /* relayed after the capture stopped recording */
	/* spliced (bev is NULL then) */
	evutil_socket_t fd;
	struct event *readable, *writable;
	struct evbuffer *spill; /* bytes for this side that its socket did not take yet */
};

struct pconn {
	struct worker *w;
	const struct wlistener *wl;
	struct pconn *prev, *next;
	struct pconn_side side[2];
	enum phase phase;
	struct obs_conn *obs;        /* created once the upstream is connected */
	struct pcapout_conn *pcap;   /* likewise, with --pcap-out */
	struct evbuffer *request;    /* connect mode, no --via: the CONNECT request */
	struct event *timer;         /* request, connect, then idle timeout */
	struct endpoint client;
	char up_host[256];           /* what is connected to: upstream, via or target */
	uint16_t up_port;
	char target[300];            /* connect mode: the CONNECT target as asked */
	uint16_t own_port;           /* transparent: local port of the upstream socket */
	struct timeval start, last_activity;
	bool early_logged;
	bool spliced;
	bool torn_down;
	enum closer closed_by;
	enum end_kind end;
};

/* One --listen, as configured. */
struct plistener {
	const struct proxy_listen_config *cfg;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char up_host[256];           /* static: the upstream; connect: the --via proxy */
	uint16_t up_port;
};

/* One listener on one worker's loop. */
struct wlistener {
	struct worker *w;
	const struct plistener *l;
	struct evconnlistener *ev;
};

struct proxy {
	const struct proxy_config *cfg;
	size_t buffer_limit;
	unsigned connect_timeout_s, idle_timeout_s, drain_timeout_s;
	size_t max_conns_per_worker;
	struct plistener *ls;
	size_t n_ls;
	struct worker *workers;
	unsigned n_workers;
	struct pcapout *pcap;        /* shared by the workers, under pcap_lock */
	pthread_mutex_t pcap_lock;
	atomic_bool pcap_failed;
	/* transparent mode: local ports of our own upstream connections, to
	 * recognise one of them redirected back to us (a REDIRECT rule that
	 * also matches the proxy's own traffic) */
	atomic_ushort *own_ports;
};

struct worker {
	struct proxy *px;
	unsigned id;
	pthread_t thread;
	bool thread_started;
	struct event_base *base;
	struct evdns_base *dns;
	struct wlistener *wls;       /* one per plistener */
	struct event *stop_ev, *deadline_ev, *retry_ev;
	struct observer_config ocfg;
	struct pconn *conns;
	size_t n_conns;
	bool draining;
	bool full;                   /* accepts paused at the connection limit */
	bool backing_off;            /* accepts paused after accept() failed */
	int pipe[2];                 /* for splice(2), empty between callbacks; -1: no splicing */
	size_t pipe_size;
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
	case END_REFUSED: return "refused";
	default: break;
	}
	return "none";
}

static const char *mode_name(enum proxy_mode m)
{
	switch (m) {
	case PROXY_CONNECT: return "connect";
	case PROXY_TRANSPARENT: return "transparent";
	default: break;
	}
	return "static";
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
 * appended (mode, upstream, closed_by, close, duration_ms, relayed bytes
 * each way, and whether the rest was spliced once the verdict settled). */
static void emit_json(FILE *out, const struct pconn *c, const struct conn_facts *f,
		      const struct verdict *v, uint64_t duration_ms)
{
	char *buf = NULL, up[300];
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	report_json(m, f, v);
	if (fclose(m) != 0 || len < 2 || buf[len - 2] != '}') {
		free(buf);
		return;
	}
	report_endpoint(up, sizeof(up), c->up_host, c->up_port);
	flockfile(out);
	fwrite(buf, 1, len - 2, out);
	/* up_host is a validated name or a numeric address: nothing to escape */
	fprintf(out, ",\"mode\":\"%s\",\"upstream\":\"%s\",\"closed_by\":\"%s\",\"close\":\"%s\","
		"\"duration_ms\":%llu,\"relayed\":{\"client\":%llu,\"server\":%llu},\"spliced\":%s}\n",
		mode_name(c->wl->l->cfg->mode), up, closer_name(c->closed_by), end_name(c->end),
		(unsigned long long)duration_ms,
		(unsigned long long)c->side[SIDE_CLIENT].bytes,
		(unsigned long long)c->side[SIDE_SERVER].bytes, c->spliced ? "true" : "false");
	fflush(out);
	funlockfile(out);
	free(buf);
}

/* A JSON string member whose value came from the network. */
static void json_escaped(FILE *out, const char *name, const char *s)
{
	fprintf(out, ",\"%s\":", name);
	report_json_string(out, s);
}

/* A connection that never reached its server: one human line, one JSON
 * record of type `type` ("upstream_error", "connect_refused"). */
static void emit_failure(const struct pconn *c, const char *type, const char *what, const char *why)
{
	const struct proxy *px = c->w->px;
	char ts[40], client[80], up[300];
	FILE *j = px->cfg->json;

	report_time(ts, sizeof(ts), &c->start, 3);
	report_endpoint(client, sizeof(client), c->client.ip, c->client.port);
	if (c->up_host[0])
		report_endpoint(up, sizeof(up), c->up_host, c->up_port);
	else
		snprintf(up, sizeof(up), "?");
	if (c->target[0] && strcmp(type, "connect_refused") == 0)
		emit_fmt(px->cfg->log, "%s %s CONNECT %s %s: %s", ts, client, c->target, what, why);
	else if (c->target[0])
		emit_fmt(px->cfg->log, "%s %s -> %s (CONNECT %s) %s: %s (client connection closed)",
			 ts, client, up, c->target, what, why);
	else
		emit_fmt(px->cfg->log, "%s %s -> %s %s: %s (client connection closed)", ts, client, up, what, why);
	if (!j)
		return;
	flockfile(j);
	report_time(ts, sizeof(ts), &c->start, 6);
	fprintf(j, "{\"type\":\"%s\",\"schema\":" REPORT_SCHEMA_TEXT ",\"ts\":\"%s\",\"mode\":\"%s\",\"client\":{\"ip\":\"%s\",\"port\":%u}",
		type, ts, mode_name(c->wl->l->cfg->mode), c->client.ip, c->client.port);
	if (c->target[0])
		json_escaped(j, "connect_target", c->target);
	if (c->up_host[0])
		json_escaped(j, "upstream", up);
	json_escaped(j, "error", why);
	fputs("}\n", j);
	fflush(j);
	funlockfile(j);
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

	if (!proxy_split_hostport(spec, host, sizeof(host), &port))
		return 0;
	*sslen = netaddr_numeric(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, ss);
	return *sslen != 0;
}

static void set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	/* we forward each chunk as it comes: Nagle would only add latency */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static bool sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static bool sockaddr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
	}
	return false;
}

/* Where a connection redirected by netfilter (REDIRECT, DNAT) was headed.
 * 0 with a reason when the socket was not redirected. */
static int original_dst(evutil_socket_t fd, struct sockaddr_storage *out, char *why, size_t whylen)
{
	struct sockaddr_storage ss, local;
	socklen_t len = sizeof(ss), llen = sizeof(local);
	int r;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
		snprintf(why, whylen, "getsockname: %s", strerror(errno));
		return 0;
	}
	/* a v4 client on a dual-stack listener was redirected by the IPv4 table */
	if (local.ss_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&local)->sin6_addr))
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
	if (r != 0) {
		snprintf(why, whylen, "no original destination (SO_ORIGINAL_DST: %s): was it redirected by iptables/nftables?",
			 strerror(errno));
		return 0;
	}
	if (local.ss_family == AF_INET6 && ss.ss_family == AF_INET) {
		const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
		struct sockaddr_in *l4 = (struct sockaddr_in *)&local;
		struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = l6->sin6_port };

		memcpy(&v4.sin_addr, &l6->sin6_addr.s6_addr[12], 4);
		*l4 = v4;
	}
	if (sockaddr_same(&ss, &local)) {
		snprintf(why, whylen, "addressed to the proxy itself, not redirected: refusing to loop");
		return 0;
	}
	*out = ss;
	return 1;
}

int proxy_allow_valid(const char *pattern, char *err, size_t errlen)
{
	const char *colon = strrchr(pattern, ':');
	char *end;
	unsigned long p;

	if (!colon || colon == pattern || !colon[1]) {
		snprintf(err, errlen, "expected HOST:PORT (*.example.com:443, 10.1.2.*:*, [2001:db8::*]:443)");
		return 0;
	}
	if (strcmp(colon + 1, "*") == 0)
		return 1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535 || colon[1] == '-' || colon[1] == '+') {
		snprintf(err, errlen, "the port must be a number from 1 to 65535 or *");
		return 0;
	}
	return 1;
}

bool proxy_allow_match(const char *pattern, const char *host, uint16_t port)
{
	const char *colon = strrchr(pattern, ':');
	char hp[300];
	size_t n;
	bool bracketed = false;

	if (!colon)
		return false;
	if (strcmp(colon + 1, "*") != 0 && strtoul(colon + 1, NULL, 10) != port)
		return false;
	n = (size_t)(colon - pattern);
	if (n >= 2 && pattern[0] == '[' && pattern[n - 1] == ']') {   /* [v6 pattern] */
		pattern++;
		n -= 2;
		bracketed = true;
	}
	if (n >= sizeof(hp))
		return false;
	memcpy(hp, pattern, n);
	hp[n] = '\0';
	if (fnmatch(hp, host, FNM_CASEFOLD) != 0)
		return false;
	/* an address pattern admits addresses only: "10.1.2.*" must not let
	 * "10.1.2.example.net" through to wherever that name points */
	if (strspn(hp, "0123456789.*?") == n && strpbrk(hp, "0123456789")) {
		struct in_addr a4;

		return inet_pton(AF_INET, host, &a4) == 1;
	}
	if (bracketed) {
		struct in6_addr a6;

		return inet_pton(AF_INET6, host, &a6) == 1;
	}
	return true;
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

static size_t output_len(const struct pconn *c, enum side s)
{
	if (c->side[s].bev)
		return evbuffer_get_length(bufferevent_get_output(c->side[s].bev));
	return c->side[s].spill ? evbuffer_get_length(c->side[s].spill) : 0;
}

static evutil_socket_t side_fd(const struct pconn *c, enum side s)
{
	return c->side[s].bev ? bufferevent_getfd(c->side[s].bev) : c->side[s].fd;
}

static void now_of(const struct pconn *c, struct timeval *tv)
{
	event_base_gettimeofday_cached(c->w->base, tv);
}

/* Stops watching side s for what (EV_READ, EV_WRITE), relayed either way. */
static void side_stop(struct pconn *c, enum side s, short what)
{
	struct pconn_side *sd = &c->side[s];

	if (sd->bev) {
		bufferevent_disable(sd->bev, what);
		return;
	}
	if ((what & EV_READ) && sd->readable)
		event_del(sd->readable);
	if ((what & EV_WRITE) && sd->writable)
		event_del(sd->writable);
}

static void note_end(struct pconn *c, enum closer who, enum end_kind how)
{
	if (c->closed_by == CLOSER_NONE) {
		c->closed_by = who;
		c->end = how;
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
	if (wanted)
		obs_conn_feed(c->obs, from, p, n, now);
	if (!c->pcap)
		return;
	if (wanted || c->w->px->cfg->pcap_full)
		pcap_locked(c->w->px, pcap_write, c, from, CLOSE_FIN, p, n, now);
	else
		c->side[from].unrecorded += n;
}

static void tap_buffer(struct pconn *c, enum side from, struct evbuffer *buf, const struct timeval *now)
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

static void tap_close(struct pconn *c, enum side s, enum close_kind how)
{
	struct timeval now;

	if (!c->obs || c->side[s].tap_closed)
		return;
	now_of(c, &now);
	c->side[s].tap_closed = true;
	obs_conn_close(c->obs, s, how, &now);
	if (c->pcap)
		pcap_locked(c->w->px, pcap_end, c, s, how, NULL, 0, &now);
}

/* ---- relaying ---- */

static void pconn_teardown(struct pconn *c);

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
	evutil_socket_t fd = side_fd(c, s);

	c->side[s].shut_pending = false;
	c->side[s].write_done = true;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_WR);
}

/* Moves what side s sent to the other side's output, pausing s when that
 * output is over the limit. */
static void relay_input(struct pconn *c, enum side s)
{
	enum side o = other(s);
	struct evbuffer *in = bufferevent_get_input(c->side[s].bev), *out;
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	if (c->side[o].dead || c->side[o].write_done || !c->side[o].bev) {
		evbuffer_drain(in, n);   /* nowhere to send it */
		return;
	}
	out = bufferevent_get_output(c->side[o].bev);
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= c->w->px->buffer_limit) {
		bufferevent_disable(c->side[s].bev, EV_READ);
		c->side[s].paused = true;
	}
}

/* The fast path: with nothing queued towards the other side, what side s
 * sent is written to it at once, before the observer looks at it (a pass
 * through the loop sooner, and the decoding off the latency path).
 * Returns how much the socket took; it is still in `in`, to be drained.  A
 * failure shows on the bufferevent's next write. */
static size_t write_ahead(struct pconn *c, enum side s, struct evbuffer *in)
{
	enum side o = other(s);
	struct evbuffer_iovec vec[16];
	struct iovec iov[16];
	ssize_t w;
	int n, i;

	if (c->phase != PH_RELAY || !c->side[o].bev || c->side[o].dead || c->side[o].write_done ||
	    output_len(c, o) != 0)
		return 0;
	n = evbuffer_peek(in, -1, NULL, vec, 16);
	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
	}
	w = n > 0 ? writev(bufferevent_getfd(c->side[o].bev), iov, n) : -1;
	return w > 0 ? (size_t)w : 0;
}

static void handle_connect_request(struct pconn *c);
static bool splice_ready(const struct pconn *c);
static void splice_start(struct pconn *c);

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	enum side s = side_of(c, bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in), sent;

	if (n == 0)
		return;
	now_of(c, &c->last_activity);
	if (c->phase == PH_REQUEST) {
		handle_connect_request(c);
		return;
	}
	c->side[s].bytes += n;
	sent = write_ahead(c, s, in);
	tap_buffer(c, s, in, &c->last_activity);
	evbuffer_drain(in, sent);
	relay_input(c, s);
	check_early(c);
	if (splice_ready(c))
		splice_start(c);
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
	if (splice_ready(c)) {
		splice_start(c);
		return;
	}
	maybe_done(c);
}

/* The client went away before its CONNECT request was complete. */
static void request_abandoned(struct pconn *c, enum end_kind how)
{
	emit_failure(c, "connect_refused", "abandoned",
		     how == END_RST ? "the client reset the connection before its CONNECT request was complete"
				    : "the client closed before its CONNECT request was complete");
	note_end(c, CLOSER_CLIENT, how);
	pconn_teardown(c);
}

static void on_eof(struct pconn *c, enum side s)
{
	enum side o = other(s);

	if (c->phase == PH_REQUEST) {
		request_abandoned(c, END_FIN);
		return;
	}
	c->side[s].read_done = true;
	note_end(c, (enum closer)s, END_FIN);
	tap_close(c, s, CLOSE_FIN);
	if (!c->side[o].write_done) {
		if (output_len(c, o) == 0 && (o == SIDE_CLIENT || c->phase == PH_RELAY))
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

	if (c->phase == PH_REQUEST) {
		request_abandoned(c, END_RST);
		return;
	}
	dead->dead = dead->read_done = dead->write_done = true;
	side_stop(c, s, EV_READ | EV_WRITE);
	note_end(c, (enum closer)s, END_RST);
	tap_close(c, s, CLOSE_RST);
	/* nothing the peer sends can be delivered any more */
	peer->read_done = true;
	side_stop(c, o, EV_READ);
	if (!peer->write_done && output_len(c, o) == 0) {
		peer->write_done = true;
		peer->rst_on_close = true;   /* pass the reset on */
	}
	maybe_done(c);
}

/* ---- spliced relaying ---- */

static void spliced_readable(evutil_socket_t fd, short what, void *arg);
static void spliced_writable(evutil_socket_t fd, short what, void *arg);

/* Whether c can be spliced now: the observer wants no more bytes, the
 * capture records no more payload, and both directions are open. */
static bool splice_ready(const struct pconn *c)
{
	int s;

	if (c->spliced || c->phase != PH_RELAY || c->w->pipe[0] < 0 || !c->obs ||
	    obs_conn_wants_bytes(c->obs) || (c->pcap && c->w->px->cfg->pcap_full))
		return false;
	for (s = 0; s < 2; s++) {
		const struct pconn_side *sd = &c->side[s];

		if (!sd->bev || sd->read_done || sd->write_done || sd->shut_pending || sd->dead ||
		    evbuffer_get_length(bufferevent_get_input(sd->bev)))
			return false;
	}
	return true;
}

/* From bufferevents to splicing: what waits in a side's output becomes its
 * spill buffer, written before anything spliced after it, and the other
 * side is read only once that is out. */
static void splice_start(struct pconn *c)
{
	bool lost = false;
	int s;

	c->spliced = true;
	for (s = 0; s < 2; s++) {
		struct pconn_side *sd = &c->side[s];
		struct evbuffer *out = bufferevent_get_output(sd->bev);

		if (evbuffer_get_length(out)) {
			if ((sd->spill = evbuffer_new()))
				evbuffer_add_buffer(sd->spill, out);
			else
				lost = true;
		}
		sd->fd = bufferevent_getfd(sd->bev);
		bufferevent_setfd(sd->bev, -1);   /* let it go without closing the socket */
		bufferevent_free(sd->bev);
		sd->bev = NULL;
		sd->readable = event_new(c->w->base, sd->fd, EV_READ | EV_PERSIST, spliced_readable, c);
		sd->writable = event_new(c->w->base, sd->fd, EV_WRITE | EV_PERSIST, spliced_writable, c);
	}
	for (s = 0; s < 2; s++) {
		if (lost || !c->side[s].readable || !c->side[s].writable) {
			emit_fmt(c->w->px->cfg->log, "mtlsdiag proxy: out of memory: connection from %s closed",
				 c->client.ip);
			note_end(c, CLOSER_PROXY, END_SHUTDOWN);
			pconn_teardown(c);
			return;
		}
	}
	for (s = 0; s < 2; s++) {
		struct pconn_side *sd = &c->side[s], *to = &c->side[other((enum side)s)];

		sd->paused = to->spill && evbuffer_get_length(to->spill);
		if (!sd->paused)
			event_add(sd->readable, NULL);
		if (sd->spill && evbuffer_get_length(sd->spill))
			event_add(sd->writable, NULL);
	}
}

static enum side side_of_fd(const struct pconn *c, evutil_socket_t fd)
{
	return c->side[SIDE_SERVER].fd == fd ? SIDE_SERVER : SIDE_CLIENT;
}

/* Empties the worker's pipe of `left` bytes that side `to` could not take,
 * into its spill buffer (or, out of memory, nowhere).  0 if the pipe could
 * not be emptied, which leaves the worker unable to splice. */
static int unpipe(struct pconn *c, struct pconn_side *to, size_t left)
{
	struct worker *w = c->w;
	char scrap[4096];

	if (!to->spill)
		to->spill = evbuffer_new();
	while (left > 0 && to->spill) {
		int r = evbuffer_read(to->spill, w->pipe[0], (int)left);

		if (r <= 0)
			break;
		left -= (size_t)r;
	}
	while (left > 0) {
		ssize_t r = read(w->pipe[0], scrap, left < sizeof(scrap) ? left : sizeof(scrap));

		if (r <= 0)
			return 0;
		left -= (size_t)r;
	}
	return 1;
}

/* Side s is readable: its bytes go to the other side through the pipe. */
static void splice_move(struct pconn *c, enum side s)
{
	struct worker *w = c->w;
	enum side o = other(s);
	struct pconn_side *from = &c->side[s], *to = &c->side[o];
	ssize_t n, m = 0;
	size_t left;
	bool to_failed;

	n = splice(from->fd, NULL, w->pipe[1], NULL, w->pipe_size, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		on_error(c, s);
		return;
	}
	if (n == 0) {
		side_stop(c, s, EV_READ);
		on_eof(c, s);
		return;
	}
	now_of(c, &c->last_activity);
	from->bytes += (uint64_t)n;
	if (c->pcap)
		from->unrecorded += (uint64_t)n;
	for (left = (size_t)n; left > 0; left -= (size_t)m) {
		m = splice(w->pipe[0], NULL, to->fd, NULL, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (m < 0 && errno == EINTR)
			m = 0;
		else if (m <= 0)
			break;
	}
	if (left == 0)
		return;
	/* the socket took less: the rest waits in its spill buffer, and side s
	 * is not read until that is written (backpressure) */
	to_failed = !(m < 0 && errno == EAGAIN);
	if (!unpipe(c, to, left)) {
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: cannot empty the splice pipe: %s; no more splicing",
			 strerror(errno));
		close(w->pipe[0]);
		close(w->pipe[1]);
		w->pipe[0] = w->pipe[1] = -1;
	}
	if (to_failed) {
		on_error(c, o);
		return;
	}
	side_stop(c, s, EV_READ);
	from->paused = true;
	event_add(to->writable, NULL);
}

static void spliced_readable(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;

	(void)what;
	if (c->w->pipe[0] < 0) {   /* the pipe broke: this connection cannot go on */
		note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		pconn_teardown(c);
		return;
	}
	splice_move(c, side_of_fd(c, fd));
}

/* Side o is writable again: its spill buffer goes out, then the other
 * side is read again. */
static void spliced_writable(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;
	enum side o = side_of_fd(c, fd), s = other(o);
	struct pconn_side *to = &c->side[o], *from = &c->side[s];

	(void)what;
	if (to->spill && evbuffer_get_length(to->spill)) {
		int r = evbuffer_write(to->spill, to->fd);

		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			on_error(c, o);
			return;
		}
		if (r > 0)
			now_of(c, &c->last_activity);
		if (evbuffer_get_length(to->spill))
			return;
	}
	side_stop(c, o, EV_WRITE);
	if (from->paused && !from->read_done) {
		from->paused = false;
		event_add(from->readable, NULL);
	}
	if (!to->write_done && (to->shut_pending || from->dead))
		shut_side(c, o);
	maybe_done(c);
}

static void close_side(struct pconn_side *side)
{
	evutil_socket_t fd = side->bev ? bufferevent_getfd(side->bev) : side->fd;

	if (side->rst_on_close && fd >= 0) {
		struct linger lg = { 1, 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (side->bev) {
		bufferevent_free(side->bev);
		side->bev = NULL;
		return;
	}
	if (side->readable)
		event_free(side->readable);
	if (side->writable)
		event_free(side->writable);
	if (side->spill)
		evbuffer_free(side->spill);
	side->readable = side->writable = NULL;
	side->spill = NULL;
	if (fd >= 0)
		evutil_closesocket(fd);
	side->fd = -1;
}

/* Connect mode: the connection ends with an HTTP answer from the proxy
 * itself (the CONNECT refused, or its target unreachable); the client's
 * side is shut once the answer is written. */
static void answer_and_close(struct pconn *c, int status, const char *phrase, const char *text)
{
	struct pconn_side *cl = &c->side[SIDE_CLIENT], *up = &c->side[SIDE_SERVER];
	struct timeval flush = { c->w->px->connect_timeout_s, 0 };

	c->phase = PH_ANSWERED;
	evtimer_add(c->timer, &flush);   /* for the answer to be read */
	close_side(up);
	up->dead = up->read_done = up->write_done = true;
	cl->read_done = true;
	bufferevent_disable(cl->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(cl->bev), evbuffer_get_length(bufferevent_get_input(cl->bev)));
	if (cl->write_done || cl->dead) {
		maybe_done(c);
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
	note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
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
	note_end(c, CLOSER_PROXY, END_REFUSED);
	snprintf(text, sizeof(text), "mtlsdiag proxy: %s", why);
	answer_and_close(c, status, phrase, text);
}

/* The observer (and the capture), once the server's address is known, or
 * for a connection that ended before the upstream answered. */
static void start_observer(struct pconn *c, const struct endpoint *server, const struct timeval *now)
{
	struct proxy *px = c->w->px;
	struct pconn_side *up = &c->side[SIDE_SERVER];

	c->obs = obs_conn_new(&c->w->ocfg, &c->client, server, &c->start, true);
	if (!c->obs)
		return;
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
	now_of(c, &now);
	c->last_activity = now;
	set_nodelay(fd);
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
	if (s == SIDE_SERVER && c->phase == PH_CONNECTING) {
		char why[300];
		int dns = bufferevent_socket_get_dns_error(bev);

		if (dns)
			snprintf(why, sizeof(why), "cannot resolve %s: %s", c->up_host, evutil_gai_strerror(dns));
		else
			snprintf(why, sizeof(why), "connect: %s", err ? evutil_socket_error_to_string(err) : "failed");
		upstream_failed(c, why, false);
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
	struct proxy *px = c->w->px;
	struct timeval now, idle_end, left;
	int s;

	(void)fd;
	(void)what;
	if (c->phase == PH_ANSWERED) {   /* the client did not take the answer */
		pconn_teardown(c);
		return;
	}
	if (c->phase == PH_REQUEST) {
		char why[100];

		snprintf(why, sizeof(why), "no complete CONNECT request within %u s", px->connect_timeout_s);
		emit_failure(c, "connect_refused", "timed out", why);
		note_end(c, CLOSER_PROXY, END_TIMEOUT);
		pconn_teardown(c);
		return;
	}
	if (c->phase == PH_CONNECTING) {
		char why[64];

		snprintf(why, sizeof(why), "connect: timed out after %u s", px->connect_timeout_s);
		upstream_failed(c, why, true);
		return;
	}
	now_of(c, &now);
	if (!c->early_logged && c->obs) {
		obs_conn_quiet_until(c->obs, &now);
		check_early(c);
	}
	idle_end = c->last_activity;
	idle_end.tv_sec += px->idle_timeout_s;
	if (timercmp(&now, &idle_end, <)) {
		timersub(&idle_end, &now, &left);
		if (!c->early_logged && left.tv_sec >= VERDICT_POLL_S) {
			left.tv_sec = VERDICT_POLL_S;
			left.tv_usec = 0;
		}
		evtimer_add(c->timer, &left);
		return;
	}
	note_end(c, CLOSER_PROXY, END_TIMEOUT);
	for (s = 0; s < 2; s++)
		tap_close(c, (enum side)s, CLOSE_TIMEOUT);
	pconn_teardown(c);
}

static void worker_conn_closed(struct worker *w);

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
	if (c->pcap) {
		pthread_mutex_lock(&px->pcap_lock);
		pcapout_conn_free(c->pcap);
		if (pcapout_flush(px->pcap) != 0 && !atomic_exchange(&px->pcap_failed, true))
			emit_fmt(px->cfg->log, "mtlsdiag proxy: --pcap-out %s: write failed: %s",
				 px->cfg->pcap_out, strerror(errno));
		pthread_mutex_unlock(&px->pcap_lock);
	}
	if (c->request)
		evbuffer_free(c->request);
	if (c->own_port)
		atomic_fetch_sub(&px->own_ports[c->own_port], 1);
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
	free(c);
	worker_conn_closed(w);
}

static void start_connect(struct pconn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = netaddr_numeric(c->up_host, c->up_port, &ss);
	int r;

	c->phase = PH_CONNECTING;
	/* Last: with a numeric address the callbacks may run before it returns. */
	if (len)
		r = bufferevent_socket_connect(c->side[SIDE_SERVER].bev, (struct sockaddr *)&ss, (int)len);
	else
		r = bufferevent_socket_connect_hostname(c->side[SIDE_SERVER].bev, c->w->dns, AF_UNSPEC,
							c->up_host, c->up_port);
	if (r != 0)
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
static void handle_connect_request(struct pconn *c)
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

static void worker_conn_opened(struct worker *w);

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct wlistener *wl = arg;
	struct worker *w = wl->w;
	struct proxy *px = w->px;
	struct pconn *c;
	struct timeval ct = { px->connect_timeout_s, 0 };
	char why[200];

	(void)l;
	(void)salen;
	if (w->draining || !(c = calloc(1, sizeof(*c)))) {
		evutil_closesocket(fd);
		return;
	}
	c->w = w;
	c->wl = wl;
	c->side[SIDE_CLIENT].fd = c->side[SIDE_SERVER].fd = -1;
	c->closed_by = CLOSER_NONE;
	event_base_gettimeofday_cached(w->base, &c->start);
	c->last_activity = c->start;
	netaddr_endpoint(sa, &c->client);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	worker_conn_opened(w);   /* TCP_NODELAY comes from the listener */
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
			note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
			pconn_teardown(c);
			return;
		}
		if (!original_dst(fd, &dst, why, sizeof(why))) {
			emit_failure(c, "upstream_error", "no destination", why);
			note_end(c, CLOSER_PROXY, END_UPSTREAM_ERROR);
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
		c->phase = PH_REQUEST;   /* read_cb takes it from here */
		break;
	}
}

/* ---- workers ---- */

static void set_accepting(struct worker *w)
{
	bool on = !w->draining && !w->full && !w->backing_off;
	size_t i;

	for (i = 0; i < w->px->n_ls; i++) {
		if (!w->wls[i].ev)
			continue;
		if (on)
			evconnlistener_enable(w->wls[i].ev);
		else
			evconnlistener_disable(w->wls[i].ev);
	}
}

static void worker_conn_opened(struct worker *w)
{
	w->n_conns++;
	if (w->n_conns >= w->px->max_conns_per_worker && !w->full) {
		w->full = true;
		set_accepting(w);
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: %zu connections open (the --max-conns limit): accepting paused",
			 w->n_conns);
	}
}

static void worker_conn_closed(struct worker *w)
{
	w->n_conns--;
	if (w->full && w->n_conns < w->px->max_conns_per_worker) {
		w->full = false;
		set_accepting(w);
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: below the --max-conns limit: accepting again");
	}
	if (w->backing_off) {   /* a descriptor was freed: try again now */
		w->backing_off = false;
		evtimer_del(w->retry_ev);
		set_accepting(w);
	}
	if (w->draining && w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
}

static void retry_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->backing_off = false;
	set_accepting(w);
}

/* Out of descriptors or memory is a state, not a crash: the pending
 * connections wait in the kernel's queue until one closes here (or a
 * second has passed), instead of the loop spinning on a ready listener. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct wlistener *wl = arg;
	struct worker *w = wl->w;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval retry = { ACCEPT_RETRY_S, 0 };

	(void)l;
	emit_fmt(w->px->cfg->log, "mtlsdiag proxy: accept: %s; accepting paused until a connection closes (%zu open)",
		 evutil_socket_error_to_string(err), w->n_conns);
	w->backing_off = true;
	set_accepting(w);
	evtimer_add(w->retry_ev, &retry);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	while (w->conns) {
		struct pconn *c = w->conns;
		int s;

		note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		for (s = 0; s < 2; s++)
			tap_close(c, (enum side)s, CLOSE_TIMEOUT);
		pconn_teardown(c);
	}
	event_base_loopexit(w->base, NULL);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval deadline = { w->px->drain_timeout_s, 0 };

	(void)fd;
	(void)what;
	if (w->draining) {   /* asked twice: stop now */
		deadline_cb(-1, 0, w);
		return;
	}
	w->draining = true;
	set_accepting(w);
	evtimer_del(w->retry_ev);
	if (w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
	else
		evtimer_add(w->deadline_ev, &deadline);
}

/* SIGHUP: the log files are opened again by name (after logrotate moved
 * them).  The FILE stays the same; its descriptor now points at the new
 * file, switched under the stream's lock so no line is split. */
/* SIGHUP: one output opened again at its path (after log rotation).  1, or
 * 0 after saying why on the log (the old file stays in use). */
static int reopen(struct outfile *o, FILE *log)
{
	char err[PATH_MAX + 128];

	if (!o || outfile_reopen(o, err, sizeof(err)) == 0)
		return 1;
	emit_fmt(log, "%s (SIGHUP; still writing to the old file)", err);
	return 0;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;
	unsigned i;

	(void)what;
	if (sig == SIGHUP) {
		int ok = reopen(px->cfg->log_file, px->cfg->log);

		ok &= reopen(px->cfg->json_file, px->cfg->log);
		if (ok)
			emit_fmt(px->cfg->log, "mtlsdiag proxy: SIGHUP: log files reopened");
		return;
	}
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

/* 1 ready, 0 out of memory, -1 a listener could not bind (errno set). */
static int worker_init(struct worker *w, size_t *failed_listener)
{
	struct proxy *px = w->px;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	size_t i;

	struct event_config *ec = event_config_new();

	if (!ec)
		return 0;
	/* add/del pairs within one pass of the loop cost no epoll_ctl */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!w->base)
		return 0;
	if (pipe2(w->pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
		int got;

		(void)fcntl(w->pipe[0], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
		got = fcntl(w->pipe[0], F_GETPIPE_SZ);
		w->pipe_size = got > 0 ? (size_t)got : 65536;
	} else {
		w->pipe[0] = w->pipe[1] = -1;   /* relayed through buffers only */
	}
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns) {   /* no usable resolv.conf: names from /etc/hosts only */
		w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns)
			evdns_base_load_hosts(w->dns, NULL);
	}
	w->ocfg.at_set = px->cfg->at_set;
	w->ocfg.at = px->cfg->at;
	w->ocfg.ca_bundle = px->cfg->ca_bundle;
	w->ocfg.inspection = px->cfg->inspection;
	w->ocfg.expect = px->cfg->expect;
	w->ocfg.certs = cert_cache_new(4096);
	w->ocfg.chains = chain_memo_new();   /* like the certificates: per worker */
	/* the clients write their key logs while their connections run */
	w->ocfg.keylog = px->cfg->keylog;
	w->ocfg.keylog_wait = px->cfg->keylog != NULL;
	w->ocfg.keep_query = px->cfg->keep_query;
	w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
	w->deadline_ev = evtimer_new(w->base, deadline_cb, w);
	w->retry_ev = evtimer_new(w->base, retry_accept_cb, w);
	w->wls = calloc(px->n_ls, sizeof(*w->wls));
	if (!w->dns || !w->ocfg.certs || !w->ocfg.chains || !w->stop_ev || !w->deadline_ev || !w->retry_ev || !w->wls)
		return 0;
	if (px->n_workers > 1)
		flags |= LEV_OPT_REUSEABLE_PORT;
	for (i = 0; i < px->n_ls; i++) {
		struct wlistener *wl = &w->wls[i];

		wl->w = w;
		wl->l = &px->ls[i];
		/* libevent's default backlog (128) overflows under a burst, and
		 * each SYN dropped is retried only a second later: take what the
		 * kernel allows (net.core.somaxconn caps it) */
		wl->ev = evconnlistener_new_bind(w->base, accept_cb, wl, flags, SOMAXCONN,
						 (const struct sockaddr *)&px->ls[i].ss, (int)px->ls[i].sslen);
		if (!wl->ev) {
			*failed_listener = i;
			return -1;
		}
		evconnlistener_set_error_cb(wl->ev, accept_error_cb);
		/* accepted sockets inherit it: one setsockopt per listener,
		 * not one per connection */
		set_nodelay(evconnlistener_get_fd(wl->ev));
	}
	return 1;
}

static void worker_free(struct worker *w)
{
	size_t i;

	while (w->conns) {
		note_end(w->conns, CLOSER_PROXY, END_SHUTDOWN);
		pconn_teardown(w->conns);
	}
	for (i = 0; w->wls && i < w->px->n_ls; i++)
		if (w->wls[i].ev)
			evconnlistener_free(w->wls[i].ev);
	free(w->wls);
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->deadline_ev)
		event_free(w->deadline_ev);
	if (w->retry_ev)
		event_free(w->retry_ev);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	chain_memo_free(w->ocfg.chains);
	cert_cache_free(w->ocfg.certs);
	if (w->base)
		event_base_free(w->base);
}

/* ---- start-up ---- */

/* Each relayed connection holds two descriptors: the soft limit goes up
 * to the hard one, and the connection limit follows from what is there. */
static size_t descriptor_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1000;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 2000000)
		rl.rlim_cur = 2000000;
	return rl.rlim_cur > 2 * FDS_RESERVED ? (size_t)(rl.rlim_cur - FDS_RESERVED) / 2 : 32;
}

static int setup_listener(struct plistener *l, const struct proxy_listen_config *lc)
{
	l->cfg = lc;
	if (!listen_sockaddr(lc->listen, &l->ss, &l->sslen)) {
		fprintf(stderr, "mtlsdiag proxy: --listen '%s': expected ADDR:PORT with a numeric address and a port 1-65535 (127.0.0.1:8443, [::1]:8443, 0.0.0.0:8443)\n",
			lc->listen);
		return 0;
	}
	switch (lc->mode) {
	case PROXY_STATIC:
		if (!lc->upstream || !proxy_split_hostport(lc->upstream, l->up_host, sizeof(l->up_host), &l->up_port)) {
			fprintf(stderr, "mtlsdiag proxy: --upstream '%s': expected HOST:PORT with a port 1-65535 (server.example:443, 10.0.0.5:443, [2001:db8::5]:443)\n",
				lc->upstream ? lc->upstream : "");
			return 0;
		}
		break;
	case PROXY_CONNECT:
		if (lc->via && !proxy_split_hostport(lc->via, l->up_host, sizeof(l->up_host), &l->up_port)) {
			fprintf(stderr, "mtlsdiag proxy: --via '%s': expected HOST:PORT with a port 1-65535 (gateway.example:8080)\n",
				lc->via);
			return 0;
		}
		if (lc->n_allow == 0 && !sockaddr_is_loopback((struct sockaddr *)&l->ss)) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s --connect: a CONNECT proxy on a non-loopback address needs --allow HOST:PORT (--allow '*:*' to relay anywhere)\n",
				lc->listen);
			return 0;
		}
		break;
	case PROXY_TRANSPARENT:
		break;
	}
	return 1;
}

/* --user: after the listeners are bound and the files open. */
static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: no such user\n", user);
		return 0;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: cannot switch to uid %u: %s\n", user,
			(unsigned)pw->pw_uid, strerror(errno));
		return 0;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: privileges could be regained; stopping\n", user);
		return 0;
	}
	return 1;
}

static void describe_listener(const struct plistener *l, char *buf, size_t len)
{
	const struct proxy_listen_config *lc = l->cfg;
	char up[300];

	switch (lc->mode) {
	case PROXY_STATIC:
		report_endpoint(up, sizeof(up), l->up_host, l->up_port);
		snprintf(buf, len, "%s relaying to %s", lc->listen, up);
		break;
	case PROXY_CONNECT:
		if (lc->via) {
			report_endpoint(up, sizeof(up), l->up_host, l->up_port);
			snprintf(buf, len, "%s as a CONNECT proxy via %s (%s)", lc->listen, up,
				 lc->n_allow ? "destinations from --allow" : "any destination");
		} else {
			snprintf(buf, len, "%s as a CONNECT proxy (%s)", lc->listen,
				 lc->n_allow ? "destinations from --allow" : "any destination");
		}
		break;
	case PROXY_TRANSPARENT:
		snprintf(buf, len, "%s transparently (redirected connections)", lc->listen);
		break;
	}
}

int proxy_run(const struct proxy_config *cfg)
{
	struct proxy px = { .cfg = cfg };
	struct event *sigs[3] = { NULL, NULL, NULL };
	static const int signos[3] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t block, old;
	size_t i, max_conns, failed = 0;
	int ret = 2, r;
	char desc[600], err[300];

	px.n_workers = cfg->workers ? cfg->workers : 1;
	px.connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
	px.idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
	px.drain_timeout_s = cfg->drain_timeout_s ? cfg->drain_timeout_s : DEFAULT_DRAIN_TIMEOUT_S;
	px.buffer_limit = cfg->buffer_limit ? cfg->buffer_limit : DEFAULT_BUFFER_LIMIT;
	pthread_mutex_init(&px.pcap_lock, NULL);
	if (cfg->n_listeners == 0 || !(px.ls = calloc(cfg->n_listeners, sizeof(*px.ls)))) {
		fprintf(stderr, "mtlsdiag proxy: no listener\n");
		return 2;
	}
	px.n_ls = cfg->n_listeners;
	for (i = 0; i < px.n_ls; i++)
		if (!setup_listener(&px.ls[i], &cfg->listeners[i]))
			goto Exit;
	max_conns = descriptor_budget();
	if (cfg->max_conns) {
		if (cfg->max_conns > max_conns)
			fprintf(stderr, "mtlsdiag proxy: --max-conns %u: the descriptor limit allows %zu; using that\n",
				cfg->max_conns, max_conns);
		else
			max_conns = cfg->max_conns;
	}
	px.max_conns_per_worker = (max_conns + px.n_workers - 1) / px.n_workers;
	for (i = 0; i < px.n_ls; i++) {
		if (px.ls[i].cfg->mode == PROXY_TRANSPARENT && !px.own_ports &&
		    !(px.own_ports = calloc(65536, sizeof(*px.own_ports)))) {
			fprintf(stderr, "mtlsdiag proxy: out of memory\n");
			goto Exit;
		}
	}
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "mtlsdiag proxy: cannot set up libevent threading\n");
		goto Exit;
	}
	signal(SIGPIPE, SIG_IGN);   /* a peer gone mid-write is an error to handle, not a reason to die */
	if (cfg->pcap_out && !(px.pcap = pcapout_open(cfg->pcap_out, err, sizeof(err)))) {
		fprintf(stderr, "mtlsdiag proxy: --pcap-out: %s\n", err);
		goto Exit;
	}
	px.workers = calloc(px.n_workers, sizeof(*px.workers));
	if (!px.workers) {
		fprintf(stderr, "mtlsdiag proxy: out of memory\n");
		goto Exit;
	}
	for (i = 0; i < px.n_workers; i++)
		px.workers[i].pipe[0] = px.workers[i].pipe[1] = -1;
	for (i = 0; i < px.n_workers; i++) {
		px.workers[i].px = &px;
		px.workers[i].id = (unsigned)i;
		r = worker_init(&px.workers[i], &failed);
		if (r < 0) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: cannot listen: %s\n", px.ls[failed].cfg->listen,
				evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			goto Exit;
		}
		if (r == 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot set up worker %zu (out of memory?)\n", i);
			goto Exit;
		}
	}
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(px.workers[0].base, signos[i], signal_cb, &px);
		if (!sigs[i] || evsignal_add(sigs[i], NULL) != 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot install signal handlers\n");
			goto Exit;
		}
	}
	if (cfg->user && !drop_privileges(cfg->user))
		goto Exit;
	for (i = 0; i < px.n_ls; i++) {
		describe_listener(&px.ls[i], desc, sizeof(desc));
		emit_fmt(cfg->log, "mtlsdiag proxy: listening on %s", desc);
	}
	emit_fmt(cfg->log, "mtlsdiag proxy: %u worker%s, at most %zu connections open%s%s%s", px.n_workers,
		 px.n_workers == 1 ? "" : "s", px.max_conns_per_worker * px.n_workers,
		 cfg->pcap_out ? "; writing " : "", cfg->pcap_out ? cfg->pcap_out : "",
		 cfg->pcap_out ? (cfg->pcap_full ? " (whole connections)" : " (up to each verdict)") : "");
	/* signals are taken by worker 0's loop, on this thread */
	sigemptyset(&block);
	for (i = 0; i < 3; i++)
		sigaddset(&block, signos[i]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 1; i < px.n_workers; i++) {
		if (pthread_create(&px.workers[i].thread, NULL, worker_main, &px.workers[i]) != 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot start worker thread %zu\n", i);
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
	for (i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	for (i = 0; px.workers && i < px.n_workers; i++)
		worker_free(&px.workers[i]);
	free(px.workers);
	pcapout_close_file(px.pcap);
	pthread_mutex_destroy(&px.pcap_lock);
	free(px.own_ports);
	free(px.ls);
	return ret;
}
