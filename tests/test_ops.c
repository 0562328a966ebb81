/* Day-to-day operation of a long-running mtlsdiag: --metrics scraped over
 * HTTP after real connections (nginx with ssl_verify_client on, curl with
 * and without certificates, through the proxy in passthrough and in
 * --intercept): each counter must equal what the JSON records say, and
 * the histogram must add up. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxyutil.h"
#include "testutil.h"

TestSuite(ops, .init = px_setup, .fini = px_teardown);

static int sh(const char *cmd, char *out, size_t outlen);

/* GET http://127.0.0.1:port/PATH into a file of the scratch directory;
 * the HTTP code. */
static int http_get(uint16_t port, const char *path, const char *file)
{
	char cmd[1200], code[8] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 -o '%s' -w '%%{http_code}' 'http://127.0.0.1:%u%s'",
		 px_tmp(file), port, path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(code, sizeof(code), p))
		code[0] = '\0';
	pclose(p);
	return atoi(code);
}

/* The value of one sample ("mtlsdiag_open_connections",
 * "mtlsdiag_connections_total{verdict=\"x\"}") in an exposition; fails
 * the test when it is absent. */
static double sample(const char *text, const char *series)
{
	char key[300];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", series);
	p = strstr(text, key);
	cr_assert_not_null(p, "no sample %s in:\n%s", series, text);
	return strtod(p + strlen(key), NULL);
}

/* Every line is a comment (HELP, TYPE) or NAME[{LABELS}] VALUE, each
 * sample's metric announced by a TYPE line before it. */
static void check_exposition(const char *text)
{
	char *copy = strdup(text), *save = NULL, *line, typed[100][100];
	size_t n_typed = 0, i;

	cr_assert_not_null(copy);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[100];
		bool found = false;

		if (strncmp(line, "# HELP mtlsdiag_", 16) == 0)
			continue;
		if (sscanf(line, "# TYPE %99s", name) == 1) {
			cr_assert(n_typed < 100);
			snprintf(typed[n_typed++], sizeof(typed[0]), "%s", name);
			continue;
		}
		cr_assert(strncmp(line, "mtlsdiag_", 9) == 0, "not a sample: %s", line);
		cr_assert(sscanf(line, "%99[a-z_]", name) == 1);
		for (i = 0; i < n_typed && !found; i++) {
			size_t len = strlen(typed[i]);

			found = strncmp(name, typed[i], len) == 0 &&
				(name[len] == '\0' || strcmp(name + len, "_bucket") == 0 || strcmp(name + len, "_sum") == 0 ||
				 strcmp(name + len, "_count") == 0);
		}
		cr_assert(found, "no TYPE line before %s", line);
		cr_assert(strchr(line, ' '), "no value: %s", line);
	}
	free(copy);
}

/* Prometheus's own linter on a scraped file, where it is installed
 * (Debian: prometheus). */
static void promtool_check(const char *file)
{
	char cmd[700], out[4096];

	if (!px_have("promtool")) {
		cr_log_info("promtool is not installed: the exposition is checked by this suite's own reader only");
		return;
	}
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", px_tmp(file));
	cr_expect_eq(sh(cmd, out, sizeof(out)), 0, "%s", out);
	cr_expect_str_eq(out, "");
}

/* The histogram's buckets rise, +Inf is its count. */
static void check_histogram(const char *text, double count)
{
	static const char *const bounds[] = { "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
					      "0.5", "1", "2.5", "5", "10", "+Inf" };
	char series[120];
	double last = 0;
	size_t i;

	for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		double v;

		snprintf(series, sizeof(series), "mtlsdiag_handshake_duration_seconds_bucket{le=\"%s\"}", bounds[i]);
		v = sample(text, series);
		cr_expect_geq(v, last, "%s falls", series);
		last = v;
	}
	cr_expect_eq(last, count, "+Inf bucket %g, count %g", last, count);
}

/* The verdicts, faults and bytes of the JSON records of `json`, n of them. */
struct tally {
	char verdicts[16][40];
	unsigned by_verdict[16];
	size_t n_verdicts;
	unsigned client, server, none, unknown;
	unsigned long long from_client, from_server;
	double duration_s;      /* the connections' durations added up */
};

static void tally_records(const char *json, size_t n, struct tally *t)
{
	size_t r, i;

	memset(t, 0, sizeof(*t));
	for (r = 0; r < n; r++) {
		const char *rec = px_nth_line(json, r);
		char v[40], fault[20];

		snprintf(v, sizeof(v), "%s", e2e_member(rec, "verdict"));
		snprintf(fault, sizeof(fault), "%s", e2e_member(rec, "fault"));
		for (i = 0; i < t->n_verdicts && strcmp(t->verdicts[i], v) != 0; i++)
			;
		if (i == t->n_verdicts)
			snprintf(t->verdicts[t->n_verdicts++], sizeof(t->verdicts[0]), "%s", v);
		t->by_verdict[i]++;
		t->client += strcmp(fault, "client") == 0;
		t->server += strcmp(fault, "server") == 0;
		t->none += strcmp(fault, "none") == 0;
		t->unknown += strcmp(fault, "unknown") == 0;
		/* "relayed":{"client":N,"server":M} */
		{
			const char *p = strstr(rec, "\"relayed\":{\"client\":");
			unsigned long long c = 0, s = 0;

			cr_assert_not_null(p, "%s", rec);
			cr_assert_eq(sscanf(p, "\"relayed\":{\"client\":%llu,\"server\":%llu", &c, &s), 2, "%s", rec);
			t->from_client += c;
			t->from_server += s;
			/* duration_ms is cut to the millisecond below */
			t->duration_s += (strtod(e2e_member(rec, "duration_ms"), NULL) + 1) / 1000;
		}
	}
}

