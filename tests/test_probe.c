/* `mtlsdiag probe` end to end: the built program ($MTLSDIAG_BIN) against
 * real servers started here on free loopback ports: openssl s_server and
 * nginx with the lab PKI asking for a client certificate, the real
 * mitmproxy as an intercepting explicit proxy, and `mtlsdiag proxy
 * --connect` as a proxy that passes TLS through.  What is expected is
 * read from the PKI files with OpenSSL, not written down. */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proxyutil.h"
#include "testutil.h"
#include "wire/x509info.h"

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

/* --sni: a numeric address asked for a name (a virtual host behind an
 * address); without it an address sends no server name. */
Test(probe, sni_names_the_virtual_host_of_an_address)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *out = px_tmp("out"), *json = px_tmp("json");
	int rc;

	rc = probe(out, px_tmp("err"), "--tls", "1.3", "--json", json, "--sni", "api.example.test",
		   hostport("127.0.0.1", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(px_tmp("err"), 400));
	cr_assert_str_eq(e2e_member(record(json, 0), "sni"), "api.example.test");
	rc = probe(out, px_tmp("err"), "--tls", "1.3", "--json", json, hostport("127.0.0.1", port), NULL);
	cr_assert_str_eq(e2e_member(record(json, 0), "sni"), "null");
	rc = probe(out, px_tmp("err"), "--sni", "bad name", hostport("127.0.0.1", port), NULL);
	cr_assert_eq(rc, 2);
	cr_assert(e2e_wait_contains(px_tmp("err"), "--sni: 'bad name' is not a host name", 0), "%s",
		  e2e_tail(px_tmp("err"), 300));
	px_stop_child(srv);
}

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

/* --json -: the records on standard output, the human lines on standard
 * error.  A JSON output that cannot be written is said, and exits 2. */
