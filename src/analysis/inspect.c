/* inspect: the inspection-CA catalogue (see inspect.h).  The files are
 * untrusted input: they are read through the cursor, line by line, and
 * every error names the file, the line and what is wrong. */
#include "config.h"

#include "analysis/inspect.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "wire/cursor.h"
#include "wire/x509info.h"


#define INSPECT_FILE_MAX (4u << 20)

struct inspect_catalogue {
	struct inspect_rule *rules;
	size_t n, cap;
	char **origins;          /* the file names rules point to */
	size_t n_origins;
};

struct inspect_catalogue *inspect_new(void)
{
	return calloc(1, sizeof(struct inspect_catalogue));
}

static void rule_clear(struct inspect_rule *r)
{
	size_t i;

	for (i = 0; i < r->n_conds; i++)
		free(r->conds[i].pattern);
	r->n_conds = 0;
}

void inspect_free(struct inspect_catalogue *cat)
{
	size_t i;

	if (!cat)
		return;
	for (i = 0; i < cat->n; i++)
		rule_clear(&cat->rules[i]);
	for (i = 0; i < cat->n_origins; i++)
		free(cat->origins[i]);
	free(cat->rules);
	free(cat->origins);
	free(cat);
}

size_t inspect_count(const struct inspect_catalogue *cat)
{
	return cat ? cat->n : 0;
}

const struct inspect_rule *inspect_rule_at(const struct inspect_catalogue *cat, size_t i)
{
	return cat && i < cat->n ? &cat->rules[i] : NULL;
}

const char *inspect_strength_name(enum inspect_strength s)
{
	return s == INSPECT_STRONG ? "strong" : s == INSPECT_WEAK ? "weak" : "none";
}

/* ---- parsing ---- */

static int is_blank(uint8_t b)
{
	return b == ' ' || b == '\t' || b == '\r';
}

static void skip_blanks(struct cursor *c)
{
	uint8_t b;

	while (cursor_peek_u8(c, 0, &b) && is_blank(b))
		if (!cursor_skip(c, 1))
			return;
}

