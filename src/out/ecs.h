/* ecs: the records with Elastic Common Schema field names (--json-format
 * ecs), for Filebeat, Logstash or Vector to ship unchanged into pipelines
 * that already speak ECS.  What ECS names (@timestamp, event.*, source.*,
 * destination.*, network.*, tls.*) is filled from the same structs the
 * default record is made from; the default record itself follows whole
 * under "mtlsdiag" (the verdict, the evidence, the chain checks: what ECS
 * has no field for).  doc/ecs.md is the mapping. */
#ifndef MTLSDIAG_OUT_ECS_H
#define MTLSDIAG_OUT_ECS_H

#include <stdbool.h>
#include <sys/time.h>

#include "analysis/verdict.h"
#include "out/json.h"
#include "wire/facts.h"

/* The ECS version the field names follow. */
#define ECS_VERSION "8.11.0"

/* Begins a connection record in an empty builder: the ECS fields, then
 * "mtlsdiag" opened with the default record's members in it (summary as
 * report_json_members takes it).  A front end adds its own members (the
 * proxy's "relayed", "mode") into that object, then calls ecs_end. */
void ecs_connection_begin(struct json *j, const struct conn_facts *f, const struct verdict *v, const char *summary)
	__attribute__((nonnull(1, 2, 3)));

/* Begins any other record ("summary", "upstream_error"): @timestamp (ts),
 * ecs.version, event.kind and event.dataset "mtlsdiag.TYPE", then
 * "mtlsdiag" opened for the record's own members (its "type" among them). */
void ecs_record_begin(struct json *j, const char *type, const struct timeval *ts) __attribute__((nonnull));

/* Closes "mtlsdiag" and the record. */
void ecs_end(struct json *j) __attribute__((nonnull));

/* A record in the form --json-format asks for (ecs, or the default):
 * with f and v a connection record, its members written (summary as
 * report_json_members takes it); else a record of `type` with only its
 * "type" and "schema" (ts: its time, for ECS).  The front end adds its own
 * members, then closes it with ecs_record_close. */
void ecs_record_open(struct json *j, bool ecs, const char *type, const struct timeval *ts,
		     const struct conn_facts *f, const struct verdict *v, const char *summary)
	__attribute__((nonnull(1, 3, 4)));
void ecs_record_close(struct json *j, bool ecs) __attribute__((nonnull));

#endif
