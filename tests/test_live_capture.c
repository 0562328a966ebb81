/* `mtlsdiag capture` on the loopback interface, and `mtlsdiag pcap -` fed by
 * tcpdump as it captures.  nginx runs as the lab's nginx-on (px_start_nginx,
 * on a free port) and curl connects with the lab's client certificates, as
 * scripts/lab capture does: each connection's record must agree with the
 * lab's ground truth (tests/data/lab/truth.tsv, by labtruth.c's rule) and
 * arrive while the capture still runs; the -w file read again gives the
 * same verdicts; SIGINT and SIGTERM end the run with the summary and the
 * kernel's counts; an idle connection gets its record at --idle-timeout;
 * a missing capability, a missing interface and a bad filter each get
 * their one line and exit 2.  Capturing needs CAP_NET_RAW: without it
 * the live tests skip, saying so. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "labtruth.h"
#include "proxyutil.h"
#include "testutil.h"

TestSuite(live, .init = px_setup, .fini = px_teardown);

/* The curl cases run against nginx-on, each in TLS 1.2 and 1.3. */
static const char *const cases[] = { "none", "good", "expired", "badeku" };
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static const char *bin(void)
{
	const char *b = getenv("MTLSDIAG_BIN");

	cr_assert(b, "MTLSDIAG_BIN is not set");
	return b;
}

/* Whether this process may open a packet socket (what capturing needs);
 * otherwise the test is skipped with the reason. */
static bool can_capture(void)
{
	char *argv[] = { (char *)bin(), "capture", "-i", "lo", "--idle-timeout", "1", "tcp port 9", NULL };
	struct e2e_io io = { NULL, px_tmp("probe.out"), px_tmp("probe.err") };
	pid_t pid = e2e_spawn(argv, &io, 20);

	cr_assert(pid > 0);
	if (!e2e_wait_contains(px_tmp("probe.err"), "listening on", 5000)) {
		(void)e2e_stop(pid, 3000);
		cr_skip_test("cannot capture on lo here (%s): needs CAP_NET_RAW", e2e_tail(px_tmp("probe.err"), 300));
		return false;
	}
	(void)e2e_stop(pid, 3000);
	return true;
}

/* mtlsdiag capture ARGS... with stdout, stderr and JSON in the scratch
 * directory; returns once it listens. */
