/* proxy_int.h: what the proxy's own files share, and nothing outside
 * them includes.  The rooms:
 *   proxy.c         workers, listeners, accepting, signals, the drain
 *                   deadline, start-up (proxy_run)
 *   proxy_conn.c    one connection (struct pconn) from accept to its one
 *                   teardown: CONNECT requests, connecting upstream, the
 *                   timers, the observer and capture tap
 *   relay.c         moving the bytes: through bufferevents, then spliced
 *   proxy_record.c  the human lines and JSON records the proxy writes
 *   sourcecap.c     --max-conns-per-source: connections per client address
 *   netaddr.c       socket addresses, --allow patterns, SO_ORIGINAL_DST */
#ifndef MTLSDIAG_PROXY_INT_H
#define MTLSDIAG_PROXY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/util.h>

#include "analysis/observer.h"
#include "out/json.h"
#include "front/proxy.h"
#include "wire/facts.h"

struct bufferevent;
struct event;
struct event_base;
struct evbuffer;
struct evconnlistener;
struct evdns_base;
struct dns_lookup;
struct pcapout;
struct pcapout_conn;
struct sourcecap;
struct sourcecap_report;
struct metrics;
struct metrics_http;
struct intercept;
struct icpt_conn;
struct ssl_session_st;

/* Who ended the connection first, for the final record. */
enum closer { CLOSER_NONE = -1, CLOSER_CLIENT = SIDE_CLIENT, CLOSER_SERVER = SIDE_SERVER, CLOSER_PROXY = 2 };

/* How the connection ended, as the final record names it. */
enum end_kind {
	END_NONE, END_FIN, END_RST, END_TIMEOUT, END_SHUTDOWN, END_UPSTREAM_ERROR, END_REFUSED,
	END_OVER_BUDGET, END_HANDSHAKE_TIMEOUT,
};

enum phase { PH_REQUEST, PH_CONNECTING, PH_RELAY, PH_ANSWERED };

struct worker;
struct wlistener;
struct icpt_idle;

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
	struct ticket_tap *tap;      /* its bytes for the evidence folder, with --evidence */
	struct evbuffer *request;    /* connect mode, no --via: the CONNECT request */
	struct event *timer;         /* request, connect, then handshake and idle timeouts */
	struct dns_lookup *lookup;   /* the upstream's name being resolved, or NULL */
	struct endpoint client;
	char up_host[256];           /* what is connected to: upstream, via or target */
	uint16_t up_port;
	char target[300];            /* connect mode: the CONNECT target as asked */
	uint16_t own_port;           /* transparent: local port of the upstream socket */
	struct timeval start, last_activity;
	struct timeval hs_end;       /* --metrics: when its TLS handshake was over (hs_ended) */
	bool hs_ended;
	size_t hs_counted;           /* its share of the handshake total (proxy.hs_total) */
	bool early_logged;
	bool spliced;
	bool unobserved;             /* over the handshake budget: relayed on without the observer */
	bool closing;                /* closed from the timer as soon as the callback returns */
	bool source_counted;         /* counted in proxy.sources */
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
	struct intercept *icpt;      /* --intercept: its TLS contexts, and what the server asks */
};

/* One listener on one worker's loop. */
struct wlistener {
	struct worker *w;
	const struct plistener *l;
	struct evconnlistener *ev;
	struct ssl_session_st *up_session; /* intercept: the real server's last session, resumed */
	struct icpt_idle *idle;      /* intercept: idle connections to the real server, newest first */
	unsigned n_idle;
};

/* Records leave the log and --json in batches: worker 0's timer writes
 * them out shortly after the first one waits (proxy_record_written). */
struct proxy_flush {
	atomic_bool pending;         /* the timer is armed */
	struct event *ev;            /* on worker 0's loop; NULL: each record is flushed */
};