Test(probe, json_on_stdout_and_a_json_write_failure)
{
	uint16_t port = e2e_free_port();
	pid_t srv = px_start_s_server(port);
	const char *out = px_tmp("out"), *err = px_tmp("err");
	int rc;

	rc = probe(out, err, "--tls", "1.2", "--json", "-", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(err, 400));
	cr_assert_eq(e2e_count_lines(out), 1, "%s", e2e_tail(out, 400));
	cr_assert_str_eq(e2e_member(record(out, 0), "verdict"), "client_sent_no_cert");
	cr_assert_not_null(px_find_line(err, "TLS1.2 client did not send cert (fault: client; observed)"),
			   "%s", e2e_tail(err, 800));
	cr_assert_null(px_find_line(err, "{\"type\""), "%s", e2e_tail(err, 800));

	rc = probe(out, err, "--tls", "1.2", "--json", "/dev/full", hostport("localhost", port), NULL);
	cr_assert_eq(rc, 2, "exit %d: %s", rc, e2e_tail(err, 400));
	cr_assert_not_null(px_find_line(err, "mtlsdiag probe: --json /dev/full: 1 record lost (No space left on device)"),
			   "%s", e2e_tail(err, 800));
	cr_assert_not_null(px_find_line(out, "TLS1.2 client did not send cert"), "%s", e2e_tail(out, 800));
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

/* ---- the first HTTP answer, read by default, decrypted by the observer ---- */


/* openssl s_server with the lab PKI, asking for a client certificate as
 * px_start_s_server does, and `mode`: "closes" closes each connection
 * after the handshake without a word (its standard input, /dev/null,
 * ends), "silent" never answers (its standard input is a FIFO this test
 * process holds open), "h2" answers GET / but chooses ALPN h2 and refuses
 * every other protocol. */
static pid_t start_s_server_mode(uint16_t port, const char *mode)
{
	char accept[32];
	const char *argv[24];
	struct e2e_io io = { .out = px_tmp("s_server.log"), .err = px_tmp("s_server.log") };
	size_t n = 0;
	pid_t pid;

	if (strcmp(mode, "silent") == 0) {
		/* the read-write open does not wait for a writer, and keeps the
		 * FIFO from ever reaching its end (until this test ends) */
		cr_assert_eq(mkfifo(px_tmp("stdin.fifo"), 0600), 0);
		cr_assert(open(px_tmp("stdin.fifo"), O_RDWR | O_CLOEXEC) >= 0);
		io.in = px_tmp("stdin.fifo");
	}
	snprintf(accept, sizeof(accept), "127.0.0.1:%u", port);
	argv[n++] = "openssl";
	argv[n++] = "s_server";
	argv[n++] = "-accept";
	argv[n++] = accept;
	argv[n++] = "-cert";
	argv[n++] = px_pki("server.pem");
	argv[n++] = "-key";
	argv[n++] = px_pki("server.key");
	argv[n++] = "-CAfile";
	argv[n++] = px_pki("client-root.pem");
	argv[n++] = "-Verify";
	argv[n++] = "1";
	argv[n++] = "-verify_return_error";
	if (strcmp(mode, "h2") == 0) {
		argv[n++] = "-alpn";
		argv[n++] = "h2";
		argv[n++] = "-www";
	} else {
		argv[n++] = "-quiet";
	}
	argv[n] = NULL;
	pid = e2e_spawn((char *const *)argv, &io, 60);
	cr_assert(pid > 0);
	px_wait_port(port, pid, "openssl s_server", px_tmp("s_server.log"));
	return pid;
}

/* The probe holds the keys: its record never sends the reader for one. */
static void assert_no_keylog_advice(const char *rec)
{
	cr_assert(!strstr(rec, "a key log shows") && !strstr(rec, "a key log tells") &&
		  !strstr(rec, "without a key log"), "%s", rec);
}

/* Record i of a probe against an HTTP server that answered: the verdict,
 * decrypted with the probe's own secrets, and the status it read. */
static void assert_decrypted_answer(const char *json, size_t i, const char *verdict, const char *status)
{
	const char *rec = record(json, i), *p = probe_obj(rec);

	cr_assert_str_eq(e2e_member(rec, "verdict"), verdict, "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "basis"), "decrypted", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "keylog"), "decrypted", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "http_status"), status, "%s", rec);
	cr_assert_str_eq(e2e_member(p, "tls_requested"), i == 0 ? "1.2" : "1.3");
	cr_assert_str_eq(e2e_member(p, "handshake"), "ok");
	cr_assert_str_eq(e2e_member(p, "alpn"), "http/1.1", "%s", p);
	cr_assert_str_eq(e2e_member(p, "http_sent"), "true");
	cr_assert_str_eq(e2e_member(p, "http_status"), status);
	cr_assert_str_eq(e2e_member(p, "undetermined"), "null");
	assert_no_keylog_advice(rec);
}

Test(probe, nginx_refusal_in_http_is_read_without_the_http_option)
{
	uint16_t port;
	pid_t srv;
	const char *json = px_tmp("on.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	if (!px_have("nginx"))
		cr_skip_test("nginx is not installed (scripts/deps test)");
	port = e2e_free_port();
	srv = px_start_nginx_verify(port, "on");

	/* no certificate: nginx completes both handshakes and answers 400 */
	rc = probe(out, px_tmp("err"), "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	cr_assert_eq(e2e_count_lines(json), 2, "%s", e2e_tail(json, 600));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);

		assert_decrypted_answer(json, i, "client_sent_no_cert", "400");
		cr_assert_str_eq(e2e_member(rec, "fault"), "client");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
		cr_assert_str_eq(e2e_member(p, "http_nginx"), "No required SSL certificate was sent");
		cr_assert_str_eq(e2e_member(p, "http_title"), "400 No required SSL certificate was sent");
		cr_assert(strstr(rec, "the server answered HTTP 400 Bad Request (\\\"400 No required SSL certificate was sent\\\") to GET / HTTP/1.1 (decrypted)"),
			  "%s", rec);
	}
	cr_assert_not_null(px_find_line(out, "TLS1.2 client did not send cert (fault: client; decrypted)"), "%s", e2e_tail(out, 900));
	cr_assert_not_null(px_find_line(out, "TLS1.3 client did not send cert (fault: client; decrypted)"), "%s", e2e_tail(out, 900));
	cr_assert_not_null(px_find_line(out, "client certificate none: none sent; rejected (nginx answered 400: No required SSL certificate was sent)"));
	cr_assert_null(px_find_line(out, "accepted"), "%s", e2e_tail(out, 900));

	/* an expired certificate: 400 "The SSL certificate error", and the
	 * observer's chain check says why */
	json = px_tmp("expired.json");
	rc = probe(out, px_tmp("err"), "--json", json, "--cert", px_pki("expired-chain.pem"), "--key",
		   px_pki("expired.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(out, 900));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);

		assert_decrypted_answer(json, i, "server_rejected_chain", "400");
		cr_assert_str_eq(e2e_member(rec, "reason"), "expired", "%s", rec);
		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "true");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
		cr_assert_str_eq(e2e_member(p, "http_nginx"), "The SSL certificate error");
	}
	cr_assert_not_null(px_find_line(out, "TLS1.3 server rejected chain: expired (fault: client; decrypted)"),
			   "%s", e2e_tail(out, 900));

	/* a good certificate: served */
	json = px_tmp("good.json");
	rc = probe(out, px_tmp("err"), "--json", json, "--cert", px_pki("good-chain.pem"), "--key", px_pki("good.key"),
		   hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, e2e_tail(out, 900));
	for (i = 0; i < 2; i++) {
		assert_decrypted_answer(json, i, "client_cert_accepted", "200");
		cr_assert_str_eq(e2e_member(probe_obj(record(json, i)), "client_auth"), "accepted");
	}
	cr_assert_not_null(px_find_line(out, "  http: HTTP/1.1 200 OK"), "%s", e2e_tail(out, 900));
	px_stop_child(srv);
}

Test(probe, nginx_optional_serves_the_request_without_a_certificate)
{
	uint16_t port;
	pid_t srv;
	const char *json = px_tmp("optional.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	if (!px_have("nginx"))
		cr_skip_test("nginx is not installed (scripts/deps test)");
	port = e2e_free_port();
	srv = px_start_nginx_verify(port, "optional");
	rc = probe(out, px_tmp("err"), "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);

		assert_decrypted_answer(json, i, "no_cert_accepted", "200");
		cr_assert_str_eq(e2e_member(rec, "fault"), "none");
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "true");
		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), "false");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "accepted");
	}
	cr_assert_not_null(px_find_line(out, "TLS1.3 no cert sent, server accepted (fault: none; decrypted)"),
			   "%s", e2e_tail(out, 900));
	px_stop_child(srv);
}