/* The metrics agree with the records: per verdict, per fault, bytes;
 * every connection closed; a handshake timed for each of `handshakes`. */
static void check_against(const char *text, const struct tally *t, size_t n, double handshakes)
{
	char series[160];
	double total = 0;
	size_t i;

	for (i = 0; i < t->n_verdicts; i++) {
		snprintf(series, sizeof(series), "mtlsdiag_connections_total{verdict=\"%s\"}", t->verdicts[i]);
		cr_expect_eq(sample(text, series), t->by_verdict[i], "%s", series);
	}
	/* and no connection counted anywhere else */
	for (const char *p = strstr(text, "\nmtlsdiag_connections_total{"); p;
	     p = strstr(p + 1, "\nmtlsdiag_connections_total{"))
		total += strtod(strchr(p, ' ') + 1, NULL);
	cr_expect_eq(total, (double)n, "the verdicts add up to %g, not %zu", total, n);
	cr_expect_eq(sample(text, "mtlsdiag_connections_by_fault_total{fault=\"client\"}"), t->client);
	cr_expect_eq(sample(text, "mtlsdiag_connections_by_fault_total{fault=\"server\"}"), t->server);
	cr_expect_eq(sample(text, "mtlsdiag_connections_by_fault_total{fault=\"none\"}"), t->none);
	cr_expect_eq(sample(text, "mtlsdiag_connections_by_fault_total{fault=\"unknown\"}"), t->unknown);
	cr_expect_eq(sample(text, "mtlsdiag_relayed_bytes_total{direction=\"client_to_server\"}"),
		     (double)t->from_client);
	cr_expect_eq(sample(text, "mtlsdiag_relayed_bytes_total{direction=\"server_to_client\"}"),
		     (double)t->from_server);
	cr_expect_eq(sample(text, "mtlsdiag_open_connections"), 0);
	cr_expect_eq(sample(text, "mtlsdiag_handshake_duration_seconds_count"), handshakes);
	check_histogram(text, handshakes);
	/* each handshake is part of its connection: the sum is more than 0
	 * and no more than the connections' durations */
	cr_expect_gt(sample(text, "mtlsdiag_handshake_duration_seconds_sum"), 0);
	cr_expect_leq(sample(text, "mtlsdiag_handshake_duration_seconds_sum"), t->duration_s, "handshakes %g s, connections %g s",
		      sample(text, "mtlsdiag_handshake_duration_seconds_sum"), t->duration_s);
}

/* The client certificate cases brought, and the TLS version of each. */
static const struct { const char *cert_case, *tls; } visits[] = {
	{ "good", "1.2" }, { "good", "1.3" }, { NULL, "1.2" }, { "expired", "1.2" }, { "good", "1.2" },
};
#define N_VISITS (sizeof(visits) / sizeof(visits[0]))

Test(ops, metrics_count_each_verdict_passthrough)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port(), mport = e2e_free_port();
	char listen[40], upstream[40], metrics[40];
	const char *json = px_tmp("proxy.json");
	pid_t nginx, proxy;
	struct tally t;
	char *text;
	size_t i;

	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", mport);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen, "--upstream", upstream, "--json", json, "--metrics",
			 metrics, NULL);
	cr_assert(px_find_line(px_tmp("proxy.log"), "metrics on http://"), "%s", e2e_tail(px_tmp("proxy.log"), 600));
	/* before any connection: every verdict at 0 */
	cr_assert_eq(http_get(mport, "/metrics", "m0"), 200);
	text = e2e_slurp(px_tmp("m0"));
	check_exposition(text);
	cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"client_cert_accepted\"}"), 0);
	cr_expect_eq(sample(text, "mtlsdiag_handshake_duration_seconds_count"), 0);
	free(text);
	for (i = 0; i < N_VISITS; i++)
		(void)px_run_curl(port, visits[i].tls, visits[i].cert_case, NULL);
	cr_assert(e2e_wait_lines(json, N_VISITS, 10000), "%s", e2e_tail(px_tmp("proxy.log"), 600));
	cr_assert_eq(http_get(mport, "/metrics", "m1"), 200);
	text = e2e_slurp(px_tmp("m1"));
	check_exposition(text);
	tally_records(json, N_VISITS, &t);
	cr_expect_geq(t.n_verdicts, 2, "the visits gave one verdict only");
	check_against(text, &t, N_VISITS, N_VISITS);
	promtool_check("m1");
	cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"client_cert_accepted\"}"), 3);
	/* no key log given: no lookup counted */
	cr_expect_eq(sample(text, "mtlsdiag_keylog_lookups_total{result=\"hit\"}"), 0);
	cr_expect_eq(sample(text, "mtlsdiag_keylog_lookups_total{result=\"miss\"}"), 0);
	free(text);
	/* anything but /metrics is not found; HEAD answers without a body,
	 * a POST is not allowed */
	cr_expect_eq(http_get(mport, "/", "m2"), 404);
	{
		char cmd[300], out[2048];

		snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 -I 'http://127.0.0.1:%u/metrics'", mport);
		cr_expect_eq(sh(cmd, out, sizeof(out)), 0);
		cr_expect(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
		cr_expect(strstr(out, "Content-Type: text/plain; version=0.0.4"), "%s", out);
		snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 -o /dev/null -w '%%{http_code} %%{size_download}' "
					   "--head 'http://127.0.0.1:%u/metrics'", mport);
		cr_expect_eq(sh(cmd, out, sizeof(out)), 0);
		cr_expect_str_eq(out, "200 0");
		snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 -o /dev/null -w '%%{http_code}' -X POST "
					   "'http://127.0.0.1:%u/metrics'", mport);
		cr_expect_eq(sh(cmd, out, sizeof(out)), 0);
		cr_expect_str_eq(out, "405");
	}
	px_stop_child(proxy);
	px_stop_child(nginx);
}

