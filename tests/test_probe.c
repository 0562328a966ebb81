/* `mtlsdiag probe` end to end: the built program ($MTLSDIAG_BIN) against
 * real servers started here on free loopback ports: openssl s_server and
 * nginx with the lab PKI asking for a client certificate, the real
 * mitmproxy as an intercepting explicit proxy, and `mtlsdiag proxy
 * --connect` as a proxy that passes TLS through.  What is expected is
 * read from the PKI files with OpenSSL, not written down. */
#include "config.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proxyutil.h"
#include "testutil.h"
#include "x509info.h"

TestSuite(probe, .init = px_setup, .fini = px_teardown);

#define MAX_ARGS 48

/* Runs `mtlsdiag probe ARGS...`; stdout and stderr to files, stdin
 * /dev/null (no terminal).  Returns the exit status. */
static int probe(const char *out, const char *err, ...)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	const char *argv[MAX_ARGS];
	struct e2e_io io = { .in = NULL, .out = out, .err = err };
	size_t n = 0;
	va_list ap;
	char *text;
	int rc;

	cr_assert_not_null(bin, "MTLSDIAG_BIN is not set (run through make check)");
	argv[n++] = bin;
	argv[n++] = "probe";
	va_start(ap, err);
	while (n < MAX_ARGS - 1 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	rc = e2e_run((char *const *)argv, &io, 30000);
	/* under the sanitizer build the probe's own reports land here */
	if (err && (text = e2e_slurp(err))) {
		cr_assert(!strstr(text, "Sanitizer") && !strstr(text, "runtime error:"), "%s", text);
		free(text);
	}
	return rc;
}

static const char *hostport(const char *host, uint16_t port)
{
	static char buf[8][300];
	static int i;
	char *b = buf[i++ % 8];

	snprintf(b, 300, "%s:%u", host, port);
	return b;
}

/* A certificate's subject or issuer as mtlsdiag formats names. */
static const char *cert_name(const char *path, bool issuer)
{
	static char buf[4][256];
	static int i;
	char *b = buf[i++ % 4];
	FILE *f = fopen(path, "r");
	X509 *x;

	cr_assert_not_null(f, "%s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x);
	x509info_name(issuer ? X509_get_issuer_name(x) : X509_get_subject_name(x), b, 256);
	X509_free(x);
	return b;
}

/* The JSON record of line i, and inside it the probe's own object. */
static const char *record(const char *path, size_t i)
{
	static char line[65536];

	cr_assert(e2e_line(path, i, line, sizeof(line)), "no JSON line %zu: %s", i, e2e_tail(path, 600));
	return line;
}

static const char *probe_obj(const char *rec)
{
	const char *p = strstr(rec, "\"probe\":{");

	cr_assert_not_null(p, "no probe object: %s", rec);
	return p;
}

static void assert_one_line(const char *path, const char *want)
{
	char *all = e2e_slurp(path);

	cr_assert_not_null(all);
	cr_assert_eq(e2e_count_lines(path), 1, "expected one line, got: %s", all);
	cr_assert(strstr(all, want), "'%s' not in: %s", want, all);
	cr_assert(strncmp(all, "mtlsdiag probe: ", 16) == 0, "%s", all);
	free(all);
}

/* ---- against openssl s_server ---- */

Test(probe, direct_s_server_asks_with_the_lab_ca_names)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *out = px_tmp("out"), *json = px_tmp("json");
	const char *client_root = cert_name(px_pki("client-root.pem"), false);
	const char *server_issuer = cert_name(px_pki("server.pem"), true);
	size_t i;
	int rc;

	rc = probe(out, px_tmp("err"), "--json", json, hostport("localhost", port), NULL);
	/* no certificate: s_server -verify_return_error refuses the handshake */
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(px_tmp("err"), 400));
	cr_assert_eq(e2e_count_lines(json), 2, "%s", e2e_tail(json, 400));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);
		char ca[300];

		cr_assert_str_eq(e2e_member(rec, "type"), "connection");
		cr_assert_str_eq(e2e_member(rec, "mode"), "probe");
		cr_assert_str_eq(e2e_member(rec, "via"), "null");
		cr_assert_str_eq(e2e_member(rec, "sni"), "localhost");
		cr_assert_str_eq(e2e_member(p, "tls_requested"), i == 0 ? "1.2" : "1.3");
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "true");
		snprintf(ca, sizeof(ca), "\"ca_names\":[\"%s\"]", client_root);
		cr_assert(strstr(p, ca), "%s not in %s", ca, p);
		cr_assert(strstr(p, "\"sigalgs\":[\"") && strstr(p, "rsa_pss_rsae_sha256"), "%s", p);
		cr_assert_str_eq(e2e_member(strstr(p, "\"server_chain\""), "issuer"), server_issuer);
		cr_assert_str_eq(e2e_member(p, "interception"), "null");
		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "false");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
		/* the observer's verdict on the same bytes, as a capture would give */
		cr_assert_str_eq(e2e_member(rec, "verdict"), "client_sent_no_cert", "%s", rec);
		cr_assert_str_eq(e2e_member(rec, "fault"), "client");
	}
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 0)), "alert"), "handshake_failure");
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 1)), "alert"), "certificate_required");
	/* TLS 1.2: the CertificateRequest is plaintext, the observer saw the names too */
	{
		char ca[300];

		snprintf(ca, sizeof(ca), "\"acceptable_cas\":[\"%s\"]", client_root);
		cr_assert(strstr(record(json, 0), ca), "%s", record(json, 0));
	}
	/* the human lines */
	{
		char want[400];

		snprintf(want, sizeof(want), "  acceptable CAs [%s]", client_root);
		cr_assert_not_null(px_find_line(out, want), "%s", e2e_tail(out, 800));
		cr_assert_not_null(px_find_line(out, "TLS1.2 client did not send cert (fault: client; observed)"));
		cr_assert_not_null(px_find_line(out, "probe direct TLS 1.3 (TLS_"));
		cr_assert_not_null(px_find_line(out, "client certificate none: none sent; rejected (alert certificate_required)"));
		snprintf(want, sizeof(want), "issued by %s (sha256 ", server_issuer);
		cr_assert_not_null(px_find_line(out, want));
	}
	px_stop_child(srv);
}

