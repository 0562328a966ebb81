/* Tests for `mtlsdiag pcap` as a user runs it: output, exit status and
 * one-line errors for bad input ($MTLSDIAG_BIN is the built program). */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

struct run {
	int status;
	char out[1 << 17];
	char err[1 << 14];
};

/* Runs `mtlsdiag ARGS` through the shell (ARGS may redirect stdin) with
 * stdout and stderr captured separately. */
static void run(struct run *r, const char *args)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	char cmd[4096], outp[] = "/tmp/mtlsdiag-cli-out-XXXXXX", errp[] = "/tmp/mtlsdiag-cli-err-XXXXXX";
	int fo = mkstemp(outp), fe = mkstemp(errp), st;
	FILE *f;
	size_t n;

	cr_assert(bin && *bin, "MTLSDIAG_BIN is not set");
	cr_assert(fo >= 0 && fe >= 0);
	close(fo);
	close(fe);
	snprintf(cmd, sizeof(cmd), "cd '%s' && timeout 60 '%s' %s >%s 2>%s", test_path(""), bin, args, outp, errp);
	st = system(cmd);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	f = fopen(outp, "r");
	n = f ? fread(r->out, 1, sizeof(r->out) - 1, f) : 0;
	r->out[n] = '\0';
	if (f)
		fclose(f);
	f = fopen(errp, "r");
	n = f ? fread(r->err, 1, sizeof(r->err) - 1, f) : 0;
	r->err[n] = '\0';
	if (f)
		fclose(f);
	unlink(outp);
	unlink(errp);
}

static size_t lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static struct run r;

