/* bundle: the mistakes of a CA bundle, certificate by certificate (see
 * bundle.h). */
#include "config.h"

#include "analysis/bundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "wire/x509info.h"

#define DAY_S 86400

/* Two certificates hold the same key when their SubjectPublicKeyInfo bit
 * strings are equal. */
static bool same_key(X509 *a, X509 *b)
{
	const ASN1_BIT_STRING *ka = X509_get0_pubkey_bitstr(a), *kb = X509_get0_pubkey_bitstr(b);

	return ka != NULL && kb != NULL && ASN1_STRING_cmp(ka, kb) == 0;
}

/* The time-dependent problems of a certificate valid from nb to na. */
static unsigned time_problems(bool nb_ok, time_t nb, bool na_ok, time_t na, time_t at, int warn_days)
{
	unsigned p = 0;

	/* valid while notBefore <= at < notAfter, as OpenSSL judges */
	if (na_ok) {
		if (na <= at)
			p |= BUNDLE_EXPIRED;
		else if (warn_days >= 0 && na - at <= (time_t)warn_days * DAY_S)
			p |= BUNDLE_EXPIRING;
	}
	if (nb_ok && nb > at)
		p |= BUNDLE_NOT_YET_VALID;
	return p;
}

static int cmp_time(const void *a, const void *b)
{
	time_t x = *(const time_t *)a, y = *(const time_t *)b;

	return x < y ? -1 : x > y;
}

struct bundle_summary *bundle_summarize(X509 *const *certs, size_t n)
{
	struct bundle_summary *s = calloc(1, sizeof(*s));
	size_t i;

	if (!s)
		return NULL;
	s->n = n;
	s->fixed = calloc(n ? n : 1, sizeof(*s->fixed));
	s->not_before = calloc(n ? n : 1, sizeof(*s->not_before));
	s->not_after = calloc(n ? n : 1, sizeof(*s->not_after));
	s->nb_ok = calloc(n ? n : 1, sizeof(*s->nb_ok));
	s->na_ok = calloc(n ? n : 1, sizeof(*s->na_ok));
	if (!s->fixed || !s->not_before || !s->not_after || !s->nb_ok || !s->na_ok) {
		bundle_summary_free(s);
		return NULL;
	}
	s->edges = calloc(n ? 2 * n : 1, sizeof(*s->edges));
	if (!s->edges) {
		bundle_summary_free(s);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (certs[i] == NULL)
			continue;
		s->fixed[i] = bundle_problems(certs, n, i, 0, -1) & (BUNDLE_LEAF | BUNDLE_ROTATION);
		s->nb_ok[i] = x509info_asn1_time(X509_get0_notBefore(certs[i]), &s->not_before[i]);
		s->na_ok[i] = x509info_asn1_time(X509_get0_notAfter(certs[i]), &s->not_after[i]);
		if (s->nb_ok[i])
			s->edges[s->n_edges++] = s->not_before[i];
		if (s->na_ok[i])
			s->edges[s->n_edges++] = s->not_after[i];
	}
	qsort(s->edges, s->n_edges, sizeof(*s->edges), cmp_time);
	x509info_err_clear();
	return s;
}

size_t bundle_summary_epoch(const struct bundle_summary *s, time_t at)
{
	size_t lo = 0, hi = s->n_edges;

	/* the first edge after `at` */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->edges[mid] <= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void bundle_summary_free(struct bundle_summary *s)
{
	if (!s)
		return;
	free(s->fixed);
	free(s->not_before);
	free(s->not_after);
	free(s->nb_ok);
	free(s->na_ok);
	free(s->edges);
	free(s);
}

unsigned bundle_summary_problems(const struct bundle_summary *s, size_t i, time_t at, int warn_days)
{
	if (i >= s->n)
		return 0;
	return s->fixed[i] | time_problems(s->nb_ok[i], s->not_before[i], s->na_ok[i], s->not_after[i], at, warn_days);
}

unsigned bundle_problems(X509 *const *certs, size_t n, size_t i, time_t at, int warn_days)
{
	X509 *x = certs[i];
	unsigned p = 0;
	time_t nb, na;
	size_t j;

	if (x == NULL)
		return 0;
	/* X509_check_ca: 0 for a certificate that may not issue others (a
	 * v3 certificate without CA:TRUE, or with keyUsage lacking keyCertSign) */
	if (X509_check_ca(x) == 0)
		p |= BUNDLE_LEAF;
	{
		bool na_ok = x509info_asn1_time(X509_get0_notAfter(x), &na);
		bool nb_ok = x509info_asn1_time(X509_get0_notBefore(x), &nb);

		p |= time_problems(nb_ok, nb, na_ok, na, at, warn_days);
	}
	for (j = 0; j < n; j++) {
		if (j == i || certs[j] == NULL)
			continue;
		if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(certs[j])) == 0 &&
		    !same_key(x, certs[j])) {
			p |= BUNDLE_ROTATION;
			break;
		}
	}
	x509info_err_clear();
	return p;
}

