/* metrics_http: --metrics ADDR:PORT, the metrics (out/metrics.h) served
 * over HTTP by libevent's evhttp on a front end's event base: GET or HEAD
 * /metrics answers in Prometheus's text format, any other path 404. */
#ifndef MTLSDIAG_METRICS_HTTP_H
#define MTLSDIAG_METRICS_HTTP_H

#include <stddef.h>

struct event_base;
struct metrics;
struct metrics_http;

/* Binds addr ("127.0.0.1:9464", "[::1]:9464": numeric, as --listen) and
 * serves m on base.  NULL with the reason in err ("address in use"). */
struct metrics_http *metrics_http_start(struct event_base *base, const char *addr, const struct metrics *m,
					char *err, size_t errlen) __attribute__((nonnull, warn_unused_result));
/* Closes the listener and any scrape in progress. */
void metrics_http_free(struct metrics_http *h);

#endif
