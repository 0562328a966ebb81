/* inspect: the inspection-CA catalogue, loaded from the bundled
 * conf/inspection-cas.conf and from files written here, matched against
 * real certificates (tests/data/inspect, made by
 * scripts/make-inspect-fixtures: mitmproxy's own CA and the certificate it
 * forged for a lab server, a corporate-looking gateway CA, a plain CA). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "analysis/inspect.h"
#include "testutil.h"
#include "wire/x509info.h"

static X509 *load_pem(const char *rel)
{
	FILE *f = fopen(test_path(rel), "r");
	X509 *x;

	cr_assert_not_null(f, "cannot open %s", rel);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x, "%s is not a PEM certificate", rel);
	return x;
}

static struct inspect_catalogue *bundled(void)
{
	struct inspect_catalogue *cat = inspect_new();
	char err[512] = "";

	cr_assert_not_null(cat);
	cr_assert(inspect_load_file(cat, test_path("conf/inspection-cas.conf"), err, sizeof(err)),
		  "the bundled catalogue does not load: %s", err);
	return cat;
}

/* The line of the bundled catalogue where rule `name` is defined. */
static unsigned bundled_line(const char *name)
{
	FILE *f = fopen(test_path("conf/inspection-cas.conf"), "r");
	char line[4096], strength[16], got[80];
	unsigned n = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (sscanf(line, "%15s %79s", strength, got) == 2 && strcmp(got, name) == 0) {
			fclose(f);
			return n;
		}
	}
	fclose(f);
	cr_assert_fail("no rule %s in the bundled catalogue", name);
	return 0;
}

static const char *write_tmp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/mtlsdiag-inspect.XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* The one-line error of loading `text`. */
static const char *load_error(const char *text)
{
	static char err[512];
	struct inspect_catalogue *cat = inspect_new();
	int ok = inspect_load_buffer(cat, "user.conf", (const uint8_t *)text, strlen(text), err, sizeof(err));

	cr_assert(!ok, "'%s' loaded without error", text);
	cr_assert_eq(inspect_count(cat), 0, "a failed load keeps no rule");
	cr_assert_null(strchr(err, '\n'), "the error is one line: %s", err);
	inspect_free(cat);
	return err;
}

Test(inspect, bundled_catalogue_loads)
{
	struct inspect_catalogue *cat = bundled();

	cr_assert_geq(inspect_count(cat), 30, "%zu rules", inspect_count(cat));
	inspect_free(cat);
}

Test(inspect, mitmproxy_ca_and_its_forged_leaf_are_strong)
{
	struct inspect_catalogue *cat = bundled();
	X509 *ca = load_pem("tests/data/inspect/mitmproxy-ca.pem");
	X509 *leaf = load_pem("tests/data/inspect/mitmproxy-leaf.pem");
	struct inspect_match m;
	char text[512], want[512];

	cr_assert(inspect_match_cert(cat, leaf, 0, &m));
	cr_assert_str_eq(m.rule->name, "mitmproxy");
	cr_assert_eq(m.rule->strength, INSPECT_STRONG);
	cr_assert_eq(m.where, INSPECT_ISSUER);
	cr_assert_str_eq(m.name, "O=mitmproxy, CN=mitmproxy");  /* x509info_name: most specific first */
	cr_assert_eq(m.rule->line, bundled_line("mitmproxy"));
	inspect_describe(&m, text, sizeof(text));
	snprintf(want, sizeof(want), "issued by O=mitmproxy, CN=mitmproxy: rule 'mitmproxy' (strong) in %s:%u",
		 test_path("conf/inspection-cas.conf"), bundled_line("mitmproxy"));
	cr_assert_str_eq(text, want);

	cr_assert(inspect_match_cert(cat, ca, 1, &m));
	cr_assert_str_eq(m.rule->name, "mitmproxy");
	cr_assert_eq(m.cert_index, 1);
	X509_free(ca);
	X509_free(leaf);
	inspect_free(cat);
}

Test(inspect, corporate_look_alike_is_weak_and_plain_ca_matches_nothing)
{
	struct inspect_catalogue *cat = bundled();
	X509 *corp = load_pem("tests/data/inspect/corp-leaf.pem");
	X509 *plain = load_pem("tests/data/inspect/plain-leaf.pem");
	X509 *plain_ca = load_pem("tests/data/inspect/plain-ca.pem");
	struct inspect_match m;

	cr_assert(inspect_match_cert(cat, corp, 0, &m));
	cr_assert_eq(m.rule->strength, INSPECT_WEAK);
	/* OU=SSL Inspection and "Forward Trust" both look alike: the earlier rule names it */
	cr_assert_str_eq(m.rule->name, "inspection");
	cr_assert_str_eq(m.name, "CN=Example Corp Forward Trust CA, OU=SSL Inspection, O=Example Corp");
	cr_assert_not(inspect_match_cert(cat, plain, 0, &m));
	cr_assert_null(m.rule);
	cr_assert_not(inspect_match_cert(cat, plain_ca, 0, &m));
	X509_free(corp);
	X509_free(plain);
	X509_free(plain_ca);
	inspect_free(cat);
}

