/* proxy: the relay behind `mtlsdiag proxy`: accepts TCP connections,
 * connects each to its server, copies bytes both ways unchanged and feeds
 * them to an observer (observer.h), one per connection.
 *
 * Three kinds of listener, several at once:
 *   static       every connection goes to one upstream (--upstream);
 *   connect      an HTTP proxy: the client asks for "CONNECT host:port",
 *                answered by the proxy itself or, with --via, passed on to a
 *                further HTTP proxy (a web gateway) verbatim;
 *   transparent  connections redirected by iptables/nftables REDIRECT go
 *                where the client meant them to (SO_ORIGINAL_DST).
 *
 * libevent 2.1: one event base per worker thread, each with its own
 * listeners (SO_REUSEPORT when there are several workers), its own evdns
 * base and its own certificate cache.  No blocking call on a worker's loop. */
#ifndef MTLSDIAG_PROXY_H
#define MTLSDIAG_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <time.h>

#include "front/term.h"
#include "out/ticket.h"

struct x509_store_st;
struct chain_policy;
struct outfile;
struct syslog_out;

enum proxy_mode { PROXY_STATIC, PROXY_CONNECT, PROXY_TRANSPARENT };

struct proxy_listen_config {
	const char *listen;          /* "ADDR:PORT", numeric address ("[::1]:8443") */
	enum proxy_mode mode;
	const char *upstream;        /* static: "HOST:PORT", a name or a numeric address */
	const char *via;             /* connect: a further HTTP proxy "HOST:PORT", or NULL */
	const char *const *allow;    /* connect: destinations allowed, "HOST:PORT" patterns */
	size_t n_allow;              /* 0: any destination (loopback listeners only) */
	bool intercept;              /* static: terminate TLS as the server's stand-in (intercept.h) */
};

struct keylog;
struct inspect_catalogue;
struct server_expect;
struct intercept_config;

struct proxy_config {
	const struct proxy_listen_config *listeners;
	size_t n_listeners;
	unsigned workers;            /* event loops (threads); 0: 1 */
	unsigned connect_timeout_s;  /* resolve + connect (and a CONNECT request); 0: 10 */
	unsigned idle_timeout_s;     /* no byte either way; 0: 300 */
	unsigned drain_timeout_s;    /* after SIGTERM/SIGINT; 0: 10 */
	unsigned handshake_timeout_s; /* a TLS handshake not over this long after accept
				      * closes the connection; 0: 10 */
	unsigned max_conns;          /* open connections before accepting pauses;
				      * 0: as many as the descriptor limit allows */
	unsigned max_conns_per_source; /* open connections from one client address;
				      * more are closed at accept; 0: no limit */
	size_t buffer_limit;         /* bytes queued towards one side before the other
				      * side stops being read; 0: 256 KiB */
	size_t max_handshake_bytes;  /* handshake bytes the observer may hold for one
				      * connection (observer_config.max_buffered); 0: 64 KiB */
	size_t max_handshake_total;  /* the same for all connections together; 0: 64 MiB */
	bool over_budget_close;      /* past either: close the connection, instead of
				      * relaying it on unobserved */
	enum term_color color;       /* --color: the verdict lines coloured on a terminal */
	bool stop_on_output_error;   /* --on-output-error stop: --json or --log lost a
				      * record: say so and stop as on SIGTERM */
	FILE *log;                   /* human lines (required) */
	struct outfile *log_file;    /* log's file (standard error's without --log), reopened on SIGHUP */
	const char *log_path;        /* --log as given */
	FILE *json;                  /* JSON Lines (json_file's stream), or NULL */
	struct outfile *json_file;   /* reopened on SIGHUP */
	const char *json_path;       /* --json as given */
	bool json_ecs;               /* --json-format ecs: Elastic Common Schema names (out/ecs.h) */
	const char *pcap_out;        /* write the relayed connections here, or NULL */
	mode_t file_mode;            /* of the files it creates (--json, --log, --pcap-out) */
	bool pcap_full;              /* whole connections, not only up to the verdict */
	struct ticket_opts evidence; /* --evidence DIR (passthrough listeners), dir NULL when not asked */
	bool keep_query;             /* a decrypted request line keeps its query string */
	const char *user;            /* drop privileges to this user after binding */
	bool at_set;                 /* observer options, as for `mtlsdiag pcap` */
	time_t at;
	struct x509_store_st *ca_bundle;
	const struct chain_policy *chain_policy; /* --verify-depth, --crl, --purpose, --server-kind with it */
	struct keylog *keylog;       /* --keylog: followed key logs (clients still writing them), or NULL */
	const struct inspect_catalogue *inspection; /* middlebox attribution, as for `mtlsdiag pcap` */
	const struct server_expect *expect;
	const struct intercept_config *intercept; /* the listeners with intercept set: keys and options */
	const char *metrics_listen;  /* --metrics ADDR:PORT: Prometheus metrics served there, or NULL */
	bool quiet;                  /* -q: no line per connection in --log */
	bool line_buffered;          /* -l: each record written as it is made (else in batches) */
	bool verbose;                /* -v: a connection's evidence and remedies under its final line */
	struct syslog_out *syslog;   /* --syslog: the connections' lines there too, or NULL */
};

/* Splits "HOST:PORT" or "[V6]:PORT".  1 on success (port 1-65535, host not
 * empty and, unbracketed, free of ':'), 0 otherwise. */
int proxy_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
	__attribute__((nonnull, warn_unused_result));

/* Whether an --allow pattern ("HOST:PORT", HOST with * and ? wildcards,
 * matched without regard to case; PORT a number or *) admits host:port. */
bool proxy_allow_match(const char *pattern, const char *host, uint16_t port)
	__attribute__((nonnull));

/* Checks a pattern's form; 0 with a reason in err when it is unusable. */
int proxy_allow_valid(const char *pattern, char *err, size_t errlen)
	__attribute__((nonnull));

/* Binds, then relays until SIGTERM or SIGINT; then stops accepting and
 * returns once the open connections have ended (or the drain deadline has
 * passed, closing the rest).  SIGHUP reopens the log files.  Returns the
 * exit status: 0 after a normal stop, 2 when the configuration is unusable
 * (bad address, port in use, unknown user); the reason is printed on
 * stderr as one line. */
int proxy_run(const struct proxy_config *cfg) __attribute__((nonnull));

#endif
