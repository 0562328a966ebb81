/* evidence: the lines a verdict carries, written by the rules (verdict.c)
 * and the middlebox attribution (attribute.c) alike. */
#ifndef MTLSDIAG_EVIDENCE_H
#define MTLSDIAG_EVIDENCE_H

#include <stddef.h>

#include "analysis/verdict.h"
#include "wire/facts.h"

/* Appends a line unless the list is full or evidence is omitted. */
void verdict_line(struct verdict *v, const char *fmt, ...) __attribute__((nonnull(1, 2), format(printf, 2, 3)));

/* snprintf, written by hand for %s, %d, %u, %zu, %llu and %% (a tenth of
 * its cost; any other conversion goes to vsnprintf): the same bytes, the
 * same cut, the same return. */
int evidence_snprintf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((nonnull(3), format(printf, 3, 4)));

/* A line that must not be lost to a full list: the last line makes room
 * when there is none.  Returns its index. */
size_t verdict_line_kept(struct verdict *v, const char *fmt, ...)
	__attribute__((nonnull(1, 2), format(printf, 2, 3)));

/* The CertificateRequest's CA names as "[CN=a, O=b; CN=c]" (buf, or a
 * constant when there are none). */
const char *verdict_ca_list(const struct conn_facts *f, char *buf, size_t len) __attribute__((nonnull));

#endif