static pid_t start_capture(char **args, size_t n_args)
{
	char *argv[32];
	struct e2e_io io = { NULL, px_tmp("cap.out"), px_tmp("cap.err") };
	size_t i, n = 0;
	pid_t pid;

	argv[n++] = (char *)bin();
	argv[n++] = "capture";
	for (i = 0; i < n_args && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = e2e_spawn(argv, &io, 50);
	cr_assert(pid > 0);
	if (!e2e_wait_contains(px_tmp("cap.err"), "listening on", 10000)) {
		(void)e2e_stop(pid, 3000);
		cr_assert_fail("capture did not start: %s", e2e_tail(px_tmp("cap.err"), 400));
	}
	return pid;
}

/* The row of the truth for this case ("nginx-on_good_tls13"). */
static const struct lab_case *truth_row(const struct lab_truth *t, const char *client_case, const char *tls)
{
	char name[64];
	const struct lab_case *c;

	snprintf(name, sizeof(name), "nginx-on_%s_tls1%s", client_case, strcmp(tls, "1.3") == 0 ? "3" : "2");
	c = lab_truth_find(t, name);
	cr_assert_not_null(c, "no row %s in the lab's truth", name);
	return c;
}

/* Record i of a JSON Lines file agrees with the row; `exact`: with the
 * key log nothing is left to infer (the truth's verdict, reason, fault). */
static bool record_agrees(const char *json, size_t i, const struct lab_case *c, bool exact, char *why, size_t whylen)
{
	char line[16384];
	struct lab_got got;

	if (!e2e_line(json, i, line, sizeof(line))) {
		snprintf(why, whylen, "%s: no record %zu", c->name, i);
		return false;
	}
	got.verdict = e2e_member(line, "verdict");
	got.reason = e2e_member(line, "reason");
	if (strcmp(got.reason, "null") == 0)
		got.reason = "";
	got.fault = e2e_member(line, "fault");
	got.basis = e2e_member(line, "basis");
	if (exact ? strcmp(got.verdict, c->verdict) == 0 && strcmp(got.reason, c->reason) == 0 &&
			    strcmp(got.fault, c->fault) == 0
		  : lab_truth_accepts(c, &got))
		return true;
	snprintf(why, whylen, "%s: expected %s/%s/%s, got %s/%s/%s (%s)", c->name, c->verdict,
		 c->reason[0] ? c->reason : "-", c->fault, got.verdict, got.reason[0] ? got.reason : "-", got.fault,
		 got.basis);
	return false;
}

/* Runs every case, one connection at a time, waiting for each record in
 * `json` (it must come while the capture runs); checks each against the
 * truth.  Returns the number of connections. */
static size_t run_cases(const struct lab_truth *truth, uint16_t port, const char *json, bool exact)
{
	static const char *const tls[] = { "1.2", "1.3" };
	size_t i, k, n = 0, wrong = 0;
	char why[512];

	for (k = 0; k < 2; k++) {
		for (i = 0; i < N_CASES; i++) {
			const struct lab_case *c = truth_row(truth, cases[i], tls[k]);
			struct px_curl r = px_run_curl(port, tls[k], strcmp(cases[i], "none") ? cases[i] : NULL, NULL);

			cr_assert_str_eq(r.http_code, c->http_status, "%s: curl got %s", c->name, r.http_code);
			n++;
			/* within the leg hold (1 s) and the clock's second, not at the end */
			cr_assert(e2e_wait_lines(json, n, 8000), "%s: no record while the capture runs (%zu lines): %s",
				  c->name, e2e_count_lines(json), e2e_tail(px_tmp("cap.err"), 300));
			if (!record_agrees(json, n - 1, c, exact, why, sizeof(why))) {
				cr_log_error("%s", why);
				wrong++;
			}
		}
	}
	cr_assert_eq(wrong, 0, "%zu of %zu live records disagree with the lab's truth", wrong, n);
	return n;
}

static void load_truth(struct lab_truth *t)
{
	char err[512];

	cr_assert(lab_truth_load(t, lab_truth_path("truth.tsv"), err, sizeof(err)), "%s", err);
}

/* nginx-on on a free port, and the filter that sees only its traffic. */
static pid_t start_nginx(uint16_t *port, char *filter, size_t len)
{
	*port = e2e_free_port();
	snprintf(filter, len, "tcp port %u", *port);
	return px_start_nginx(*port);
}

Test(live, lab_verdicts_on_lo_then_sigint_summary_and_w_file)
{
	struct lab_truth truth;
	uint16_t port;
	char filter[64], line[4096], again_argv_json[400];
	const char *json = px_tmp("cap.json"), *w = px_tmp("cap.pcap");
	pid_t nginx, cap;
	size_t n, i;
	struct stat st;

	if (!can_capture())
		return;
	load_truth(&truth);
	nginx = start_nginx(&port, filter, sizeof(filter));
	{
		char *args[] = { "-i", "lo", "--json", (char *)json, "-w", (char *)w, filter };

		cap = start_capture(args, 7);
	}
	n = run_cases(&truth, port, json, false);

	cr_assert_eq(kill(cap, SIGINT), 0);
	cr_assert_eq(e2e_wait(cap, 10000), 0, "SIGINT: %s", e2e_tail(px_tmp("cap.err"), 400));
	px_stop_child(nginx);
	/* the summary record, with the kernel's counts */
	cr_assert_eq(e2e_count_lines(json), n + 1, "%s", e2e_tail(json, 400));
	cr_assert(e2e_line(json, n, line, sizeof(line)));
	cr_assert_str_eq(e2e_member(line, "type"), "summary", "%s", line);
	cr_assert_eq(strtoul(e2e_member(line, "connections"), NULL, 10), n, "%s", line);
	cr_assert_str_eq(e2e_member(line, "capture_dropped"), "0", "%s", line);
	cr_assert_str_eq(e2e_member(line, "capture_if_dropped"), "0", "%s", line);
	cr_assert_gt(strtoul(e2e_member(line, "capture_read"), NULL, 10), 10 * n, "%s", line);
	cr_assert_geq(strtoul(e2e_member(line, "capture_received"), NULL, 10),
		      strtoul(e2e_member(line, "capture_read"), NULL, 10), "%s", line);
	cr_assert(px_find_line(px_tmp("cap.out"), "dropped by the kernel"), "%s", e2e_tail(px_tmp("cap.out"), 400));
	cr_assert(px_find_line(px_tmp("cap.out"), "connections:") || px_find_line(px_tmp("cap.out"), "connections"),
		  "%s", e2e_tail(px_tmp("cap.out"), 400));
	/* each verdict line was printed, the record's summary */
	cr_assert_eq(px_count_lines(px_tmp("cap.out"), "127.0.0.1:"), n, "%s", e2e_tail(px_tmp("cap.out"), 600));

	/* -w: a capture file that `mtlsdiag pcap` reads to the same verdicts */
	cr_assert_eq(stat(w, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "-w FILE is created 0600 (%o)", st.st_mode & 0777);
	snprintf(again_argv_json, sizeof(again_argv_json), "%s", px_tmp("again.json"));
	{
		char *argv[] = { (char *)bin(), "pcap", "--json", again_argv_json, (char *)w, NULL };
		struct e2e_io io = { NULL, NULL, px_tmp("again.err") };

		cr_assert_eq(e2e_run(argv, &io, 30000), 0, "%s", e2e_tail(px_tmp("again.err"), 300));
	}
	cr_assert_eq(e2e_count_lines(again_argv_json), n + 1);
	/* the file's reading may order held legs differently: matched by
	 * their human line, which names the time and the client's port */
	for (i = 0; i < n; i++) {
		static char a[65536], sum[4096], key[4200];
		const char *b;

		cr_assert(e2e_line(json, i, a, sizeof(a)));
		cr_assert(e2e_json_member(a, "summary", sum, sizeof(sum)), "%s", a);
		cr_assert_str_eq(e2e_member(a, "source"), "lo");
		snprintf(key, sizeof(key), "\"summary\":\"%s\"", sum);
		b = px_find_line(again_argv_json, key);
		cr_assert(b, "record %zu, live, is not in the -w file's reading: %s", i, sum);
		cr_assert_str_eq(e2e_member(b, "verdict"), e2e_member(a, "verdict"));
		cr_assert_str_eq(e2e_member(b, "reason"), e2e_member(a, "reason"));
		cr_assert_str_eq(e2e_member(b, "fault"), e2e_member(a, "fault"));
	}
	lab_truth_free(&truth);
}

/* With curl's key log, followed as curl writes it: TLS 1.3 verdicts are
 * exact (decrypted), as with a capture file and its key log. */
Test(live, with_the_key_log_as_curl_writes_it_verdicts_are_exact)
{
	struct lab_truth truth;
	uint16_t port;
	char filter[64];
	const char *json = px_tmp("cap.json"), *keylog = px_tmp("keys.log");
	pid_t nginx, cap;
	FILE *f;

	if (!can_capture())
		return;
	load_truth(&truth);
	/* the key log exists (empty) before the capture starts, as a service's would */
	cr_assert_not_null(f = fopen(keylog, "w"));
	fclose(f);
	cr_assert_eq(setenv("SSLKEYLOGFILE", keylog, 1), 0);
	nginx = start_nginx(&port, filter, sizeof(filter));
	{
		char *args[] = { "-i", "lo", "--json", (char *)json, "--keylog", (char *)keylog, "-q", filter };

		cap = start_capture(args, 8);
	}
	(void)run_cases(&truth, port, json, true);
	cr_assert(px_find_line(json, "\"basis\":\"decrypted\""), "no decrypted record: %s", e2e_tail(json, 400));
	cr_assert_eq(kill(cap, SIGTERM), 0);
	cr_assert_eq(e2e_wait(cap, 10000), 0, "SIGTERM: %s", e2e_tail(px_tmp("cap.err"), 400));
	px_stop_child(nginx);
	/* -q: no verdict lines, the summary only */
	cr_assert_eq(px_count_lines(px_tmp("cap.out"), "127.0.0.1:"), 0, "%s", e2e_tail(px_tmp("cap.out"), 400));
	cr_assert(px_find_line(px_tmp("cap.out"), "dropped by the kernel"));
	lab_truth_free(&truth);
}

/* A client that keeps its connection open (HTTP/1.1 keep-alive to nginx)
 * gets its line the moment the verdict is settled, not when it leaves;
 * its record comes at its end, and the line is not said twice. */
Test(live, a_kept_open_connection_gets_its_line_when_the_verdict_settles)
{
	uint16_t port;
	char filter[64], connect_to[64], line[4096];
	const char *json = px_tmp("cap.json"), *fifo = px_tmp("client.in");
	const char *request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	pid_t nginx, cap, client;
	int fd;

	if (!can_capture())
		return;
	nginx = start_nginx(&port, filter, sizeof(filter));
	{
		char *args[] = { "-i", "lo", "--json", (char *)json, filter };

		cap = start_capture(args, 5);
	}
	snprintf(connect_to, sizeof(connect_to), "127.0.0.1:%u", port);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	{
		char *argv[] = { "openssl", "s_client", "-connect", connect_to, "-servername", "localhost", "-tls1_2",
				 "-cert", (char *)px_pki("good.pem"), "-cert_chain", (char *)px_pki("good-chain.pem"),
				 "-key", (char *)px_pki("good.key"), "-quiet", "-no_ign_eof", NULL };
		struct e2e_io io = { fifo, px_tmp("client.out"), px_tmp("client.err") };

		client = e2e_spawn(argv, &io, 40);
	}
	cr_assert(client > 0);
	fd = open(fifo, O_WRONLY);
	cr_assert(fd >= 0, "open %s: %s", fifo, strerror(errno));
	cr_assert_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	cr_assert(e2e_wait_contains(px_tmp("client.out"), "ok nginx", 5000), "nginx did not answer: %s",
		  e2e_tail(px_tmp("client.err"), 300));
	cr_assert(e2e_wait_lines(px_tmp("cap.out"), 1, 8000), "no line while the connection is open: %s",
		  e2e_tail(px_tmp("cap.err"), 300));
	cr_assert(px_find_line(px_tmp("cap.out"), "client cert accepted"), "%s", e2e_tail(px_tmp("cap.out"), 300));
	cr_assert_eq(e2e_count_lines(json), 0, "the record comes at the connection's end: %s", e2e_tail(json, 300));

	close(fd);
	cr_assert_eq(e2e_wait(client, 10000), 0, "%s", e2e_tail(px_tmp("client.err"), 300));
	cr_assert(e2e_wait_lines(json, 1, 5000), "no record once the connection ended");
	cr_assert(e2e_line(json, 0, line, sizeof(line)));
	cr_assert_str_eq(e2e_member(line, "verdict"), "client_cert_accepted", "%s", line);
	cr_assert_eq(kill(cap, SIGINT), 0);
	cr_assert_eq(e2e_wait(cap, 10000), 0);
	px_stop_child(nginx);
	cr_assert_eq(px_count_lines(px_tmp("cap.out"), "client cert accepted"), 1, "%s", e2e_tail(px_tmp("cap.out"), 600));
}

/* A connection that goes quiet without ending gets its record at
 * --idle-timeout, while it is still open; SIGTERM then ends the run. */
Test(live, an_idle_connection_gets_its_record_at_the_idle_timeout)
{
	uint16_t port;
	char filter[64], line[8192];
	const char *json = px_tmp("cap.json");
	long long t0;
	pid_t nginx, cap;
	int fd;

	if (!can_capture())
		return;
	nginx = start_nginx(&port, filter, sizeof(filter));
	{
		char *args[] = { "-i", "lo", "--json", (char *)json, "--idle-timeout", "2", filter };

		cap = start_capture(args, 7);
	}
	fd = px_connect_to(AF_INET, port);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "\x16\x03\x01\x00\x05hello", 10), 10);
	t0 = e2e_now_ms();
	cr_assert(e2e_wait_lines(json, 1, 8000), "no record for the idle connection: %s",
		  e2e_tail(px_tmp("cap.err"), 300));
	cr_assert_geq(e2e_now_ms() - t0, 1500, "the record came before the idle timeout");
	cr_assert(e2e_line(json, 0, line, sizeof(line)));
	cr_assert_str_eq(e2e_member(line, "type"), "connection", "%s", line);
	cr_assert_str_eq(e2e_member(line, "truncated"), "false", "idle is an end, not a cut: %s", line);
	close(fd);
	cr_assert_eq(kill(cap, SIGTERM), 0);
	cr_assert_eq(e2e_wait(cap, 10000), 0);
	px_stop_child(nginx);
	cr_assert(e2e_line(json, e2e_count_lines(json) - 1, line, sizeof(line)));
	cr_assert_str_eq(e2e_member(line, "type"), "summary", "%s", line);
}

