/* `mtlsdiag proxy` in front of the real lab servers. The lab (scripts/lab
 * start: nginx, HAProxy, Apache, openssl s_server, gnutls-serv, Node.js,
 * Go, Java, lighttpd with OpenSSL, mbedTLS and wolfSSL, Caddy, NSS) runs once
 * for the suite, in a directory of its own, on the free ports it chose
 * (`scripts/lab status`). Every row of tests/data/lab/truth.tsv is run with curl
 * exactly as scripts/lab capture runs it, straight to the server and through
 * a proxy ($MTLSDIAG_BIN); openssl s_client does the same against s_server
 * and nginx-on. For each connection the proxy's JSON record must agree with
 * the ground truth by the rules test_lab uses (labtruth.c), and the client
 * must get the same answer through the proxy as direct. One test per
 * server: every disagreement is logged on its own line, then the test
 * fails. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"
#include "labtruth.h"
#include "testutil.h"

/* How the runner tells the tests (separate processes) about the lab. */
#define ENV_LAB_DIR "MTLSDIAG_PROXY_LAB_DIR"
#define ENV_LAB_ERROR "MTLSDIAG_PROXY_LAB_ERROR"

/* One test's longest run; criterion's own .timeout leaks in its runner
 * (2.4.1) when timed tests overlap, which fails the sanitizer build. */
#define TEST_GUARD_S 100

/* ---- the lab, once for the suite (in criterion's runner process) ---- */

static char lab_dir[256];
static pid_t lab_keeper = -1;
static int lab_keeper_fd = -1;

static void path_in(char *out, size_t outlen, const char *dir, const char *name)
{
	snprintf(out, outlen, "%s/%s", dir, name);
}

/* The keeper: a child of the runner that stops the lab and removes its
 * directory once the runner's end of the pipe closes, which happens at the
 * end of the suite and also when the runner dies. A half-started lab is
 * stopped the same way. */
static pid_t start_keeper(const char *dir, int *write_fd)
{
	char script[4096], state[300];
	int p[2];
	pid_t pid;

	snprintf(script, sizeof(script), "%s", test_path("scripts/lab"));
	path_in(state, sizeof(state), dir, "state");
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid != 0) {
		close(p[0]);
		if (pid < 0)
			close(p[1]);
		else
			*write_fd = p[1];
		return pid;
	}
	{
		char *stop[] = { script, "stop", state, NULL };
		char *rm[] = { "rm", "-rf", (char *)dir, NULL };
		struct e2e_io quiet = { NULL, NULL, NULL };
		char c;

		close(p[1]);
		/* a ^C reaches the whole process group: outlive the runner */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		for (;;) {
			ssize_t n = read(p[0], &c, 1);

			if (n == 0 || (n < 0 && errno != EINTR))
				break;
		}
		if (access(state, F_OK) == 0)
			(void)e2e_run(stop, &quiet, 20000);
		(void)e2e_run(rm, &quiet, 20000);
		_exit(0);
	}
}