Test(inspect, summaries_match_like_certificates)
{
	static const char *const files[] = {
		"mitmproxy-ca", "mitmproxy-leaf", "corp-ca", "corp-leaf", "plain-ca", "plain-leaf",
	};
	struct inspect_catalogue *cat = bundled();
	struct cert_info infos[6];
	struct cert_chain chain = { .certs = infos };
	size_t i;

	for (i = 0; i < 6; i++) {
		char rel[128];
		X509 *x;
		struct inspect_match a, b;

		snprintf(rel, sizeof(rel), "tests/data/inspect/%s.pem", files[i]);
		x = load_pem(rel);
		x509info_summarize(x, &infos[i]);
		inspect_match_cert(cat, x, i, &a);
		inspect_match_info(cat, &infos[i], i, &b);
		cr_assert_eq(a.rule, b.rule, "%s: the X509 and its summary match differently", files[i]);
		cr_assert_eq(a.where, b.where);
		cr_assert_str_eq(a.name, b.name);
		X509_free(x);
	}
	{
		struct inspect_match m;

		/* plain leaf, corporate leaf: the weak match at index 1 */
		infos[0] = infos[5];
		infos[1] = infos[3];
		chain.n = 2;
		cr_assert(inspect_match_chain(cat, &chain, &m));
		cr_assert_eq(m.cert_index, 1);
		cr_assert_eq(m.rule->strength, INSPECT_WEAK);
		/* a strong one further up wins over the weak one */
		{
			X509 *ca = load_pem("tests/data/inspect/mitmproxy-ca.pem");

			x509info_summarize(ca, &infos[2]);
			X509_free(ca);
		}
		chain.n = 3;
		cr_assert(inspect_match_chain(cat, &chain, &m));
		cr_assert_eq(m.cert_index, 2);
		cr_assert_str_eq(m.rule->name, "mitmproxy");
		chain.n = 1;
		cr_assert_not(inspect_match_chain(cat, &chain, &m));
	}
	inspect_free(cat);
}

Test(inspect, vendor_names_from_the_catalogue)
{
	static const struct { const char *dn, *rule; enum inspect_strength s; } cases[] = {
		{ "CN=Zscaler Intermediate Root CA (zscalertwo.net) (t), OU=Zscaler Inc., O=Zscaler Inc., ST=California, C=US", "zscaler", INSPECT_STRONG },
		{ "CN=FGT60FTK21000000, OU=Certificate Authority, O=Fortinet, L=Sunnyvale, ST=California, C=US", "fortigate", INSPECT_STRONG },
		{ "CN=ca.acme.goskope.com, OU=abc, O=Netskope Inc, C=US", "netskope", INSPECT_STRONG },
		{ "CN=PortSwigger CA, OU=PortSwigger CA, O=PortSwigger, C=PortSwigger", "burp", INSPECT_STRONG },
		{ "CN=DO_NOT_TRUST_FiddlerRoot, O=DO_NOT_TRUST, OU=Created by http://www.fiddler2.com", "fiddler", INSPECT_STRONG },
		{ "CN=Charles Proxy CA (1 Jan 2026\\, host), OU=https://charlesproxy.com/ssl, O=XK72 Ltd", "charles", INSPECT_STRONG },
		{ "CN=Corp Web Gateway Issuing CA, O=Corp", "web-gateway", INSPECT_WEAK },
		{ "CN=Acme Decryption CA", "decryption", INSPECT_WEAK },
		{ "CN=Let's Encrypt R3, O=Let's Encrypt, C=US", NULL, INSPECT_NONE },
		{ "CN=Fortinet Inc. Server, O=Fortinet Inc.", NULL, INSPECT_NONE },  /* no OU=Certificate Authority */
	};
	struct inspect_catalogue *cat = bundled();
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct inspect_rule *r = inspect_match_dn(cat, cases[i].dn);

		if (!cases[i].rule) {
			cr_assert_null(r, "%s matched %s", cases[i].dn, r ? r->name : "");
			continue;
		}
		cr_assert_not_null(r, "%s matched nothing", cases[i].dn);
		cr_assert_str_eq(r->name, cases[i].rule, "%s", cases[i].dn);
		cr_assert_eq(r->strength, cases[i].s);
	}
	inspect_free(cat);
}