/* The complaint "the tcpdump pipe did not stream": tcpdump -w - -U into
 * `mtlsdiag pcap -`; a refused connection (a leg a gateway could have
 * made, held for its partner) is printed while tcpdump still runs. */
Test(live, a_tcpdump_pipe_prints_each_verdict_as_it_is_known)
{
	struct lab_truth truth;
	uint16_t port;
	char filter[64], line[16384], why[512];
	const char *fifo = px_tmp("pipe"), *json = px_tmp("pipe.json");
	pid_t nginx, td, an;
	struct px_curl r;

	if (!px_have("tcpdump"))
		cr_skip_test("tcpdump is not installed (scripts/deps installs it)");
	if (!can_capture())
		return;
	load_truth(&truth);
	nginx = start_nginx(&port, filter, sizeof(filter));
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	{
		char *argv[] = { (char *)bin(), "pcap", "--json", (char *)json, "-", NULL };
		struct e2e_io io = { fifo, px_tmp("pipe.out"), px_tmp("pipe.err") };

		an = e2e_spawn(argv, &io, 50);
		cr_assert(an > 0);
	}
	{
		char *argv[] = { "tcpdump", "-i", "lo", "-U", "-w", (char *)fifo, filter, NULL };
		struct e2e_io io = { NULL, NULL, px_tmp("tcpdump.err") };

		td = e2e_spawn(argv, &io, 50);
		cr_assert(td > 0);
	}
	cr_assert(e2e_wait_contains(px_tmp("tcpdump.err"), "listening on", 10000), "%s",
		  e2e_tail(px_tmp("tcpdump.err"), 300));
	r = px_run_curl(port, "1.2", NULL, NULL);
	cr_assert_str_eq(r.http_code, "400");
	/* within the leg hold (1 s), the clock's second and its rounding */
	cr_assert(e2e_wait_lines(json, 1, 10000), "no record while tcpdump runs: %s", e2e_tail(px_tmp("pipe.err"), 300));
	cr_assert(e2e_wait_lines(px_tmp("pipe.out"), 1, 2000), "no human line while tcpdump runs");
	cr_assert(e2e_line(json, 0, line, sizeof(line)));
	cr_assert(record_agrees(json, 0, truth_row(&truth, "none", "1.2"), false, why, sizeof(why)), "%s", why);
	r = px_run_curl(port, "1.3", "good", NULL);
	cr_assert_str_eq(r.http_code, "200");
	cr_assert(e2e_wait_lines(json, 2, 10000), "no second record while tcpdump runs");
	cr_assert(record_agrees(json, 1, truth_row(&truth, "good", "1.3"), false, why, sizeof(why)), "%s", why);

	cr_assert_eq(kill(td, SIGINT), 0);
	cr_assert_eq(e2e_wait(td, 10000), 0);
	cr_assert_eq(e2e_wait(an, 10000), 0, "%s", e2e_tail(px_tmp("pipe.err"), 300));
	cr_assert_eq(e2e_count_lines(json), 3, "%s", e2e_tail(json, 300));
	px_stop_child(nginx);
	lab_truth_free(&truth);
}