/* A lab key the proxy accepts: a copy readable by its owner only. */
static const char *private_key(const char *lab_key)
{
	char name[64], cmd[1200];

	snprintf(name, sizeof(name), "p-%s", lab_key);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 600 '%s'", px_pki(lab_key), px_tmp(name), px_tmp(name));
	cr_assert_eq(system(cmd), 0);
	return px_tmp(name);
}

Test(ops, metrics_count_each_verdict_intercept)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port(), mport = e2e_free_port();
	char listen[40], upstream[40], metrics[40], bundle[512], scert[512], ucert[512], uca[512];
	const char *json = px_tmp("proxy.json");
	const char *skey = private_key("server.key"), *ukey = private_key("good.key");
	pid_t nginx, proxy;
	struct tally t;
	char *text;
	size_t i;

	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", mport);
	snprintf(bundle, sizeof(bundle), "%s", px_pki("client-root.pem"));
	snprintf(scert, sizeof(scert), "%s", px_pki("server.pem"));
	snprintf(ucert, sizeof(ucert), "%s", px_pki("good-chain.pem"));
	snprintf(uca, sizeof(uca), "%s", px_pki("server-root.pem"));
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen, "--upstream", upstream, "--intercept", "--ca-bundle",
			 bundle, "--server-cert", scert, "--server-key", skey, "--upstream-cert", ucert, "--upstream-key",
			 ukey, "--upstream-ca", uca, "--json", json, "--metrics", metrics, NULL);
	for (i = 0; i < N_VISITS; i++)
		(void)px_run_curl(port, visits[i].tls, visits[i].cert_case, NULL);
	cr_assert(e2e_wait_lines(json, N_VISITS, 10000), "%s", e2e_tail(px_tmp("proxy.log"), 600));
	cr_assert_eq(http_get(mport, "/metrics", "m1"), 200);
	text = e2e_slurp(px_tmp("m1"));
	check_exposition(text);
	promtool_check("m1");
	tally_records(json, N_VISITS, &t);
	/* the stand-in sees every certificate: good, none, expired */
	cr_expect_eq(t.n_verdicts, 3);
	/* every client leg's handshake completes: the refusal is nginx's 400 */
	check_against(text, &t, N_VISITS, N_VISITS);
	cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"client_cert_accepted\"}"), 3);
	cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"client_sent_no_cert\"}"), 1);
	cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"server_rejected_chain\"}"), 1);
	/* the forwarded clients after the first went on its kept connection */
	cr_expect_eq(sample(text, "mtlsdiag_upstream_reused_total"), (double)px_count_lines(json, "\"reused\":true"));
	cr_expect_eq(sample(text, "mtlsdiag_upstream_reused_total"), 2);
	cr_expect_eq(sample(text, "mtlsdiag_upstream_resent_total"), 0);
	free(text);
	px_stop_child(proxy);
	px_stop_child(nginx);
}

Test(ops, metrics_address_refused)
{
	char *argv[] = { getenv("MTLSDIAG_BIN"), "proxy", "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
			 "--metrics", "nowhere", NULL };
	const char *err = px_tmp("err");
	struct e2e_io io = { NULL, NULL, err };

	cr_assert_not_null(argv[0], "MTLSDIAG_BIN is not set");
	cr_assert_eq(e2e_run(argv, &io, 10000), 2);
	cr_expect(px_find_line(err, "--metrics nowhere: expected ADDR:PORT"), "%s", e2e_tail(err, 400));
}

/* ---- --json-format ecs ---- */