struct proxy {
	const struct proxy_config *cfg;
	struct proxy_flush *flush;
	size_t buffer_limit;
	unsigned connect_timeout_s, idle_timeout_s, drain_timeout_s, handshake_timeout_s;
	size_t max_conns_per_worker;
	char conns_limit_from[80];   /* where that comes from: "--max-conns 2", the descriptor limit */
	size_t max_handshake, max_handshake_total;
	atomic_size_t hs_total;      /* handshake bytes the observers hold, all workers */
	atomic_size_t freed;         /* about as many bytes freed since the last malloc_trim */
	struct sourcecap *sources;   /* --max-conns-per-source, or NULL */
	const char *stop_why;        /* what stopped it ("SIGTERM"), set before the workers are told */
	atomic_uint listening;       /* workers whose listeners are still open */
	atomic_ullong refused;       /* connections it refused */
	struct plistener *ls;
	size_t n_ls;
	struct worker *workers;
	unsigned n_workers;
	struct pcapout *pcap;        /* shared by the workers, under pcap_lock */
	struct ticket *ticket;       /* --evidence DIR (its own lock), or NULL */
	pthread_mutex_t pcap_lock;
	atomic_bool pcap_failed;
	/* transparent mode: local ports of our own upstream connections, to
	 * recognise one of them redirected back to us (a REDIRECT rule that
	 * also matches the proxy's own traffic) */
	atomic_ushort *own_ports;
	bool log_tty;                /* the log is a terminal */
	bool color;                  /* the verdict lines are coloured (--color, a terminal) */
	struct metrics *metrics;     /* the counters (--metrics, and the summary at the stop) */
	struct metrics_http *metrics_http; /* serving them, on worker 0's loop */
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
	struct event *tick_ev;       /* worker 0: the proxy's once-a-second chores */
	struct observer_config ocfg;
	struct pconn *conns;
	struct icpt_conn *iconns;    /* intercepted connections (intercept_conn.c) */
	size_t n_conns;
	bool draining;
	bool full;                   /* accepts paused at the connection limit */
	bool backing_off;            /* accepts paused after accept() failed */
	struct json record;          /* the builder of this worker's connection records: its
				      * memory and its certificate objects kept between them */
	int pipe[2];                 /* for splice(2), empty between callbacks; -1: no splicing */
	size_t pipe_size;
};

/* ---- proxy.c: the worker's count of open connections ---- */

void worker_conn_opened(struct worker *w) __attribute__((nonnull));
void worker_conn_closed(struct worker *w) __attribute__((nonnull));
/* About n bytes were freed: the memory goes back to the system once enough
 * has been (malloc_trim, from the once-a-second tick). */
void proxy_note_freed(struct proxy *px, size_t n) __attribute__((nonnull));
/* TCP_NODELAY: each chunk is forwarded as it comes. */
void proxy_set_nodelay(evutil_socket_t fd);

/* ---- proxy_conn.c: one connection ---- */

/* A connection accepted on wl: set up, then on its way to its server (or,
 * in connect mode, waiting for its request).  Takes fd in every case. */
void pconn_accept(const struct wlistener *wl, evutil_socket_t fd, const struct sockaddr *sa)
	__attribute__((nonnull));
/* The one teardown: the final record, then everything freed (c too). */
void pconn_teardown(struct pconn *c) __attribute__((nonnull));
/* Tears c down once both sides are done both ways. */
void pconn_maybe_done(struct pconn *c) __attribute__((nonnull));
/* Who ended it and how, if nothing has yet. */
void pconn_note_end(struct pconn *c, enum closer who, enum end_kind how) __attribute__((nonnull));
/* Logs the verdict the moment the observer calls it final. */
void pconn_check_early(struct pconn *c) __attribute__((nonnull));
/* Connect mode: the client's request, once its header block is complete. */
void pconn_connect_request(struct pconn *c) __attribute__((nonnull));
/* Connect mode: the client went away before its request was complete. */
void pconn_request_abandoned(struct pconn *c, enum end_kind how) __attribute__((nonnull));
/* The bufferevents' event callback: connected, EOF, error. */
void pconn_event_cb(struct bufferevent *bev, short what, void *arg);
/* What side `from` sent, shown to the observer and the capture. */
void tap_buffer(struct pconn *c, enum side from, struct evbuffer *buf, const struct timeval *now)
	__attribute__((nonnull));
/* Side s closed (how), told to the observer and the capture once. */
void tap_close(struct pconn *c, enum side s, enum close_kind how) __attribute__((nonnull));

