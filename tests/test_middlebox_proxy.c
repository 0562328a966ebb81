/* `mtlsdiag proxy --connect --via GATEWAY` in front of a real
 * TLS-terminating gateway (mitmdump, explicit proxy mode) and a real
 * nginx with ssl_verify_client on: the proxy sees the client's TLS with
 * the gateway and names the middlebox live.  Ports: free ones. */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxyutil.h"
#include "testutil.h"

TestSuite(middlebox_proxy, .init = px_setup, .fini = px_teardown);

struct lab {
	uint16_t nginx_port, mitm_port, proxy_port;
	pid_t nginx, mitm, proxy;
	char mitm_ca[512];
};

static void lab_up(struct lab *l, const char *const *proxy_extra)
{
	const char *args[32];
	char listen[64], via[64];
	size_t n = 0;

	if (!px_have("mitmdump"))
		cr_skip_test("mitmproxy is not installed (scripts/deps test)");
	if (!px_have("nginx"))
		cr_skip_test("nginx is not installed (scripts/deps lab)");
	l->nginx_port = e2e_free_port();
	l->nginx = px_start_nginx(l->nginx_port);
	l->mitm_port = e2e_free_port();
	l->mitm = px_start_mitmproxy(l->mitm_port, px_tmp("mitmconf"));
	snprintf(l->mitm_ca, sizeof(l->mitm_ca), "%s/mitmproxy-ca-cert.pem", px_tmp("mitmconf"));
	l->proxy_port = e2e_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", l->proxy_port);
	snprintf(via, sizeof(via), "127.0.0.1:%u", l->mitm_port);
	args[n++] = "--listen";
	args[n++] = listen;
	args[n++] = "--connect";
	args[n++] = "--via";
	args[n++] = via;
	args[n++] = "--json";
	args[n++] = px_tmp("v.json");
	while (proxy_extra && *proxy_extra && n < 30)
		args[n++] = *proxy_extra++;
	args[n] = NULL;
	l->proxy = px_start_argv(NULL, px_tmp("proxy.log"), args);
}

static void lab_down(struct lab *l)
{
	px_stop_child(l->proxy);
	px_stop_child(l->mitm);
	px_stop_child(l->nginx);
}

/* curl through `mtlsdiag proxy` (which passes the CONNECT on to the
 * gateway), trusting the gateway's CA; the HTTP status. */
static const char *curl_through(const struct lab *l, const char *tls, bool with_cert, const char *keylog)
{
	static char code[16];
	char cmd[4096];
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "%s%s curl -sS --max-time 15 -o /dev/null -w '%%{http_code}' -x http://127.0.0.1:%u --cacert '%s' %s %s%s%s%s%s "
		 "https://localhost:%u/ 2>%s",
		 keylog ? "SSLKEYLOGFILE=" : "", keylog ? keylog : "", l->proxy_port, l->mitm_ca,
		 strcmp(tls, "1.2") == 0 ? "--tlsv1.2 --tls-max 1.2" : "--tlsv1.3",
		 with_cert ? "--cert '" : "", with_cert ? px_pki("good.pem") : "", with_cert ? "' --key '" : "",
		 with_cert ? px_pki("good.key") : "", with_cert ? "'" : "", l->nginx_port, px_tmp("curl.err"));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	code[0] = '\0';
	if (!fgets(code, sizeof(code), p))
		code[0] = '\0';
	pclose(p);
	return code;
}

static const char *json_record(void)
{
	static char line[1 << 16];

	cr_assert(e2e_wait_lines(px_tmp("v.json"), 1, 15000), "no verdict: %s", e2e_tail(px_tmp("proxy.log"), 600));
	cr_assert(e2e_line(px_tmp("v.json"), 0, line, sizeof(line)));
	return line;
}

static void assert_no_sanitizer_report(void)
{
	char *text = e2e_slurp(px_tmp("proxy.log"));

	if (text) {
		cr_assert(!strstr(text, "Sanitizer") && !strstr(text, "runtime error:"), "%s", text);
		free(text);
	}
}

