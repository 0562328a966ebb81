/* Middlebox attribution on real captures: curl through mitmproxy (a
 * TLS-terminating explicit proxy) in front of nginx with
 * ssl_verify_client on (tests/data/mitm, made by
 * scripts/make-mitm-captures), read by the built `mtlsdiag pcap`. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"
#include "testutil.h"

#define D "tests/data/mitm/"

static const char *const names[] = {
	"mitm_cert_tls12", "mitm_nocert_tls12", "mitm_cert_tls13", "mitm_nocert_tls13",
	"corp_cert_tls12", "corp_nocert_tls12", "corp_cert_tls13", "corp_nocert_tls13",
	"mitm_nocert_mixed",   /* TLS 1.2 legs with different cipher suites */
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

struct run {
	int status;
	char out[1 << 18];
	char err[1 << 14];
	char rec[8][1 << 15];   /* the "connection" records of out */
	size_t n_rec;
};

static struct run r;

/* out: DIR/STEM-XXXXXX for mkstemp or mkdtemp, DIR being $TMPDIR or /tmp. */
static void tmp_template(char *out, size_t outlen, const char *stem)
{
	const char *tmp = getenv("TMPDIR");

	test_fmtn(out, outlen, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", stem);
}

/* A scratch directory of the test's own, so that runs at the same time do
 * not meet; scratch_file names a file in it; scratch_done removes them. */
static char scratch[1024];

static void scratch_make(void)
{
	tmp_template(scratch, sizeof(scratch), "mtlsdiag-mb");
	cr_assert_not_null(mkdtemp(scratch), "mkdtemp %s", scratch);
}

static const char *scratch_file(const char *name)
{
	static char path[4][1200];
	static unsigned next;
	char *out = path[next++ % 4];

	test_fmtn(out, sizeof(path[0]), "%s/%s", scratch, name);
	return out;
}

static void scratch_done(const char *const files[], size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		unlink(scratch_file(files[i]));
	rmdir(scratch);
}

/* `mtlsdiag pcap --json - ARGS` from the source tree: stdout's connection
 * records split into r.rec, stderr in r.err. */
static void pcap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void pcap(const char *fmt, ...)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	char args[2048], cmd[6144], outp[1024], errp[1024];
	int fo, fe, st;
	va_list ap;
	FILE *f;
	size_t n;
	char *line, *save = NULL;

	cr_assert(bin && *bin, "MTLSDIAG_BIN is not set");
	tmp_template(outp, sizeof(outp), "mtlsdiag-mb-out");
	tmp_template(errp, sizeof(errp), "mtlsdiag-mb-err");
	fo = mkstemp(outp);
	fe = mkstemp(errp);
	cr_assert(fo >= 0 && fe >= 0);
	close(fo);
	close(fe);
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "cd '%s' && timeout 60 '%s' pcap --json - %s >'%s' 2>'%s'", test_path(""), bin, args,
		 outp, errp);
	st = system(cmd);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	f = fopen(outp, "r");
	n = f ? fread(r.out, 1, sizeof(r.out) - 1, f) : 0;
	r.out[n] = '\0';
	if (f)
		fclose(f);
	f = fopen(errp, "r");
	n = f ? fread(r.err, 1, sizeof(r.err) - 1, f) : 0;
	r.err[n] = '\0';
	if (f)
		fclose(f);
	unlink(outp);
	unlink(errp);
	/* under the sanitizer build the program's own reports land here */
	cr_assert(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error:"), "%s", r.err);
	r.n_rec = 0;
	{
		static char copy[1 << 18];

		memcpy(copy, r.out, sizeof(copy));
		for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "{\"type\":\"connection\"", 20) != 0 || r.n_rec >= 8)
				continue;
			snprintf(r.rec[r.n_rec++], sizeof(r.rec[0]), "%s", line);
		}
	}
}

/* The record of the client's leg (it starts with a CONNECT) or the
 * gateway's leg to nginx. */
static const char *leg(bool client)
{
	size_t i;

	for (i = 0; i < r.n_rec; i++) {
		bool is_client = strcmp(e2e_member(r.rec[i], "connect_target"), "null") != 0;

		if (is_client == client)
			return r.rec[i];
	}
	cr_assert_fail("no %s leg in: %s %s", client ? "client" : "server", r.out, r.err);
	return NULL;
}