/* What the printable form of an offending token is, for errors. */
static void shown(const struct cursor *tok, char *out, size_t outlen)
{
	size_t i, o = 0;
	uint8_t b;

	for (i = 0; o + 5 < outlen && i < 40 && cursor_peek_u8(tok, i, &b); i++) {
		if (b >= 0x20 && b < 0x7f) {
			out[o++] = (char)b;
		} else {
			snprintf(out + o, outlen - o, "\\x%02x", b);
			o += 4;
		}
	}
	if (cursor_len(tok) > 40 && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* The next whitespace-delimited word (not quoted). */
static int take_word(struct cursor *line, struct cursor *word)
{
	size_t n = 0;
	uint8_t b;

	skip_blanks(line);
	while (cursor_peek_u8(line, n, &b) && !is_blank(b))
		n++;
	return n > 0 && cursor_get_bytes(line, word, n);
}

/* A pattern: a bare word up to the next blank, or "quoted" with \" and
 * \\ inside.  Written unquoted into out (NUL-terminated).  0 with a reason. */
static int take_pattern(struct cursor *line, char *out, size_t outlen, const char **why)
{
	size_t o = 0;
	uint8_t b;

	if (!cursor_peek_u8(line, 0, &b) || is_blank(b)) {
		*why = "empty pattern after '~'";
		return 0;
	}
	if (b != '"') {
		while (cursor_peek_u8(line, 0, &b) && !is_blank(b)) {
			if (o + 1 >= outlen || !cursor_skip(line, 1)) {
				*why = "pattern too long";
				return 0;
			}
			out[o++] = (char)b;
		}
		out[o] = '\0';
		return 1;
	}
	if (!cursor_skip(line, 1))
		return 0;
	for (;;) {
		if (!cursor_get_u8(line, &b)) {
			*why = "unterminated quote in pattern";
			return 0;
		}
		if (b == '"')
			break;
		if (b == '\\') {
			uint8_t next;

			if (!cursor_peek_u8(line, 0, &next)) {
				*why = "unterminated quote in pattern";
				return 0;
			}
			/* \" and \\ are the quote's own escapes; any other
			 * backslash stays for fnmatch */
			if (next == '"' || next == '\\') {
				if (!cursor_skip(line, 1))
					return 0;
				if (next == '\\') {
					if (o + 2 >= outlen) {
						*why = "pattern too long";
						return 0;
					}
					out[o++] = '\\';
				}
				b = next;
			}
		}
		if (o + 1 >= outlen) {
			*why = "pattern too long";
			return 0;
		}
		out[o++] = (char)b;
	}
	if (cursor_peek_u8(line, 0, &b) && !is_blank(b)) {
		*why = "text right after a closing quote";
		return 0;
	}
	out[o] = '\0';
	if (o == 0) {
		*why = "empty pattern after '~'";
		return 0;
	}
	return 1;
}

/* "CN|O|OU" into NIDs. */
static int parse_attrs(struct cursor attrs, struct inspect_cond *cond, char *bad, size_t badlen)
{
	cond->n_nids = 0;
	for (;;) {
		struct cursor one;
		char name[32];
		size_t at;
		int nid;

		if (!cursor_find(&attrs, "|", 1, &at))
			at = cursor_len(&attrs);
		if (!cursor_get_bytes(&attrs, &one, at))
			return 0;
		if (cursor_len(&one) == 0 || cursor_len(&one) >= sizeof(name)) {
			shown(&one, bad, badlen);
			return 0;
		}
		memset(name, 0, sizeof(name));
		if (!cursor_copy_bytes(&one, (uint8_t *)name, at) || strlen(name) != at) {
			snprintf(bad, badlen, "(attribute with a NUL byte)");
			return 0;
		}
		nid = OBJ_sn2nid(name);
		if (nid == NID_undef)
			nid = OBJ_ln2nid(name);
		x509info_err_clear();
		if (nid == NID_undef || cond->n_nids >= INSPECT_MAX_ATTRS) {
			snprintf(bad, badlen, "%s", name);
			return 0;
		}
		cond->nids[cond->n_nids++] = nid;
		if (cursor_len(&attrs) == 0)
			return 1;
		if (!cursor_skip(&attrs, 1))
			return 0;
		if (cursor_len(&attrs) == 0) {
			snprintf(bad, badlen, "%s|", name);
			return 0;
		}
	}
}

static int name_ok(const struct cursor *w)
{
	size_t i;
	uint8_t b;

	if (cursor_len(w) == 0 || cursor_len(w) > 63)
		return 0;
	for (i = 0; cursor_peek_u8(w, i, &b); i++)
		if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
		      b == '.' || b == '_' || b == '-' || b == '+'))
			return 0;
	return 1;
}

/* One line without its newline, comments included.  1: a rule in *r (or
 * nothing, *r->n_conds == 0 and r->strength NONE); 0: an error in err. */