Test(probe, good_certificate_accepted_expired_rejected)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *json = px_tmp("good.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	rc = probe(out, px_tmp("err"), hostport("localhost", port), "--cert", px_pki("good-chain.pem"), "--key",
		   px_pki("good.key"), "--http", "--json", json, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s %s", rc, e2e_tail(out, 600), e2e_tail(px_tmp("err"), 300));
	for (i = 0; i < 2; i++) {
		const char *p = probe_obj(record(json, i));

		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "true");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "accepted");
		cr_assert_str_eq(e2e_member(p, "alert"), "null");
		cr_assert_str_eq(e2e_member(p, "http_status"), "200", "%s", p);
	}
	cr_assert_str_eq(e2e_member(record(json, 0), "verdict"), "client_cert_accepted");
	cr_assert_not_null(px_find_line(out, "client certificate CN=good-client, O=mtlsdiag Lab: sent; accepted"));

	json = px_tmp("expired.json");
	rc = probe(out, px_tmp("err"), hostport("localhost", port), "--cert", px_pki("expired-chain.pem"), "--key",
		   px_pki("expired.key"), "--json", json, NULL);
	cr_assert_eq(rc, 1, "exit %d", rc);
	for (i = 0; i < 2; i++) {
		const char *p = probe_obj(record(json, i));

		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "true");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
		cr_assert_str_eq(e2e_member(p, "alert"), "certificate_expired", "%s", p);
	}
	cr_assert_str_eq(e2e_member(record(json, 0), "verdict"), "server_rejected_chain");
	cr_assert_str_eq(e2e_member(record(json, 0), "reason"), "expired");
	px_stop_child(srv);
}