static bool evidence_has(const char *rec, const char *needle)
{
	const char *ev = strstr(rec, "\"evidence\":[");
	const char *end = ev ? strstr(ev, "],\"summary\"") : NULL;
	const char *hit = ev ? strstr(ev, needle) : NULL;

	return hit && hit < end;
}

/* The partner object, "(absent)" or "null" when there is none. */
static const char *partner(const char *rec)
{
	const char *p = strstr(rec, "\"partner\":");

	cr_assert_not_null(p, "%s", rec);
	return p;
}

static bool tls13(const char *name)
{
	return strstr(name, "tls13") != NULL;
}

/* ---- both legs in one capture ---- */

static void assert_paired(const char *name)
{
	const char *c = leg(true), *s = leg(false);

	cr_assert_eq(r.status, 0, "%s: exit %d: %s", name, r.status, r.err);
	cr_assert_eq(r.n_rec, 2, "%s: %s", name, r.out);
	cr_assert_str_eq(e2e_member(c, "verdict"), "cert_not_requested", "%s: %s", name, c);
	cr_assert_str_eq(e2e_member(c, "reason"), "not_requested_upstream", "%s: %s", name, c);
	cr_assert_str_eq(e2e_member(c, "fault"), "middlebox", "%s: %s", name, c);
	cr_assert_str_eq(e2e_member(s, "verdict"), "client_sent_no_cert", "%s: %s", name, s);
	cr_assert_str_eq(e2e_member(s, "reason"), "not_requested_upstream", "%s: %s", name, s);
	cr_assert_str_eq(e2e_member(s, "fault"), "middlebox", "%s: %s", name, s);
	/* each names the other */
	cr_assert_str_eq(e2e_member(partner(c), "leg"), "server", "%s: %s", name, c);
	/* the client's partner is the leg to nginx, whatever its port */
	cr_assert_str_eq(e2e_member(strstr(partner(c), "\"server\":"), "port"), e2e_member(strstr(s, "\"server\":"), "port"),
			 "%s: %s", name, c);
	cr_assert_str_eq(e2e_member(partner(c), "verdict"), "client_sent_no_cert");
	cr_assert_str_eq(e2e_member(partner(s), "leg"), "client", "%s: %s", name, s);
	cr_assert_str_eq(e2e_member(strstr(partner(s), "\"client\":"), "port"), e2e_member(strstr(c, "\"client\":"), "port"));
	cr_assert_str_eq(e2e_member(partner(s), "verdict"), "cert_not_requested");
	cr_assert(evidence_has(c, "paired with the gateway's leg to the server"), "%s", c);
	cr_assert(evidence_has(s, "paired with the client's leg") &&
		  evidence_has(s, "this empty Certificate is the gateway's, not the client's"), "%s", s);
	/* the human line leads with the pairing */
	cr_assert(strstr(e2e_member(s, "summary"), "(fault: middlebox;") &&
		  strstr(e2e_member(s, "summary"), "paired with the client's leg"), "%s", s);
}

Test(middlebox, both_legs_together_are_both_middlebox_and_name_each_other)
{
	size_t i;

	for (i = 0; i < N_NAMES; i++) {
		pcap(D "%s.both.pcap", names[i]);
		assert_paired(names[i]);
		/* TLS 1.2: the CA names nginx asked the gateway for, for the client team */
		if (!tls13(names[i]))
			cr_assert(evidence_has(leg(true), "from CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"), "%s", leg(true));
	}
}

Test(middlebox, both_legs_with_the_key_logs_also_show_the_gateway_chain)
{
	size_t i;

	for (i = 0; i < N_NAMES; i++) {
		if (!tls13(names[i]))
			continue;
		pcap("--keylog " D "%s.client.keylog --keylog " D "%s.mitm.keylog " D "%s.both.pcap", names[i], names[i],
		     names[i]);
		assert_paired(names[i]);
		cr_assert_str_eq(e2e_member(leg(true), "basis"), "decrypted");
		cr_assert(evidence_has(leg(true), "the server chains differ"), "%s", leg(true));
		cr_assert(evidence_has(leg(true), "from CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"), "%s", leg(true));
	}
}