static int parse_line(struct cursor line, struct inspect_rule *r, char *err, size_t errlen)
{
	struct cursor word;
	char bad[200], pattern[INSPECT_MAX_LINE];
	const char *why = NULL;
	uint8_t b;

	memset(r, 0, sizeof(*r));
	skip_blanks(&line);
	if (!cursor_peek_u8(&line, 0, &b) || b == '#')
		return 1;
	if (!take_word(&line, &word))
		return 1;
	if (cursor_len(&word) == 6 && cursor_starts_with(&word, "strong", 6, 1)) {
		r->strength = INSPECT_STRONG;
	} else if (cursor_len(&word) == 4 && cursor_starts_with(&word, "weak", 4, 1)) {
		r->strength = INSPECT_WEAK;
	} else {
		shown(&word, bad, sizeof(bad));
		snprintf(err, errlen, "unknown strength '%s' (expected strong or weak)", bad);
		return 0;
	}
	if (!take_word(&line, &word)) {
		snprintf(err, errlen, "rule without a name (expected STRENGTH NAME ATTR~PATTERN...)");
		return 0;
	}
	if (!name_ok(&word)) {
		shown(&word, bad, sizeof(bad));
		snprintf(err, errlen, "bad rule name '%s' (letters, digits, . _ - +; at most 63)", bad);
		return 0;
	}
	memset(r->name, 0, sizeof(r->name));
	if (!cursor_copy_bytes(&word, (uint8_t *)r->name, cursor_len(&word)))
		return 0;
	for (;;) {
		struct cursor look, attrs;
		size_t n = 0, tilde;
		struct inspect_cond *cond;

		skip_blanks(&line);
		if (!cursor_peek_u8(&line, 0, &b) || b == '#')
			break;
		/* ATTRS up to '~' (no blank inside) */
		look = line;
		while (cursor_peek_u8(&look, n, &b) && !is_blank(b) && b != '~')
			n++;
		if (!cursor_peek_u8(&look, n, &b) || b != '~') {
			struct cursor tok;

			if (!take_word(&look, &tok))
				tok = look;
			shown(&tok, bad, sizeof(bad));
			snprintf(err, errlen, "condition '%s' has no '~' (expected ATTR~PATTERN, e.g. CN~\"Example*\")", bad);
			goto Fail;
		}
		tilde = n;
		if (r->n_conds >= INSPECT_MAX_CONDS) {
			snprintf(err, errlen, "more than %d conditions in rule '%s'", INSPECT_MAX_CONDS, r->name);
			goto Fail;
		}
		if (!cursor_get_bytes(&line, &attrs, tilde) || !cursor_skip(&line, 1))
			goto Fail;
		cond = &r->conds[r->n_conds];
		if (tilde == 0) {
			snprintf(err, errlen, "condition without an attribute before '~' (CN, O, OU...)");
			goto Fail;
		}
		if (!parse_attrs(attrs, cond, bad, sizeof(bad))) {
			snprintf(err, errlen, "unknown attribute '%s' (CN, O, OU, C, L, ST, DC or another short name; '|' between several)", bad);
			goto Fail;
		}
		if (!take_pattern(&line, pattern, sizeof(pattern), &why)) {
			snprintf(err, errlen, "%s", why ? why : "bad pattern");
			goto Fail;
		}
		cond->pattern = strdup(pattern);
		if (!cond->pattern) {
			snprintf(err, errlen, "out of memory");
			goto Fail;
		}
		r->n_conds++;
	}
	if (r->n_conds == 0) {
		snprintf(err, errlen, "rule '%s' has no condition (expected ATTR~PATTERN)", r->name);
		return 0;
	}
	return 1;
Fail:
	rule_clear(r);
	return 0;
}

static const char *intern_origin(struct inspect_catalogue *cat, const char *origin)
{
	char **grown, *copy;
	size_t i;

	for (i = 0; i < cat->n_origins; i++)
		if (strcmp(cat->origins[i], origin) == 0)
			return cat->origins[i];
	copy = strdup(origin);
	grown = copy ? realloc(cat->origins, (cat->n_origins + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(copy);
		return NULL;
	}
	cat->origins = grown;
	cat->origins[cat->n_origins++] = copy;
	return copy;
}

int inspect_load_buffer(struct inspect_catalogue *cat, const char *origin, const uint8_t *data,
			size_t len, char *err, size_t errlen)
{
	struct cursor in;
	size_t first = cat->n;
	unsigned lineno = 0;
	const char *file = intern_origin(cat, origin);
	char why[512];

	if (!file) {
		snprintf(err, errlen, "%s: out of memory", origin);
		return 0;
	}
	cursor_init(&in, data, data ? len : 0);
	while (cursor_len(&in) > 0) {
		struct cursor line;
		struct inspect_rule r;
		size_t at;

		lineno++;
		if (!cursor_find(&in, "\n", 1, &at))
			at = cursor_len(&in);
		if (at > INSPECT_MAX_LINE) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", origin, lineno, INSPECT_MAX_LINE);
			goto Fail;
		}
		if (!cursor_get_bytes(&in, &line, at))
			goto Fail;
		if (cursor_len(&in) > 0 && !cursor_skip(&in, 1))
			goto Fail;
		if (cursor_find(&line, "\0", 1, &at)) {
			snprintf(err, errlen, "%s:%u: NUL byte in the line (not a text file?)", origin, lineno);
			goto Fail;
		}
		if (!parse_line(line, &r, why, sizeof(why))) {
			snprintf(err, errlen, "%s:%u: %s", origin, lineno, why);
			goto Fail;
		}
		if (r.n_conds == 0)
			continue;
		if (cat->n >= INSPECT_MAX_RULES) {
			rule_clear(&r);
			snprintf(err, errlen, "%s:%u: more than %d rules", origin, lineno, INSPECT_MAX_RULES);
			goto Fail;
		}
		if (cat->n == cat->cap) {
			size_t cap = cat->cap ? cat->cap * 2 : 64;
			struct inspect_rule *grown = realloc(cat->rules, cap * sizeof(*grown));

			if (!grown) {
				rule_clear(&r);
				snprintf(err, errlen, "%s: out of memory", origin);
				goto Fail;
			}
			cat->rules = grown;
			cat->cap = cap;
		}
		r.file = file;
		r.line = lineno;
		cat->rules[cat->n++] = r;
	}
	return 1;
Fail:
	while (cat->n > first)
		rule_clear(&cat->rules[--cat->n]);
	return 0;
}

