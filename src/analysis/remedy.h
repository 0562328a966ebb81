/* remedy: what to change so that the next connection succeeds, chosen by
 * the verdict, its reason and the server's kind from one table
 * (remedy.c), the only place remedies are written.  Pure: the reporters
 * ask for the lines of a decided verdict. */
#ifndef MTLSDIAG_REMEDY_H
#define MTLSDIAG_REMEDY_H

#include <stddef.h>

#include "analysis/verdict.h"
#include "wire/facts.h"

#define REMEDY_MAX 4
#define REMEDY_LEN 512

/* The verdict's remedies, most useful first, into lines (up to max).
 * Returns how many; 0 for a verdict that needs none. */
size_t remedy_lines(const struct conn_facts *f, const struct verdict *v, char (*lines)[REMEDY_LEN], size_t max)
	__attribute__((nonnull));

#endif