Test(cli, human_lines_and_summary)
{
	run(&r, "pcap tests/data/lab/captures/nginx-on_none_tls12.pcap tests/data/lab/captures/haproxy_expired_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(lines(r.out), 3, "%s", r.out);
	/* the empty Certificate is observed; that nginx then refused (one
	 * error page, then it closed at once) is inferred */
	cr_assert(strstr(r.out, "TLS1.2 client did not send cert (fault: client; inferred) server asked for CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"), "%s", r.out);
	cr_assert(strstr(r.out, "server rejected chain: expired (fault: client; observed)"), "%s", r.out);
	cr_assert(strstr(r.out, "2 connections: 1 client_sent_no_cert, 1 server_rejected_chain\n"), "%s", r.out);
	cr_assert_str_empty(r.err);
}

Test(cli, json_lines_carry_the_contract_fields)
{
	static const char *const fields[] = {
		"\"type\":\"connection\"", "\"schema\":1,", "\"ts\":", "\"client\":{\"ip\":", "\"server\":{\"ip\":", "\"sni\":",
		"\"alpn\":", "\"tls_version\":\"1.2\"", "\"ja4\":\"t12", "\"cert_requested\":true",
		"\"acceptable_cas\":[\"CN=Lab Client Root CA, O=mtlsdiag Lab\"]", "\"client_cert_sent\":false",
		"\"client_chain\":[]", "\"server_chain\":[{\"subject\":", "\"alerts\":[", "\"http_status\":",
		"\"verdict\":\"client_sent_no_cert\"", "\"reason\":null", "\"fault\":\"client\"", "\"basis\":\"observed\"",
		"\"evidence\":[", "\"summary\":",
	};
	size_t i;

	run(&r, "pcap --json - tests/data/lab/captures/apache_none_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(lines(r.out), 2, "one connection record and the summary: %s", r.out);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		cr_assert(strstr(r.out, fields[i]), "missing %s in %s", fields[i], r.out);
	cr_assert(strstr(r.out, "{\"type\":\"summary\",\"schema\":1,\"connections\":1,\"verdicts\":{\"client_sent_no_cert\":1}"), "%s", r.out);
	cr_assert(strstr(r.err, "client did not send cert"), "human lines move to stderr with --json -: %s", r.err);
}

Test(cli, standard_input)
{
	run(&r, "pcap - < tests/data/lab/captures/openssl_expired_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "server rejected chain: expired"), "%s", r.out);
}

Test(cli, at_moves_the_validity_check)
{
	/* in June 2020 the expired certificate was valid: nginx's refusal is no
	 * longer predicted with a reason; the conversation shows the refusal
	 * (unknown why), or nothing when curl's close crossed nginx's */
	run(&r, "pcap --at 2020-06-01 tests/data/lab/captures/nginx-on_expired_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "TLS1.2 undetermined (fault: unknown; inferred)") ||
		  strstr(r.out, "TLS1.2 server rejected chain: unknown (fault: unknown; inferred)"), "%s", r.out);
	cr_assert(!strstr(r.out, "expired"), "%s", r.out);
	run(&r, "pcap tests/data/lab/captures/nginx-on_expired_tls12.pcap");
	cr_assert(strstr(r.out, "server rejected chain: expired (fault: client; inferred)"), "%s", r.out);
	run(&r, "pcap --at yesterday tests/data/lab/captures/nginx-on_expired_tls12.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "--at"), "%s", r.err);
}

Test(cli, missing_file_is_one_line_and_status_2)
{
	run(&r, "pcap /nonexistent/x.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "/nonexistent/x.pcap"), "%s", r.err);
}

Test(cli, not_a_capture_is_one_line_and_status_2)
{
	run(&r, "pcap README.md");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "README.md"), "%s", r.err);
	cr_assert(strstr(r.err, "not a pcap or pcapng file"), "%s", r.err);
}

Test(cli, truncated_capture_is_analysed_then_warned)
{
	size_t len;
	uint8_t *data = test_load("tests/data/lab/captures/haproxy_expired_tls12.pcap", &len);
	char path[] = "/tmp/mtlsdiag-cut-XXXXXX", args[256];
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	/* cut inside the last packet record */
	cr_assert_eq(write(fd, data, len - 10), (ssize_t)(len - 10));
	close(fd);
	free(data);
	snprintf(args, sizeof(args), "pcap %s", path);
	run(&r, args);
	unlink(path);
	cr_assert_eq(r.status, 2, "a truncated capture exits 2");
	cr_assert(strstr(r.out, "server rejected chain: expired"), "what is there is analysed: %s", r.out);
	cr_assert(strstr(r.err, "truncated"), "%s", r.err);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
}

/* pcapng interfaces of different link types: read whole when they are all
 * described first (mergecap's files); one described after packets stops
 * the reading there, said as such, not as a truncated file. */
Test(cli, pcapng_with_mixed_link_types)
{
	static const uint8_t late_idb[20] = { 1, 0, 0, 0, 20, 0, 0, 0, 113, 0, 0, 0, 0, 0, 4, 0, 20, 0, 0, 0 };
	size_t len;
	uint8_t *data = test_load("tests/data/capture/eth_ng.pcapng", &len);
	char path[] = "/tmp/mtlsdiag-late-XXXXXX", args[256];
	int fd = mkstemp(path);

	run(&r, "pcap tests/data/capture/linkmix.pcapng");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "4 connections: 3 cert_not_requested, 1 incomplete"), "%s", r.out);
	cr_assert_str_eq(r.err, "");

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(write(fd, late_idb, sizeof(late_idb)), (ssize_t)sizeof(late_idb));
	close(fd);
	free(data);
	snprintf(args, sizeof(args), "pcap %s", path);
	run(&r, args);
	unlink(path);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.out, "3 connections"), "what came before is analysed: %s", r.out);
	cr_assert(strstr(r.err, "another link type") && strstr(r.err, "analysed the 45 packets"), "%s", r.err);
	cr_assert_not(strstr(r.err, "truncated"), "%s", r.err);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
}

/* Output files may hold request lines and names: created for their owner
 * only, unless --umask says otherwise. */
Test(cli, json_files_are_created_0600_unless_umask)
{
	char dir[] = "/tmp/mtlsdiag-mode-XXXXXX", args[512], path[128];
	struct stat st;

	cr_assert(mkdtemp(dir));
	test_fmt(path, "%s/a.json", dir);
	test_fmt(args, "pcap --json %s tests/data/capture/one.pcap", path);
	run(&r, args);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "%o", st.st_mode & 0777);
	test_fmt(path, "%s/b.json", dir);
	test_fmt(args, "pcap --umask 022 --json %s tests/data/capture/one.pcap", path);
	run(&r, args);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644, "%o", st.st_mode & 0777);
	run(&r, "pcap --umask 9x tests/data/capture/one.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --umask: '9x' is not an octal mask (022, 077)\n");
	test_fmt(args, "rm -rf '%s'", dir);
	cr_assert_eq(system(args), 0);
}