int inspect_load_file(struct inspect_catalogue *cat, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int ret = 0;

	if (!f) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return 0;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			uint8_t *grown;

			if (cap >= INSPECT_FILE_MAX) {
				snprintf(err, errlen, "%s: larger than %u bytes: not a catalogue", path, INSPECT_FILE_MAX);
				goto Exit;
			}
			cap = cap ? cap * 2 : 16384;
			if (!(grown = realloc(buf, cap))) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto Exit;
			}
			buf = grown;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
		goto Exit;
	}
	ret = inspect_load_buffer(cat, path, buf, len, err, errlen);
Exit:
	fclose(f);
	free(buf);
	return ret;
}

/* ---- where the bundled catalogue is ---- */

/* ---- matching ---- */

static bool glob(const char *pattern, const char *value)
{
	return fnmatch(pattern, value, FNM_CASEFOLD) == 0;
}

static bool nid_in(const struct inspect_cond *c, int nid)
{
	size_t i;

	for (i = 0; i < c->n_nids; i++)
		if (c->nids[i] == nid)
			return true;
	return false;
}

/* A name as (nid, UTF-8 value) pairs. */
struct name_attrs {
	size_t n;
	int nid[24];
	char value[24][256];
};

static bool rule_matches(const struct inspect_rule *r, const struct name_attrs *a)
{
	size_t i, j;

	for (i = 0; i < r->n_conds; i++) {
		bool hit = false;

		for (j = 0; j < a->n && !hit; j++)
			hit = nid_in(&r->conds[i], a->nid[j]) && glob(r->conds[i].pattern, a->value[j]);
		if (!hit)
			return false;
	}
	return true;
}

static const struct inspect_rule *best_rule(const struct inspect_catalogue *cat, const struct name_attrs *a)
{
	const struct inspect_rule *best = NULL;
	size_t i;

	if (!cat || a->n == 0)
		return NULL;
	for (i = 0; i < cat->n; i++) {
		const struct inspect_rule *r = &cat->rules[i];

		if ((!best || r->strength > best->strength) && rule_matches(r, a)) {
			best = r;
			if (best->strength == INSPECT_STRONG)
				break;
		}
	}
	return best;
}

static void attrs_from_name(const X509_NAME *name, struct name_attrs *a)
{
	int i, count = name ? X509_NAME_entry_count(name) : 0;

	a->n = 0;
	for (i = 0; i < count && a->n < sizeof(a->nid) / sizeof(a->nid[0]); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
		unsigned char *utf8 = NULL;
		int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));

		if (len < 0) {
			x509info_err_clear();
			continue;
		}
		a->nid[a->n] = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		x509info_copy_utf8((const char *)utf8, (size_t)len, a->value[a->n], sizeof(a->value[0]));
		OPENSSL_free(utf8);
		/* a value with a NUL inside is cut at it: the glob sees the text part */
		a->n++;
	}
}

