/* Tests for --evidence DIR on live connections: `mtlsdiag proxy` in
 * passthrough between curl and a real nginx, and `mtlsdiag probe` against
 * openssl s_server (the lab PKI, free loopback ports).  The connections
 * that did not end well get a folder; connection.json is the command's
 * own --json record; report.md begins with the verdict sentence;
 * handshake.pcap re-analyses to the same verdict (the probe's with its
 * keys.log: the same verdict, reason and basis). */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/codes.h"
#include "proxyutil.h"
#include "testutil.h"

/* The one connection record of mtlsdiag pcap on a capture (with a key
 * log when given), into rec. */
static void reanalyse(const char *pcap, const char *keylog, char *rec, size_t len)
{
	const char *out = px_tmp("reanalysed.json");
	char *argv[] = { getenv("MTLSDIAG_BIN"), "pcap", "--json", (char *)out, "-q", (char *)pcap, NULL, NULL, NULL };
	char *text;

	if (keylog) {
		argv[5] = "--keylog";
		argv[6] = (char *)keylog;
		argv[7] = (char *)pcap;
	}
	cr_assert_eq(e2e_run(argv, &(struct e2e_io){ 0 }, 30000), 0, "mtlsdiag pcap %s", pcap);
	cr_assert_not_null(text = e2e_slurp(out));
	cr_assert(strstr(text, "\"type\":\"connection\""), "%s: %s", pcap, text);
	snprintf(rec, len, "%.*s", (int)strcspn(text, "\n"), text);
	free(text);
}

/* The checks every folder gets: the files, the verdict sentence, the
 * record as --json wrote it (line `json_line` of the command's output). */
static void check_folder(const char *dir, const char *name, const char *json_line)
{
	char path[512], first[512], expect[512], *report, *record;
	enum verdict_code code;
	const char *verdict = strchr(name, '-') + 1;

	for (code = 0; code < V_COUNT && strcmp(verdict_code_name(code), verdict) != 0; code++)
		;
	cr_assert_lt(code, V_COUNT, "%s", name);
	snprintf(path, sizeof(path), "%s/%s/report.md", dir, name);
	cr_assert_not_null(report = e2e_slurp(path), "%s: no report.md", name);
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(report, "\n"), report);
	snprintf(expect, sizeof(expect), "# Verdict: %s", verdict_code_text(code));
	cr_assert_eq(strncmp(first, expect, strlen(expect)), 0, "%s: report.md begins '%s'", name, first);
	cr_assert(strstr(report, "## Timeline of the handshake") && strstr(report, "ClientHello"), "%s", name);
	snprintf(path, sizeof(path), "%s/%s/connection.json", dir, name);
	cr_assert_not_null(record = e2e_slurp(path), "%s: no connection.json", name);
	cr_assert_eq(strlen(record), strlen(json_line) + 1, "%s: connection.json is not the --json record", name);
	cr_assert_eq(strncmp(record, json_line, strlen(json_line)), 0, "%s: connection.json differs", name);
	cr_assert_str_eq(px_json_field(record, "verdict"), verdict);
	free(record);
	free(report);
}

/* curl through the proxy to nginx (ssl_verify_client on): no
 * certificate, an expired one, a good one.  The two failures get their
 * folders, written from the bytes relayed; the success does not. */
Test(evidence_live, proxy_passthrough, .init = px_setup, .fini = px_teardown, .timeout = 60)
{
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64], names[16][64], verdict[64];
	const char *dir = px_tmp("ev"), *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	pid_t nginx, proxy;
	size_t n, k = 0;

	nginx = px_start_nginx(up_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--json", json, "--evidence", dir,
			 "--line-buffered", NULL);
	cr_assert(e2e_wait_contains(log, "listening on", 10000), "%s", e2e_tail(log, 400));
	cr_assert_str_eq(px_run_curl(px_port, "1.3", NULL, NULL).http_code, "400");
	cr_assert_str_neq(px_run_curl(px_port, "1.2", "expired", NULL).http_code, "200");
	cr_assert_str_eq(px_run_curl(px_port, "1.3", "good", NULL).http_code, "200");
	cr_assert(e2e_wait_lines(json, 3, 10000), "%s", e2e_tail(log, 400));
	cr_assert_eq(e2e_stop(proxy, 15000), 0, "%s", e2e_tail(log, 400));
	px_stop_child(nginx);
	n = e2e_numbered(dir, names, 16);
	cr_assert_eq(n, 2, "%zu folders: %s", n, e2e_tail(log, 600));
	/* the records of the connections that did not end well, in order */
	for (size_t i = 0; i < 3; i++) {
		char line[1 << 16];
		char pcap[512], rec[1 << 16];

		cr_assert(e2e_line(json, i, line, sizeof(line)), "no record %zu", i);
		if (strstr(line, "\"fault\":\"none\""))
			continue;
		cr_assert_lt(k, n);
		check_folder(dir, names[k], line);
		snprintf(pcap, sizeof(pcap), "%s/%s/handshake.pcap", dir, names[k]);
		reanalyse(pcap, NULL, rec, sizeof(rec));
		snprintf(verdict, sizeof(verdict), "%s", px_json_field(line, "verdict"));
		cr_assert_str_eq(px_json_field(rec, "verdict"), verdict, "%s re-analysed", names[k]);
		k++;
	}
	cr_assert_eq(k, n);
	cr_assert(strstr(names[0], "client_sent_no_cert") && strstr(names[1], "server_rejected_chain"), "%s %s",
		  names[0], names[1]);
	char index[512], *html;

	snprintf(index, sizeof(index), "%s/index.html", dir);
	cr_assert_not_null(html = e2e_slurp(index));
	cr_assert(strstr(html, "mtlsdiag proxy --listen"), "the command line is not in the index");
	free(html);
}