Test(cli, bad_flags_and_help)
{
	run(&r, "pcap --bogus=1 x.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: unknown option '--bogus' (try 'mtlsdiag pcap --help')\n");
	run(&r, "pcap -qZ x.pcap");
	cr_assert_str_eq(r.err, "mtlsdiag pcap: unknown option '-Z' (try 'mtlsdiag pcap --help')\n");
	run(&r, "pcap --json");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --json needs an argument (try 'mtlsdiag pcap --help')\n");
	run(&r, "pcap x.pcap -f");
	cr_assert_eq(r.status, 2, "options come before the files");
	run(&r, "probe --bogus");
	cr_assert_str_eq(r.err, "mtlsdiag probe: unknown option '--bogus' (try 'mtlsdiag probe --help')\n");
	run(&r, "proxy --listen");
	cr_assert_str_eq(r.err, "mtlsdiag proxy: --listen needs an argument (try 'mtlsdiag proxy --help')\n");
	run(&r, "pcap");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "no capture file"), "%s", r.err);
	run(&r, "frobnicate");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "unknown command"), "%s", r.err);
	run(&r, "pcap --help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: mtlsdiag pcap"), "%s", r.out);
	run(&r, "pcap -f 'not a filter ((' tests/data/lab/captures/apache_none_tls12.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
}

Test(cli, ca_bundle_gives_the_error_nginx_logs)
{
	run(&r, "pcap --json - --ca-bundle tests/data/lab/pki/client-root.pem tests/data/lab/captures/nginx-on_leafonly_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "unable to get local issuer certificate"), "%s", r.out);
	run(&r, "pcap --ca-bundle /nonexistent.pem tests/data/lab/captures/nginx-on_leafonly_tls12.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
}

Test(cli, the_verification_options_say_what_the_server_would)
{
	/* nginx's depth 0 refused the lab's three-certificate chain; the same
	 * as --verify-depth 0: nginx's 20, openssl verify's 22, and the depth
	 * it needs */
	run(&r, "pcap --json - --ca-bundle tests/data/lab/pki/client-root.pem --verify-depth 0 "
		"--keylog tests/data/lab/keylogs/nginx-depth0_good_tls12.keylog tests/data/lab/captures/nginx-depth0_good_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"verdict\":\"server_rejected_chain\",\"reason\":\"depth_exceeded\",\"fault\":\"server\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"chain_check\":{\"trust\":\"ca-bundle\",\"verified\":false,\"error\":20,"
				"\"error_text\":\"unable to get local issuer certificate\",\"error_depth\":1,\"first_error\":22,"
				"\"first_error_text\":\"certificate chain too long\",\"first_error_depth\":1,"
				"\"log\":\"client SSL certificate verify error: (20:unable to get local issuer certificate)\","
				"\"log_server\":\"nginx\",\"chain\":[\"CN=good-client, O=mtlsdiag Lab\",\"CN=Lab Issuing CA, O=mtlsdiag Lab\"],"
				"\"stops_at\":null,\"verify_depth\":0,\"needed_depth\":1,\"depth_limited\":true,\"purpose\":\"sslclient\","
				"\"crl\":false,\"cas_agree\":true,\"bundle_problems\":[],\"note\":null}"), "%s", r.out);
	cr_assert(strstr(r.out, "\"server_kind\":{\"name\":\"nginx\",\"from\":\"server_header\"},\"remedies\":"
				"[\"nginx: set ssl_verify_depth 1 (the chain has 3 certificates; OpenSSL counts neither the leaf nor the trusted root), then nginx -s reload\"]"),
		  "%s", r.out);
	/* the human line: nginx's words, then the remedy */
	cr_assert(strstr(r.err, "nginx would log \"client SSL certificate verify error: (20:unable to get local issuer certificate)\" "
				"(verified against --ca-bundle); remedy: nginx: set ssl_verify_depth 1"), "%s", r.err);
	/* --server-kind apache: Apache's line (its first error) and directives */
	run(&r, "pcap --server-kind apache --ca-bundle tests/data/lab/pki/client-root.pem --verify-depth 0 "
		"tests/data/lab/captures/nginx-depth0_good_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "apache would log \"Certificate Verification: Error (22): certificate chain too long\""), "%s", r.out);
	cr_assert(strstr(r.out, "; remedy: Apache: set SSLVerifyDepth 2 (the chain has 3 certificates, the root included), then apachectl graceful\n"),
		  "%s", r.out);
	/* bad arguments */
	run(&r, "pcap --verify-depth deep tests/data/lab/captures/nginx-depth0_good_tls12.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --verify-depth: 'deep' is not a number from 0 to 100\n");
	run(&r, "pcap --server-kind iis tests/data/lab/captures/nginx-depth0_good_tls12.pcap");
	cr_assert_eq(r.status, 2);
	run(&r, "pcap --crl tests/data/lab/pki/deep-crl.pem tests/data/lab/captures/nginx-depth0_good_tls12.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --crl goes with --ca-bundle FILE (the CRLs' CAs)\n");
}