/* "CN=a\, b, O=c + OU=d": RFC 2253 escapes undone, ", " and " + " split. */
static void attrs_from_dn(const char *dn, struct name_attrs *a)
{
	const char *p = dn;

	a->n = 0;
	while (p && *p && a->n < sizeof(a->nid) / sizeof(a->nid[0])) {
		char key[64];
		size_t k = 0, v = 0;
		int nid;

		while (*p == ' ')
			p++;
		while (*p && *p != '=' && k + 1 < sizeof(key))
			key[k++] = *p++;
		key[k] = '\0';
		if (*p != '=')
			return;
		p++;
		while (*p && *p != ',' && *p != '+') {
			if (*p == '\\' && p[1])
				p++;
			if (v + 1 < sizeof(a->value[0]))
				a->value[a->n][v++] = *p;
			p++;
		}
		while (v > 0 && a->value[a->n][v - 1] == ' ')
			v--;
		a->value[a->n][v] = '\0';
		if (*p)
			p++;
		nid = OBJ_sn2nid(key);
		if (nid == NID_undef)
			nid = OBJ_ln2nid(key);
		x509info_err_clear();
		if (nid != NID_undef)
			a->nid[a->n++] = nid;
	}
}

const struct inspect_rule *inspect_match_name(const struct inspect_catalogue *cat, const X509_NAME *name)
{
	struct name_attrs a;

	attrs_from_name(name, &a);
	return best_rule(cat, &a);
}

const struct inspect_rule *inspect_match_dn(const struct inspect_catalogue *cat, const char *dn)
{
	struct name_attrs a;

	attrs_from_dn(dn, &a);
	return best_rule(cat, &a);
}

static bool keep_better(struct inspect_match *out, const struct inspect_rule *r, enum inspect_where where,
			size_t index, const char *name)
{
	if (!r || (out->rule && out->rule->strength >= r->strength))
		return false;
	out->rule = r;
	out->where = where;
	out->cert_index = index;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return true;
}

bool inspect_match_cert(const struct inspect_catalogue *cat, X509 *x, size_t index, struct inspect_match *out)
{
	char text[256];

	memset(out, 0, sizeof(*out));
	x509info_name(X509_get_issuer_name(x), text, sizeof(text));
	keep_better(out, inspect_match_name(cat, X509_get_issuer_name(x)), INSPECT_ISSUER, index, text);
	if (X509_check_ca(x)) {
		x509info_name(X509_get_subject_name(x), text, sizeof(text));
		keep_better(out, inspect_match_name(cat, X509_get_subject_name(x)), INSPECT_SUBJECT, index, text);
	}
	x509info_err_clear();
	return out->rule != NULL;
}

bool inspect_match_info(const struct inspect_catalogue *cat, const struct cert_info *ci, size_t index,
			struct inspect_match *out)
{
	memset(out, 0, sizeof(*out));
	if (ci->parse_failed)
		return false;
	keep_better(out, inspect_match_dn(cat, ci->issuer), INSPECT_ISSUER, index, ci->issuer);
	if (ci->is_ca)
		keep_better(out, inspect_match_dn(cat, ci->subject), INSPECT_SUBJECT, index, ci->subject);
	return out->rule != NULL;
}

bool inspect_match_chain(const struct inspect_catalogue *cat, const struct cert_chain *chain,
			 struct inspect_match *out)
{
	struct inspect_match one;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < chain->n; i++)
		if (inspect_match_info(cat, &chain->certs[i], i, &one) &&
		    (!out->rule || one.rule->strength > out->rule->strength))
			*out = one;
	return out->rule != NULL;
}

void inspect_describe(const struct inspect_match *m, char *buf, size_t len)
{
	if (!m->rule) {
		snprintf(buf, len, "no inspection CA in the catalogue matched");
		return;
	}
	snprintf(buf, len, "%s %s: rule '%s' (%s) in %s:%u",
		 m->where == INSPECT_ISSUER ? "issued by" : "chain carries CA", m->name, m->rule->name,
		 inspect_strength_name(m->rule->strength), m->rule->file, m->rule->line);
}