/* Which side bev is. */
enum side pconn_side_of(const struct pconn *c, const struct bufferevent *bev) __attribute__((nonnull));
/* The loop's cached time. */
void pconn_now(const struct pconn *c, struct timeval *tv) __attribute__((nonnull));

/* ---- intercept_conn.c: a connection the proxy terminates ---- */

/* A connection accepted on an --intercept listener (takes fd). */
void icpt_accept(struct wlistener *wl, evutil_socket_t fd, const struct sockaddr *sa) __attribute__((nonnull));
/* Ends every intercepted connection of w now (each gets its record), and
 * lets go of the sessions kept for its listeners. */
void icpt_close_all(struct worker *w) __attribute__((nonnull));

/* ---- relay.c: moving the bytes ---- */

/* A side's bufferevent on fd (-1: not connected yet), with the relay's
 * callbacks and backpressure watermark; NULL out of memory. */
struct bufferevent *relay_side_new(struct pconn *c, evutil_socket_t fd) __attribute__((nonnull));
/* Moves what side s sent to the other side's output. */
void relay_input(struct pconn *c, enum side s) __attribute__((nonnull));
/* Sends FIN on side s: nothing more will be written to it. */
void relay_shut_side(struct pconn *c, enum side s) __attribute__((nonnull));
/* Side s sent FIN, or failed (reset, error, timeout). */
void relay_eof(struct pconn *c, enum side s) __attribute__((nonnull));
void relay_error(struct pconn *c, enum side s) __attribute__((nonnull));
/* Closes a side's socket (with a reset, if it is to pass one on) and
 * frees what it holds, bufferevent or spliced events and spill. */
void relay_close_side(struct pconn_side *side) __attribute__((nonnull));

/* ---- proxy_record.c: the lines and records written ---- */

void emit_line(FILE *out, const char *line);
/* A connection's line or record was written to out: it leaves with the
 * next batch (at once with --line-buffered, or without the timer). */
void proxy_record_written(const struct proxy *px, FILE *out) __attribute__((nonnull));
struct json;
/* A finished record to --json (one fwrite: records never mix), out with
 * the next batch. */
void write_record(const struct proxy *px, struct json *j) __attribute__((nonnull));
/* A connection's verdict line: to --log (unless -q; with -v and `final`,
 * its evidence and remedies below it) and to --syslog. */
void emit_verdict(const struct proxy *px, const char *line, const struct conn_facts *f, const struct verdict *v,
		  bool final) __attribute__((nonnull));
void __attribute__((format(printf, 2, 3))) emit_fmt(FILE *out, const char *fmt, ...);
const char *closer_name(enum closer c);
const char *end_name(enum end_kind e);
uint64_t ms_between(const struct timeval *a, const struct timeval *b);
/* summary: the connection's human line (report_line), NULL to make it */
/* A connection's final record, as --json writes it, into j (emptied by
 * the caller): the connection record and the proxy's members. */
struct json;
void conn_record(struct json *j, const struct pconn *c, const struct conn_facts *f, const struct verdict *v,
		 const char *summary, uint64_t duration_ms);
void emit_json(FILE *out, const struct pconn *c, const struct conn_facts *f,
	       const struct verdict *v, const char *summary, uint64_t duration_ms);
/* A record begun in j, as --json-format says: type "connection" with the
 * connection's members (f and v given), or another type (f NULL) with
 * only its "type" and "schema" (ts: its time); record_end closes it. */
struct json;
void record_begin(const struct proxy *px, struct json *j, const char *type, const struct timeval *ts,
		  const struct conn_facts *f, const struct verdict *v, const char *summary)
	__attribute__((nonnull(1, 2, 3, 4)));
void record_end(const struct proxy *px, struct json *j) __attribute__((nonnull));
void emit_failure(const struct pconn *c, const char *type, const char *what, const char *why);
/* A line about an open connection: "TIME CLIENT -> UPSTREAM what". */
void emit_note(const struct pconn *c, const char *what) __attribute__((nonnull));
/* An address's connections refused by --max-conns-per-source: a line, and
 * a "refused" record. */
void emit_refused(const struct proxy *px, const struct sourcecap_report *r) __attribute__((nonnull));

#endif