Test(inspect, user_files_add_rules_and_the_strongest_wins)
{
	struct inspect_catalogue *cat = bundled();
	const char *path = write_tmp(
		"# our own gateway\n"
		"\n"
		"weak   corp-root   O~\"example corp\" CN~*Root*   # comment after a rule\n"
		"strong corp-exact  O|OU~\"Example Corp\" CN~\"Example Corp Root CA\"\n"
		"strong quoted      CN~\"a \\\"q\\\" b\"\n");
	X509 *plain = load_pem("tests/data/inspect/plain-leaf.pem");
	struct inspect_match m;
	char err[512];
	size_t before = inspect_count(cat);

	cr_assert(inspect_load_file(cat, path, err, sizeof(err)), "%s", err);
	cr_assert_eq(inspect_count(cat), before + 3);
	cr_assert(inspect_match_cert(cat, plain, 0, &m));
	cr_assert_str_eq(m.rule->name, "corp-exact");
	cr_assert_eq(m.rule->line, 4);
	cr_assert_str_eq(m.rule->file, path);
	cr_assert_str_eq(inspect_match_dn(cat, "CN=a \"q\" b")->name, "quoted");
	cr_assert_str_eq(inspect_rule_at(cat, before)->name, "corp-root");
	cr_assert_eq(inspect_rule_at(cat, before)->line, 3);
	unlink(path);
	X509_free(plain);
	inspect_free(cat);
}

Test(inspect, bad_lines_are_one_line_errors_with_file_and_line)
{
	cr_assert_str_eq(load_error("# ok\nmaybe x CN~a\n"),
			 "user.conf:2: unknown strength 'maybe' (expected strong or weak)");
	cr_assert_str_eq(load_error("strong\n"),
			 "user.conf:1: rule without a name (expected STRENGTH NAME ATTR~PATTERN...)");
	cr_assert_str_eq(load_error("strong bad/name CN~a\n"),
			 "user.conf:1: bad rule name 'bad/name' (letters, digits, . _ - +; at most 63)");
	cr_assert_str_eq(load_error("weak lonely\n"),
			 "user.conf:1: rule 'lonely' has no condition (expected ATTR~PATTERN)");
	cr_assert_str_eq(load_error("weak x CN=foo\n"),
			 "user.conf:1: condition 'CN=foo' has no '~' (expected ATTR~PATTERN, e.g. CN~\"Example*\")");
	cr_assert_str_eq(load_error("weak x XYZZY~foo\n"),
			 "user.conf:1: unknown attribute 'XYZZY' (CN, O, OU, C, L, ST, DC or another short name; '|' between several)");
	cr_assert_str_eq(load_error("weak x CN|~foo\n"),
			 "user.conf:1: unknown attribute 'CN|' (CN, O, OU, C, L, ST, DC or another short name; '|' between several)");
	cr_assert_str_eq(load_error("weak x ~foo\n"),
			 "user.conf:1: condition without an attribute before '~' (CN, O, OU...)");
	cr_assert_str_eq(load_error("weak x CN~\n"), "user.conf:1: empty pattern after '~'");
	cr_assert_str_eq(load_error("weak x CN~\"\"\n"), "user.conf:1: empty pattern after '~'");
	cr_assert_str_eq(load_error("weak x CN~\"open\n"), "user.conf:1: unterminated quote in pattern");
	cr_assert_str_eq(load_error("weak x CN~\"a\"b\n"), "user.conf:1: text right after a closing quote");
	cr_assert_str_eq(load_error("weak x CN~a CN~a CN~a CN~a CN~a CN~a CN~a CN~a CN~a\n"),
			 "user.conf:1: more than 8 conditions in rule 'x'");
	{
		static const uint8_t nul[] = "weak x CN~a\0b\n";
		struct inspect_catalogue *cat = inspect_new();
		char err[256];

		cr_assert_not(inspect_load_buffer(cat, "bin", nul, sizeof(nul) - 1, err, sizeof(err)));
		cr_assert_str_eq(err, "bin:1: NUL byte in the line (not a text file?)");
		inspect_free(cat);
	}
	{
		char *longline = malloc(INSPECT_MAX_LINE + 64);

		memset(longline, 'a', INSPECT_MAX_LINE + 10);
		memcpy(longline, "weak x CN~", 10);
		longline[INSPECT_MAX_LINE + 10] = '\0';
		cr_assert_str_eq(load_error(longline), "user.conf:1: line longer than 4096 bytes");
		free(longline);
	}
}

Test(inspect, unreadable_file_is_an_error)
{
	struct inspect_catalogue *cat = inspect_new();
	char err[512];

	cr_assert_not(inspect_load_file(cat, "/nonexistent/cas.conf", err, sizeof(err)));
	cr_assert_str_eq(err, "/nonexistent/cas.conf: cannot read: No such file or directory");
	cr_assert_not(inspect_load_file(cat, "/", err, sizeof(err)));
	cr_assert(strncmp(err, "/: cannot read: ", 16) == 0, "%s", err);
	inspect_free(cat);
}

Test(inspect, a_failed_file_keeps_the_rules_loaded_before_it)
{
	struct inspect_catalogue *cat = bundled();
	size_t before = inspect_count(cat);
	const char *text = "strong a CN~a\nstrong b CN~b\nbroken\n";
	char err[256];

	cr_assert_not(inspect_load_buffer(cat, "x.conf", (const uint8_t *)text, strlen(text), err, sizeof(err)));
	cr_assert_str_eq(err, "x.conf:3: unknown strength 'broken' (expected strong or weak)");
	cr_assert_eq(inspect_count(cat), before);
	cr_assert_null(inspect_match_dn(cat, "CN=a"));
	inspect_free(cat);
}