/* An old capture piped in (zcat file | mtlsdiag pcap -) is not live: a
 * gateway's two legs are held for each other as long as in the file (10 s,
 * not the 1 s of a live capture), and the lines are the file's.  The legs
 * of tests/data/mitm/mitm_nocert_tls12 are merged with the server leg 2 s
 * later, which only the longer hold pairs. */
Test(live, an_old_capture_piped_in_pairs_legs_as_the_file_does)
{
	char cmd[2048], server_leg[1024], client_leg[1024];
	const char *shifted = px_tmp("server-2s.pcap"), *merged = px_tmp("legs-2s.pcap");
	char *editcap[] = { "editcap", "-t", "2", server_leg, (char *)shifted, NULL };
	char *mergecap[] = { "mergecap", "-w", (char *)merged, client_leg, (char *)shifted, NULL };
	char *file_argv[] = { (char *)bin(), "pcap", (char *)merged, NULL };
	char *pipe_argv[] = { "sh", "-c", cmd, NULL };
	struct e2e_io quiet = { NULL, NULL, NULL };
	struct e2e_io file_io = { NULL, px_tmp("file.out"), NULL }, pipe_io = { NULL, px_tmp("pipe.out"), NULL };
	char *a, *b;

	if (!px_have("editcap") || !px_have("mergecap"))
		cr_skip_test("editcap and mergecap (wireshark-common, with tshark in scripts/deps) are not installed");
	/* test_path's buffer is its own: each path copied */
	snprintf(server_leg, sizeof(server_leg), "%s", test_path("tests/data/mitm/mitm_nocert_tls12.server.pcap"));
	snprintf(client_leg, sizeof(client_leg), "%s", test_path("tests/data/mitm/mitm_nocert_tls12.client.pcap"));
	cr_assert_eq(e2e_run(editcap, &quiet, 20000), 0);
	cr_assert_eq(e2e_run(mergecap, &quiet, 20000), 0);
	snprintf(cmd, sizeof(cmd), "cat '%s' | '%s' pcap -", merged, bin());
	cr_assert_eq(e2e_run(file_argv, &file_io, 20000), 0);
	cr_assert_eq(e2e_run(pipe_argv, &pipe_io, 20000), 0);
	a = e2e_slurp(px_tmp("file.out"));
	b = e2e_slurp(px_tmp("pipe.out"));
	cr_assert(a && b);
	cr_assert_eq(px_count_lines(px_tmp("file.out"), "paired with"), 2, "%s", a);
	cr_assert_str_eq(b, a);
	free(a);
	free(b);
}