Test(cli, a_bundle_that_is_not_the_servers_is_said)
{
	/* the server named the lab's client root; the bundle is another PKI's */
	run(&r, "pcap --json - --ca-bundle tests/data/lab/pki/deep-cas.pem tests/data/lab/captures/nginx-on_good_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"cas_agree\":false"), "%s", r.out);
	cr_assert(strstr(r.out, "\"note\":\"the server named CA CN=Lab Client Root CA, O=mtlsdiag Lab, which --ca-bundle does not hold: "
				"the bundle given is not the one this server verifies with\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"evidence\":[\"the server asked for a client certificate from CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]\","
				"\"the client sent 2 certificates: CN=good-client, O=mtlsdiag Lab (issuer CN=Lab Issuing CA, O=mtlsdiag Lab, valid 2020-01-01T00:00:00Z to 2080-01-01T00:00:00Z)\","
				"\"the server named CA CN=Lab Client Root CA"), "%s", r.out);
	/* the bundle's own mistakes are warned about when it is loaded */
	run(&r, "pcap -q --at 2026-12-01 --ca-bundle tests/data/lab/pki/bundle-dated.pem tests/data/lab/captures/nginx-on_good_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.err,
			 "mtlsdiag pcap: warning: --ca-bundle tests/data/lab/pki/bundle-dated.pem: CN=Lab Retired CA, O=mtlsdiag Lab expired 2021-01-01T00:00:00Z: no chain through it verifies\n"
			 "mtlsdiag pcap: warning: --ca-bundle tests/data/lab/pki/bundle-dated.pem: CN=Lab Future CA, O=mtlsdiag Lab is not valid until 2090-01-01T00:00:00Z: no chain through it verifies before then\n");
}

Test(cli, remedies_by_verdict_and_server_kind)
{
	/* optional client authentication is a security note, nginx's own */
	run(&r, "pcap --json - --keylog tests/data/lab/keylogs/nginx-optional_none_tls12.keylog tests/data/lab/captures/nginx-optional_none_tls12.pcap");
	cr_assert(strstr(r.out, "\"verdict\":\"no_cert_accepted\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"remedies\":[\"nginx: ssl_verify_client optional let this connection in without a certificate, "
				"a security hole unless the application checks $ssl_client_verify: set ssl_verify_client on\"]"), "%s", r.out);
	/* without a bundle the CA names stand in: nginx's 21 for a leaf sent alone */
	run(&r, "pcap --json - tests/data/lab/captures/apache_leafonly_tls12.pcap");
	cr_assert(strstr(r.out, "\"chain_check\":{\"trust\":\"ca-names\",\"verified\":false,\"error\":21,"), "%s", r.out);
	cr_assert(strstr(r.out, "\"server_kind\":null,\"remedies\":["
				"\"client: send the intermediate CA certificates with the leaf (the chain stops short of CN=Lab Issuing CA, O=mtlsdiag Lab): curl --cert FILE takes the leaf followed by its intermediates in that one PEM file\","
				"\"browser: import a PKCS#12 bundle that holds the intermediates (openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile intermediates.pem -out client.p12), then restart the browser\","
				"\"server: or add CN=Lab Issuing CA, O=mtlsdiag Lab to the CA bundle it verifies client certificates with (nginx: ssl_client_certificate)\"]"),
		  "%s", r.out);
	/* a verdict that needs nothing has none */
	run(&r, "pcap --json - tests/data/lab/captures/nginx-on_good_tls12.pcap");
	cr_assert(strstr(r.out, "\"remedies\":[]"), "%s", r.out);
	cr_assert(!strstr(r.err, "remedy"), "%s", r.err);
}

/* ---- --keylog ---- */

Test(cli, keylog_decrypts_tls13_and_reads_the_answer)
{
	run(&r, "pcap --json - --keylog tests/data/lab/keylogs/nginx-on_none_tls13.keylog tests/data/lab/captures/nginx-on_none_tls13.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "\"verdict\":\"client_sent_no_cert\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"basis\":\"decrypted\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"http_status\":400"), "%s", r.out);
	cr_assert(strstr(r.out, "\"keylog\":\"decrypted\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"http_request\":\"GET / HTTP/1.1\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"http_reason\":\"Bad Request\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"http_title\":\"400 No required SSL certificate was sent\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"acceptable_cas\":[\"CN=Lab Client Root CA, O=mtlsdiag Lab\"]"),
		  "the encrypted CertificateRequest's CA names: %s", r.out);
	cr_assert(strstr(r.out, "{\"from\":\"server\",\"level\":\"warning\",\"description\":\"close_notify\",\"encrypted\":true,\"decrypted\":true}"),
		  "%s", r.out);
	cr_assert_null(strstr(r.out, "nginx/1.22.1"), "no other header or body byte is written: %s", r.out);
	cr_assert(strstr(r.err, "TLS1.3 client did not send cert (fault: client; decrypted) HTTP 400 Bad Request; server asked for CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"),
		  "the status the refusal came in leads: %s", r.err);
}