/* Runs a shell command; its whole output into out. */
static int sh(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int status;

	cr_assert_not_null(p);
	if (out) {
		n = fread(out, 1, outlen - 1, p);
		out[n] = '\0';
	}
	while (fgetc(p) != EOF)
		;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `mtlsdiag pcap` on a lab capture into `json`, with more options. */
static void pcap_json(const char *capture, const char *json, const char *more)
{
	char cmd[2000];

	snprintf(cmd, sizeof(cmd), "'%s' pcap --json '%s' %s '%s' >/dev/null 2>&1", getenv("MTLSDIAG_BIN"), json, more,
		 test_path(capture));
	cr_assert_eq(sh(cmd, NULL, 0), 0, "%s", cmd);
}

/* jq's answer for `filter` over `file` (one line per record). */
static void jq(const char *file, const char *filter, char *out, size_t outlen)
{
	char cmd[2000];

	snprintf(cmd, sizeof(cmd), "jq -r '%s' '%s'", filter, file);
	cr_assert_eq(sh(cmd, out, outlen), 0, "jq failed: %s", cmd);
}

/* What ECS names, for the lab's nginx with a good and an expired client
 * certificate (TLS 1.2: every certificate in the clear). */
static const struct {
	const char *capture, *ecs;
} ecs_cases[] = {
	{ "tests/data/lab/captures/nginx-on_good_tls12.pcap",
	  "1.2\ttls\tTLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\ttrue\tgood-client\tLab Issuing CA\tlocalhost\tlocalhost\tclient_cert_accepted\tsuccess\tevent\n" },
	{ "tests/data/lab/captures/nginx-on_expired_tls12.pcap",
	  "1.2\ttls\tTLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\tfalse\texpired-client\tLab Issuing CA\tlocalhost\tlocalhost\tserver_rejected_chain\tfailure\talert\n" },
};

#define ECS_FIELDS "[.tls.version, .tls.version_protocol, .tls.cipher, .tls.established, .tls.client.x509.subject.common_name[0], " \
	".tls.client.x509.issuer.common_name[0], .tls.server.x509.subject.common_name[0], .tls.client.server_name, " \
	".event.action, .event.outcome, .event.kind] | @tsv"

Test(ops, ecs_records_carry_the_ecs_fields)
{
	const char *ecs = px_tmp("ecs.json"), *plain = px_tmp("plain.json");
	size_t i;

	cr_assert(px_have("jq"), "jq is not installed (scripts/deps test)");
	for (i = 0; i < sizeof(ecs_cases) / sizeof(ecs_cases[0]); i++) {
		char got[4096], want[4096];

		pcap_json(ecs_cases[i].capture, ecs, "--json-format ecs");
		pcap_json(ecs_cases[i].capture, plain, "");
		/* every line is JSON: the connection, then the summary */
		jq(ecs, ".event.dataset", got, sizeof(got));
		cr_expect_str_eq(got, "mtlsdiag.connection\nmtlsdiag.summary\n");
		jq(ecs, "select(.event.dataset == \"mtlsdiag.connection\") | " ECS_FIELDS, got, sizeof(got));
		cr_expect_str_eq(got, ecs_cases[i].ecs, "%s", ecs_cases[i].capture);
		/* source and destination are the record's client and server */
		jq(ecs, "select(.source) | [.source.ip, .source.port, .destination.ip, .destination.port, "
			".source.bytes, .destination.bytes, .\"@timestamp\", .ecs.version] | @tsv",
		   got, sizeof(got));
		jq(plain, "select(.type == \"connection\") | [.client.ip, .client.port, .server.ip, .server.port, "
			  ".bytes.client, .bytes.server, .ts, \"" "8.11.0" "\"] | @tsv",
		   want, sizeof(want));
		cr_expect_str_eq(got, want);
		/* the leaf's fingerprint and dates */
		jq(ecs, "select(.tls) | [.tls.client.hash.sha256, .tls.client.x509.not_after, .tls.server.hash.sha256] | @tsv",
		   got, sizeof(got));
		jq(plain, "select(.type == \"connection\") | [.client_chain[0].sha256, .client_chain[0].not_after, "
			  ".server_chain[0].sha256] | @tsv",
		   want, sizeof(want));
		cr_expect_str_eq(got, want);
		/* everything else: the default record, whole, under mtlsdiag */
		jq(ecs, "select(.mtlsdiag.type == \"connection\") | .mtlsdiag | tojson", got, sizeof(got));
		jq(plain, "select(.type == \"connection\") | tojson", want, sizeof(want));
		cr_expect_str_eq(got, want);
		jq(ecs, "select(.mtlsdiag.type == \"summary\") | .mtlsdiag | tojson", got, sizeof(got));
		jq(plain, "select(.type == \"summary\") | tojson", want, sizeof(want));
		cr_expect_str_eq(got, want);
	}
}

Test(ops, ecs_format_refuses_other_words)
{
	char cmd[1200], out[600];

	snprintf(cmd, sizeof(cmd), "'%s' pcap --json-format xml --json - '%s' 2>&1", getenv("MTLSDIAG_BIN"),
		 test_path("tests/data/lab/captures/nginx-on_good_tls12.pcap"));
	cr_expect_eq(sh(cmd, out, sizeof(out)), 2);
	cr_expect_str_eq(out, "mtlsdiag pcap: --json-format 'xml': use default or ecs (ecs: Elastic Common Schema names, "
			      "doc/ecs.md)\n");
}

/* The proxy's records in ECS: its own members (mode, relayed) are under
 * mtlsdiag with the rest. */
Test(ops, ecs_from_the_proxy)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port();
	char listen[40], upstream[40], got[4096];
	const char *json = px_tmp("proxy.json");
	pid_t nginx, proxy;

	cr_assert(px_have("jq"), "jq is not installed (scripts/deps test)");
	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen, "--upstream", upstream, "--json", json, "--json-format",
			 "ecs", NULL);
	(void)px_run_curl(port, "1.2", "good", NULL);
	(void)px_run_curl(port, "1.2", NULL, NULL);
	cr_assert(e2e_wait_lines(json, 2, 10000), "%s", e2e_tail(px_tmp("proxy.log"), 600));
	jq(json, "[.tls.established, .tls.client.x509.subject.common_name[0] // \"-\", .event.action, .mtlsdiag.mode, "
		 ".mtlsdiag.relayed.client == .source.bytes, .destination.port] | @tsv",
	   got, sizeof(got));
	snprintf(listen, sizeof(listen), "%u", nginx_port);
	{
		char want[400];

		snprintf(want, sizeof(want), "true\tgood-client\tclient_cert_accepted\tstatic\ttrue\t%u\n"
					     "false\t-\tclient_sent_no_cert\tstatic\ttrue\t%u\n", nginx_port, nginx_port);
		cr_expect_str_eq(got, want);
	}
	px_stop_child(proxy);
	px_stop_child(nginx);
}