Test(middlebox, legs_in_different_sessions_say_so)
{
	pcap(D "mitm_nocert_mixed.both.pcap");
	assert_paired("mitm_nocert_mixed");
	/* mitmproxy was told AES-128-GCM to the client, AES-256-GCM to nginx */
	cr_assert(evidence_has(leg(true), "the legs negotiated different sessions (TLS1.2 cipher 0xc02f here, TLS1.2 cipher 0xc030 to the server): two TLS sessions, terminated in between"),
		  "%s", leg(true));
	cr_assert(evidence_has(leg(false), "the legs negotiated different sessions (TLS1.2 cipher 0xc02f to the client, TLS1.2 cipher 0xc030 here)"),
		  "%s", leg(false));
	/* the same suites on both legs: nothing said */
	pcap(D "mitm_nocert_tls12.both.pcap");
	cr_assert(!strstr(r.out, "different sessions"), "%s", r.out);
}

Test(middlebox, two_taps_merged_with_mergecap_pair_the_same)
{
	static const char *const files[] = { "merged.pcap" };
	char cmd[4096];
	size_t i;

	if (system("command -v mergecap >/dev/null 2>&1") != 0)
		cr_skip_test("mergecap (wireshark-common) is not installed");
	scratch_make();
	for (i = 0; i < N_NAMES; i++) {
		snprintf(cmd, sizeof(cmd), "cd '%s' && mergecap -F pcap -w '%s' " D "%s.client.pcap " D "%s.server.pcap",
			 test_path(""), scratch_file("merged.pcap"), names[i], names[i]);
		cr_assert_eq(system(cmd), 0);
		pcap("'%s'", scratch_file("merged.pcap"));
		assert_paired(names[i]);
	}
	scratch_done(files, 1);
}

/* ---- the client's leg alone ---- */

Test(middlebox, client_leg_alone_with_mitmproxys_ca_is_middlebox)
{
	static const char *const cases[] = { "mitm_cert_tls12", "mitm_nocert_tls12", "mitm_cert_tls13", "mitm_nocert_tls13" };
	size_t i;

	for (i = 0; i < 4; i++) {
		const char *c;

		if (tls13(cases[i]))
			pcap("--keylog " D "%s.client.keylog " D "%s.client.pcap", cases[i], cases[i]);
		else
			pcap(D "%s.client.pcap", cases[i]);
		cr_assert_eq(r.n_rec, 1, "%s", r.out);
		c = r.rec[0];
		cr_assert_str_eq(e2e_member(c, "verdict"), "cert_not_requested", "%s", c);
		cr_assert_str_eq(e2e_member(c, "reason"), "not_requested_upstream", "%s", c);
		cr_assert_str_eq(e2e_member(c, "fault"), "middlebox", "%s", c);
		cr_assert(evidence_has(c, "the client was never asked for a certificate: TLS was terminated by O=mitmproxy, CN=mitmproxy (rule 'mitmproxy' (strong) in "),
			  "%s", c);
		cr_assert(evidence_has(c, "conf/inspection-cas.conf:"), "%s", c);
		cr_assert(strstr(partner(c), "\"partner\":null"), "%s", c);
	}
}

Test(middlebox, client_leg_alone_tls13_without_a_key_log_claims_nothing)
{
	pcap(D "mitm_nocert_tls13.client.pcap");
	cr_assert_eq(r.n_rec, 1, "%s", r.out);
	/* the chain is encrypted: nothing says who terminated TLS, so no one
	 * is blamed or cleared, and the check that tells is named */
	cr_assert_str_eq(e2e_member(r.rec[0], "verdict"), "cert_not_requested");
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "unknown", "%s", r.rec[0]);
	cr_assert_str_eq(e2e_member(r.rec[0], "basis"), "inferred");
	{
		char said[512];

		/* the CONNECT target as the client sent it (the lab's nginx-on) */
		snprintf(said, sizeof(said), "through an explicit proxy (CONNECT %s) the server chain is encrypted",
			 e2e_member(r.rec[0], "connect_target"));
		cr_assert(evidence_has(r.rec[0], said), "%s", r.rec[0]);
	}
	cr_assert(evidence_has(r.rec[0], "mtlsdiag probe HOST:PORT --via PROXY --compare"), "%s", r.rec[0]);
	cr_assert(!strstr(r.rec[0], "middlebox"), "%s", r.rec[0]);
}