/* Starts the lab; 0 with the reason in err if it cannot. */
static int lab_up(char *err, size_t errlen)
{
	char script[4096], state[300], log[300], status[300];
	struct e2e_io to_log = { NULL, log, log }, to_status = { NULL, status, NULL };
	const char *tmp = getenv("TMPDIR");
	int rc;

	snprintf(script, sizeof(script), "%s", test_path("scripts/lab"));
	/* a directory of its own (the lab's servers take free ports): suites
	 * run at the same time do not meet */
	if ((size_t)snprintf(lab_dir, sizeof(lab_dir), "%s/mtlsdiag-proxylab.XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
	    sizeof(lab_dir)) {
		snprintf(err, errlen, "TMPDIR is too long: %s", tmp);
		return 0;
	}
	if (!mkdtemp(lab_dir)) {
		snprintf(err, errlen, "mkdtemp %s: %s", lab_dir, strerror(errno));
		return 0;
	}
	/* Apache's children run as www-data: they must reach the state */
	chmod(lab_dir, 0755);
	lab_keeper = start_keeper(lab_dir, &lab_keeper_fd);
	if (lab_keeper < 0) {
		snprintf(err, errlen, "cannot start the lab keeper: %s", strerror(errno));
		return 0;
	}
	path_in(state, sizeof(state), lab_dir, "state");
	path_in(log, sizeof(log), lab_dir, "lab-start.log");
	path_in(status, sizeof(status), lab_dir, "lab-status.txt");
	{
		char *start[] = { script, "start", state, NULL };

		rc = e2e_run(start, &to_log, 90000);
	}
	if (rc < 0) {
		snprintf(err, errlen, "scripts/lab start %s did not finish within 90 s: %s", state, e2e_tail(log, 600));
		return 0;
	}
	if (rc != 0) {
		snprintf(err, errlen, "scripts/lab start %s failed (exit %d): %s", state, rc, e2e_tail(log, 600));
		return 0;
	}
	{
		char *st[] = { script, "status", state, NULL };

		rc = e2e_run(st, &to_status, 20000);
	}
	if (rc != 0) {
		snprintf(err, errlen, "scripts/lab status %s failed (exit %d)", state, rc);
		return 0;
	}
	return 1;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char err[1024];

	(void)set;
	if (lab_up(err, sizeof(err)))
		setenv(ENV_LAB_DIR, lab_dir, 1);
	else
		setenv(ENV_LAB_ERROR, err, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (lab_keeper_fd >= 0)
		close(lab_keeper_fd);
	lab_keeper_fd = -1;
	if (lab_keeper > 0) {
		/* scripts/lab stop waits up to 5 s for the servers to exit */
		(void)e2e_wait(lab_keeper, 30000);
		lab_keeper = -1;
	}
}

/* ---- one test's run: a proxy in front of one lab server ---- */

struct run {
	const char *server_id;   /* nginx-on, as in LAB_SERVERS */
	char dir[400];           /* this test's scratch directory */
	char json[480], log[480], proxy_err[480];
	char pki[4096];
	uint16_t server_port, proxy_port;
	pid_t proxy;
	size_t records;          /* JSON records the proxy owes so far */
	size_t checked, wrong;
};

static char scratch[400];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(TEST_GUARD_S);
	scratch[0] = '\0';
}

static void teardown(void)
{
	char *rm[] = { "rm", "-rf", scratch, NULL };
	struct e2e_io quiet = { NULL, NULL, NULL };

	if (scratch[0])
		(void)e2e_run(rm, &quiet, 20000);
}

static void mismatch(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line per disagreement; the test fails at its end. */
static void mismatch(struct run *r, const char *fmt, ...)
{
	char line[3072];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cr_log_error("%s", line);
	r->wrong++;
}

/* The lab server's port from `scripts/lab status` ("  NAME  127.0.0.1:PORT  up ..."). */
static uint16_t lab_port(const char *id, char *why, size_t whylen)
{
	char status[300], *text, *line, *save = NULL;
	uint16_t port = 0;

	path_in(status, sizeof(status), getenv(ENV_LAB_DIR), "lab-status.txt");
	text = e2e_slurp(status);
	snprintf(why, whylen, "scripts/lab status does not list '%s'", id);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		char name[64], addr[64], state[16];
		unsigned p;

		if (sscanf(line, "%63s %63s %15s", name, addr, state) != 3 || strcmp(name, id) != 0)
			continue;
		if (strcmp(state, "up") != 0 || sscanf(addr, "127.0.0.1:%u", &p) != 1 || p == 0 || p > 65535)
			snprintf(why, whylen, "lab server %s is not up: %s", id, line);
		else
			port = (uint16_t)p;
		break;
	}
	free(text);
	return port;
}

/* The lab is up (or the test fails with the reason), a scratch directory
 * exists, and a proxy listens in front of server `id`. */
static void run_begin(struct run *r, const char *id)
{
	const char *bin = getenv("MTLSDIAG_BIN"), *lab = getenv(ENV_LAB_DIR), *err = getenv(ENV_LAB_ERROR);
	const char *pki = getenv("LAB_PKI");
	char why[512];
	int attempt;

	memset(r, 0, sizeof(*r));
	r->server_id = id;
	r->proxy = -1;
	cr_assert(!err, "the lab did not start: %s", err);
	cr_assert(lab && *lab, "the lab did not start (no %s: was the PRE_ALL hook run?)", ENV_LAB_DIR);
	cr_assert(bin && *bin, "MTLSDIAG_BIN is not set (run through make check)");
	/* the PKI scripts/lab gave the servers */
	snprintf(r->pki, sizeof(r->pki), "%s", pki && *pki ? pki : test_path("tests/data/lab/pki"));
	r->server_port = lab_port(id, why, sizeof(why));
	cr_assert(r->server_port, "%s", why);
	snprintf(r->dir, sizeof(r->dir), "%s/%s.XXXXXX", lab, id);
	cr_assert_not_null(mkdtemp(r->dir), "mkdtemp %s: %s", r->dir, strerror(errno));
	snprintf(scratch, sizeof(scratch), "%s", r->dir);
	path_in(r->json, sizeof(r->json), r->dir, "proxy.json");
	path_in(r->log, sizeof(r->log), r->dir, "proxy.log");
	path_in(r->proxy_err, sizeof(r->proxy_err), r->dir, "proxy.err");
	/* a free port can be taken between the probe and the bind: try again */
	for (attempt = 0; attempt < 3 && r->proxy < 0; attempt++) {
		char listen_at[32], upstream[32], bin_copy[4096];
		char *argv[] = { bin_copy, "proxy", "--listen", listen_at, "--upstream", upstream,
				 "--json", r->json, "--log", r->log, "--connect-timeout", "3", NULL };
		struct e2e_io io = { NULL, r->proxy_err, r->proxy_err };
		pid_t pid;

		r->proxy_port = e2e_free_port();
		snprintf(bin_copy, sizeof(bin_copy), "%s", bin);
		snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", r->proxy_port);
		snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", r->server_port);
		pid = e2e_spawn(argv, &io, TEST_GUARD_S);
		cr_assert(pid > 0, "fork: %s", strerror(errno));
		if (e2e_wait_contains(r->log, "listening on", 10000)) {
			r->proxy = pid;
		} else {
			(void)e2e_stop(pid, 2000);
			cr_log_warn("the proxy did not start on %s: %s", listen_at, e2e_tail(r->proxy_err, 300));
		}
	}
	cr_assert(r->proxy > 0, "the proxy did not start: %s", e2e_tail(r->proxy_err, 300));
}

/* Stops the proxy (it must exit 0: under the sanitizers a leak is exit 23)
 * and fails the test if anything disagreed. */
static void run_end(struct run *r, const char *what)
{
	int rc = e2e_stop(r->proxy, 15000);

	if (rc != 0)
		mismatch(r, "%s: the proxy exited %d after SIGTERM: %s", r->server_id, rc, e2e_tail(r->proxy_err, 600));
	cr_assert_gt(r->checked, 0, "%s: no %s cases to run", r->server_id, what);
	cr_assert_eq(r->wrong, 0, "%s: %zu disagreement(s) in %zu %s connections through the proxy (each logged above)",
		     r->server_id, r->wrong, r->checked, what);
}

/* Checks the proxy's record of the connection just made against the row.
 * asked_close: the client asked the server to close after its answer
 * (HTTP/1.0), so a served answer and a refusal both end with the server
 * closing first: without keys, undetermined is the honest verdict too. */
static void check_record(struct run *r, const struct lab_case *c, const char *client, bool asked_close)
{
	char rec[65536], type[32], verdict[48], reason[48], fault[24], basis[24], tls[16], sni[128];
	char summary[1024], shown[160];
	struct lab_got got;
	size_t at = r->records++;

	if (!e2e_wait_lines(r->json, at + 1, 10000)) {
		mismatch(r, "%s (%s): the proxy wrote no record for this connection (%zu records so far)",
			 c->name, client, e2e_count_lines(r->json));
		r->records = e2e_count_lines(r->json);   /* judge the next one on its own */
		return;
	}
	if (!e2e_line(r->json, at, rec, sizeof(rec)) || !e2e_json_member(rec, "type", type, sizeof(type)) ||
	    strcmp(type, "connection") != 0 || !e2e_json_member(rec, "verdict", verdict, sizeof(verdict)) ||
	    !e2e_json_member(rec, "reason", reason, sizeof(reason)) ||
	    !e2e_json_member(rec, "fault", fault, sizeof(fault)) ||
	    !e2e_json_member(rec, "basis", basis, sizeof(basis))) {
		mismatch(r, "%s (%s): record %zu is not a connection record with verdict, reason, fault, basis: %.600s",
			 c->name, client, at + 1, rec);
		return;
	}
	if (!e2e_json_member(rec, "summary", summary, sizeof(summary)))
		summary[0] = '\0';
	got.verdict = verdict;
	got.reason = strcmp(reason, "null") == 0 ? "" : reason;
	got.fault = fault;
	got.basis = basis;
	lab_got_format(shown, sizeof(shown), &got);
	if (!lab_truth_accepts(c, &got) && !(asked_close && strcmp(got.verdict, "undetermined") == 0))
		mismatch(r, "%s (%s): expected %s/%s/%s%s%s%s, the proxy logged %s (%s): %s", c->name, client,
			 c->verdict, c->reason[0] ? c->reason : "-", c->fault,
			 c->undetermined_ok ? " or undetermined" : "", c->keyless[0] ? " or keyless " : "", c->keyless,
			 shown, basis, summary);
	/* the client spoke TLS to "localhost" through the proxy */
	if (!e2e_json_member(rec, "tls_version", tls, sizeof(tls)) || strcmp(tls, c->tls) != 0)
		mismatch(r, "%s (%s): expected tls_version %s, the proxy logged %s", c->name, client, c->tls, tls);
	if (!e2e_json_member(rec, "sni", sni, sizeof(sni)) || strcmp(sni, "localhost") != 0)
		mismatch(r, "%s (%s): expected sni localhost, the proxy logged %s", c->name, client, sni);
}

/* ---- curl, as scripts/lab capture runs it (capture_one, client_args) ---- */

struct curl_answer {
	int exit_code;
	char http[8];
	char alert[64];   /* the TLS alert curl reported, "" if none */
	char err[256];    /* curl's message, for failure lines */
};

/* "exit 56 HTTP 000 (curl: (56) ...)", for failure lines; static buffer. */
static const char *curl_shown(const struct curl_answer *a)
{
	static char buf[2][400];
	static int next;
	char *p = buf[next++ % 2];

	snprintf(p, sizeof(buf[0]), "exit %d HTTP %s%s%s%s", a->exit_code, a->http, a->err[0] ? " (" : "", a->err,
		 a->err[0] ? ")" : "");
	return p;
}

/* curl's --cert/--key for a client case; 0 for an unknown case. */
static int client_cert_args(const char *pki, const char *cc, char cert[4096], char key[4096])
{
	if (strcmp(cc, "none") == 0) {
		cert[0] = key[0] = '\0';
	} else if (strcmp(cc, "good") == 0 || strcmp(cc, "expired") == 0 || strcmp(cc, "notyet") == 0 ||
		   strcmp(cc, "badeku") == 0) {
		test_fmtn(cert, 4096, "%s/%s-chain.pem", pki, cc);
		test_fmtn(key, 4096, "%s/%s.key", pki, cc);
	} else if (strcmp(cc, "leafonly") == 0) {
		test_fmtn(cert, 4096, "%s/good.pem", pki);
		test_fmtn(key, 4096, "%s/good.key", pki);
	} else if (strcmp(cc, "foreign") == 0 || strcmp(cc, "selfsigned") == 0) {
		test_fmtn(cert, 4096, "%s/%s.pem", pki, cc);
		test_fmtn(key, 4096, "%s/%s.key", pki, cc);
	} else {
		return 0;
	}
	return 1;
}

/* The alert in an OpenSSL error text ("...:tlsv1 alert access denied, errno 0"). */
static void alert_text(const char *text, char *out, size_t outlen)
{
	const char *p = text ? strstr(text, " alert ") : NULL;

	out[0] = '\0';
	if (p) {
		p += strlen(" alert ");
		snprintf(out, outlen, "%.*s", (int)strcspn(p, ",:\n"), p);
	}
}

static void run_curl(struct run *r, const struct lab_case *c, uint16_t port, const char *tag,
		     struct curl_answer *out)
{
	char ca[4096], cert[4096], key[4096], resolve[64], url[64], body[480], wout[480], werr[480];
	char *argv[24], *text;
	struct e2e_io io = { NULL, wout, werr };
	int n = 0;

	memset(out, 0, sizeof(*out));
	cr_assert(client_cert_args(r->pki, c->client_case, cert, key), "%s: unknown client case '%s'", c->name,
		  c->client_case);
	test_fmt(ca, "%s/server-root.pem", r->pki);
	snprintf(resolve, sizeof(resolve), "localhost:%u:127.0.0.1", port);
	snprintf(url, sizeof(url), "https://localhost:%u/", port);
	path_in(body, sizeof(body), r->dir, "body");
	snprintf(wout, sizeof(wout), "%s/curl-%s.out", r->dir, tag);
	snprintf(werr, sizeof(werr), "%s/curl-%s.err", r->dir, tag);
	argv[n++] = "curl";
	argv[n++] = "-sS";
	argv[n++] = "--max-time";
	argv[n++] = "10";
	argv[n++] = "-o";
	argv[n++] = body;
	argv[n++] = "-w";
	argv[n++] = "%{http_code}";
	argv[n++] = "--cacert";
	argv[n++] = ca;
	argv[n++] = "--resolve";
	argv[n++] = resolve;
	if (strcmp(c->tls, "1.3") == 0) {
		argv[n++] = "--tlsv1.3";
	} else {
		argv[n++] = "--tlsv1.2";
		argv[n++] = "--tls-max";
		argv[n++] = "1.2";
	}
	if (cert[0]) {
		argv[n++] = "--cert";
		argv[n++] = cert;
		argv[n++] = "--key";
		argv[n++] = key;
	}
	/* the client mode, as scripts/lab's client_mode_args */
	if (strcmp(c->client_mode, "close") == 0) {
		argv[n++] = "--http1.1";
		argv[n++] = "-H";
		argv[n++] = "Connection: close";
	} else if (strcmp(c->client_mode, "h2") == 0) {
		argv[n++] = "--http2";
	}
	argv[n++] = url;
	argv[n] = NULL;
	out->exit_code = e2e_run(argv, &io, 20000);
	text = e2e_slurp(wout);
	snprintf(out->http, sizeof(out->http), "%s", text && *text ? text : "000");
	free(text);
	text = e2e_slurp(werr);
	alert_text(text, out->alert, sizeof(out->alert));
	snprintf(out->err, sizeof(out->err), "%.*s", text ? (int)strcspn(text, "\n") : 0, text ? text : "");
	free(text);
}

/* curl's exit code as the client's answer. 55 (sending failed), 56
 * (receiving failed) and 52 (empty reply) are one answer, "the server ended
 * the connection after the handshake": which one curl reports depends on
 * whether the server's reset overtakes curl's next call (getpeername()
 * failed: not connected), and on whether the server's close is a FIN or,
 * with curl's request unread, a reset. Straight to gnutls-serv in TLS 1.3
 * it is 55 or 56, run to run; to Node.js (rejectUnauthorized) and Java's
 * HttpsServer, which drop a TLS 1.3 connection without an alert, 52 or 56;
 * truth.tsv recorded each. */
static int curl_answer(int exit_code)
{
	return exit_code == 55 || exit_code == 52 ? 56 : exit_code;
}

static void check_curl_case(struct run *r, const struct lab_case *c)
{
	struct curl_answer direct, via;

	run_curl(r, c, r->server_port, "direct", &direct);
	run_curl(r, c, r->proxy_port, "proxy", &via);
	r->checked++;
	if (curl_answer(direct.exit_code) != curl_answer(c->curl_exit) || strcmp(direct.http, c->http_status) != 0)
		mismatch(r, "%s: the server itself no longer answers as truth.tsv says: direct curl %s, "
			 "truth.tsv curl exit %d HTTP %s (re-record with scripts/lab capture)",
			 c->name, curl_shown(&direct), c->curl_exit, c->http_status);
	/* the same alert, when both runs got to read one (a 55 did not) */
	if (curl_answer(via.exit_code) != curl_answer(direct.exit_code) || strcmp(via.http, direct.http) != 0 ||
	    (via.alert[0] && direct.alert[0] && strcmp(via.alert, direct.alert) != 0))
		mismatch(r, "%s: the client's answer changed: through the proxy curl %s, direct curl %s", c->name,
			 curl_shown(&via), curl_shown(&direct));
	check_record(r, c, "curl", false);
}

/* Every truth.tsv row of one lab server, direct and through the proxy. */
static void curl_server(const char *id)
{
	struct lab_truth truth;
	struct run r;
	char err[512];
	size_t i;

	run_begin(&r, id);
	cr_assert(lab_truth_load(&truth, lab_truth_path("truth.tsv"), err, sizeof(err)), "%s", err);
	for (i = 0; i < truth.n; i++)
		if (strcmp(truth.cases[i].server_id, id) == 0)
			check_curl_case(&r, &truth.cases[i]);
	lab_truth_free(&truth);
	run_end(&r, "curl");
}

/* The servers of LAB_SERVERS in scripts/lab; truth_rows_all_have_a_test
 * keeps this list and truth.tsv together. */
static const char *const lab_servers[] = {
	"nginx-on", "nginx-optional", "nginx-off", "nginx-depth1", "nginx-depth0", "nginx-h2-on", "nginx-h2-optional", "haproxy",
	"apache", "openssl", "openssl-depth1", "openssl-depth0", "gnutls", "node-required", "node-http401",
	"go", "java", "lighttpd-openssl", "lighttpd-mbedtls", "lighttpd-wolfssl", "lighttpd-optional", "caddy", "nss",
};

TestSuite(proxy_lab, .init = setup, .fini = teardown);

Test(proxy_lab, nginx_on) { curl_server("nginx-on"); }
Test(proxy_lab, nginx_optional) { curl_server("nginx-optional"); }
Test(proxy_lab, nginx_off) { curl_server("nginx-off"); }
Test(proxy_lab, nginx_depth1) { curl_server("nginx-depth1"); }
Test(proxy_lab, nginx_depth0) { curl_server("nginx-depth0"); }
Test(proxy_lab, nginx_h2_on) { curl_server("nginx-h2-on"); }
Test(proxy_lab, nginx_h2_optional) { curl_server("nginx-h2-optional"); }
Test(proxy_lab, haproxy) { curl_server("haproxy"); }
Test(proxy_lab, apache) { curl_server("apache"); }
Test(proxy_lab, openssl) { curl_server("openssl"); }
Test(proxy_lab, openssl_depth1) { curl_server("openssl-depth1"); }
Test(proxy_lab, openssl_depth0) { curl_server("openssl-depth0"); }
Test(proxy_lab, gnutls) { curl_server("gnutls"); }
Test(proxy_lab, node_required) { curl_server("node-required"); }
Test(proxy_lab, node_http401) { curl_server("node-http401"); }
Test(proxy_lab, go) { curl_server("go"); }
Test(proxy_lab, java) { curl_server("java"); }
Test(proxy_lab, lighttpd_openssl) { curl_server("lighttpd-openssl"); }
Test(proxy_lab, lighttpd_mbedtls) { curl_server("lighttpd-mbedtls"); }
Test(proxy_lab, lighttpd_wolfssl) { curl_server("lighttpd-wolfssl"); }
Test(proxy_lab, lighttpd_optional) { curl_server("lighttpd-optional"); }
Test(proxy_lab, caddy) { curl_server("caddy"); }
Test(proxy_lab, nss) { curl_server("nss"); }

Test(proxy_lab, truth_rows_all_have_a_test)
{
	struct lab_truth truth;
	char err[512];
	size_t i, k;

	cr_assert(lab_truth_load(&truth, lab_truth_path("truth.tsv"), err, sizeof(err)), "%s", err);
	cr_expect_gt(truth.n, 200, "truth.tsv has only %zu rows", truth.n);
	for (i = 0; i < truth.n; i++) {
		for (k = 0; k < sizeof(lab_servers) / sizeof(lab_servers[0]); k++)
			if (strcmp(truth.cases[i].server_id, lab_servers[k]) == 0)
				break;
		cr_expect_lt(k, sizeof(lab_servers) / sizeof(lab_servers[0]),
			     "%s: lab server '%s' has no test here", truth.cases[i].name, truth.cases[i].server_id);
	}
	lab_truth_free(&truth);
}

/* ---- openssl s_client (as scripts/lab fixtures runs it) ---- */

struct sclient_answer {
	int exit_code;
	int alert;     /* "SSL alert number N", -1 if none */
	int verify;    /* "Verify return code: N", -1 if none */
	char http[8];  /* the response's status, "000" if no response came */
};

static void run_s_client(struct run *r, uint16_t port, const char *tls, const char *cc, const char *tag,
			 struct sclient_answer *out)
{
	char connect[64], ca[4096], cert[4096], key[4096], chain[4096], request[480], output[480];
	char *argv[24], *text, *p;
	struct e2e_io io = { request, output, output };
	FILE *f;
	int n = 0;

	memset(out, 0, sizeof(*out));
	out->alert = out->verify = -1;
	snprintf(out->http, sizeof(out->http), "000");
	path_in(request, sizeof(request), r->dir, "request");
	snprintf(output, sizeof(output), "%s/s_client-%s.out", r->dir, tag);
	f = fopen(request, "w");
	cr_assert_not_null(f);
	fputs("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", f);
	fclose(f);
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", port);
	test_fmt(ca, "%s/server-root.pem", r->pki);
	argv[n++] = "openssl";
	argv[n++] = "s_client";
	argv[n++] = "-connect";
	argv[n++] = connect;
	argv[n++] = "-servername";
	argv[n++] = "localhost";
	argv[n++] = "-CAfile";
	argv[n++] = ca;
	argv[n++] = strcmp(tls, "1.3") == 0 ? "-tls1_3" : "-tls1_2";
	/* after the request, read until the server closes */
	argv[n++] = "-ign_eof";
	if (strcmp(cc, "none") != 0) {
		test_fmt(cert, "%s/%s.pem", r->pki, cc);
		test_fmt(key, "%s/%s.key", r->pki, cc);
		test_fmt(chain, "%s/client-inter.pem", r->pki);
		argv[n++] = "-cert";
		argv[n++] = cert;
		argv[n++] = "-cert_chain";
		argv[n++] = chain;
		argv[n++] = "-key";
		argv[n++] = key;
	}
	argv[n] = NULL;
	out->exit_code = e2e_run(argv, &io, 20000);
	text = e2e_slurp(output);
	if (!text)
		return;
	if ((p = strstr(text, "SSL alert number ")))
		out->alert = atoi(p + strlen("SSL alert number "));
	if ((p = strstr(text, "Verify return code: ")))
		out->verify = atoi(p + strlen("Verify return code: "));
	/* the response need not start a line: s_client's stdout (the response)
	 * and stderr share the file, and a session ticket's dump may precede */
	for (p = strstr(text, "HTTP/1."); p; p = strstr(p + 1, "HTTP/1.")) {
		unsigned status;

		if (sscanf(p, "HTTP/1.%*1[01] %3u", &status) == 1) {
			snprintf(out->http, sizeof(out->http), "%03u", status);
			break;
		}
	}
	free(text);
}

/* TLS 1.2 and 1.3, without a certificate, with the good one and with the
 * expired one; the verdict expected is the truth of the same curl case. */
static void s_client_server(const char *id)
{
	static const char *const tls[] = { "1.2", "1.3" };
	static const char *const cases[] = { "none", "good", "expired" };
	struct lab_truth truth;
	struct run r;
	char err[512];
	size_t t, k;

	run_begin(&r, id);
	cr_assert(lab_truth_load(&truth, lab_truth_path("truth.tsv"), err, sizeof(err)), "%s", err);
	for (t = 0; t < 2; t++) {
		for (k = 0; k < 3; k++) {
			struct sclient_answer direct, via;
			const struct lab_case *c;
			char name[64];

			snprintf(name, sizeof(name), "%s_%s_tls1%c", id, cases[k], tls[t][2]);
			c = lab_truth_find(&truth, name);
			if (!c) {
				mismatch(&r, "%s: no such row in truth.tsv", name);
				continue;
			}
			run_s_client(&r, r.server_port, tls[t], cases[k], "direct", &direct);
			run_s_client(&r, r.proxy_port, tls[t], cases[k], "proxy", &via);
			r.checked++;
			/* a refusal ends the handshake or the connection; an
			 * acceptance or nginx's 400 comes as an HTTP response */
			if (strcmp(direct.http, c->http_status) != 0)
				mismatch(&r, "%s (s_client): the server itself no longer answers as truth.tsv says: "
					 "HTTP %s direct, truth.tsv HTTP %s", name, direct.http, c->http_status);
			if (via.exit_code != direct.exit_code || via.alert != direct.alert || via.verify != direct.verify ||
			    strcmp(via.http, direct.http) != 0)
				mismatch(&r, "%s (s_client): the client's answer changed: through the proxy exit %d, "
					 "alert %d, verify return code %d, HTTP %s; direct exit %d, alert %d, "
					 "verify return code %d, HTTP %s",
					 name, via.exit_code, via.alert, via.verify, via.http, direct.exit_code,
					 direct.alert, direct.verify, direct.http);
			check_record(&r, c, "s_client", true);
		}
	}
	lab_truth_free(&truth);
	run_end(&r, "s_client");
}

Test(proxy_lab, s_client_openssl) { s_client_server("openssl"); }
Test(proxy_lab, s_client_nginx_on) { s_client_server("nginx-on"); }