/* ---- --syslog, --quiet, --verbose ---- */

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

/* A unix datagram socket bound at path: the test's system log. */
static int bind_log_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert(strlen(path) < sizeof(sun.sun_path), "scratch path too long for a socket: %s", path);
	strcpy(sun.sun_path, path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "bind %s", path);
	return fd;
}

/* The next datagram (waiting up to timeout_ms), NUL-terminated; 0 when
 * none came. */
static int next_datagram(int fd, char *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	n = recv(fd, buf, len - 1, 0);
	cr_assert(n > 0);
	buf[n] = '\0';
	return 1;
}

/* A datagram in glibc's /dev/log form: "<PRI>Mmm dd hh:mm:ss
 * mtlsdiag[PID]: MSG"; its priority and message. */
static void parse_datagram(const char *d, int *pri, const char **msg)
{
	char month[4];
	int day, h, m, s, n = 0;
	long pid;

	cr_assert_eq(sscanf(d, "<%d>%3s %2d %2d:%2d:%2d mtlsdiag[%ld]: %n", pri, month, &day, &h, &m, &s, &pid, &n), 7,
		     "not a syslog datagram: %s", d);
	cr_assert(n > 0, "%s", d);
	cr_expect(strstr("JanFebMarAprMayJunJulAugSepOctNovDec", month), "%s", d);
	cr_expect(d[strlen(d) - 1] != '\n', "a datagram carries no newline");
	*msg = d + n;
}

Test(ops, syslog_from_the_proxy)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port();
	char listen[40], upstream[40], sock_opt[400], d[8192];
	const char *log = px_tmp("proxy.log"), *json = px_tmp("proxy.json"), *msg;
	int fd = bind_log_socket(px_tmp("log.sock")), pri;
	pid_t nginx, proxy;
	size_t lines = 0, i;
	char *text;

	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	snprintf(sock_opt, sizeof(sock_opt), "--syslog=%s", px_tmp("log.sock"));
	proxy = px_start(log, "--listen", listen, "--upstream", upstream, "--json", json, sock_opt, NULL);
	(void)px_run_curl(port, "1.2", "good", NULL);
	(void)px_run_curl(port, "1.2", NULL, NULL);
	cr_assert(e2e_wait_lines(json, 2, 10000), "%s", e2e_tail(log, 600));
	cr_expect_eq(e2e_stop(proxy, 10000), 0);
	/* every connection line of the log, in order, came as a datagram:
	 * the same text, info for the accepted, warning for the refused */
	text = e2e_slurp(log);
	for (i = 0;; i++) {
		char line[8192];

		snprintf(line, sizeof(line), "%s", px_nth_line(log, i));
		if (!*line)
			break;
		line[strcspn(line, "\n")] = '\0';
		if (!strstr(line, " -> "))
			continue;
		cr_assert(next_datagram(fd, d, sizeof(d), 2000), "no datagram for: %s", line);
		parse_datagram(d, &pri, &msg);
		cr_expect_str_eq(msg, line);
		cr_expect_eq(pri, strstr(line, "fault: none") ? 3 * 8 + 6 : 3 * 8 + 4, "%s", d);
		lines++;
	}
	cr_expect_geq(lines, 2, "%s", text);
	cr_expect_eq(next_datagram(fd, d, sizeof(d), 100), 0, "a datagram more: %s", d);
	free(text);
	close(fd);
	px_stop_child(nginx);
}

/* `mtlsdiag pcap ARGS` on one lab capture; its standard output into out,
 * the exit status returned. */
static int pcap_run(const char *args, const char *capture, char *out, size_t outlen)
{
	char cmd[2000];

	snprintf(cmd, sizeof(cmd), "'%s' pcap %s '%s' 2>&1", getenv("MTLSDIAG_BIN"), args, test_path(capture));
	return sh(cmd, out, outlen);
}

#define EXPIRED "tests/data/lab/captures/nginx-on_expired_tls12.pcap"