Test(middlebox, look_alike_ca_is_flagged_as_the_weaker_signal)
{
	static const char *const cases[] = { "corp_cert_tls12", "corp_nocert_tls12" };
	size_t i;

	for (i = 0; i < 2; i++) {
		const char *c;

		pcap(D "%s.client.pcap", cases[i]);
		cr_assert_eq(r.n_rec, 1, "%s", r.out);
		c = r.rec[0];
		cr_assert_str_eq(e2e_member(c, "verdict"), "cert_not_requested", "%s", c);
		/* a name is not proof: no middlebox fault, no reason, said as possible */
		cr_assert_str_eq(e2e_member(c, "fault"), "unknown", "%s", c);
		cr_assert_str_eq(e2e_member(c, "reason"), "null", "%s", c);
		cr_assert(evidence_has(c, "possibly a TLS-inspecting gateway: the server chain is issued by CN=Example Corp Forward Trust CA, OU=SSL Inspection, O=Example Corp (rule 'inspection' (weak) in "),
			  "%s", c);
		cr_assert(evidence_has(c, "the weaker signal, not proof"), "%s", c);
		cr_assert(strstr(e2e_member(c, "summary"), "possibly a TLS-inspecting gateway"), "%s", c);
	}
}

Test(middlebox, look_alike_ca_with_the_servers_refusal_decrypted_is_middlebox)
{
	static const char *const cases[] = { "corp_nocert_tls12", "corp_cert_tls13" };
	size_t i;

	for (i = 0; i < 2; i++) {
		const char *c;

		pcap("--keylog " D "%s.client.keylog " D "%s.client.pcap", cases[i], cases[i]);
		cr_assert_eq(r.n_rec, 1, "%s", r.out);
		c = r.rec[0];
		cr_assert_str_eq(e2e_member(c, "http_title"), "400 No required SSL certificate was sent", "%s", c);
		cr_assert_str_eq(e2e_member(c, "fault"), "middlebox", "%s", c);
		cr_assert_str_eq(e2e_member(c, "reason"), "not_requested_upstream", "%s", c);
		cr_assert(evidence_has(c, "yet the answer is the server's \\\"No required SSL certificate was sent\\\""), "%s", c);
		cr_assert(evidence_has(c, "the name alone is the weaker signal"), "%s", c);
	}
}

/* ---- the gateway's leg alone ---- */

Test(middlebox, server_leg_alone_claims_no_certainty_it_lacks)
{
	size_t i;

	for (i = 0; i < N_NAMES; i++) {
		const char *s;

		pcap(D "%s.server.pcap", names[i]);
		cr_assert_eq(r.n_rec, 1, "%s", r.out);
		s = r.rec[0];
		/* an empty Certificate answered by nginx is all this tap shows */
		cr_assert_str_eq(e2e_member(s, "verdict"), "client_sent_no_cert", "%s: %s", names[i], s);
		cr_assert_str_eq(e2e_member(s, "fault"), "client", "%s: %s", names[i], s);
		cr_assert_str_eq(e2e_member(s, "reason"), "null", "%s", s);
		cr_assert(!strstr(s, "middlebox"), "%s", s);
		cr_assert(strstr(partner(s), "\"partner\":null"), "%s", s);
		/* what the client was asked for, so the right certificate gets installed */
		if (!tls13(names[i]))
			cr_assert(evidence_has(s, "the server asked for a client certificate from CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"), "%s", s);
	}
	pcap("--keylog " D "mitm_nocert_tls13.mitm.keylog " D "mitm_nocert_tls13.server.pcap");
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "client", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "from CAs [CN=Lab Client Root CA, O=mtlsdiag Lab] (decrypted)"), "%s", r.rec[0]);
}

/* ---- the expected server chain ---- */

