/* Tests for `mtlsdiag pcap` as a user runs it: output, exit status and
 * one-line errors for bad input ($MTLSDIAG_BIN is the built program). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	cr_assert(strstr(r.out, "TLS1.2 client did not send cert (fault: client; observed) server asked for CAs [CN=Lab Client Root CA, O=mtlsdiag Lab]"), "%s", r.out);
	cr_assert(strstr(r.out, "server rejected chain: expired (fault: client; observed)"), "%s", r.out);
	cr_assert(strstr(r.out, "2 connections: 1 client_sent_no_cert, 1 server_rejected_chain\n"), "%s", r.out);
	cr_assert_str_empty(r.err);
}

Test(cli, json_lines_carry_the_contract_fields)
{
	static const char *const fields[] = {
		"\"type\":\"connection\"", "\"ts\":", "\"client\":{\"ip\":", "\"server\":{\"ip\":", "\"sni\":",
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
	cr_assert(strstr(r.out, "{\"type\":\"summary\",\"connections\":1,\"verdicts\":{\"client_sent_no_cert\":1}"), "%s", r.out);
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
	 * longer predicted, the handshake looked accepted */
	run(&r, "pcap --at 2020-06-01 tests/data/lab/captures/nginx-on_expired_tls12.pcap");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "client cert accepted"), "%s", r.out);
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

Test(cli, bad_flags_and_help)
{
	run(&r, "pcap --bogus x.pcap");
	cr_assert_eq(r.status, 2);
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