Test(probe, no_http_under_tls13_is_undetermined_never_accepted)
{
	uint16_t port;
	pid_t srv;
	const char *json = px_tmp("nohttp.json"), *out = px_tmp("out");
	const char *rec, *p;
	size_t i;
	int rc;

	if (!px_have("nginx"))
		cr_skip_test("nginx is not installed (scripts/deps test)");
	port = e2e_free_port();
	srv = px_start_nginx_verify(port, "on");
	/* with a certificate nginx would serve, and without one, which it
	 * would refuse: the handshake alone tells neither */
	for (i = 0; i < 2; i++) {
		if (i == 0)
			rc = probe(out, px_tmp("err"), "--no-http", "--tls", "1.3", "--json", json,
				   hostport("localhost", port), NULL);
		else
			rc = probe(out, px_tmp("err"), "--no-http", "--tls", "1.3", "--json", json, "--cert",
				   px_pki("good-chain.pem"), "--key", px_pki("good.key"), hostport("localhost", port), NULL);
		cr_assert_eq(rc, 3, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
		cr_assert_eq(e2e_count_lines(json), 1);
		rec = record(json, 0);
		p = probe_obj(rec);
		cr_assert_str_eq(e2e_member(rec, "verdict"), "undetermined", "%s", rec);
		cr_assert_str_eq(e2e_member(rec, "fault"), "unknown");
		cr_assert_str_eq(e2e_member(rec, "http_status"), "null");
		cr_assert(strstr(rec, "\"alpn\":[]"), "no ALPN offered: %s", rec);
		cr_assert_str_eq(e2e_member(p, "handshake"), "ok");
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "true");
		cr_assert_str_eq(e2e_member(p, "client_cert_sent"), i == 0 ? "false" : "true");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "undetermined");
		cr_assert_str_eq(e2e_member(p, "http_sent"), "false");
		cr_assert(strstr(e2e_member(p, "undetermined"), "TLS 1.3 with --no-http: no alert within 1 s"), "%s", p);
		assert_no_keylog_advice(rec);
		cr_assert_not_null(px_find_line(out, "TLS1.3 undetermined (fault: unknown; decrypted) TLS 1.3 with --no-http"),
				   "%s", e2e_tail(out, 900));
		cr_assert_null(px_find_line(out, "accepted"), "%s", e2e_tail(out, 900));
	}
	px_stop_child(srv);
}

