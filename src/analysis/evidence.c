/* evidence: writing a verdict's evidence lines (evidence.h). */
#include "config.h"

#include "analysis/evidence.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void verdict_line(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	if (v->evidence_omitted || v->n_evidence >= FACTS_MAX_EVIDENCE)
		return;
	if (!strchr(fmt, '%')) {
		/* a constant line: copied, not formatted */
		size_t n = strlen(fmt);

		if (n >= VERDICT_EVIDENCE_LEN)
			n = VERDICT_EVIDENCE_LEN - 1;
		memcpy(v->evidence[v->n_evidence], fmt, n);
		v->evidence[v->n_evidence++][n] = '\0';
		return;
	}
	va_start(ap, fmt);
	vsnprintf(v->evidence[v->n_evidence++], VERDICT_EVIDENCE_LEN, fmt, ap);
	va_end(ap);
}

/* A line that must not be lost to a full evidence list: the last line
 * makes room when there is none.  Returns its index. */
size_t verdict_line_kept(struct verdict *v, const char *fmt, ...)
{
	va_list ap;
	size_t i = v->n_evidence < FACTS_MAX_EVIDENCE ? v->n_evidence++ : FACTS_MAX_EVIDENCE - 1;

	if ((int)i == v->keylog_evidence)
		v->keylog_evidence = -1;
	va_start(ap, fmt);
	vsnprintf(v->evidence[i], VERDICT_EVIDENCE_LEN, fmt, ap);
	va_end(ap);
	return i;
}

/* Joins the CertificateRequest's CA names as "[CN=a, O=b; CN=c]". */
const char *verdict_ca_list(const struct conn_facts *f, char *buf, size_t len)
{
	size_t i, used = 0;

	if (f->cr.n_ca_names == 0)
		return "[] (the server named no CAs)";
	used += (size_t)snprintf(buf, len, "[");
	for (i = 0; i < f->cr.n_ca_names && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "; " : "", f->cr.ca_names[i]);
	if (f->cr.n_ca_names_on_wire > f->cr.n_ca_names && used < len)
		used += (size_t)snprintf(buf + used, len - used, "; +%zu more",
					 f->cr.n_ca_names_on_wire - f->cr.n_ca_names);
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}