Test(ops, syslog_from_pcap)
{
	char args[600], out[8192], d[8192];
	const char *msg;
	int fd = bind_log_socket(px_tmp("log.sock")), pri;

	snprintf(args, sizeof(args), "--syslog=%s", px_tmp("log.sock"));
	cr_assert_eq(pcap_run(args, EXPIRED, out, sizeof(out)), 0, "%s", out);
	cr_assert(next_datagram(fd, d, sizeof(d), 2000));
	parse_datagram(d, &pri, &msg);
	*strchr(out, '\n') = '\0';
	cr_expect_str_eq(msg, out);
	cr_expect_eq(pri, 3 * 8 + 4, "the client must act: a warning");
	cr_expect_eq(next_datagram(fd, d, sizeof(d), 100), 0, "one connection, one datagram: %s", d);
	close(fd);
	/* no system log there: one line, exit 2 */
	cr_expect_eq(pcap_run("--syslog=/nonexistent/log", EXPIRED, out, sizeof(out)), 2);
	cr_expect_str_eq(out, "mtlsdiag pcap: --syslog /nonexistent/log: cannot reach the system log: No such file or "
			      "directory\n");
}

/* -v: under the line, the record's evidence and remedies, in order; -q:
 * the summary only. */
Test(ops, pcap_verbose_and_quiet)
{
	char plain[8192], verbose[16384], quiet[1024], want[16384], ev[8192], rem[4096];
	const char *json = px_tmp("plain.json");
	char *nl;

	cr_assert_eq(pcap_run("", EXPIRED, plain, sizeof(plain)), 0);
	cr_assert_eq(pcap_run("-v", EXPIRED, verbose, sizeof(verbose)), 0);
	cr_assert_eq(pcap_run("-q", EXPIRED, quiet, sizeof(quiet)), 0);
	pcap_json(EXPIRED, json, "");
	jq(json, "select(.type == \"connection\") | .evidence[] | \"  - \" + .", ev, sizeof(ev));
	jq(json, "select(.type == \"connection\") | .remedies[] | \"  remedy: \" + .", rem, sizeof(rem));
	cr_assert(strlen(ev) > 0 && strlen(rem) > 0, "the expired certificate has evidence and a remedy");
	/* plain: the line, then the summary */
	nl = strchr(plain, '\n');
	cr_assert_not_null(nl);
	snprintf(want, sizeof(want), "%.*s%s%s%s", (int)(nl - plain + 1), plain, ev, rem, nl + 1);
	cr_expect_str_eq(verbose, want);
	cr_expect_str_eq(quiet, nl + 1);
	cr_expect_str_eq(quiet, "1 connection: 1 server_rejected_chain\n");
}

/* The proxy with -q writes no line per connection (its records still);
 * with -v each final line has the evidence under it. */
Test(ops, proxy_quiet_and_verbose)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port(), vport = e2e_free_port();
	char listen[40], vlisten[40], upstream[40], ev[8192];
	const char *qlog = px_tmp("quiet.log"), *vlog = px_tmp("verbose.log");
	const char *qjson = px_tmp("quiet.json"), *vjson = px_tmp("verbose.json");
	pid_t nginx, quiet, verbose;
	char *text, *at;

	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(vlisten, sizeof(vlisten), "127.0.0.1:%u", vport);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	quiet = px_start(qlog, "--listen", listen, "--upstream", upstream, "--json", qjson, "-q", NULL);
	verbose = px_start(vlog, "--listen", vlisten, "--upstream", upstream, "--json", vjson, "--verbose", NULL);
	(void)px_run_curl(port, "1.2", "expired", NULL);
	(void)px_run_curl(vport, "1.2", "expired", NULL);
	cr_assert(e2e_wait_lines(qjson, 1, 10000), "%s", e2e_tail(qlog, 600));
	cr_assert(e2e_wait_lines(vjson, 1, 10000), "%s", e2e_tail(vlog, 600));
	cr_expect_eq(e2e_stop(quiet, 10000), 0);
	cr_expect_eq(e2e_stop(verbose, 10000), 0);
	cr_expect_eq(px_count_lines(qlog, " -> "), 0, "%s", e2e_tail(qlog, 600));
	cr_expect_eq(px_count_lines(qlog, "listening on"), 1);
	cr_expect_eq(px_count_lines(qlog, "stopped"), 1);
	/* the final line ("[closed by ...]"), then its evidence, as the record has it */
	jq(vjson, ".evidence[] | \"  - \" + .", ev, sizeof(ev));
	text = e2e_slurp(vlog);
	at = strstr(text, "B]\n");
	cr_assert_not_null(at, "no final line: %s", text);
	cr_expect(strncmp(at + 3, ev, strlen(ev)) == 0, "under the final line:\n%s\nnot:\n%s", at + 3, ev);
	cr_expect(strstr(at, "\n  remedy: "), "%s", text);
	free(text);
	px_stop_child(nginx);
}

/* The probe: -q prints nothing and exits as without it; -v adds the
 * evidence lines. */