Test(probe, pkcs12_with_password_from_env_file_and_errors)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *p12 = px_tmp("good.p12"), *passfile = px_tmp("pass.txt"), *out = px_tmp("out"),
		   *err = px_tmp("err");
	char cmd[2048];
	FILE *f;
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "openssl pkcs12 -export -in '%s' -inkey '%s' -certfile '%s' -passout pass:s3cret -out '%s' 2>/dev/null",
		 px_pki("good.pem"), px_pki("good.key"), px_pki("client-inter.pem"), p12);
	cr_assert_eq(system(cmd), 0);
	f = fopen(passfile, "w");
	fputs("s3cret\n", f);
	fclose(f);

	setenv("PROBE_P12_PASS", "s3cret", 1);
	rc = probe(out, err, "--tls", "1.2", "--p12", p12, "--pass", "env:PROBE_P12_PASS", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, e2e_tail(err, 300));
	cr_assert_not_null(px_find_line(out, "client certificate CN=good-client, O=mtlsdiag Lab: sent; accepted"));
	snprintf(cmd, sizeof(cmd), "file:%s", passfile);
	rc = probe(out, err, "--tls", "1.3", "--p12", p12, "--pass", cmd, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, e2e_tail(err, 300));

	rc = probe(out, err, "--p12", p12, "--pass", "pass:wrong", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	snprintf(cmd, sizeof(cmd), "mtlsdiag probe: --p12 %s: wrong password (the MAC does not verify)", p12);
	assert_one_line(err, cmd);
	/* no --pass and no terminal: no prompt, a clear error */
	rc = probe(out, err, "--p12", p12, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	assert_one_line(err, "needs a password and there is no terminal to ask on");
	unsetenv("PROBE_UNSET_VAR");
	rc = probe(out, err, "--p12", p12, "--pass", "env:PROBE_UNSET_VAR", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	assert_one_line(err, "--pass env:PROBE_UNSET_VAR: the variable is not set");
	rc = probe(out, err, "--p12", px_pki("good.pem"), "--pass", "pass:x", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	assert_one_line(err, "not a PKCS#12 file");
	px_stop_child(srv);
}

Test(probe, the_password_is_asked_on_a_terminal)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *p12 = px_tmp("t.p12"), *out = px_tmp("tty.out");
	char cmd[2048];
	int rc;

	if (!px_have("script"))
		cr_skip_test("script(1) is not installed (util-linux)");
	snprintf(cmd, sizeof(cmd),
		 "openssl pkcs12 -export -in '%s' -inkey '%s' -certfile '%s' -passout pass:tty-pw -out '%s' 2>/dev/null",
		 px_pki("good.pem"), px_pki("good.key"), px_pki("client-inter.pem"), p12);
	cr_assert_eq(system(cmd), 0);
	/* script(1) gives the probe a terminal; the password is typed into it */
	snprintf(cmd, sizeof(cmd),
		 "(sleep 1; printf 'tty-pw\\n') | timeout 20 script -qec \"'%s' probe --tls 1.2 --p12 '%s' localhost:%u\" /dev/null >'%s' 2>&1",
		 getenv("MTLSDIAG_BIN"), p12, port, out);
	rc = system(cmd);
	cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", e2e_tail(out, 600));
	cr_assert_not_null(px_find_line(out, "Password for --p12 "), "%s", e2e_tail(out, 600));
	cr_assert_not_null(px_find_line(out, "client certificate CN=good-client, O=mtlsdiag Lab: sent; accepted"));
	px_stop_child(srv);
}

/* ---- against nginx: the refusal is an HTTP 400 inside TLS ---- */

Test(probe, nginx_answers_400_without_a_certificate)
{
	uint16_t port;
	pid_t srv;
	const char *json = px_tmp("nginx.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	if (!px_have("nginx"))
		cr_skip_test("nginx is not installed (scripts/deps test)");
	port = e2e_free_port();
	srv = px_start_nginx(port);
	rc = probe(out, px_tmp("err"), "--http", "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(px_tmp("err"), 300));
	for (i = 0; i < 2; i++) {
		const char *p = probe_obj(record(json, i));

		/* nginx completes the handshake and refuses in HTTP */
		cr_assert_str_eq(e2e_member(p, "handshake"), "ok");
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "true");
		cr_assert_str_eq(e2e_member(p, "http_status"), "400", "%s", p);
		cr_assert_str_eq(e2e_member(p, "http_nginx"), "No required SSL certificate was sent");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
	}
	cr_assert_not_null(px_find_line(out, "(nginx answered 400: No required SSL certificate was sent)"),
			   "%s", e2e_tail(out, 600));

	rc = probe(out, px_tmp("err"), "--http", "--json", json, "--cert", px_pki("good-chain.pem"), "--key",
		   px_pki("good.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0);
	for (i = 0; i < 2; i++)
		cr_assert_str_eq(e2e_member(probe_obj(record(json, i)), "http_status"), "200");

	rc = probe(out, px_tmp("err"), "--http", "--json", json, "--cert", px_pki("expired-chain.pem"), "--key",
		   px_pki("expired.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1);
	for (i = 0; i < 2; i++) {
		const char *p = probe_obj(record(json, i));

		cr_assert_str_eq(e2e_member(p, "http_status"), "400");
		cr_assert_str_eq(e2e_member(p, "http_nginx"), "The SSL certificate error");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
	}
	px_stop_child(srv);
}

/* ---- through proxies ---- */

Test(probe, via_mitmproxy_the_chain_is_forged_and_no_certificate_is_asked)
{
	uint16_t port, mport;
	pid_t srv, mitm;
	const char *json = px_tmp("via.json"), *out = px_tmp("out"), *confdir = px_tmp("mitmconf");
	const char *mitm_ca;
	char ca_pem[600];
	size_t i;
	int rc;

	if (!px_have("mitmdump"))
		cr_skip_test("mitmproxy is not installed (scripts/deps test)");
	alarm(90);
	port = e2e_free_port();
	srv = px_start_s_server(port);
	mport = e2e_free_port();
	mitm = px_start_mitmproxy(mport, confdir);
	snprintf(ca_pem, sizeof(ca_pem), "%s/mitmproxy-ca-cert.pem", confdir);
	mitm_ca = cert_name(ca_pem, false);

	rc = probe(out, px_tmp("err"), "--via", hostport("127.0.0.1", mport), "--cert", px_pki("good-chain.pem"),
		   "--key", px_pki("good.key"), "--json", json, hostport("localhost", port), NULL);
	cr_assert_neq(rc, 2, "exit %d: %s", rc, e2e_tail(px_tmp("err"), 300));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec), *ic;

		cr_assert_str_eq(e2e_member(rec, "via"), hostport("127.0.0.1", mport));
		cr_assert_str_eq(e2e_member(rec, "connect_target"), hostport("localhost", port), "%s", rec);
		cr_assert_str_eq(e2e_member(rec, "preamble"), "HTTP CONNECT");
		/* mitmproxy terminates TLS: it never asks for our certificate */
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "false", "%s", p);
		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "false");
		cr_assert_str_eq(e2e_member(strstr(p, "\"server_chain\""), "issuer"), mitm_ca);
		ic = strstr(p, "\"interception\":{");
		cr_assert_not_null(ic, "%s", p);
		cr_assert_str_eq(e2e_member(ic, "rule"), "mitmproxy");
		cr_assert_str_eq(e2e_member(ic, "strength"), "strong");
		cr_assert(strstr(e2e_member(ic, "file"), "conf/inspection-cas.conf"));
		cr_assert_str_eq(e2e_member(ic, "name"), mitm_ca);
	}
	/* the observer agrees: no request on the client leg */
	cr_assert_str_eq(e2e_member(record(json, 0), "verdict"), "cert_not_requested", "%s", record(json, 0));
	{
		char want[400];

		snprintf(want, sizeof(want), "  interception: issued by %s: rule 'mitmproxy' (strong) in ", mitm_ca);
		cr_assert_not_null(px_find_line(out, want), "%s", e2e_tail(out, 800));
	}

	/* --compare: the one-command answer */
	json = px_tmp("compare.json");
	rc = probe(out, px_tmp("err"), "--via", hostport("127.0.0.1", mport), "--compare", "--tls", "1.3",
		   "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(px_tmp("err"), 300));
	cr_assert_eq(e2e_count_lines(json), 3, "%s", e2e_tail(json, 600));
	cr_assert_str_eq(e2e_member(record(json, 0), "via"), "null");
	cr_assert_str_eq(e2e_member(record(json, 2), "type"), "compare");
	cr_assert_str_eq(e2e_member(record(json, 2), "intercepted"), "true");
	cr_assert_not_null(px_find_line(out, "differences: the proxy terminates TLS"), "%s", e2e_tail(out, 900));
	{
		char want[600];

		snprintf(want, sizeof(want), "  server certificate issuer: direct %s, via proxy %s",
			 cert_name(px_pki("server.pem"), true), mitm_ca);
		cr_assert_not_null(px_find_line(out, want), "%s", e2e_tail(out, 900));
	}
	cr_assert_not_null(px_find_line(out, "  client certificate requested: direct yes, via proxy no"));
	cr_assert_not_null(px_find_line(out, "  acceptable CAs: direct [CN=Lab Client Root CA, O=mtlsdiag Lab], via proxy []"));
	px_stop_child(mitm);
	px_stop_child(srv);
}

Test(probe, compare_through_a_pass_through_proxy_finds_no_difference)
{
	uint16_t port = e2e_free_port(), pport = e2e_free_port();
	pid_t srv = px_start_s_server(port), px;
	const char *json = px_tmp("same.json"), *out = px_tmp("out");
	int rc;

	/* mtlsdiag's own CONNECT proxy relays bytes unchanged */
	px = px_start(px_tmp("proxy.log"), "--listen", hostport("127.0.0.1", pport), "--connect", NULL);
	rc = probe(out, px_tmp("err"), "--via", hostport("127.0.0.1", pport), "--compare", "--cert",
		   px_pki("good-chain.pem"), "--key", px_pki("good.key"), "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	cr_assert_eq(e2e_count_lines(json), 6);
	cr_assert_str_eq(e2e_member(record(json, 2), "type"), "compare");
	cr_assert_str_eq(e2e_member(record(json, 2), "intercepted"), "false");
	cr_assert(strstr(record(json, 2), "\"differences\":[]"));
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 1)), "cert_requested"), "true");
	cr_assert_not_null(px_find_line(out, "the same (server chain, client-certificate request, CA names): the proxy passes"));
	e2e_stop(px, 5000);
	px_stop_child(srv);
}

Test(probe, user_catalogue_rules_name_their_file_and_line)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *cas = px_tmp("ours.conf"), *bad = px_tmp("bad.conf"), *json = px_tmp("j"), *err = px_tmp("err");
	const char *ic;
	FILE *f = fopen(cas, "w");
	int rc;

	fputs("# the lab's server root, as if it were our gateway\n\nweak lab-gateway CN~\"Lab Server Root*\"\n", f);
	fclose(f);
	rc = probe(px_tmp("out"), err, "--tls", "1.3", "--inspection-cas", cas, "--json", json,
		   hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1);
	ic = strstr(record(json, 0), "\"interception\":{");
	cr_assert_not_null(ic, "%s", record(json, 0));
	cr_assert_str_eq(e2e_member(ic, "rule"), "lab-gateway");
	cr_assert_str_eq(e2e_member(ic, "strength"), "weak");
	cr_assert_str_eq(e2e_member(ic, "file"), cas);
	cr_assert_str_eq(e2e_member(ic, "line"), "3");

	f = fopen(bad, "w");
	fputs("strong ok CN~x\nweak oops CN=x\n", f);
	fclose(f);
	rc = probe(px_tmp("out"), err, "--inspection-cas", bad, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	{
		char want[600];

		snprintf(want, sizeof(want), "mtlsdiag probe: --inspection-cas %s:2: condition 'CN=x' has no '~'", bad);
		assert_one_line(err, want);
	}
	rc = probe(px_tmp("out"), err, "--inspection-cas", "/nonexistent.conf", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2);
	assert_one_line(err, "/nonexistent.conf: cannot read: No such file or directory");
	px_stop_child(srv);
}

/* ---- bad input: one line each, exit 2 ---- */

Test(probe, bad_input_is_one_line_and_exit_2)
{
	uint16_t port = e2e_free_port(), closed = e2e_free_port(), pport = e2e_free_port();
	pid_t srv = px_start_s_server(port), px;
	const char *out = px_tmp("out"), *err = px_tmp("err");
	char want[400];

	cr_assert_eq(probe(out, err, NULL), 2);
	assert_one_line(err, "no HOST:PORT given");
	cr_assert_eq(probe(out, err, "localhost", NULL), 2);
	assert_one_line(err, "'localhost' is not HOST:PORT");
	cr_assert_eq(probe(out, err, "localhost:99999", NULL), 2);
	assert_one_line(err, "'localhost:99999' is not HOST:PORT");
	cr_assert_eq(probe(out, err, "--tls", "1.1", hostport("localhost", port), NULL), 2);
	assert_one_line(err, "--tls '1.1': use 1.2, 1.3 or both");
	cr_assert_eq(probe(out, err, "--compare", hostport("localhost", port), NULL), 2);
	assert_one_line(err, "--compare needs --via");
	cr_assert_eq(probe(out, err, "--timeout", "0", hostport("localhost", port), NULL), 2);
	assert_one_line(err, "--timeout: '0' is not a number of seconds");

	cr_assert_eq(probe(out, err, "no-such-host.invalid:443", NULL), 2);
	assert_one_line(err, "mtlsdiag probe: cannot resolve no-such-host.invalid: ");
	cr_assert_eq(probe(out, err, hostport("127.0.0.1", closed), NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: cannot connect to 127.0.0.1:%u (127.0.0.1): Connection refused", closed);
	assert_one_line(err, want);

	/* the key of another certificate */
	cr_assert_eq(probe(out, err, "--cert", px_pki("good-chain.pem"), "--key", px_pki("expired.key"),
			   hostport("localhost", port), NULL), 2);
	snprintf(want, sizeof(want), "--key %s is not the key of the certificate in --cert %s", px_pki("expired.key"),
		 px_pki("good-chain.pem"));
	assert_one_line(err, want);
	cr_assert_eq(probe(out, err, "--cert", px_pki("good-chain.pem"), hostport("localhost", port), NULL), 2);
	assert_one_line(err, "--cert needs --key FILE");
	cr_assert_eq(probe(out, err, "--cert", px_pki("good.key"), "--key", px_pki("good.key"), hostport("localhost", port), NULL), 2);
	assert_one_line(err, "not a PEM certificate");

	/* a proxy that refuses: its status line is shown */
	px = px_start(px_tmp("proxy.log"), "--listen", hostport("127.0.0.1", pport), "--connect", "--allow",
		      "localhost:1", NULL);
	cr_assert_eq(probe(out, err, "--via", hostport("127.0.0.1", pport), "--json", px_tmp("refused.json"),
			   hostport("localhost", port), NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: proxy 127.0.0.1:%u refused CONNECT localhost:%u: HTTP/1.1 403 Forbidden",
		 pport, port);
	assert_one_line(err, want);
	/* and one JSON record saying so */
	cr_assert_eq(e2e_count_lines(px_tmp("refused.json")), 1);
	cr_assert_str_eq(e2e_member(record(px_tmp("refused.json"), 0), "type"), "probe_error");
	cr_assert_str_eq(e2e_member(record(px_tmp("refused.json"), 0), "proxy_status"), "HTTP/1.1 403 Forbidden");
	cr_assert_str_eq(e2e_member(record(px_tmp("refused.json"), 0), "error"), want + 16);
	e2e_stop(px, 5000);
	px_stop_child(srv);
}

Test(probe, encrypted_pem_key_needs_its_password)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *key = px_tmp("enc.key"), *out = px_tmp("out"), *err = px_tmp("err");
	char cmd[1024], want[700];

	snprintf(cmd, sizeof(cmd), "openssl pkey -in '%s' -aes256 -passout pass:k3y -out '%s'", px_pki("good.key"), key);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(probe(out, err, "--tls", "1.2", "--cert", px_pki("good-chain.pem"), "--key", key, "--pass", "pass:k3y",
			   hostport("localhost", port), NULL), 0, "%s", e2e_tail(err, 300));
	cr_assert_not_null(px_find_line(out, "client certificate CN=good-client, O=mtlsdiag Lab: sent; accepted"));
	cr_assert_eq(probe(out, err, "--cert", px_pki("good-chain.pem"), "--key", key, "--pass", "pass:nope",
			   hostport("localhost", port), NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: --key %s: wrong password (the key does not decrypt)", key);
	assert_one_line(err, want);
	cr_assert_eq(probe(out, err, "--cert", px_pki("good-chain.pem"), "--key", key, hostport("localhost", port), NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: --key %s needs a password and there is no terminal to ask on", key);
	assert_one_line(err, want);
	px_stop_child(srv);
}

/* A "proxy" that reads the request and answers `answer` (NULL: closes
 * without a word), once. */
static pid_t start_fake_proxy(uint16_t *port, const char *answer)
{
	int lfd = px_listen_any(AF_INET, port);
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	px_child_guard(20);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		char buf[4096];

		if (fd < 0)
			continue;
		if (read(fd, buf, sizeof(buf)) > 0 && answer)
			(void)!write(fd, answer, strlen(answer));
		close(fd);
	}
}

Test(probe, proxy_answers_that_are_not_http_or_none)
{
	uint16_t port;
	pid_t fake = start_fake_proxy(&port, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
	const char *out = px_tmp("out"), *err = px_tmp("err");
	char want[400];

	cr_assert_eq(probe(out, err, "--via", hostport("127.0.0.1", port), "localhost:443", NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: proxy 127.0.0.1:%u: the answer to CONNECT is not HTTP: 'SSH-2.0-OpenSSH_9.2'", port);
	assert_one_line(err, want);
	px_stop_child(fake);

	fake = start_fake_proxy(&port, NULL);
	cr_assert_eq(probe(out, err, "--via", hostport("127.0.0.1", port), "localhost:443", NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: proxy 127.0.0.1:%u closed the connection without answering CONNECT localhost:443", port);
	assert_one_line(err, want);
	px_stop_child(fake);

	fake = start_fake_proxy(&port, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n");
	cr_assert_eq(probe(out, err, "--via", hostport("127.0.0.1", port), "localhost:443", NULL), 2);
	snprintf(want, sizeof(want), "mtlsdiag probe: proxy 127.0.0.1:%u refused CONNECT localhost:443: HTTP/1.1 407 Proxy Authentication Required", port);
	assert_one_line(err, want);
	px_stop_child(fake);
}

Test(probe, silent_peers_time_out)
{
	uint16_t port;
	int lfd = px_listen_any(AF_INET, &port);   /* the kernel completes the TCP handshake; nobody answers */
	const char *out = px_tmp("out"), *err = px_tmp("err");
	long long start = e2e_now_ms();
	char want[400];

	cr_assert_eq(probe(out, err, "--timeout", "1", hostport("127.0.0.1", port), NULL), 2);
	cr_assert_lt(e2e_now_ms() - start, 4000);
	snprintf(want, sizeof(want), "timed out after 1 s waiting for 127.0.0.1:%u to answer the TLS handshake", port);
	assert_one_line(err, want);

	start = e2e_now_ms();
	cr_assert_eq(probe(out, err, "--timeout", "1", "--via", hostport("127.0.0.1", port), "localhost:443", NULL), 2);
	cr_assert_lt(e2e_now_ms() - start, 4000);
	snprintf(want, sizeof(want), "mtlsdiag probe: proxy 127.0.0.1:%u: no answer to CONNECT localhost:443 within 1 s", port);
	assert_one_line(err, want);
	close(lfd);
}

Test(probe, help_documents_the_exit_statuses)
{
	const char *out = px_tmp("out");
	char *all;

	cr_assert_eq(probe(out, px_tmp("err"), "--help", NULL), 0);
	all = e2e_slurp(out);
	cr_assert(strstr(all, "Exit status: 0 every handshake completed"), "%s", all);
	cr_assert(strstr(all, "1 the probe ran"));
	cr_assert(strstr(all, "2 usage or input error"));
	cr_assert(strstr(all, "--inspection-cas FILE"));
	free(all);
}