Test(cli, keylog_repeatable_and_without_it_the_json_says_null)
{
	run(&r, "pcap --keylog tests/data/lab/keylogs/nginx-on_expired_tls13.keylog --keylog tests/data/lab/keylogs/apache_good_tls13.keylog "
		"tests/data/lab/captures/nginx-on_expired_tls13.pcap tests/data/lab/captures/apache_good_tls13.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "TLS1.3 server rejected chain: expired (fault: client; decrypted)"), "%s", r.out);
	cr_assert(strstr(r.out, "TLS1.3 client cert accepted (fault: none; decrypted)"), "%s", r.out);
	run(&r, "pcap --json - tests/data/lab/captures/nginx-on_none_tls13.pcap");
	cr_assert(strstr(r.out, "\"keylog\":null,\"http_request\":null,\"http_reason\":null,\"http_title\":null"), "%s", r.out);
}

Test(cli, keylog_missing_file_is_one_line_and_status_2)
{
	run(&r, "pcap --keylog /nonexistent/keys.log tests/data/lab/captures/nginx-on_none_tls13.pcap");
	cr_assert_eq(r.status, 2);
	cr_assert_eq(lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "--keylog /nonexistent/keys.log: No such file or directory"), "%s", r.err);
	cr_assert_str_empty(r.out, "nothing analysed");
}

Test(cli, keylog_malformed_lines_warn_with_their_line_number)
{
	char path[] = "/tmp/mtlsdiag-cli-kl-XXXXXX", args[512];
	size_t len;
	uint8_t *good = test_load("tests/data/lab/keylogs/nginx-on_none_tls13.keylog", &len);
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	cr_assert_not_null(f);
	fputs("# comment\nCLIENT_RANDOM tooshort 00\n", f);
	fwrite(good, 1, len, f);
	fputs("SERVER_TRAFFIC_SECRET_0 nothex\n", f);
	fclose(f);
	free(good);
	snprintf(args, sizeof(args), "pcap --keylog %s tests/data/lab/captures/nginx-on_none_tls13.pcap", path);
	run(&r, args);
	unlink(path);
	cr_assert_eq(r.status, 0, "malformed lines are skipped, not fatal: %s", r.err);
	cr_assert_eq(lines(r.err), 2, "%s", r.err);
	cr_assert(strstr(r.err, ":2: malformed key log line skipped"), "%s", r.err);
	cr_assert(strstr(r.err, ":8: malformed key log line skipped"), "%s", r.err);
	cr_assert(strstr(r.err, path), "the warning names the file: %s", r.err);
	cr_assert(strstr(r.out, "(fault: client; decrypted)"), "the good lines still decrypt: %s", r.out);
}

Test(cli, keylog_of_another_capture_says_so_per_connection)
{
	run(&r, "pcap --json - --keylog tests/data/lab/keylogs/haproxy_good_tls13.keylog "
		"tests/data/lab/captures/nginx-on_good_tls13.pcap tests/data/lab/captures/haproxy_good_tls13.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "\"keylog\":\"no_entry\""), "%s", r.out);
	cr_assert(strstr(r.out, "key log has no entry for this client random"), "%s", r.out);
	cr_assert(strstr(r.out, "\"verdict\":\"client_cert_accepted\",\"reason\":null,\"fault\":\"none\",\"basis\":\"inferred\""),
		  "nginx 1.3 without usable keys is the keyless verdict: %s", r.out);
	cr_assert(strstr(r.out, "\"keylog\":\"decrypted\""), "the connection it belongs to is decrypted: %s", r.out);
	cr_assert(strstr(r.err, "TLS1.3 client cert accepted (fault: none; inferred)"), "%s", r.err);
	cr_assert(strstr(r.err, "TLS1.3 client cert accepted (fault: none; decrypted)"), "%s", r.err);
}

/* The bundled catalogue is found where `make install` puts it, or where
 * $MTLSDIAG_INSPECTION_CAS says (the suites point it at conf/): never in a
 * source tree baked into the binary. */
