/* sourcecap: --max-conns-per-source, the connections each client address
 * has open, one table shared by the proxy's workers (under a mutex), and
 * the connections refused past the limit, counted per address and
 * reported at most once every SOURCECAP_REPORT_S seconds each: the first
 * refusal at once, the ones after it together. */
#ifndef MTLSDIAG_SOURCECAP_H
#define MTLSDIAG_SOURCECAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "wire/facts.h"

#define SOURCECAP_REPORT_S 10

struct sourcecap;

/* What to say about one address's refusals. */
struct sourcecap_report {
	char ip[sizeof(((struct endpoint *)0)->ip)];
	uint64_t refused;            /* since the address's last report */
	unsigned open;               /* its connections open now */
	struct timeval first, last;  /* the first and the last refusal counted */
};

/* At most `limit` connections open per address (limit >= 1); NULL out of
 * memory. */
struct sourcecap *sourcecap_new(unsigned limit) __attribute__((warn_unused_result));
void sourcecap_free(struct sourcecap *sc);

/* A connection from ip at `now`: true when it may open (it is counted
 * until sourcecap_release), false when refused (past the limit, or out of
 * memory).  A refusal to report now fills *report, with report->refused
 * > 0 (else 0). */
bool sourcecap_take(struct sourcecap *sc, const char *ip, const struct timeval *now,
		    struct sourcecap_report *report) __attribute__((nonnull, warn_unused_result));

/* A connection sourcecap_take let open has closed. */
void sourcecap_release(struct sourcecap *sc, const char *ip) __attribute__((nonnull));

/* Up to `max` reports of refusals that waited for their turn (all of them
 * with `all`, at the stop), into out; how many.  Addresses with nothing
 * open or to report are forgotten. */
size_t sourcecap_due(struct sourcecap *sc, const struct timeval *now, bool all, struct sourcecap_report *out,
		     size_t max) __attribute__((nonnull));

#endif
