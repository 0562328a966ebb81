/* observer: one connection's analysis, fed bytes and closes by a front end.
 *
 * The observer does no I/O.  A front end (capture reader, proxy, probe)
 * creates one per TCP connection, feeds each side's payload in order with
 * the time it was seen, reports closes, and calls obs_conn_finish exactly
 * once from its single teardown path.  The same sequence of calls gives the
 * same verdict whichever front end makes them. */
#ifndef MTLSDIAG_OBSERVER_H
#define MTLSDIAG_OBSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "wire/facts.h"
#include "analysis/verdict.h"

struct x509_store_st;
struct cert_cache;
struct keylog;
struct chain_memo;
struct chain_policy;
struct obs_pool;
struct inspect_catalogue;
struct server_expect;

struct observer_config {
	bool at_set;             /* --at: validity checks use `at` instead of the connection's time */
	time_t at;
	struct x509_store_st *ca_bundle; /* --ca-bundle: the server's client-CA bundle, or NULL */
	/* How the server verifies (--ca-bundle, --verify-depth, --crl,
	 * --purpose, --server-kind), or NULL: ca_bundle alone then. */
	const struct chain_policy *chain_policy;
	struct cert_cache *certs;        /* parsed-certificate cache (one per thread), required */
	struct keylog *keylog;           /* --keylog: decrypt with these secrets, or NULL */
	/* The key log is still being written (the proxy): protected records
	 * whose secret is not there yet are held (up to a bound) until the
	 * front end has refreshed the key log; see obs_conn_awaiting_keys. */
	bool keylog_wait;
	struct chain_memo *chains;       /* optional: chain checks remembered (one per thread, with certs) */
	struct obs_pool *pool;           /* optional: spare connection objects (one per thread) */
	bool no_evidence;        /* verdicts are only counted: decided without evidence lines */
	bool endpoint;           /* the front end is the TLS client itself (the probe): it holds every key */
	bool keep_query;         /* --keep-query: the request line keeps its query string (else "?…") */
	/* Middlebox attribution (verdict_attribute): the inspection-CA
	 * catalogue (--inspection-cas) and what the real server's chain is
	 * (--expect-server-ca, --expect-server-spki); either may be NULL. */
	const struct inspect_catalogue *inspection;
	const struct server_expect *expect;
	/* The front end's budget for one connection (the proxy's
	 * --max-handshake-bytes): at most this many bytes held by its decoders
	 * (handshake messages being reassembled, a protected record being
	 * collected, preamble bytes).  A message that needs more stops the
	 * observing (obs_conn_over_budget).  0: no budget.  Records held for a
	 * key log's secret have a bound of their own (256 KiB). */
	size_t max_buffered;
};

struct obs_conn;

/* `initiator` is the side that opened the TCP connection when known
 * (saw_syn), else the sender of the first packet seen.  The observer works
 * out which side is the TLS client from the ClientHello. */
struct obs_conn *obs_conn_new(const struct observer_config *cfg,
			      const struct endpoint *initiator,
			      const struct endpoint *responder,
			      const struct timeval *ts, bool saw_syn)
	__attribute__((warn_unused_result));

/* Payload from `from` (SIDE_CLIENT = initiator), in stream order. */
void obs_conn_feed(struct obs_conn *c, enum side from, const uint8_t *data,
		   size_t len, const struct timeval *ts) __attribute__((nonnull(1, 5)));

/* `n` bytes of `from`'s stream are missing (capture loss). */
void obs_conn_gap(struct obs_conn *c, enum side from, size_t n, const struct timeval *ts);

/* `from` closed its side (FIN), or reset the connection. */
void obs_conn_close(struct obs_conn *c, enum side from, enum close_kind how,
		    const struct timeval *ts);

/* False once further payload can no longer change the verdict: the front
 * end may then skip payload bytes (closes still matter). */
bool obs_conn_wants_bytes(const struct obs_conn *c);

/* Bytes the connection holds until more arrive: what its decoders hold
 * (see max_buffered) and the records held for a key log's secret. */
size_t obs_conn_buffered(const struct obs_conn *c) __attribute__((nonnull));

/* Whether a message needed more than cfg->max_buffered: the observing has
 * stopped and its buffers are freed (the front end says why with
 * obs_conn_abandon).  *need: the bytes the connection would have held. */
bool obs_conn_over_budget(const struct obs_conn *c, size_t *need) __attribute__((nonnull));

