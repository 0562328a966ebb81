/* pipeline: runs a capture file through the whole analyser in-process
 * (capture -> observer -> verdict) and collects each connection's result,
 * for the end-to-end suites. */
#ifndef MTLSDIAG_TEST_PIPELINE_H
#define MTLSDIAG_TEST_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "wire/capture.h"
#include "wire/facts.h"
#include "analysis/verdict.h"

struct obs_conn;

/* facts and verdict point into the connection's observer, which lives until
 * pipeline_free. */
struct pipeline_conn {
	struct obs_conn *obs;
	const struct conn_facts *facts;
	const struct verdict *verdict;
};

struct pipeline_result {
	struct pipeline_conn *conns;
	size_t n;
	struct capture_stats stats;
	int status;          /* capture_read_file's return */
	struct cert_cache *certs;
	char err[256];
};

/* at: 0 to judge validity at the capture's own time. */
void pipeline_run(const char *path, time_t at, struct pipeline_result *out);
/* The same, decrypting with a key log (NULL: none). */
struct keylog;
void pipeline_run_keylog(const char *path, time_t at, struct keylog *keylog, struct pipeline_result *out);
/* As pipeline_run, deciding as a front end that only counts verdicts
 * (observer_config.no_evidence). */
void pipeline_run_counting(const char *path, struct pipeline_result *out);
void pipeline_free(struct pipeline_result *r);

#endif