unsigned bundle_problems_all(X509 *const *certs, size_t n, time_t at, int warn_days)
{
	unsigned p = 0;
	size_t i;

	for (i = 0; certs != NULL && i < n; i++)
		p |= bundle_problems(certs, n, i, at, warn_days);
	return p;
}

const char *bundle_problem_name(unsigned bit)
{
	switch (bit) {
	case BUNDLE_LEAF: return "leaf";
	case BUNDLE_EXPIRED: return "expired";
	case BUNDLE_NOT_YET_VALID: return "not_yet_valid";
	case BUNDLE_ROTATION: return "rotation";
	case BUNDLE_EXPIRING: return "expiring";
	}
	return "unknown";
}

void bundle_problem_text(X509 *const *certs, size_t n, size_t i, unsigned bit, time_t at,
			 char *out, size_t outlen)
{
	X509 *x = certs[i];
	char who[256], when[32];
	time_t t;
	size_t j, others = 0;

	x509info_name(X509_get_subject_name(x), who, sizeof(who));
	switch (bit) {
	case BUNDLE_LEAF:
		snprintf(out, outlen, "%s is not a CA certificate (a leaf): a server trusts it as a CA only by mistake", who);
		return;
	case BUNDLE_EXPIRED:
	case BUNDLE_EXPIRING:
		if (!x509info_asn1_time(X509_get0_notAfter(x), &t))
			t = 0;
		x509info_time_str(t, when, sizeof(when));
		if (bit == BUNDLE_EXPIRED)
			snprintf(out, outlen, "%s expired %s: no chain through it verifies", who, when);
		else
			snprintf(out, outlen, "%s expires %s, in %lld days", who, when,
				 (long long)((t - at) / DAY_S));
		return;
	case BUNDLE_NOT_YET_VALID:
		if (!x509info_asn1_time(X509_get0_notBefore(x), &t))
			t = 0;
		x509info_time_str(t, when, sizeof(when));
		snprintf(out, outlen, "%s is not valid until %s: no chain through it verifies before then", who, when);
		return;
	case BUNDLE_ROTATION:
		for (j = 0; j < n; j++)
			if (j != i && certs[j] != NULL &&
			    X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(certs[j])) == 0 &&
			    !same_key(x, certs[j]))
				others++;
		snprintf(out, outlen,
			 "%s is in the bundle under %zu other key%s as well: a rotation half done; a chain signed by the other key verifies only where the issuer is told apart by its key identifier",
			 who, others, others == 1 ? "" : "s");
		return;
	}
	snprintf(out, outlen, "%s", who);
}

bool bundle_matches_names(X509 *const *certs, size_t n, X509_NAME *const *names, size_t n_names)
{
	size_t i, j;

	if (n_names == 0 || certs == NULL)
		return true;
	for (i = 0; i < n_names; i++) {
		for (j = 0; j < n; j++)
			if (certs[j] != NULL && names[i] != NULL &&
			    X509_NAME_cmp(names[i], X509_get_subject_name(certs[j])) == 0)
				break;
		if (j == n)
			return false;
	}
	for (j = 0; j < n; j++) {
		if (certs[j] == NULL)
			continue;
		for (i = 0; i < n_names; i++)
			if (names[i] != NULL && X509_NAME_cmp(names[i], X509_get_subject_name(certs[j])) == 0)
				break;
		if (i == n_names)
			return false;
	}
	return true;
}