/* An interface that goes away under the capture (a veth pair in a
 * network namespace of the test's, one end deleted) ends the run: one line
 * that says why, the summary, exit 2. */
Test(live, an_interface_that_disappears_ends_the_run_with_the_summary)
{
	char ns[64], cmd[512], *err, *out;
	pid_t pid;
	int status;

	snprintf(ns, sizeof(ns), "mtlsdiag-cap-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "ip netns add %s && ip -n %s link add va type veth peer name vb && ip -n %s link set va up "
		 ">/dev/null 2>&1", ns, ns, ns);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s >/dev/null 2>&1", ns);
		(void)system(cmd);
		cr_skip_test("cannot make a network namespace with a veth pair here (ip netns, CAP_SYS_ADMIN)");
	}
	{
		char *argv[] = { "ip", "netns", "exec", ns, (char *)bin(), "capture", "-i", "va", NULL };
		struct e2e_io io = { NULL, px_tmp("gone.out"), px_tmp("gone.err") };

		pid = e2e_spawn(argv, &io, 30);
	}
	cr_assert(pid > 0);
	if (e2e_wait_contains(px_tmp("gone.err"), "listening on va", 10000)) {
		snprintf(cmd, sizeof(cmd), "ip -n %s link del va", ns);
		(void)system(cmd);
	}
	status = e2e_wait(pid, 10000);
	snprintf(cmd, sizeof(cmd), "ip netns del %s", ns);
	(void)system(cmd);
	err = e2e_slurp(px_tmp("gone.err"));
	out = e2e_slurp(px_tmp("gone.out"));
	cr_assert(err && out);
	cr_assert_eq(status, 2, "%s", err);
	cr_assert(strstr(err, "mtlsdiag capture: reading va stopped: "), "%s", err);
	cr_assert(strstr(out, "0 connections"), "%s", out);
	cr_assert(strstr(out, "dropped by the kernel"), "%s", out);
	free(err);
	free(out);
}