Test(probe, no_http_against_a_server_that_does_not_speak_http)
{
	uint16_t port = e2e_free_port();
	pid_t srv = start_s_server_mode(port, "closes");
	const char *json = px_tmp("quiet.json"), *out = px_tmp("out");
	int rc;

	/* TLS 1.2: the server's Finished came after our Certificate, accepted;
	 * TLS 1.3: undetermined; together 3, which outranks 0 */
	rc = probe(out, px_tmp("err"), "--no-http", "--json", json, "--cert", px_pki("good-chain.pem"), "--key",
		   px_pki("good.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 3, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	cr_assert_str_eq(e2e_member(record(json, 0), "verdict"), "client_cert_accepted", "%s", record(json, 0));
	cr_assert_str_eq(e2e_member(record(json, 0), "basis"), "observed");
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 0)), "client_auth"), "accepted");
	cr_assert(strstr(record(json, 0), "its TLS layer accepted the certificate (--no-http"), "%s", record(json, 0));
	assert_no_keylog_advice(record(json, 0));
	cr_assert_str_eq(e2e_member(record(json, 1), "verdict"), "undetermined", "%s", record(json, 1));
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 1)), "client_auth"), "undetermined");

	rc = probe(out, px_tmp("err"), "--no-http", "--tls", "1.2", "--cert", px_pki("good-chain.pem"), "--key",
		   px_pki("good.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, e2e_tail(out, 900));
	px_stop_child(srv);
}

Test(probe, a_server_that_never_answers_get_is_undetermined)
{
	uint16_t port = e2e_free_port();
	pid_t srv = start_s_server_mode(port, "silent");
	const char *json = px_tmp("silent.json"), *out = px_tmp("out"), *rec, *p;
	long long start = e2e_now_ms();
	int rc;

	rc = probe(out, px_tmp("err"), "--tls", "1.3", "--timeout", "2", "--json", json, "--cert",
		   px_pki("good-chain.pem"), "--key", px_pki("good.key"), hostport("localhost", port), NULL);
	cr_assert_eq(rc, 3, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	cr_assert_lt(e2e_now_ms() - start, 5000);
	rec = record(json, 0);
	p = probe_obj(rec);
	cr_assert_str_eq(e2e_member(rec, "verdict"), "undetermined", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "basis"), "decrypted");
	cr_assert_str_eq(e2e_member(p, "http_sent"), "true");
	cr_assert_str_eq(e2e_member(p, "http_status"), "null");
	cr_assert_str_eq(e2e_member(p, "client_auth"), "undetermined");
	cr_assert_str_eq(e2e_member(p, "undetermined"), "no answer to GET / within the probe's 2 s");
	assert_no_keylog_advice(rec);
	cr_assert_not_null(px_find_line(out, "sent; undetermined (no answer to GET / within the probe's 2 s)"),
			   "%s", e2e_tail(out, 900));
	px_stop_child(srv);
}

Test(probe, a_server_that_closes_without_answering_get_is_undetermined)
{
	uint16_t port = e2e_free_port();
	pid_t srv = start_s_server_mode(port, "closes");
	const char *json = px_tmp("closes.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	rc = probe(out, px_tmp("err"), "--json", json, "--cert", px_pki("good-chain.pem"), "--key", px_pki("good.key"),
		   hostport("localhost", port), NULL);
	cr_assert_eq(rc, 3, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);

		cr_assert_str_eq(e2e_member(rec, "verdict"), "undetermined", "%s", rec);
		cr_assert_str_eq(e2e_member(p, "cert_requested"), "true");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "undetermined");
		cr_assert_str_eq(e2e_member(p, "undetermined"), "the server closed the connection without answering GET /");
		assert_no_keylog_advice(rec);
	}
	px_stop_child(srv);
}

