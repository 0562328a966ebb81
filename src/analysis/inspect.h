/* inspect: the catalogue of TLS-inspection CAs (web gateways, secure web
 * gateways, antivirus web shields, debugging proxies) and the matching of
 * certificate names against it.
 *
 * A catalogue is loaded from plain-text files (conf/inspection-cas.conf is
 * bundled; users add their own with --inspection-cas).  One rule a line:
 *
 *     STRENGTH NAME CONDITION [CONDITION...]
 *
 *   STRENGTH   strong (a vendor's or tool's own CA name) or weak (a name
 *              that only looks like an inspection CA);
 *   NAME       the rule's name in evidence: letters, digits, . _ - + (1-63);
 *   CONDITION  ATTR[|ATTR...]~PATTERN: some value of one of these name
 *              attributes (CN, O, OU, or any short name OpenSSL knows)
 *              matches PATTERN, a case-insensitive fnmatch(3) glob
 *              (* ? [...], \ escapes).  A pattern with blanks is written in
 *              double quotes ("\"" and "\\" inside).  A rule matches a name
 *              when all its conditions do.
 *
 * '#' starts a comment (outside quotes); blank lines are ignored.  A name
 * is checked against every rule; the strongest match wins, the earliest
 * rule among equals. */
#ifndef MTLSDIAG_INSPECT_H
#define MTLSDIAG_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "wire/facts.h"

#define INSPECT_MAX_CONDS 8
#define INSPECT_MAX_ATTRS 6
#define INSPECT_MAX_LINE 4096
#define INSPECT_MAX_RULES 10000

enum inspect_strength { INSPECT_NONE = 0, INSPECT_WEAK = 1, INSPECT_STRONG = 2 };

struct inspect_cond {
	int nids[INSPECT_MAX_ATTRS];     /* the attributes (OpenSSL NIDs) */
	size_t n_nids;
	char *pattern;                   /* the glob, unquoted */
};

struct inspect_rule {
	char name[64];
	enum inspect_strength strength;
	const char *file;                /* the file (or origin) it was read from */
	unsigned line;
	struct inspect_cond conds[INSPECT_MAX_CONDS];
	size_t n_conds;
};

struct inspect_catalogue;

/* Which name of a certificate matched. */
enum inspect_where { INSPECT_ISSUER, INSPECT_SUBJECT };

struct inspect_match {
	const struct inspect_rule *rule;  /* NULL: no match */
	enum inspect_where where;
	size_t cert_index;               /* position in the chain (0: leaf) */
	char name[256];                  /* the matched name, "CN=..., O=..." */
};

struct inspect_catalogue *inspect_new(void) __attribute__((warn_unused_result));
void inspect_free(struct inspect_catalogue *cat);

/* Adds the rules of a file.  1 on success; 0 with one line in err
 * ("FILE:LINE: what is wrong", or "FILE: cannot read: ..."), the rules
 * read before the error then stay out. */
int inspect_load_file(struct inspect_catalogue *cat, const char *path, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));

/* The same from memory; `origin` names it in rules and errors. */
int inspect_load_buffer(struct inspect_catalogue *cat, const char *origin, const uint8_t *data,
			size_t len, char *err, size_t errlen)
	__attribute__((nonnull(1, 2, 5), warn_unused_result));

size_t inspect_count(const struct inspect_catalogue *cat);
const struct inspect_rule *inspect_rule_at(const struct inspect_catalogue *cat, size_t i);

/* The strongest rule matching one name; NULL when none does. */
const struct inspect_rule *inspect_match_name(const struct inspect_catalogue *cat,
					      const X509_NAME *name);

/* The same on a name as x509info_name formats it ("CN=a\, b, O=c"). */
const struct inspect_rule *inspect_match_dn(const struct inspect_catalogue *cat, const char *dn);

/* A certificate: its issuer, and its subject when it is itself a CA
 * (a chain may carry the inspection CA).  false when nothing matched. */
bool inspect_match_cert(const struct inspect_catalogue *cat, X509 *x, size_t index,
			struct inspect_match *out) __attribute__((nonnull(1, 2, 4)));

/* The same on the summaries the observer keeps (struct cert_info). */
bool inspect_match_info(const struct inspect_catalogue *cat, const struct cert_info *ci,
			size_t index, struct inspect_match *out) __attribute__((nonnull(1, 2, 4)));

/* Every certificate of a chain; the strongest match, the one nearest the
 * leaf among equals. */
bool inspect_match_chain(const struct inspect_catalogue *cat, const struct cert_chain *chain,
			 struct inspect_match *out) __attribute__((nonnull));

/* "issued by O=mitmproxy, CN=mitmproxy: rule 'mitmproxy' (strong) in
 * conf/inspection-cas.conf:12" (or "chain carries ..." for a subject). */
void inspect_describe(const struct inspect_match *m, char *buf, size_t len) __attribute__((nonnull));

const char *inspect_strength_name(enum inspect_strength s);  /* "strong", "weak", "none" */

#endif