Test(cli, the_bundled_catalogue_comes_from_the_environment_or_the_install)
{
	run(&r, "pcap tests/data/lab/captures/nginx-on_none_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_empty(r.err, "found through MTLSDIAG_INSPECTION_CAS: %s", r.err);
	/* run() starts the program; these lines start it again with another
	 * environment, their output captured */
	run(&r, "--version >/dev/null; MTLSDIAG_INSPECTION_CAS=/nonexistent/cas.conf \"$MTLSDIAG_BIN\" pcap tests/data/lab/captures/nginx-on_none_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "warning: the bundled inspection-CA catalogue is not installed (looked in /nonexistent/cas.conf)"),
		  "%s", r.err);
	run(&r, "--version >/dev/null; env -u MTLSDIAG_INSPECTION_CAS \"$MTLSDIAG_BIN\" pcap tests/data/lab/captures/nginx-on_none_tls12.pcap");
	cr_assert_eq(r.status, 0, "%s", r.err);
	if (r.err[0])
		cr_assert(strstr(r.err, "share/mtlsdiag/inspection-cas.conf") && !strstr(r.err, "/conf/"),
			  "only the installed place is looked in: %s", r.err);
}

/* ---- --json FILE, the same for every command ---- */

Test(cli, json_dash_takes_stdout_and_the_human_lines_move_to_stderr)
{
	const char *line;

	run(&r, "pcap --json - tests/data/lab/captures/nginx-on_none_tls12.pcap tests/data/lab/captures/haproxy_expired_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(lines(r.out), 3, "two connection records and the summary: %s", r.out);
	for (line = r.out; *line; line = strchr(line, '\n') + 1)
		cr_assert(line[0] == '{', "only JSON on stdout: %s", r.out);
	cr_assert_eq(lines(r.err), 3, "two human lines and the summary: %s", r.err);
	cr_assert(strstr(r.err, "2 connections: 1 client_sent_no_cert, 1 server_rejected_chain\n"), "%s", r.err);
	cr_assert_null(strchr(r.err, '{'), "no JSON on stderr: %s", r.err);
}

Test(cli, json_file_is_written_and_truncated)
{
	char path[] = "/tmp/mtlsdiag-cli-json-XXXXXX", args[512];
	int fd = mkstemp(path);
	FILE *f;
	size_t n;
	static char got[1 << 16];

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "old\n", 4), 4);
	close(fd);
	test_fmt(args, "pcap --json %s tests/data/lab/captures/apache_none_tls12.pcap", path);
	run(&r, args);
	f = fopen(path, "r");
	n = f ? fread(got, 1, sizeof(got) - 1, f) : 0;
	got[n] = '\0';
	if (f)
		fclose(f);
	unlink(path);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(lines(got), 2, "the file is truncated, then one record and the summary: %s", got);
	cr_assert(strncmp(got, "{\"type\":\"connection\"", 20) == 0, "%s", got);
	cr_assert(strstr(r.out, "client did not send cert"), "the human lines stay on stdout: %s", r.out);
	cr_assert_str_empty(r.err);
}

Test(cli, json_unopenable_is_one_line_and_status_2)
{
	static const struct {
		const char *args, *who;
	} cmds[] = {
		{ "pcap --json /nonexistent/dir/x tests/data/lab/captures/apache_none_tls12.pcap", "pcap" },
		{ "probe --json /nonexistent/dir/x 127.0.0.1:1", "probe" },
		{ "proxy --listen 127.0.0.1:1 --upstream 127.0.0.1:9 --json /nonexistent/dir/x", "proxy" },
	};
	char want[128];
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run(&r, cmds[i].args);
		test_fmt(want, "mtlsdiag %s: --json /nonexistent/dir/x: No such file or directory\n", cmds[i].who);
		cr_assert_eq(r.status, 2, "%s: %s", cmds[i].args, r.err);
		cr_assert_str_eq(r.err, want);
		cr_assert_str_empty(r.out, "%s: nothing done", cmds[i].args);
	}
}

Test(cli, json_write_failure_is_said_and_status_2)
{
	run(&r, "pcap --json /dev/full tests/data/lab/captures/apache_none_tls12.pcap");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: --json /dev/full: No space left on device: records are being lost "
				"(each written whole or not at all)\n"
				"mtlsdiag pcap: --json /dev/full: 2 records lost (No space left on device)\n");
	cr_assert(strstr(r.out, "client did not send cert"), "the human lines are still written: %s", r.out);
	/* --json - on a standard output that cannot be written */
	run(&r, "--version >/dev/null; sh -c '\"$MTLSDIAG_BIN\" pcap --json - tests/data/lab/captures/apache_none_tls12.pcap >/dev/full'");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "client did not send cert"), "%s", r.err);
	cr_assert(strstr(r.err, "\nmtlsdiag pcap: --json -: 2 records lost (No space left on device)\n"), "%s", r.err);
}

/* ---- buffering: whole lines, in batches unless a reader waits ---- */

