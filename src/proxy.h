/* proxy: the relay behind `mtlsdiag proxy` (static mode): accepts TCP
 * connections, connects each to one upstream, copies bytes both ways
 * unchanged and feeds them to an observer (observer.h), one per connection.
 *
 * libevent 2.1: one event base per worker thread, each with its own
 * listener (SO_REUSEPORT when there are several), its own evdns base and
 * its own certificate cache.  No blocking call on a worker's loop. */
#ifndef MTLSDIAG_PROXY_H
#define MTLSDIAG_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct x509_store_st;

struct proxy_config {
	const char *listen;          /* "ADDR:PORT", numeric address ("[::1]:8443") */
	const char *upstream;        /* "HOST:PORT"; HOST a name or a numeric address */
	unsigned workers;            /* event loops (threads); 0: 1 */
	unsigned connect_timeout_s;  /* resolve + connect to the upstream; 0: 10 */
	unsigned idle_timeout_s;     /* no byte either way; 0: 300 */
	unsigned drain_timeout_s;    /* after SIGTERM/SIGINT; 0: 10 */
	size_t buffer_limit;         /* bytes queued towards one side before the other
				      * side stops being read; 0: 256 KiB */
	FILE *log;                   /* human lines (required) */
	FILE *json;                  /* JSON Lines, or NULL */
	bool at_set;                 /* observer options, as for `mtlsdiag pcap` */
	time_t at;
	struct x509_store_st *ca_bundle;
};

/* Splits "HOST:PORT" or "[V6]:PORT".  1 on success (port 1-65535, host not
 * empty and, unbracketed, free of ':'), 0 otherwise. */
int proxy_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
	__attribute__((nonnull, warn_unused_result));

/* Binds, then relays until SIGTERM or SIGINT; then stops accepting and
 * returns once the open connections have ended (or the drain deadline has
 * passed, closing the rest).  Returns the exit status: 0 after a normal
 * stop, 2 when the configuration is unusable (bad address, port in use);
 * the reason is printed on stderr as one line. */
int proxy_run(const struct proxy_config *cfg) __attribute__((nonnull));

#endif
