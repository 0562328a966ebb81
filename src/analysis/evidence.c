/* evidence: writing a verdict's evidence lines (evidence.h). */
#include "config.h"

#include "analysis/evidence.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A line being written, cut where vsnprintf would cut it. */
struct line_out {
	char *buf;
	size_t len, cap;   /* cap: the room, the NUL's included (at least 1) */
	size_t want;       /* the whole line's length, as snprintf returns it */
};

static void line_put(struct line_out *o, const char *p, size_t n)
{
	o->want += n;
	if (n > o->cap - 1 - o->len)
		n = o->cap - 1 - o->len;
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void line_unsigned(struct line_out *o, unsigned long long u, bool negative)
{
	char digits[24];
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (negative)
		digits[--i] = '-';
	line_put(o, digits + i, sizeof(digits) - i);
}

/* Whether every conversion in fmt is one line_format writes itself: %s,
 * %d, %u, %zu, %llu, %% (no flag, width or precision). */
static bool plain_conversions(const char *fmt)
{
	for (const char *p = strchr(fmt, '%'); p; p = strchr(p, '%')) {
		p++;
		if (*p == 'z' || (p[0] == 'l' && p[1] == 'l'))
			p += *p == 'z' ? 1 : 2;
		if (*p != 's' && *p != 'd' && *p != 'u' && *p != '%')
			return false;
		if (*p != 'u' && p[-1] != '%')
			return false;   /* %zs, %lld, ... */
		p++;
	}
	return true;
}

/* The conversions plain_conversions allows, as vsnprintf writes them
 * (a null string as "(null)", as glibc does): a tenth of its cost. */
static void line_format(struct line_out *o, const char *fmt, va_list ap)
{
	const char *p = fmt, *pct;

	while ((pct = strchr(p, '%')) != NULL) {
		line_put(o, p, (size_t)(pct - p));
		p = pct + 1;
		switch (*p) {
		case '%':
			line_put(o, "%", 1);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);

			if (!s)
				s = "(null)";
			line_put(o, s, strlen(s));
			break;
		}
		case 'd': {
			int d = va_arg(ap, int);

			line_unsigned(o, d < 0 ? 0ULL - (unsigned long long)d : (unsigned long long)d, d < 0);
			break;
		}
		case 'u':
			line_unsigned(o, va_arg(ap, unsigned), false);
			break;
		case 'z':
			p++;
			line_unsigned(o, va_arg(ap, size_t), false);
			break;
		case 'l':
			p += 2;
			line_unsigned(o, va_arg(ap, unsigned long long), false);
			break;
		}
		p++;
	}
	line_put(o, p, strlen(p));
	o->buf[o->len] = '\0';
}

/* vsnprintf, by hand for the conversions plain_conversions allows. */
static int text_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct line_out o = { buf, 0, len, 0 };

	if (len == 0 || !plain_conversions(fmt))
		return vsnprintf(buf, len, fmt, ap);
	line_format(&o, fmt, ap);
	return o.want > INT_MAX ? -1 : (int)o.want;
}

int evidence_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = text_vformat(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* An evidence line. */
static void line_vformat(char line[VERDICT_EVIDENCE_LEN], const char *fmt, va_list ap)
{
	(void)text_vformat(line, VERDICT_EVIDENCE_LEN, fmt, ap);
}

void verdict_line(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	if (v->evidence_omitted || v->n_evidence >= FACTS_MAX_EVIDENCE)
		return;
	va_start(ap, fmt);
	line_vformat(v->evidence[v->n_evidence++], fmt, ap);
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
	line_vformat(v->evidence[i], fmt, ap);
	va_end(ap);
	return i;
}

/* Joins the CertificateRequest's CA names as "[CN=a, O=b; CN=c]". */
const char *verdict_ca_list(const struct conn_facts *f, char *buf, size_t len)
{
	size_t i, used = 0;

	if (f->cr.n_ca_names == 0)
		return "[] (the server named no CAs)";
	used += (size_t)evidence_snprintf(buf, len, "[");
	for (i = 0; i < f->cr.n_ca_names && used < len; i++)
		used += (size_t)evidence_snprintf(buf + used, len - used, "%s%s", i ? "; " : "", f->cr.ca_names[i]);
	if (f->cr.n_ca_names_on_wire > f->cr.n_ca_names && used < len)
		used += (size_t)evidence_snprintf(buf + used, len - used, "; +%zu more",
					          f->cr.n_ca_names_on_wire - f->cr.n_ca_names);
	if (used < len)
		evidence_snprintf(buf + used, len - used, "]");
	return buf;
}