/* The same one-connection capture n times over. */
static void captures(char *out, size_t len, unsigned n)
{
	size_t used = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, " tests/data/lab/captures/apache_none_tls12.pcap");
}

Test(cli, lines_leave_in_batches_unless_line_buffered)
{
	static char batched[1 << 16], args[8192], files[4096];
	const char *sp;
	unsigned writes[2];

	if (system("strace -o /dev/null true >/dev/null 2>&1") != 0)
		cr_skip_test("strace cannot trace here (scripts/deps test installs it)");
	captures(files, sizeof(files), 40);
	for (int lb = 0; lb < 2; lb++) {
		/* the writes to standard output, counted by strace, then the output
		 * (LeakSanitizer cannot run under ptrace: off for this run) */
		test_fmt(args, "--version >/dev/null; { T=$(mktemp); ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "
			       "strace -f -qq -e trace=write -o $T \"$MTLSDIAG_BIN\" "
			       "pcap%s%s >$T.out && grep -c 'write(1,' $T; cat $T.out; rm -f $T $T.out; }",
			 lb ? " --line-buffered" : "", files);
		run(&r, args);
		cr_assert_eq(r.status, 0, "%s", r.err);
		writes[lb] = (unsigned)strtoul(r.out, NULL, 10);
		sp = strchr(r.out, '\n');
		cr_assert_not_null(sp);
		cr_assert_eq(lines(sp + 1), 41, "40 lines and the summary: %s", sp + 1);
		cr_assert(strstr(sp + 1, "40 connections: 40 client_sent_no_cert\n"), "%s", sp + 1);
		if (!lb)
			snprintf(batched, sizeof(batched), "%s", sp + 1);
		else
			cr_assert_str_eq(sp + 1, batched, "the same lines either way");
	}
	cr_assert_eq(writes[0], 1, "41 lines (10 KB) to a file leave in one write, not %u", writes[0]);
	cr_assert_geq(writes[1], 41, "--line-buffered: each line as it is made, not %u writes", writes[1]);
}

Test(cli, lines_lost_to_a_full_disk_are_counted_and_said)
{
	static char args[8192], files[4096];

	captures(files, sizeof(files), 3);
	test_fmt(args, "--version >/dev/null; { \"$MTLSDIAG_BIN\" pcap%s >/dev/full; }", files);
	run(&r, args);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_str_eq(r.err, "mtlsdiag pcap: standard output: No space left on device: records are being lost "
				"(each written whole or not at all)\n"
				"mtlsdiag pcap: standard output: 4 records lost (No space left on device)\n");
	/* both outputs full: each says so, the lines first */
	test_fmt(args, "--version >/dev/null; { \"$MTLSDIAG_BIN\" pcap --json /dev/full --line-buffered%s >/dev/full; }",
		 files);
	run(&r, args);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "mtlsdiag pcap: standard output: 4 records lost (No space left on device)\n"
				"mtlsdiag pcap: --json /dev/full: 4 records lost (No space left on device)\n"), "%s", r.err);
}

/* A whole file, NUL-terminated ("" when it cannot be read). */
static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *in = fopen(path, "rb"), *out = open_memstream(&text, &len);
	char buf[4096];
	size_t n;

	cr_assert_not_null(out);
	while (in && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (in)
		fclose(in);
	fclose(out);
	return text;
}

/* ---- one CPU or two: the same bytes ---- */

/* A busy capture (bench/pcapmul: every lab capture four times, 60
 * connections open at once, interleaved packet by packet) read with every
 * CPU there is, where the connections are decided on one thread and their
 * lines and records written on another (and with three CPUs or more the
 * packets read on a third), and then with one, where a single thread does
 * it all: the same lines and records, byte for byte, in the same order,
 * every connection once. */