Test(ops, probe_quiet_and_verbose)
{
	uint16_t nginx_port = e2e_free_port();
	char cmd[2000], plain[16384], quiet[1024], verbose[32768];
	int st_plain, st_quiet, st_verbose;
	pid_t nginx = px_start_nginx(nginx_port);

	snprintf(cmd, sizeof(cmd), "'%s' probe --tls 1.2 127.0.0.1:%u 2>/dev/null", getenv("MTLSDIAG_BIN"), nginx_port);
	st_plain = sh(cmd, plain, sizeof(plain));
	snprintf(cmd, sizeof(cmd), "'%s' probe -q --tls 1.2 127.0.0.1:%u 2>/dev/null", getenv("MTLSDIAG_BIN"),
		 nginx_port);
	st_quiet = sh(cmd, quiet, sizeof(quiet));
	snprintf(cmd, sizeof(cmd), "'%s' probe -v --tls 1.2 127.0.0.1:%u 2>/dev/null", getenv("MTLSDIAG_BIN"),
		 nginx_port);
	st_verbose = sh(cmd, verbose, sizeof(verbose));
	px_stop_child(nginx);
	/* nginx asks, the probe brings no certificate: refused */
	cr_expect_eq(st_plain, 1, "%s", plain);
	cr_expect_eq(st_quiet, st_plain);
	cr_expect_eq(st_verbose, st_plain);
	cr_expect_str_eq(quiet, "");
	cr_expect(strstr(plain, "client did not send cert"), "%s", plain);
	cr_expect(!strstr(plain, "\n  - "), "%s", plain);
	cr_expect(strstr(verbose, "\n  - the server asked for a client certificate"), "%s", verbose);
	/* the rest as without -v */
	cr_expect(strstr(verbose, "  probe direct TLS 1.2"), "%s", verbose);
}

/* ---- capture --metrics ---- */

#include <signal.h>

/* mtlsdiag capture ARGS... (NULL-terminated), its standard error in
 * cap.err; the pid once it listens, or 0 (the test skipped) when this
 * process may not capture. */
static pid_t start_capture(const char *const *args)
{
	char *argv[32];
	struct e2e_io io = { NULL, px_tmp("cap.out"), px_tmp("cap.err") };
	size_t n = 0;
	pid_t pid;

	argv[n++] = getenv("MTLSDIAG_BIN");
	argv[n++] = "capture";
	while (*args && n < 31)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	cr_assert_not_null(argv[0], "MTLSDIAG_BIN is not set");
	pid = e2e_spawn(argv, &io, 40);
	cr_assert(pid > 0);
	if (!e2e_wait_contains(px_tmp("cap.err"), "listening on", 10000)) {
		(void)e2e_stop(pid, 3000);
		if (px_find_line(px_tmp("cap.err"), "CAP_NET_RAW"))
			cr_skip_test("cannot capture on lo here: %s", e2e_tail(px_tmp("cap.err"), 300));
		else
			cr_assert_fail("capture did not start: %s", e2e_tail(px_tmp("cap.err"), 400));
		return 0;
	}
	return pid;
}

