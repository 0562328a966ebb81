/* fuzzutil: what the observer-level fuzz targets share. */
#ifndef MTLSDIAG_FUZZUTIL_H
#define MTLSDIAG_FUZZUTIL_H

#include <stdio.h>

#include "analysis/observer.h"
#include "out/report.h"

/* Decides c and prints its verdict both ways, the human line and the JSON
 * record (to /dev/null, opened once), so the reporters see every verdict the
 * fuzzer reaches. */
static inline void fuzz_finish_and_report(struct obs_conn *c, const struct timeval *ts)
{
	static FILE *devnull;
	static struct json scratch;   /* kept: one builder for every input */
	char line[2048];
	const struct verdict *v = obs_conn_finish(c, false, ts);

	report_line(line, sizeof(line), obs_conn_facts(c), v);
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (devnull)
		(void)report_json(&scratch, devnull, obs_conn_facts(c), v, NULL);
}

#endif
