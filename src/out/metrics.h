/* metrics: the counters a long-running front end keeps for Prometheus
 * (connections by verdict and by who must act, the handshake's duration,
 * bytes relayed, open connections, capture drops, key log lookups) and
 * their rendering in Prometheus's text format (version 0.0.4).  Every
 * counter is atomic: the proxy's workers add to one set while the metrics
 * server renders it.  The front ends feed it; serving it over HTTP is
 * front/metrics_http.c's.  doc/operations.md lists every metric. */
#ifndef MTLSDIAG_OUT_METRICS_H
#define MTLSDIAG_OUT_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#include "analysis/verdict.h"
#include "out/report.h"
#include "wire/facts.h"

struct metrics;

/* Which front end the metrics are of: what is rendered follows (a live
 * capture relays nothing, and sees no handshake's end by itself; the
 * proxy drops no packets). */
enum metrics_front { METRICS_PROXY, METRICS_CAPTURE };

struct metrics *metrics_new(enum metrics_front front) __attribute__((warn_unused_result));
void metrics_free(struct metrics *m);

/* A connection ended with verdict v: counted by verdict and by fault, and
 * its key log lookup (when a key log was given) by result. */
void metrics_connection(struct metrics *m, const struct conn_facts *f, const struct verdict *v)
	__attribute__((nonnull));
/* A TLS handshake took from start to end (observed once per connection
 * whose handshake completed). */
void metrics_handshake(struct metrics *m, const struct timeval *start, const struct timeval *end)
	__attribute__((nonnull));
/* Bytes relayed: what the client sent to the server, and the reverse. */
void metrics_relayed(struct metrics *m, uint64_t from_client, uint64_t from_server) __attribute__((nonnull));
/* A connection that never reached its server (its upstream failed, or the
 * proxy refused its CONNECT). */
void metrics_failure(struct metrics *m) __attribute__((nonnull));
/* An intercepted client forwarded on a connection to the server kept from
 * an earlier client (reused), or whose request went again on a new one
 * after its kept connection was found closed (resent). */
void metrics_upstream_kept(struct metrics *m, bool reused, bool resent) __attribute__((nonnull));
/* Connections open: +1 at accept, -1 at teardown. */
void metrics_open(struct metrics *m, int delta) __attribute__((nonnull));
/* A live capture's counts so far (pcap_stats): packets that passed the
 * filter, and those dropped by the kernel and by the interface. */
void metrics_capture_counts(struct metrics *m, uint64_t received, uint64_t kernel_dropped, uint64_t if_dropped)
	__attribute__((nonnull));

/* The connections counted so far by verdict, as a closing summary's
 * tally (the proxy's, when it stops). */
void metrics_tally(const struct metrics *m, struct report_tally *t) __attribute__((nonnull));

/* Every metric in the text exposition format, HELP and TYPE lines
 * included.  0, or -1 when the stream failed. */
int metrics_render(const struct metrics *m, FILE *out) __attribute__((nonnull));

#endif
