/* report: prints verdicts: the one-line human form and JSON Lines
 * (doc/verdicts.md).  A reporter never parses and never decides. */
#ifndef MTLSDIAG_REPORT_H
#define MTLSDIAG_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "analysis/codes.h"
#include "analysis/remedy.h"
#include "wire/facts.h"
#include "analysis/verdict.h"
#include "out/json.h"

/* The human line without its newline:
 * "2026-11-23T12:14:02.120Z 10.0.1.45:53122 -> api.internal:443 TLS1.3 client did not send cert (fault: client; observed) ..." */
void report_line(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v);

/* A connection's remedies (remedy_lines), worked out once for its line
 * and its record. */
struct report_remedies {
	size_t n;
	char lines[REMEDY_MAX][REMEDY_LEN];
};

void report_remedies(struct report_remedies *r, const struct conn_facts *f, const struct verdict *v)
	__attribute__((nonnull));
/* report_line with the remedies already worked out. */
void report_line_remedied(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v,
			  const struct report_remedies *r) __attribute__((nonnull));

/* The record format's version, in every JSON record ("schema"): members
 * are added, never renamed, within one version. */
#define REPORT_SCHEMA 1

/* The two members every record begins with: its "type" and "schema". */
void report_json_kind(struct json *j, const char *type);

/* The members of a "type": "connection" record, into an open object (a
 * front end adds its own members after them).  `summary` is the record's
 * human line when the caller has already made it (report_line), else NULL. */
void report_json_members(struct json *j, const struct conn_facts *f, const struct verdict *v,
			 const char *summary);
/* The whole record as one line, built in `scratch` (emptied first: one
 * builder serves every record of a run): 0, or -1 with errno
 * (json_write_line). */
int report_json(struct json *scratch, FILE *out, const struct conn_facts *f, const struct verdict *v,
		const char *summary);
/* report_json with the remedies already worked out (report_remedies). */
int report_json_remedied(struct json *scratch, FILE *out, const struct conn_facts *f, const struct verdict *v,
			 const char *summary, const struct report_remedies *r);

/* Per-verdict tallies for the closing summary. */
struct report_tally {
	uint64_t connections;
	uint64_t by_verdict[V_COUNT];
};

void report_tally_add(struct report_tally *t, const struct verdict *v);
void report_summary_text(FILE *out, const struct report_tally *t);
/* The members of a {"type":"summary"} record, into an open object. */
void report_summary_members(struct json *j, const struct report_tally *t);

/* "host:port", or "[v6]:port" for an IPv6 address. */
void report_endpoint(char *buf, size_t len, const char *host, uint16_t port);

/* Formats seconds+microseconds as RFC 3339 UTC with milliseconds ("...Z"). */
void report_time(char *buf, size_t len, const struct timeval *tv, int digits);

#endif