Test(middlebox, expect_server_ca_mismatch_is_middlebox_and_names_both)
{
	/* the look-alike CA alone is weak; the wrong chain is not */
	pcap("--expect-server-ca " D "server-root.pem " D "corp_nocert_tls12.client.pcap");
	cr_assert_eq(r.n_rec, 1, "%s %s", r.out, r.err);
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "middlebox", "%s", r.rec[0]);
	cr_assert_str_eq(e2e_member(r.rec[0], "reason"), "not_requested_upstream", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "the server chain is not the real server's: issued by CN=Example Corp Forward Trust CA, OU=SSL Inspection, O=Example Corp, expected a chain from CN=Lab Server Root CA, O=mtlsdiag Lab (--expect-server-ca " D "server-root.pem)"),
		  "%s", r.rec[0]);
	pcap("--expect-server-ca " D "server-root.pem --keylog " D "mitm_cert_tls13.client.keylog " D "mitm_cert_tls13.client.pcap");
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "middlebox", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "the server chain is not the real server's: issued by O=mitmproxy, CN=mitmproxy, expected a chain from CN=Lab Server Root CA"), "%s", r.rec[0]);
}

Test(middlebox, expect_server_ca_match_is_no_middlebox)
{
	pcap("--expect-server-ca " D "server-root.pem " D "mitm_nocert_tls12.server.pcap");
	cr_assert_eq(r.n_rec, 1, "%s %s", r.out, r.err);
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "client", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "the server chain matches what the real server uses: its leaf comes from CN=Lab Server Root CA, O=mtlsdiag Lab"),
		  "%s", r.rec[0]);
	/* the catalogue's mitmproxy rule would match; the expected CA says otherwise */
	pcap("--expect-server-ca " D "mitm.ca.pem " D "mitm_nocert_tls12.client.pcap");
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "none", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "the server chain matches what the real server uses"), "%s", r.rec[0]);
}

/* SHA-256 of a certificate's SubjectPublicKeyInfo, by the openssl tool. */
static const char *spki_of(const char *pem)
{
	static char hex[80];
	char cmd[1024];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl x509 -in %s -noout -pubkey | openssl pkey -pubin -outform der | sha256sum",
		 test_path(""), pem);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert(fgets(hex, sizeof(hex), p));
	pclose(p);
	hex[64] = '\0';
	return hex;
}

Test(middlebox, expect_server_spki_match_and_mismatch)
{
	const char *pin = spki_of("tests/data/lab/pki/server.pem");

	pcap("--expect-server-spki %s " D "mitm_nocert_tls12.server.pcap", pin);
	cr_assert_eq(r.n_rec, 1, "%s %s", r.out, r.err);
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "client", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "has the pinned key"), "%s", r.rec[0]);
	pcap("--expect-server-spki %s " D "mitm_nocert_tls12.client.pcap", pin);
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "middlebox", "%s", r.rec[0]);
	cr_assert(evidence_has(r.rec[0], "issued by O=mitmproxy, CN=mitmproxy, expected a key "), "%s", r.rec[0]);
	/* the same key pin written with colons, upper case */
	{
		char colons[200];
		size_t i, n = 0;

		for (i = 0; i < 64; i += 2)
			n += (size_t)snprintf(colons + n, sizeof(colons) - n, "%s%c%c", i ? ":" : "", pin[i] - (pin[i] >= 'a' ? 32 : 0),
					      pin[i + 1] - (pin[i + 1] >= 'a' ? 32 : 0));
		pcap("--expect-server-spki %s " D "mitm_nocert_tls12.server.pcap", colons);
		cr_assert(evidence_has(r.rec[0], "has the pinned key"), "%s %s", r.rec[0], r.err);
	}
}

Test(middlebox, bad_expectations_are_one_line_and_status_2)
{
	pcap("--expect-server-ca /nonexistent/ca.pem " D "mitm_nocert_tls12.both.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --expect-server-ca /nonexistent/ca.pem: cannot read: No such file or directory\n");
	cr_assert_str_eq(r.out, "");
	pcap("--expect-server-ca " D "truth.tsv " D "mitm_nocert_tls12.both.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --expect-server-ca " D "truth.tsv: no PEM certificate in it\n");
	pcap("--expect-server-spki 12ab " D "mitm_nocert_tls12.both.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert(strncmp(r.err, "mtlsdiag pcap: --expect-server-spki '12ab' is not a SHA-256 in hex", 66) == 0, "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err), "one line: %s", r.err);
	pcap("--expect-server-spki %.63sz " D "mitm_nocert_tls12.both.pcap",
	     "0000000000000000000000000000000000000000000000000000000000000000");
	cr_assert_eq(r.status, 2, "%s", r.err);
	pcap("--inspection-cas /nonexistent.conf " D "mitm_nocert_tls12.both.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "mtlsdiag pcap: --inspection-cas /nonexistent.conf: cannot read"), "%s", r.err);
}