/* The probe without a certificate against s_server, which requires one:
 * a folder for each TLS version; with --evidence-keys each has the
 * session's own keys, and its capture re-analyses with them to the same
 * verdict, reason and basis. */
Test(evidence_live, probe_with_its_keys, .init = px_setup, .fini = px_teardown, .timeout = 60)
{
	uint16_t port = e2e_free_port();
	char target[64], names[16][64];
	const char *dir = px_tmp("ev"), *json = px_tmp("probe.json");
	pid_t server = px_start_s_server(port);
	size_t n;

	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	char *argv[] = { getenv("MTLSDIAG_BIN"), "probe", target, "--json", (char *)json, "--evidence", (char *)dir,
			 "--evidence-keys", "-q", NULL };

	/* exit 1: the server refused (no certificate) */
	cr_assert_eq(e2e_run(argv, &(struct e2e_io){ 0 }, 30000), 1);
	px_stop_child(server);
	n = e2e_numbered(dir, names, 16);
	cr_assert_eq(n, 2, "%zu folders", n);
	for (size_t i = 0; i < n; i++) {
		char line[1 << 16], pcap[512], keys[512], rec[1 << 16], want[3][64];
		struct stat st;

		cr_assert(e2e_line(json, i, line, sizeof(line)), "no record %zu", i);
		check_folder(dir, names[i], line);
		snprintf(pcap, sizeof(pcap), "%s/%s/handshake.pcap", dir, names[i]);
		snprintf(keys, sizeof(keys), "%s/%s/keys.log", dir, names[i]);
		cr_assert(stat(keys, &st) == 0 && st.st_size > 0, "%s: no keys.log", names[i]);
		snprintf(want[0], 64, "%s", px_json_field(line, "verdict"));
		snprintf(want[1], 64, "%s", px_json_field(line, "reason"));
		snprintf(want[2], 64, "%s", px_json_field(line, "basis"));
		reanalyse(pcap, keys, rec, sizeof(rec));
		cr_assert_str_eq(px_json_field(rec, "verdict"), want[0], "%s", names[i]);
		cr_assert_str_eq(px_json_field(rec, "reason"), want[1], "%s", names[i]);
		cr_assert_str_eq(px_json_field(rec, "basis"), want[2], "%s", names[i]);
	}
}

/* An intercepting listener in front of s_server: the client's leg of each
 * refused connection gets a folder, with the keys of that leg (the proxy
 * is its server); its capture re-analyses to the same verdict. */
Test(evidence_live, proxy_intercept_client_leg, .init = px_setup, .fini = px_teardown, .timeout = 60)
{
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64], names[16][64], key[512];
	const char *dir = px_tmp("ev"), *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	pid_t server, proxy;
	size_t n;

	/* a copy of the server's key the proxy accepts: readable by its owner only */
	snprintf(key, sizeof(key), "cp '%s' '%s' && chmod 600 '%s'", px_pki("server.key"), px_tmp("server.key"),
		 px_tmp("server.key"));
	cr_assert_eq(system(key), 0);
	server = px_start_s_server(up_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--intercept", "--ca-bundle",
			 px_pki("client-root.pem"), "--server-cert", px_pki("server.pem"), "--server-key",
			 px_tmp("server.key"), "--json", json, "--evidence", dir, "--evidence-keys", "--line-buffered", NULL);
	cr_assert(e2e_wait_contains(log, "listening on", 15000), "%s", e2e_tail(log, 400));
	cr_assert_neq(px_run_curl(px_port, "1.3", NULL, NULL).exit_code, -1);
	cr_assert_neq(px_run_curl(px_port, "1.2", "expired", NULL).exit_code, -1);
	cr_assert(e2e_wait_lines(json, 2, 10000), "%s", e2e_tail(log, 400));
	cr_assert_eq(e2e_stop(proxy, 15000), 0, "%s", e2e_tail(log, 400));
	px_stop_child(server);
	n = e2e_numbered(dir, names, 16);
	cr_assert_eq(n, 2, "%zu folders: %s", n, e2e_tail(log, 600));
	for (size_t i = 0; i < n; i++) {
		char line[1 << 16], pcap[512], keys[512], rec[1 << 16], verdict[64];
		struct stat st;

		cr_assert(e2e_line(json, i, line, sizeof(line)), "no record %zu", i);
		cr_assert_str_eq(px_json_field(line, "mode"), "intercept");
		check_folder(dir, names[i], line);
		snprintf(pcap, sizeof(pcap), "%s/%s/handshake.pcap", dir, names[i]);
		snprintf(keys, sizeof(keys), "%s/%s/keys.log", dir, names[i]);
		cr_assert(stat(keys, &st) == 0 && st.st_size > 0, "%s: no keys.log", names[i]);
		snprintf(verdict, sizeof(verdict), "%s", px_json_field(line, "verdict"));
		reanalyse(pcap, keys, rec, sizeof(rec));
		cr_assert_str_eq(px_json_field(rec, "verdict"), verdict, "%s re-analysed", names[i]);
	}
}