/* ---- what stops it before it starts ---- */

/* `prefix... mtlsdiag capture args...` exits 2 with one line on stderr
 * that holds needle (and needle2), and prints nothing else. */
static void expect_refusal_under(char *const *prefix, char *const *args, const char *needle, const char *needle2)
{
	char *argv[24];
	struct e2e_io io = { NULL, px_tmp("r.out"), px_tmp("r.err") };
	size_t n = 0;
	char *text;

	while (prefix && *prefix && n < 8)
		argv[n++] = *prefix++;
	argv[n++] = (char *)bin();
	argv[n++] = "capture";
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	cr_assert_eq(e2e_run(argv, &io, 15000), 2, "%s", e2e_tail(px_tmp("r.err"), 400));
	text = e2e_slurp(px_tmp("r.err"));
	cr_assert_not_null(text);
	cr_assert(strstr(text, needle), "no '%s' in: %s", needle, text);
	if (needle2)
		cr_assert(strstr(text, needle2), "no '%s' in: %s", needle2, text);
	cr_assert_eq(e2e_count_lines(px_tmp("r.err")), 1, "one line: %s", text);
	cr_assert_eq(e2e_count_lines(px_tmp("r.out")), 0);
	free(text);
}

static void expect_refusal(char *const *args, const char *needle, const char *needle2)
{
	expect_refusal_under(NULL, args, needle, needle2);
}

