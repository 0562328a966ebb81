/* detail: what -v (--verbose) writes under a connection's human line:
 * the facts behind its verdict, one a line, and what to change. */
#ifndef MTLSDIAG_OUT_DETAIL_H
#define MTLSDIAG_OUT_DETAIL_H

#include <stddef.h>

#include "analysis/verdict.h"
#include "wire/facts.h"

/* Room enough for a human line and its detail. */
#define DETAIL_MAX (FACTS_MAX_EVIDENCE * (VERDICT_EVIDENCE_LEN + 8) + 4 * 520 + 4096)

/* Appends to the text in buf (NUL-terminated, within len) a line for each
 * piece of evidence ("\n  - FACT") and each remedy ("\n  remedy: WHAT"),
 * no newline after the last. */
void detail_append(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v)
	__attribute__((nonnull));

#endif
