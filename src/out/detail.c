/* detail: the evidence and remedies below a human line (detail.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "analysis/remedy.h"
#include "out/detail.h"

static void add(char *buf, size_t len, const char *prefix, const char *text)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, "\n  %s%s", prefix, text);
}

void detail_append(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v)
{
	char remedies[REMEDY_MAX][REMEDY_LEN];
	size_t i, n;

	for (i = 0; i < v->n_evidence; i++)
		add(buf, len, "- ", v->evidence[i]);
	n = remedy_lines(f, v, remedies, REMEDY_MAX);
	for (i = 0; i < n; i++)
		add(buf, len, "remedy: ", remedies[i]);
}