Test(ops, metrics_count_each_verdict_live_capture)
{
	uint16_t nginx_port = e2e_free_port(), mport = e2e_free_port();
	char filter[40], metrics[40];
	const char *json = px_tmp("cap.json");
	pid_t nginx, cap;
	struct tally t;
	char *text;
	size_t i;
	double received = 0;

	snprintf(filter, sizeof(filter), "tcp port %u", nginx_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", mport);
	nginx = px_start_nginx(nginx_port);
	{
		const char *args[] = { "-i", "lo", "--json", json, "--metrics", metrics, "--idle-timeout", "2", filter, NULL };

		if (!(cap = start_capture(args))) {
			px_stop_child(nginx);
			return;
		}
	}
	for (i = 0; i < N_VISITS; i++)
		(void)px_run_curl(nginx_port, visits[i].tls, visits[i].cert_case, NULL);
	cr_assert(e2e_wait_lines(json, N_VISITS, 15000), "%s", e2e_tail(px_tmp("cap.err"), 600));
	/* the kernel's counts are read every second */
	for (i = 0; i < 30 && received == 0; i++) {
		cr_assert_eq(http_get(mport, "/metrics", "m1"), 200);
		text = e2e_slurp(px_tmp("m1"));
		received = sample(text, "mtlsdiag_capture_received_packets_total");
		if (received == 0) {
			free(text);
			usleep(100000);
		}
	}
	cr_assert_gt(received, 10 * N_VISITS, "%s", text);
	check_exposition(text);
	promtool_check("m1");
	/* no record in memory here: the JSON lines have no relayed member */
	{
		size_t r, j;
		char series[160];

		memset(&t, 0, sizeof(t));
		for (r = 0; r < N_VISITS; r++) {
			const char *v = e2e_member(px_nth_line(json, r), "verdict");

			for (j = 0; j < t.n_verdicts && strcmp(t.verdicts[j], v) != 0; j++)
				;
			if (j == t.n_verdicts)
				snprintf(t.verdicts[t.n_verdicts++], sizeof(t.verdicts[0]), "%s", v);
			t.by_verdict[j]++;
		}
		cr_expect_geq(t.n_verdicts, 2);
		for (j = 0; j < t.n_verdicts; j++) {
			snprintf(series, sizeof(series), "mtlsdiag_connections_total{verdict=\"%s\"}", t.verdicts[j]);
			cr_expect_eq(sample(text, series), t.by_verdict[j], "%s", series);
		}
	}
	{
		double dropped = sample(text, "mtlsdiag_capture_dropped_packets_total{by=\"kernel\"}");
		double if_dropped = sample(text, "mtlsdiag_capture_dropped_packets_total{by=\"interface\"}");
		char line[4096];

		/* a busy machine may drop packets, and a connection short of
		 * some is judged on what came: the good ones are accepted when
		 * none was lost */
		if (dropped == 0 && if_dropped == 0)
			cr_expect_eq(sample(text, "mtlsdiag_connections_total{verdict=\"client_cert_accepted\"}"), 3);
		cr_expect(!strstr(text, "mtlsdiag_relayed_bytes_total"), "a capture relays nothing");
		free(text);
		cr_assert_eq(kill(cap, SIGINT), 0);
		cr_expect_eq(e2e_wait(cap, 10000), 0, "%s", e2e_tail(px_tmp("cap.err"), 400));
		/* the counts only grow: the summary's, read at the stop, are no smaller */
		cr_assert(e2e_line(json, N_VISITS, line, sizeof(line)));
		cr_expect_geq(strtod(e2e_member(line, "capture_received"), NULL), received, "%s", line);
		cr_expect_geq(strtod(e2e_member(line, "capture_dropped"), NULL), dropped, "%s", line);
		cr_expect_geq(strtod(e2e_member(line, "capture_if_dropped"), NULL), if_dropped, "%s", line);
	}
	px_stop_child(nginx);
}

/* The key log's lookups: curl writes its secrets where the proxy reads
 * them (a hit), or elsewhere (a miss); the counters say what the records
 * say. */
Test(ops, metrics_count_key_log_hits_and_misses)
{
	uint16_t nginx_port = e2e_free_port(), port = e2e_free_port(), mport = e2e_free_port();
	char listen[40], upstream[40], metrics[40], cmd[2000];
	const char *json = px_tmp("proxy.json"), *keys = px_tmp("keys.log"), *other = px_tmp("other.log");
	const char *const keylogs[] = { keys, other, keys };
	pid_t nginx, proxy;
	char *text;
	size_t i, hits = 0, misses = 0;
	FILE *f = fopen(keys, "w");

	cr_assert_not_null(f);
	fclose(f);
	nginx = px_start_nginx(nginx_port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", nginx_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", mport);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen, "--upstream", upstream, "--json", json, "--metrics",
			 metrics, "--keylog", keys, NULL);
	for (i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd),
			 "SSLKEYLOGFILE='%s' curl -s -o /dev/null --max-time 5 --cacert '%s' --resolve localhost:%u:127.0.0.1 "
			 "--tlsv1.3 --cert '%s' --key '%s' 'https://localhost:%u/'",
			 keylogs[i], px_pki("server-root.pem"), port, px_pki("good-chain.pem"), px_pki("good.key"), port);
		(void)sh(cmd, NULL, 0);
	}
	cr_assert(e2e_wait_lines(json, 3, 10000), "%s", e2e_tail(px_tmp("proxy.log"), 600));
	for (i = 0; i < 3; i++) {
		const char *k = e2e_member(px_nth_line(json, i), "keylog");

		hits += strcmp(k, "decrypted") == 0;
		misses += strcmp(k, "no_entry") == 0 || strcmp(k, "missing_secret") == 0;
	}
	cr_expect_eq(hits, 2, "%s", e2e_slurp(json));
	cr_expect_eq(misses, 1);
	cr_assert_eq(http_get(mport, "/metrics", "m1"), 200);
	text = e2e_slurp(px_tmp("m1"));
	cr_expect_eq(sample(text, "mtlsdiag_keylog_lookups_total{result=\"hit\"}"), hits);
	cr_expect_eq(sample(text, "mtlsdiag_keylog_lookups_total{result=\"miss\"}"), misses);
	cr_expect_eq(sample(text, "mtlsdiag_keylog_lookups_total{result=\"unusable\"}"), 0);
	free(text);
	px_stop_child(proxy);
	px_stop_child(nginx);
}

/* The probe's records in ECS: the connection it made, the probe's own
 * members under mtlsdiag. */
Test(ops, ecs_from_the_probe)
{
	uint16_t nginx_port = e2e_free_port();
	char cmd[2000], got[4096], want[400];
	pid_t nginx = px_start_nginx(nginx_port);

	cr_assert(px_have("jq"), "jq is not installed (scripts/deps test)");
	snprintf(cmd, sizeof(cmd),
		 "'%s' probe -q --tls 1.2 --json - --json-format ecs --cert '%s' --key '%s' 127.0.0.1:%u 2>/dev/null | "
		 "jq -r '[.event.dataset, .tls.version, .tls.established, .tls.client.x509.subject.common_name[0], "
		 ".destination.port, .mtlsdiag.mode, .mtlsdiag.probe.client_auth] | @tsv'",
		 getenv("MTLSDIAG_BIN"), px_pki("good-chain.pem"), px_pki("good.key"), nginx_port);
	cr_expect_eq(sh(cmd, got, sizeof(got)), 0, "%s", got);
	px_stop_child(nginx);
	snprintf(want, sizeof(want), "mtlsdiag.connection\t1.2\ttrue\tgood-client\t%u\tprobe\taccepted\n", nginx_port);
	cr_expect_str_eq(got, want);
}