Test(middlebox, own_catalogue_rule_makes_the_look_alike_strong)
{
	static const char *const files[] = { "cas.conf" };
	char conf[1200], said[1400];
	FILE *f;

	scratch_make();
	test_fmt(conf, "%s", scratch_file("cas.conf"));
	f = fopen(conf, "w");
	cr_assert_not_null(f);
	fprintf(f, "# our own gateway\nstrong example-corp O~\"Example Corp\" OU~\"SSL Inspection\"\n");
	fclose(f);
	pcap("--inspection-cas '%s' " D "corp_nocert_tls12.client.pcap", conf);
	cr_assert_str_eq(e2e_member(r.rec[0], "fault"), "middlebox", "%s %s", r.rec[0], r.err);
	test_fmt(said, "(rule 'example-corp' (strong) in %s:2)", conf);
	cr_assert(evidence_has(r.rec[0], said), "%s", r.rec[0]);
	scratch_done(files, 1);
}

/* ---- no pairing where there is no gateway ---- */

static long long seconds_of_day(const char *rfc3339)
{
	int h = 0, m = 0, sec = 0;

	cr_assert_eq(sscanf(rfc3339, "%*10[0-9-]T%d:%d:%d", &h, &m, &sec), 3, "%s", rfc3339);
	return h * 3600LL + m * 60LL + sec;
}

Test(middlebox, direct_connections_are_not_paired)
{
	static const char *const files[] = { "off.pcap", "direct.pcap" };
	char cmd[4096];
	long long t0, t1;

	if (system("command -v mergecap >/dev/null 2>&1 && command -v editcap >/dev/null 2>&1 && "
		   "command -v capinfos >/dev/null 2>&1") != 0)
		cr_skip_test("mergecap, editcap and capinfos (wireshark-common) are not installed");
	/* nginx-off never asks, nginx-on asks and gets nothing: the same SNI
	 * on another port is another service, even at the same moment (the
	 * nginx-off capture, taken some seconds later, is moved onto the
	 * other: by the difference of their start times, which changes each
	 * time the lab is recorded) */
	scratch_make();
	snprintf(cmd, sizeof(cmd), "cd '%s' && on=tests/data/lab/captures/nginx-on_none_tls12.pcap && "
		 "off=tests/data/lab/captures/nginx-off_good_tls12.pcap && "
		 "shift=$(capinfos -T -r -a -S \"$on\" \"$off\" | awk -F'\\t' 'NR == 1 { a = $2 } NR == 2 { b = $2 } "
		 "END { printf \"%%.6f\", a - b }') && editcap -t \"$shift\" \"$off\" '%s' && "
		 "mergecap -F pcap -w '%s' '%s' \"$on\"",
		 test_path(""), scratch_file("off.pcap"), scratch_file("direct.pcap"), scratch_file("off.pcap"));
	cr_assert_eq(system(cmd), 0);
	pcap("'%s'", scratch_file("direct.pcap"));
	cr_assert_eq(r.n_rec, 2, "%s", r.out);
	t0 = seconds_of_day(e2e_member(r.rec[0], "ts"));
	t1 = seconds_of_day(e2e_member(r.rec[1], "ts"));
	cr_assert(t0 - t1 < 2 && t1 - t0 < 2, "the two connections should overlap: %s %s", e2e_member(r.rec[0], "ts"), e2e_member(r.rec[1], "ts"));
	cr_assert(strstr(r.out, "cert_not_requested") && strstr(r.out, "client_sent_no_cert"), "%s", r.out);
	cr_assert(!strstr(r.out, "middlebox"), "%s", r.out);
	cr_assert(strstr(r.rec[0], "\"partner\":null") && strstr(r.rec[1], "\"partner\":null"));
	scratch_done(files, 2);
}