Test(probe, an_http2_only_server_is_said_and_undetermined)
{
	uint16_t port = e2e_free_port();
	pid_t srv = start_s_server_mode(port, "h2");
	const char *json = px_tmp("h2.json"), *out = px_tmp("out");
	size_t i;
	int rc;

	/* it refuses ALPN http/1.1; the probe asks again with h2 */
	rc = probe(out, px_tmp("err"), "--json", json, "--cert", px_pki("good-chain.pem"), "--key", px_pki("good.key"),
		   hostport("localhost", port), NULL);
	cr_assert_eq(rc, 3, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	cr_assert_eq(e2e_count_lines(json), 2);
	for (i = 0; i < 2; i++) {
		const char *rec = record(json, i), *p = probe_obj(rec);

		cr_assert_str_eq(e2e_member(rec, "verdict"), "undetermined", "%s", rec);
		cr_assert_str_eq(e2e_member(p, "handshake"), "ok");
		cr_assert_str_eq(e2e_member(p, "alpn"), "h2");
		cr_assert_str_eq(e2e_member(p, "h2_only"), "true");
		cr_assert_str_eq(e2e_member(p, "http_sent"), "false");
		cr_assert_str_eq(e2e_member(p, "client_auth"), "undetermined");
		cr_assert(strstr(e2e_member(p, "undetermined"), "the server speaks HTTP/2 only"), "%s", p);
		assert_no_keylog_advice(rec);
	}
	cr_assert_not_null(px_find_line(out, "  http: the server speaks HTTP/2 only"), "%s", e2e_tail(out, 900));

	/* a refusal in the handshake is still read: TLS 1.2 without a certificate */
	json = px_tmp("h2-none.json");
	rc = probe(out, px_tmp("err"), "--tls", "1.2", "--json", json, hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s", rc, e2e_tail(out, 900));
	cr_assert_str_eq(e2e_member(record(json, 0), "verdict"), "client_sent_no_cert", "%s", record(json, 0));
	cr_assert_str_eq(e2e_member(probe_obj(record(json, 0)), "client_auth"), "rejected");
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

	/* mitmproxy fails its own handshake with s_server (no certificate)
	 * and leaves our GET / unanswered: a short timeout ends the wait */
	rc = probe(out, px_tmp("err"), "--via", hostport("127.0.0.1", mport), "--cert", px_pki("good-chain.pem"),
		   "--key", px_pki("good.key"), "--timeout", "3", "--json", json, hostport("localhost", port), NULL);
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
		   "--timeout", "3", "--json", json, hostport("localhost", port), NULL);
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

Test(probe, via_mitmproxy_to_nginx_the_upstream_refusal_is_read)
{
	uint16_t port, mport;
	pid_t srv, mitm;
	const char *json = px_tmp("mitm-nginx.json"), *out = px_tmp("out"), *rec, *p;
	int rc;

	if (!px_have("mitmdump") || !px_have("nginx"))
		cr_skip_test("mitmproxy or nginx is not installed (scripts/deps test)");
	alarm(90);
	port = e2e_free_port();
	srv = px_start_nginx_verify(port, "on");
	mport = e2e_free_port();
	mitm = px_start_mitmproxy(mport, px_tmp("mitmconf"));
	/* mitmproxy never asks us, and sends nginx no certificate: nginx's
	 * 400 comes back through it */
	rc = probe(out, px_tmp("err"), "--via", hostport("127.0.0.1", mport), "--tls", "1.3", "--json", json,
		   hostport("localhost", port), NULL);
	cr_assert_eq(rc, 1, "exit %d: %s %s", rc, e2e_tail(out, 900), e2e_tail(px_tmp("err"), 300));
	rec = record(json, 0);
	p = probe_obj(rec);
	cr_assert_str_eq(e2e_member(rec, "verdict"), "cert_not_requested", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "reason"), "not_requested_upstream");
	cr_assert_str_eq(e2e_member(rec, "fault"), "middlebox");
	cr_assert_str_eq(e2e_member(rec, "basis"), "decrypted");
	cr_assert_str_eq(e2e_member(rec, "http_status"), "400");
	cr_assert_str_eq(e2e_member(p, "cert_requested"), "false");
	cr_assert_str_eq(e2e_member(p, "http_nginx"), "No required SSL certificate was sent");
	cr_assert_str_eq(e2e_member(p, "client_auth"), "rejected");
	assert_no_keylog_advice(rec);
	cr_assert_not_null(px_find_line(out, "client certificate none: not sent, the server did not ask; rejected (nginx answered 400: No required SSL certificate was sent)"),
			   "%s", e2e_tail(out, 900));
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
	cr_assert_eq(probe(out, err, "--http", "--no-http", hostport("localhost", port), NULL), 2);
	assert_one_line(err, "--http and --no-http contradict each other");

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
	cr_assert(strstr(all, "3 the probe ran but could not tell"));
	cr_assert(strstr(all, "--no-http"));
	cr_assert(strstr(all, "--inspection-cas FILE"));
	free(all);
}