Test(middlebox_proxy, via_mitmproxy_tls12_the_live_verdict_names_the_middlebox)
{
	struct lab l;
	const char *rec, *code, *line;
	char want[600];

	lab_up(&l, NULL);
	/* nginx's refusal reaches the client through the gateway */
	code = curl_through(&l, "1.2", true, NULL);
	cr_assert_str_eq(code, "400", "curl: %s %s", code, e2e_tail(px_tmp("curl.err"), 300));
	rec = json_record();
	cr_assert_str_eq(e2e_member(rec, "verdict"), "cert_not_requested", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "reason"), "not_requested_upstream", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "fault"), "middlebox", "%s", rec);
	cr_assert(strstr(rec, "the client was never asked for a certificate: TLS was terminated by O=mitmproxy, CN=mitmproxy (rule 'mitmproxy' (strong) in "), "%s", rec);
	/* the human line (the live log) says the same */
	/* (the server it names is the gateway: the proxy's upstream) */
	snprintf(want, sizeof(want), "-> localhost:%u TLS1.2 server did not request a cert: not_requested_upstream (fault: middlebox; observed) the client was never asked for a certificate: TLS was terminated by O=mitmproxy, CN=mitmproxy",
		 l.mitm_port);
	line = px_find_line(px_tmp("proxy.log"), want);
	cr_assert_not_null(line, "'%s' not in %s", want, e2e_tail(px_tmp("proxy.log"), 800));
	lab_down(&l);
	assert_no_sanitizer_report();
}

Test(middlebox_proxy, via_mitmproxy_tls13_with_the_clients_key_log)
{
	const char *extra[] = { "--keylog", NULL, NULL };
	struct lab l;
	const char *rec, *code;
	FILE *f;

	/* the key log must exist before the proxy follows it */
	f = fopen(px_tmp("client.keylog"), "w");
	cr_assert_not_null(f);
	fclose(f);
	extra[1] = px_tmp("client.keylog");
	lab_up(&l, extra);
	code = curl_through(&l, "1.3", false, px_tmp("client.keylog"));
	cr_assert_str_eq(code, "400", "curl: %s %s", code, e2e_tail(px_tmp("curl.err"), 300));
	rec = json_record();
	cr_assert_str_eq(e2e_member(rec, "basis"), "decrypted", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "fault"), "middlebox", "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "reason"), "not_requested_upstream", "%s", rec);
	cr_assert(strstr(rec, "TLS was terminated by O=mitmproxy, CN=mitmproxy (rule 'mitmproxy' (strong)"), "%s", rec);
	cr_assert(strstr(rec, "the middlebox's own connection to it sent no certificate"), "%s", rec);
	lab_down(&l);
	assert_no_sanitizer_report();
}

Test(middlebox_proxy, expect_server_ca_live_names_what_was_expected)
{
	const char *extra[] = { "--expect-server-ca", NULL, NULL };
	struct lab l;
	const char *rec;

	extra[1] = px_pki("server-root.pem");
	lab_up(&l, extra);
	cr_assert_str_eq(curl_through(&l, "1.2", false, NULL), "400");
	rec = json_record();
	cr_assert_str_eq(e2e_member(rec, "fault"), "middlebox", "%s", rec);
	cr_assert(strstr(rec, "the server chain is not the real server's: issued by O=mitmproxy, CN=mitmproxy, expected a chain from CN=Lab Server Root CA, O=mtlsdiag Lab (--expect-server-ca "),
		  "%s", rec);
	lab_down(&l);
	assert_no_sanitizer_report();
}

Test(middlebox_proxy, bad_expectation_is_one_line_and_status_2)
{
	struct e2e_io io = { .out = px_tmp("out"), .err = px_tmp("err") };
	const char *argv[] = { getenv("MTLSDIAG_BIN"), "proxy", "--listen", "127.0.0.1:1", "--connect",
			       "--expect-server-spki", "nothex", NULL };
	char *err;

	cr_assert_eq(e2e_run((char *const *)argv, &io, 10000), 2);
	err = e2e_slurp(px_tmp("err"));
	cr_assert_not_null(err);
	cr_assert(strncmp(err, "mtlsdiag proxy: --expect-server-spki 'nothex' is not a SHA-256 in hex", 69) == 0, "%s", err);
	cr_assert_eq(e2e_count_lines(px_tmp("err")), 1, "%s", err);
	free(err);
}
