/* ticket_redact: --redact-hosts, one placeholder per address or name,
 * the same in every file of the folder (see doc/evidence.md).
 *
 * Addresses become documentation addresses (RFC 5737's 192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24; RFC 3849's 2001:db8::/32); names become
 * "hostN" padded to their own length, so that rewriting the bytes of a
 * capture or a certificate keeps every length field right. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out/ticket_int.h"

static struct tk_host *find(const struct tk_redact *r, const char *s)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->h[i].orig, s) == 0)
			return &r->h[i];
	return NULL;
}

/* A name's placeholder: "host3" then '-' and 'x' to the original's length
 * (shorter names: "h3", then as many characters as fit). */
static void name_placeholder(unsigned n, size_t len, char *out)
{
	char base[24];
	size_t i, b;

	snprintf(base, sizeof(base), len >= 8 ? "host%u-" : "h%u", n);
	b = strlen(base);
	for (i = 0; i < len; i++)
		out[i] = i < b ? base[i] : 'x';
	out[len] = '\0';
}

static void add(struct tk_redact *r, const char *s)
{
	struct tk_host h = { 0 };
	char ph[300];

	if (!s || !s[0] || find(r, s))
		return;
	if (inet_pton(AF_INET, s, h.bin) == 1) {
		unsigned k = r->n_v4++;
		static const char *const nets[] = { "192.0.2.", "198.51.100.", "203.0.113." };

		h.binlen = 4;
		if (k < 3 * 254)
			snprintf(ph, sizeof(ph), "%s%u", nets[k / 254], k % 254 + 1);
		else
			snprintf(ph, sizeof(ph), "10.255.%u.%u", (k / 254) % 256, k % 254 + 1);
		if (inet_pton(AF_INET, ph, h.phbin) != 1)
			return;
	} else if (inet_pton(AF_INET6, s, h.bin) == 1) {
		h.binlen = 16;
		snprintf(ph, sizeof(ph), "2001:db8::%x", ++r->n_v6);
		if (inet_pton(AF_INET6, ph, h.phbin) != 1)
			return;
	} else {
		size_t len = strlen(s);

		if (len >= sizeof(ph))
			return;
		name_placeholder(++r->n_names, len, ph);
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct tk_host *grown = realloc(r->h, cap * sizeof(*grown));

		if (!grown)
			return;
		r->h = grown;
		r->cap = cap;
	}
	h.orig = strdup(s);
	h.ph = strdup(ph);
	if (!h.orig || !h.ph) {
		free(h.orig);
		free(h.ph);
		return;
	}
	r->h[r->n++] = h;
}

/* "host:port" or "[v6]:port": the host. */
static void add_hostport(struct tk_redact *r, const char *hp)
{
	char host[300];
	const char *colon;

	if (hp[0] == '[') {
		const char *end = strchr(hp, ']');

		if (!end || (size_t)(end - hp - 1) >= sizeof(host))
			return;
		snprintf(host, sizeof(host), "%.*s", (int)(end - hp - 1), hp + 1);
	} else {
		colon = strrchr(hp, ':');
		snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - hp) : (int)strlen(hp), hp);
	}
	add(r, host);
}

void tk_redact_learn(struct tk_redact *r, const struct conn_facts *f, const struct verdict *v)
{
	add(r, f->client.ip);
	add(r, f->server.ip);
	add(r, f->ch.sni);
	if (f->connect_target[0])
		add_hostport(r, f->connect_target);
	if (v->partner.set) {
		add(r, v->partner.client.ip);
		add(r, v->partner.server.ip);
		add(r, v->partner.sni);
	}
}

const char *tk_redact_one(const struct tk_redact *r, const char *s)
{
	const struct tk_host *h = find(r, s);

	return h ? h->ph : s;
}

/* Longest first, so that a name inside a longer one is not cut apart. */
static size_t longest_at(const struct tk_redact *r, const char *s, size_t left, const struct tk_host **hit)
{
	size_t best = 0;

	*hit = NULL;
	for (size_t i = 0; i < r->n; i++) {
		size_t len = strlen(r->h[i].orig);

		if (len > best && len <= left && memcmp(s, r->h[i].orig, len) == 0) {
			best = len;
			*hit = &r->h[i];
		}
	}
	return best;
}

char *tk_redact_text(const struct tk_redact *r, const char *s, size_t len, size_t *outlen)
{
	char *out;
	FILE *m;
	size_t i = 0, n = 0;

	if (!(m = open_memstream(&out, &n)))
		return NULL;
	while (i < len) {
		const struct tk_host *h;
		size_t k = r->n ? longest_at(r, s + i, len - i, &h) : 0;

		if (k) {
			fputs(h->ph, m);
			i += k;
		} else {
			fputc(s[i++], m);
		}
	}
	if (fclose(m) != 0)
		return NULL;
	*outlen = n;
	return out;
}

void tk_redact_bytes(const struct tk_redact *r, uint8_t *p, size_t n)
{
	for (size_t k = 0; k < r->n; k++) {
		const struct tk_host *h = &r->h[k];
		size_t tl = strlen(h->orig), pl = strlen(h->ph);

		for (size_t i = 0; i < n; i++) {
			if (tl == pl && i + tl <= n && memcmp(p + i, h->orig, tl) == 0)
				memcpy(p + i, h->ph, tl);
			else if (h->binlen && i + h->binlen <= n && memcmp(p + i, h->bin, h->binlen) == 0)
				memcpy(p + i, h->phbin, h->binlen);
		}
	}
}

void tk_redact_free(struct tk_redact *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->h[i].orig);
		free(r->h[i].ph);
	}
	free(r->h);
	memset(r, 0, sizeof(*r));
}