/* The front end stops the observing (a budget, its own limits): the
 * decoding state is freed at once and no more bytes are wanted; the
 * verdict is `incomplete`, with `why` as its last evidence line. */
void obs_conn_abandon(struct obs_conn *c, const char *why) __attribute__((nonnull));

/* Whether the TLS handshake is behind the connection, as far as the bytes
 * show: both sides sent their protected flight (below 1.3 after their
 * ChangeCipherSpec), or the verdict came early (not TLS, a fatal alert, a
 * session that went on), or the observer wants no more bytes. */
bool obs_conn_handshake_over(const struct obs_conn *c) __attribute__((nonnull));

/* With keylog_wait: records are held for secrets the key log does not
 * have yet.  The front end refreshes the key log (keylog_refresh) and the
 * held records are opened at the next feed, or by obs_conn_retry_keys. */
bool obs_conn_awaiting_keys(const struct obs_conn *c);
void obs_conn_retry_keys(struct obs_conn *c);

/* Nothing happened on the connection up to `now`: a session that stays
 * open and quiet after the server's answer has gone on (the proxy calls
 * this from a timer, then asks for the early verdict). */
void obs_conn_quiet_until(struct obs_conn *c, const struct timeval *now) __attribute__((nonnull));

/* A verdict that no later event can change, if there already is one (the
 * proxy logs it the moment it is known).  NULL otherwise. */
const struct verdict *obs_conn_early_verdict(struct obs_conn *c);

/* Once its early verdict has been said and no more bytes are wanted, a
 * connection that waits only for its finish (a proxy's idle connection)
 * gives back what the decoding and that verdict took (the finish decides
 * it again, from the facts, as it always does).  Nothing happens when it
 * cannot yet.  A shrunk connection is freed at obs_conn_free, not kept in
 * a pool. */
void obs_conn_shrink(struct obs_conn *c) __attribute__((nonnull));

/* Ends the connection: decides the verdict and frees decoding state.  Call
 * once; `truncated` when the input stopped before the connection ended; `ts`
 * the time it was watched until (a capture's end, the proxy's clock). */
const struct verdict *obs_conn_finish(struct obs_conn *c, bool truncated,
				      const struct timeval *ts);
/* obs_conn_finish in its two steps, for a front end that decides on
 * another thread than the one that fed the connection (pcap's writer):
 * obs_conn_end ends the feeding (a key log's last records, the decoding
 * state freed); obs_conn_decide then decides, and reads nothing but the
 * connection and what the configuration shares read-only (the catalogue,
 * the policy). */
void obs_conn_end(struct obs_conn *c, bool truncated, const struct timeval *ts);
const struct verdict *obs_conn_decide(struct obs_conn *c) __attribute__((nonnull));

const struct conn_facts *obs_conn_facts(const struct obs_conn *c);
/* Names the capture file the connection came from (kept, not copied: it
 * must outlive the connection), for its record's "source". */
void obs_conn_set_source(struct obs_conn *c, const char *source) __attribute__((nonnull(1)));

/* The finished connection's verdict, for rules that span connections
 * (legpair.c pairs a gateway's two legs) to add to. */
struct verdict *obs_conn_verdict_for_update(struct obs_conn *c);

/* Frees the connection, or keeps it in cfg->pool for the next one. */
void obs_conn_free(struct obs_conn *c);

/* The observer as a capture's flow sink (capture.h): each flow opens a
 * connection made with cfg and is fed to it; at the flow's end
 * finished(ctx, conn, truncated, ts) decides it and owns it from then on.
 * The sink refers to *os, which must outlive the reading. */
struct flow_sink;
struct obs_sink {
	const struct observer_config *cfg;
	void (*finished)(void *ctx, struct obs_conn *c, bool truncated, const struct timeval *ts);
	/* Optional (a live capture): once per connection, the moment its
	 * verdict is settled (obs_conn_early_verdict) while it is still open;
	 * true when the front end has said it (obs_conn_settled_told).
	 * finished is still called at its end, with the same verdict. */
	bool (*settled)(void *ctx, struct obs_conn *c, const struct verdict *v);
	void *ctx;
};
void obs_sink_init(struct obs_sink *os, struct flow_sink *sink);
/* Whether the sink's settled callback had this connection's verdict. */
bool obs_conn_settled_told(const struct obs_conn *c) __attribute__((nonnull));

/* A pool of spare connection objects; it must outlive the connections
 * made with it. */
struct obs_pool *obs_pool_new(void) __attribute__((warn_unused_result));
void obs_pool_free(struct obs_pool *p);

#endif