Test(cli, a_busy_capture_says_the_same_bytes_with_one_cpu_or_two, .timeout = 120)
{
	const char *mul = getenv("MTLSDIAG_PCAPMUL");
	char dir[] = "/tmp/mtlsdiag-cli-cpus-XXXXXX", args[1024], path[128];
	char *text[2], *json[2], summary[128];
	unsigned copies;
	cpu_set_t all, one;
	int cpu;

	cr_assert(mul && *mul, "MTLSDIAG_PCAPMUL is not set");
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	if (CPU_COUNT(&all) < 2)
		cr_skip_test("one CPU here: there is no second thread to compare with");
	cr_assert_not_null(mkdtemp(dir));
	test_fmt(args, "--version >/dev/null && N=$(ls tests/data/lab/captures/*.pcap | wc -l) && "
		       "'%s' -n $((4 * N)) -w 60 -s 3 -o '%s/busy.pcap' tests/data/lab/captures/*.pcap && echo $N",
		 mul, dir);
	run(&r, args);
	cr_assert_eq(r.status, 0, "%s", r.err);
	copies = 4 * (unsigned)strtoul(r.out, NULL, 10);
	cr_assert_gt(copies, 400, "%s", r.out);
	for (int k = 0; k < 2; k++) {
		if (k == 1) {
			/* the child and its threads on the first CPU alone */
			for (cpu = 0; !CPU_ISSET(cpu, &all); cpu++)
				;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
		}
		test_fmt(args, "--version >/dev/null && { \"$MTLSDIAG_BIN\" pcap --json '%s/%d.json' '%s/busy.pcap' >'%s/%d.txt'; }",
			 dir, k, dir, dir, k);
		run(&r, args);
		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert_str_empty(r.err);
		test_fmt(path, "%s/%d.txt", dir, k);
		text[k] = slurp(path);
		test_fmt(path, "%s/%d.json", dir, k);
		json[k] = slurp(path);
	}
	cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
	test_fmt(summary, "\n%u connections: ", copies);
	cr_assert(strstr(text[0], summary), "every connection once: %s", strrchr(text[0], '\n') ?: "");
	cr_assert_eq(lines(text[0]), copies + 1, "a line each and the summary");
	cr_assert_eq(lines(json[0]), copies + 1, "a record each and the summary");
	cr_assert_str_eq(text[0], text[1], "the human lines, two CPUs then one");
	cr_assert_str_eq(json[0], json[1], "the JSON records, two CPUs then one");
	for (int k = 0; k < 2; k++) {
		free(text[k]);
		free(json[k]);
	}
	test_fmt(args, "rm -rf '%s'", dir);
	cr_assert_eq(system(args), 0);
}

/* SIGTERM or SIGINT while a capture is read from a pipe that has gone
 * quiet: reading stops, and what was read is decided and written whole,
 * lines, records and summary, with one line on standard error; exit 2. */
Test(cli, a_signal_stops_reading_and_what_was_read_is_written_whole)
{
	static const int sigs[] = { SIGTERM, SIGINT };
	const char *bin = getenv("MTLSDIAG_BIN");

	cr_assert(bin && *bin);
	for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) {
		char dir[] = "/tmp/mtlsdiag-cli-sig-XXXXXX", fifo[64], json[64], outp[64], errp[64];
		char *capture = NULL, *out = NULL, *jtext = NULL, *err = NULL;
		size_t caplen = 0;
		pid_t pid;
		int fd, st;

		cr_assert_not_null(mkdtemp(dir));
		test_fmt(fifo, "%s/in", dir);
		test_fmt(json, "%s/j", dir);
		test_fmt(outp, "%s/out", dir);
		test_fmt(errp, "%s/err", dir);
		cr_assert_eq(mkfifo(fifo, 0600), 0);
		{
			struct stat sb;
			const char *cap = test_path("tests/data/lab/captures/apache_none_tls12.pcap");

			cr_assert_eq(stat(cap, &sb), 0);
			capture = slurp(cap);
			caplen = (size_t)sb.st_size;
		}
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			dup2(o, 1);
			dup2(e, 2);
			alarm(20);
			execl(bin, bin, "pcap", "--json", json, fifo, (char *)NULL);
			_exit(127);
		}
		fd = open(fifo, O_WRONLY);
		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, capture, caplen), (ssize_t)caplen);
		/* the connection has been read, the pipe stays open and quiet */
		usleep(300000);
		kill(pid, sigs[k]);
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		close(fd);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
		out = slurp(outp);
		jtext = slurp(json);
		err = slurp(errp);
		cr_assert_eq(lines(out), 2, "the line and the summary: %s", out);
		cr_assert(strstr(out, "client did not send cert") && strstr(out, "\n1 connection: 1 client_sent_no_cert\n"),
			  "%s", out);
		cr_assert_eq(lines(jtext), 2, "the record and the summary: %s", jtext);
		cr_assert(strncmp(jtext, "{\"type\":\"connection\"", 20) == 0 && strstr(jtext, "}\n{\"type\":\"summary\""),
			  "%s", jtext);
		cr_assert(strstr(err, sigs[k] == SIGINT ? "mtlsdiag pcap: SIGINT: stopped reading" :
							   "mtlsdiag pcap: SIGTERM: stopped reading"), "%s", err);
		free(capture);
		free(out);
		free(jtext);
		free(err);
		unlink(fifo);
		unlink(json);
		unlink(outp);
		unlink(errp);
		rmdir(dir);
	}
}