Test(live, without_cap_net_raw_one_line_says_what_to_do)
{
	/* root without CAP_NET_RAW in its bounding set: what an unprivileged
	 * user meets */
	char *drop[] = { "setpriv", "--bounding-set", "-net_raw,-net_admin", "--inh-caps", "-all", NULL };
	char *try_drop[] = { "setpriv", "--bounding-set", "-net_raw,-net_admin", "--inh-caps", "-all", "true", NULL };
	char *args[] = { "-i", "lo", NULL };
	struct e2e_io io = { NULL, NULL, px_tmp("setpriv.err") };

	if (geteuid() == 0 && (!px_have("setpriv") || e2e_run(try_drop, &io, 10000) != 0))
		cr_skip_test("cannot drop CAP_NET_RAW here (setpriv: %s)", e2e_tail(px_tmp("setpriv.err"), 200));
	expect_refusal_under(geteuid() == 0 ? drop : NULL, args, "CAP_NET_RAW",
			     "run as root, or give the program the capability once: sudo setcap cap_net_raw,cap_net_admin+eip");
}

Test(live, a_missing_interface_is_named)
{
	char *args[] = { "-i", "nosuchif0", NULL };

	expect_refusal(args, "no interface named 'nosuchif0'", "ip link");
}

Test(live, a_bad_filter_is_quoted_with_the_reason)
{
	char *args[] = { "-i", "lo", "tcp", "port", "notanumber", NULL };

	if (!can_capture())
		return;
	expect_refusal(args, "bad filter expression \"tcp port notanumber\"", NULL);
}

Test(live, usage_errors)
{
	char *no_iface[] = { "tcp", NULL };
	char *two_filters[] = { "-i", "lo", "-f", "tcp", "port", "443", NULL };
	char *snaplen[] = { "-i", "lo", "--snaplen", "10", NULL };
	char *bufsize[] = { "-i", "lo", "--buffer-size", "12X", NULL };

	expect_refusal(no_iface, "no interface given: -i IFACE", NULL);
	expect_refusal(two_filters, "a filter given twice", NULL);
	expect_refusal(snaplen, "--snaplen '10'", NULL);
	expect_refusal(bufsize, "--buffer-size '12X'", NULL);
}
