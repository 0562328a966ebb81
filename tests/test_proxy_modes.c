/* `mtlsdiag proxy` beyond the static relay: the CONNECT proxy (alone and
 * chained with --via), transparent mode behind an nftables REDIRECT in a
 * network namespace of its own, --pcap-out read back by `mtlsdiag pcap`,
 * and the operations: --max-conns, SIGHUP, --user.  Real peers on
 * loopback: openssl s_server with the lab PKI, curl, an echo server. */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "front/proxy.h"
#include "proxyutil.h"
#include "testutil.h"

/* The final record of the connection from client port `port`. */
static const char *record_of_port(const char *json, unsigned port)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "\"client\":{\"ip\":\"127.0.0.1\",\"port\":%u}", port);
	return px_find_line(json, needle);
}

/* Sends raw bytes to the proxy and returns what came back before it
 * closed (at most len - 1 bytes, NUL-terminated). */
static const char *raw_exchange(uint16_t port, const char *send, char *buf, size_t len)
{
	int fd = px_connect_to(AF_INET, port);
	size_t got = 0;
	long long end = e2e_now_ms() + 5000;

	cr_assert(fd >= 0);
	cr_assert(write(fd, send, strlen(send)) == (ssize_t)strlen(send));
	while (got + 1 < len && e2e_now_ms() < end) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(fd, buf + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

/* ---- explicit proxy: CONNECT ---- */

Test(proxy_modes, allow_patterns)
{
	char err[200];

	cr_assert(proxy_allow_match("*.example.com:443", "api.EXAMPLE.com", 443));
	cr_assert(!proxy_allow_match("*.example.com:443", "api.example.com", 8443));
	cr_assert(!proxy_allow_match("*.example.com:443", "example.com.evil.net", 443));
	cr_assert(proxy_allow_match("*:*", "anything", 1));
	cr_assert(proxy_allow_match("10.1.2.*:*", "10.1.2.3", 22));
	cr_assert(!proxy_allow_match("10.1.2.*:*", "10.1.2.example.net", 22), "address patterns admit addresses only");
	cr_assert(proxy_allow_match("[2001:db8::*]:443", "2001:db8::5", 443));
	cr_assert(!proxy_allow_match("[2001:db8::*]:443", "2001:db8::x.example", 443));
	cr_assert(proxy_allow_valid("host:443", err, sizeof(err)));
	cr_assert(!proxy_allow_valid("host", err, sizeof(err)));
	cr_assert(!proxy_allow_valid("host:0", err, sizeof(err)));
	cr_assert(!proxy_allow_valid("host:70000", err, sizeof(err)));
	cr_assert(!proxy_allow_valid(":443", err, sizeof(err)));
}

static const struct {
	const char *tls, *cert_case, *verdict, *reason;
} tls12_cases[] = {
	{ "1.2", NULL, "client_sent_no_cert", NULL },
	{ "1.2", "good", "client_cert_accepted", NULL },
	{ "1.2", "expired", "server_rejected_chain", "expired" },
};

Test(proxy_modes, connect_mode_relays_to_the_asked_server, .init = px_setup, .fini = px_teardown)
{
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json");
	char listen_at[64], extra[128], target[64];
	pid_t srv, proxy;
	size_t i;

	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--connect", "--json", json, (char *)NULL);
	snprintf(extra, sizeof(extra), "-x http://127.0.0.1:%u", px_port);
	snprintf(target, sizeof(target), "localhost:%u", srv_port);
	for (i = 0; i < sizeof(tls12_cases) / sizeof(tls12_cases[0]); i++) {
		struct px_curl direct = px_run_curl(srv_port, tls12_cases[i].tls, tls12_cases[i].cert_case, NULL);
		struct px_curl via = px_run_curl(srv_port, tls12_cases[i].tls, tls12_cases[i].cert_case, extra);
		const char *label = tls12_cases[i].cert_case ? tls12_cases[i].cert_case : "no cert";
		const char *rec;

		cr_expect_eq(via.exit_code, direct.exit_code, "%s: curl exit %d through the proxy, %d direct",
			     label, via.exit_code, direct.exit_code);
		cr_expect_str_eq(via.http_code, direct.http_code, "%s: HTTP status", label);
		cr_assert(e2e_wait_lines(json, i + 1, 5000), "%s: no final record", label);
		rec = px_nth_line(json, i);
		cr_expect_str_eq(px_json_field(rec, "verdict"), tls12_cases[i].verdict, "%s: %s", label, rec);
		if (tls12_cases[i].reason)
			cr_expect_str_eq(px_json_field(rec, "reason"), tls12_cases[i].reason, "%s: %s", label, rec);
		cr_expect_str_eq(px_json_field(rec, "mode"), "connect", "%s", rec);
		cr_expect_str_eq(px_json_field(rec, "preamble"), "HTTP CONNECT", "%s", rec);
		cr_expect_str_eq(px_json_field(rec, "connect_target"), target, "%s", rec);
		cr_expect(strstr(rec, "\"server\":{\"ip\":\"127.0.0.1\""), "the server is the target: %s", rec);
	}
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);
}

Test(proxy_modes, connect_mode_refuses_bad_requests_and_unlisted_destinations, .init = px_setup, .fini = px_teardown)
{
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port(), dead_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	char listen_at[64], allow1[64], allow2[64], req[256], buf[4096], extra[128];
	struct px_curl r;
	pid_t srv, proxy;
	int status;

	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(allow1, sizeof(allow1), "LOCALHOST:%u", srv_port);   /* names match without case */
	snprintf(allow2, sizeof(allow2), "127.0.0.*:%u", dead_port);
	proxy = px_start(log, "--listen", listen_at, "--connect", "--allow", allow1, "--allow", allow2,
			 "--json", json, (char *)NULL);

	/* not a CONNECT request: 400, logged */
	raw_exchange(px_port, "GET / HTTP/1.1\r\nHost: example\r\n\r\n", buf, sizeof(buf));
	cr_expect(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "answer to GET: %s", buf);
	cr_expect(e2e_wait_contains(log, "refused with 400 Bad Request", 3000), "%s", px_nth_line(log, 2));
	/* a destination not on the list: 403 */
	snprintf(req, sizeof(req), "CONNECT localhost:%u HTTP/1.1\r\nHost: localhost:%u\r\n\r\n", dead_port, dead_port);
	raw_exchange(px_port, req, buf, sizeof(buf));
	cr_expect(strncmp(buf, "HTTP/1.1 403 ", 13) == 0, "answer to an unlisted destination: %s", buf);
	/* an address pattern does not admit a name that merely starts alike */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1.nip.io:%u HTTP/1.1\r\n\r\n", dead_port);
	raw_exchange(px_port, req, buf, sizeof(buf));
	cr_expect(strncmp(buf, "HTTP/1.1 403 ", 13) == 0, "answer to a look-alike name: %s", buf);
	/* listed but nothing listens: 502 with the reason */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", dead_port);
	raw_exchange(px_port, req, buf, sizeof(buf));
	cr_expect(strncmp(buf, "HTTP/1.1 502 ", 13) == 0 && strstr(buf, "Connection refused"),
		  "answer to an unreachable destination: %s", buf);
	/* curl sees the refusal as the proxy's status */
	snprintf(extra, sizeof(extra), "-x http://127.0.0.1:%u", px_port);
	r = px_run_curl(dead_port, "1.2", NULL, extra);
	cr_expect_eq(r.exit_code, 56, "curl through a refusing proxy: exit %d", r.exit_code);
	/* and the proxy still serves what is allowed */
	r = px_run_curl(srv_port, "1.2", "good", extra);
	cr_expect_eq(r.exit_code, 0);
	cr_expect_str_eq(r.http_code, "200");
	cr_assert(e2e_wait_contains(json, "client_cert_accepted", 5000));
	cr_expect(e2e_wait_contains(json, "\"type\":\"connect_refused\"", 0));
	cr_expect(e2e_wait_contains(json, "\"type\":\"upstream_error\"", 0));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);

	/* a CONNECT proxy open to the network needs an allow-list */
	snprintf(req, sizeof(req), "'%s' proxy --listen 0.0.0.0:%u --connect 2>'%s'", getenv("MTLSDIAG_BIN"),
		 px_port, px_tmp("open.err"));
	status = system(req);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "an open relay must not start");
	cr_expect(e2e_wait_contains(px_tmp("open.err"), "needs --allow", 0), "%s", px_nth_line(px_tmp("open.err"), 0));
}

Test(proxy_modes, via_passes_connect_on_to_a_further_proxy, .init = px_setup, .fini = px_teardown)
{
	uint16_t srv_port = e2e_free_port(), gw_port = e2e_free_port(), px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json");
	char gw_at[64], listen_at[64], via[64], extra[128], gw_ep[64], allow[64];
	const char *rec;
	struct px_curl r, direct;
	pid_t srv, gw, proxy;

	srv = px_start_s_server(srv_port);
	/* the "web gateway": another CONNECT proxy that allows only the server */
	snprintf(gw_at, sizeof(gw_at), "127.0.0.1:%u", gw_port);
	snprintf(allow, sizeof(allow), "localhost:%u", srv_port);
	gw = px_start(px_tmp("gw.log"), "--listen", gw_at, "--connect", "--allow", allow, (char *)NULL);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(via, sizeof(via), "127.0.0.1:%u", gw_port);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--via", via, "--json", json, (char *)NULL);
	snprintf(extra, sizeof(extra), "-x http://127.0.0.1:%u", px_port);

	direct = px_run_curl(srv_port, "1.2", NULL, NULL);
	r = px_run_curl(srv_port, "1.2", NULL, extra);
	cr_expect_eq(r.exit_code, direct.exit_code, "curl exit %d through both proxies, %d direct", r.exit_code,
		     direct.exit_code);
	cr_assert(e2e_wait_lines(json, 1, 5000));
	rec = px_nth_line(json, 0);
	cr_expect_str_eq(px_json_field(rec, "verdict"), "client_sent_no_cert", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "preamble"), "HTTP CONNECT", "%s", rec);
	snprintf(gw_ep, sizeof(gw_ep), "127.0.0.1:%u", gw_port);
	cr_expect_str_eq(px_json_field(rec, "upstream"), gw_ep, "the upstream is the gateway: %s", rec);
	cr_expect(e2e_wait_contains(px_tmp("gw.log"), "client did not send cert", 3000),
		  "the gateway relayed it too");

	/* the gateway's own refusal reaches the client unchanged */
	r = px_run_curl(e2e_free_port(), "1.2", NULL, extra);
	cr_expect_eq(r.exit_code, 56, "curl exit %d", r.exit_code);
	cr_expect(e2e_wait_contains(px_tmp("gw.log"), "refused with 403", 3000));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	cr_expect_eq(e2e_stop(gw, 12000), 0);
	px_stop_child(srv);
}

/* ---- --pcap-out ---- */

static void check_pcap_round_trip(bool full)
{
	static const struct { const char *tls, *cert_case; } cases[] = {
		{ "1.2", NULL }, { "1.2", "good" }, { "1.2", "expired" },
		{ "1.3", NULL }, { "1.3", "good" }, { "1.3", "expired" },
	};
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *pcap = px_tmp("relayed.pcap"), *replay = px_tmp("replay.json");
	char listen_at[64], upstream[64], cmd[1024];
	pid_t srv, proxy;
	size_t i, n;

	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", srv_port);
	if (full)
		proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream, "--json", json,
				 "--pcap-out", pcap, "--pcap-full", (char *)NULL);
	else
		proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream, "--json", json,
				 "--pcap-out", pcap, (char *)NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		px_run_curl(px_port, cases[i].tls, cases[i].cert_case, NULL);
	cr_assert(e2e_wait_lines(json, 6, 5000));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);

	snprintf(cmd, sizeof(cmd), "'%s' pcap --json '%s' '%s' >/dev/null 2>'%s'", getenv("MTLSDIAG_BIN"), replay, pcap,
		 px_tmp("replay.err"));
	cr_assert(system(cmd) != -1);
	n = e2e_count_lines(json);
	cr_expect_eq(n, 6);
	for (i = 0; i < n; i++) {
		static const char *const keys[] = { "verdict", "reason", "fault", "basis" };
		char rec[65536], port_s[16], want[256];
		const char *p, *other;
		unsigned port;
		size_t k;

		snprintf(rec, sizeof(rec), "%s", px_nth_line(json, i));
		p = strstr(rec, "\"client\":{\"ip\":\"127.0.0.1\",\"port\":");
		cr_assert_not_null(p, "%s", rec);
		port = (unsigned)strtoul(p + strlen("\"client\":{\"ip\":\"127.0.0.1\",\"port\":"), NULL, 10);
		snprintf(port_s, sizeof(port_s), "%u", port);
		other = record_of_port(replay, port);
		cr_expect_not_null(other, "connection from port %s is not in the capture (%s)", port_s,
				   px_nth_line(px_tmp("replay.err"), 0));
		if (!other)
			continue;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			snprintf(want, sizeof(want), "%s", px_json_field(rec, keys[k]));
			cr_expect_str_eq(px_json_field(other, keys[k]), want, "port %s %s: proxy %s, capture %s",
					 port_s, keys[k], rec, other);
		}
	}
	if (system("command -v tshark >/dev/null 2>&1") == 0) {
		snprintf(cmd, sizeof(cmd), "tshark -r '%s' -d tcp.port==%u,tls -Y 'tls.handshake.type == 1' "
			 "-T fields -e tcp.srcport 2>/dev/null | wc -l >'%s'", pcap, srv_port, px_tmp("tshark.out"));
		cr_assert(system(cmd) != -1);
		cr_expect(e2e_wait_contains(px_tmp("tshark.out"), "6", 0), "tshark sees 6 ClientHellos: %s",
			  px_nth_line(px_tmp("tshark.out"), 0));
	}
}

Test(proxy_modes, pcap_out_gives_the_same_verdicts, .init = px_setup, .fini = px_teardown)
{
	check_pcap_round_trip(false);
}

Test(proxy_modes, pcap_full_gives_the_same_verdicts, .init = px_setup, .fini = px_teardown)
{
	check_pcap_round_trip(true);
}

/* ---- operations ---- */

/* An echo server that serves each connection in a child of its own. */
static pid_t start_forking_echo(int lfd)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	px_child_guard(60);
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		char buf[4096];
		ssize_t n;

		if (fd < 0)
			continue;
		if (fork() == 0) {
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (write(fd, buf, (size_t)n) != n)
					break;
			_exit(0);
		}
		close(fd);
	}
}

/* True if exactly msg arrives on fd within timeout_ms. */
static bool arrives(int fd, const char *msg, int timeout_ms)
{
	char buf[256];
	size_t got = 0, len = strlen(msg);
	long long end = e2e_now_ms() + timeout_ms;

	while (got < len && e2e_now_ms() < end) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return got == len && memcmp(buf, msg, len) == 0;
}

/* Sends msg, true if it comes back within timeout_ms. */
static bool echoes(int fd, const char *msg, int timeout_ms)
{
	return write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg) && arrives(fd, msg, timeout_ms);
}

Test(proxy_modes, max_conns_pauses_accepting_instead_of_refusing, .init = px_setup, .fini = px_teardown)
{
	uint16_t echo_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &echo_port), c1, c2, c3;
	const char *log = px_tmp("proxy.log");
	char listen_at[64], upstream[64];
	pid_t echo, proxy;

	echo = start_forking_echo(lfd);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", echo_port);
	proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--max-conns", "2", (char *)NULL);
	c1 = px_connect_to(AF_INET, px_port);
	c2 = px_connect_to(AF_INET, px_port);
	cr_assert(c1 >= 0 && c2 >= 0);
	cr_expect(echoes(c1, "one", 3000));
	cr_expect(echoes(c2, "two", 3000));
	cr_expect(e2e_wait_contains(log, "2 connections open, the limit (--max-conns 2): accepting paused", 2000),
		  "no pause logged: %s", e2e_tail(log, 400));
	cr_expect(e2e_wait_contains(log, "at most 2 connections open (--max-conns 2)", 0), "%s", e2e_tail(log, 400));
	/* the third waits in the kernel's queue: connected, not served */
	c3 = px_connect_to(AF_INET, px_port);
	cr_assert(c3 >= 0, "the third connection was refused: %s", strerror(errno));
	cr_assert(write(c3, "three", 5) == 5);
	cr_expect(!arrives(c3, "three", 700), "served beyond --max-conns");
	close(c1);
	cr_expect(arrives(c3, "three", 3000), "not served once a connection closed");
	cr_expect(e2e_wait_contains(log, "below the limit (--max-conns 2): accepting again", 2000));
	close(c2);
	close(c3);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
}

Test(proxy_modes, sighup_reopens_the_log_files, .init = px_setup, .fini = px_teardown)
{
	uint16_t echo_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &echo_port), fd;
	const char *log = px_tmp("proxy.log"), *json = px_tmp("proxy.json");
	char listen_at[64], upstream[64], moved_log[400], moved_json[400];
	pid_t echo, proxy;

	echo = start_forking_echo(lfd);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", echo_port);
	proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--json", json, (char *)NULL);
	snprintf(moved_log, sizeof(moved_log), "%s.1", log);
	snprintf(moved_json, sizeof(moved_json), "%s.1", px_tmp("proxy.json"));
	cr_assert(rename(log, moved_log) == 0);
	cr_assert(rename(px_tmp("proxy.json"), moved_json) == 0);
	kill(proxy, SIGHUP);
	cr_assert(e2e_wait_contains(log, "reopened", 3000), "no new log after SIGHUP");
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect(echoes(fd, "after the rotation", 3000));
	close(fd);
	cr_expect(e2e_wait_contains(log, "not_tls", 3000) || e2e_wait_contains(log, "not TLS", 3000),
		  "the connection's line went to the new log: %s", px_nth_line(log, 1));
	cr_expect(e2e_wait_lines(json, 1, 3000), "the record went to the new JSON file");
	cr_expect(!e2e_wait_contains(moved_log, "[closed by", 0), "the old log got the line");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
}

Test(proxy_modes, user_drops_privileges_after_binding, .init = px_setup, .fini = px_teardown)
{
	uint16_t echo_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &echo_port), fd, status;
	char listen_at[64], upstream[64], cmd[512];
	pid_t echo, proxy;

	if (geteuid() != 0)
		cr_skip_test("needs root to change user");
	echo = start_forking_echo(lfd);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", echo_port);
	/* the log is opened before the switch: it may sit where nobody writes */
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream, "--user", "nobody",
			 (char *)NULL);
	cr_expect_eq(px_proc_status(proxy, "Uid"), 65534, "the proxy still runs as uid %ld", px_proc_status(proxy, "Uid"));
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect(echoes(fd, "as nobody", 3000));
	close(fd);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);

	snprintf(cmd, sizeof(cmd), "'%s' proxy --listen 127.0.0.1:%u --upstream %s --user no-such-user-here 2>'%s'",
		 getenv("MTLSDIAG_BIN"), e2e_free_port(), upstream, px_tmp("user.err"));
	status = system(cmd);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	cr_expect(e2e_wait_contains(px_tmp("user.err"), "no-such-user-here: no such user", 0));
}

/* ---- transparent mode ---- */

/* The namespace's name is the test process's own: two runs on one machine
 * do not share it. */
static char ns[40], ns_exec[80];

static void ns_name(void)
{
	snprintf(ns, sizeof(ns), "mtlsdiag-tp-%d", (int)getpid());
	snprintf(ns_exec, sizeof(ns_exec), "ip netns exec %s", ns);
}

static int sh(const char *cmd)
{
	return system(cmd);
}

/* A network namespace of the test's own with loopback up and an nftables
 * rule sending the connections that uid 65534 makes to port `dport` on to
 * `to` (REDIRECT), in IPv4 and IPv6. */
static void netns_up(uint16_t dport, uint16_t to)
{
	char rules[512], cmd[1024];
	FILE *f;

	ns_name();
	test_fmt(cmd, "ip netns del %s 2>/dev/null", ns);
	(void)sh(cmd);
	test_fmt(cmd, "ip netns add %s", ns);
	cr_assert(sh(cmd) == 0, "cannot create a network namespace");
	test_fmt(cmd, "ip -n %s link set lo up", ns);
	cr_assert(sh(cmd) == 0);
	snprintf(rules, sizeof(rules),
		 "table inet mtlsdiag_test {\n"
		 "  chain out { type nat hook output priority -100; policy accept;\n"
		 "    meta skuid 65534 tcp dport %u redirect to :%u\n"
		 "  }\n"
		 "}\n", dport, to);
	f = fopen(px_tmp("rules.nft"), "w");
	cr_assert_not_null(f);
	fputs(rules, f);
	fclose(f);
	test_fmt(cmd, "%s nft -f '%s'", ns_exec, px_tmp("rules.nft"));
	cr_assert(system(cmd) == 0, "nft could not load the REDIRECT rule");
}

/* The lab PKI copied where uid 65534 can read it: the checkout itself
 * may sit in a directory only root may enter (mktemp -d makes them 0700),
 * and so is the scratch directory; it is opened for traversal only. */
static const char *pki_for_nobody(void)
{
	static char dir[400];
	char cmd[1200];

	if (dir[0])
		return dir;
	snprintf(dir, sizeof(dir), "%s/", px_tmp("pki"));
	cr_assert(chmod(px_tmp(""), 0711) == 0);
	test_fmt(cmd, "mkdir -m 0755 '%s' && cp '%s'*.pem '%s'*.key '%s' && chmod 0644 '%s'*",
		 dir, test_path(PKI), test_path(PKI), dir, dir);
	cr_assert(system(cmd) == 0, "cannot copy the lab PKI to %s", dir);
	return dir;
}

/* curl inside the namespace, as uid 65534 (redirected) or as root
 * (direct); returns curl's exit status. */
static int ns_curl_as(bool redirected, const char *addr, uint16_t port, const char *cert_case)
{
	const char *pki = pki_for_nobody();
	char cmd[2048], cert[512] = "";

	if (cert_case)
		test_fmt(cert, "--cert '%s%s-chain.pem' --key '%s%s.key'",
			 pki, cert_case, pki, cert_case);
	snprintf(cmd, sizeof(cmd),
		 "%s %s "
		 "curl -s -o /dev/null --max-time 5 --tlsv1.2 --tls-max 1.2 --cacert '%sserver-root.pem' "
		 "--resolve 'localhost:%u:%s' %s 'https://localhost:%u/'",
		 ns_exec, redirected ? "setpriv --reuid=65534 --regid=65534 --clear-groups" : "",
		 pki, port, addr, cert, port);
	return WEXITSTATUS(system(cmd));
}

static int ns_curl(const char *addr, uint16_t port, const char *cert_case)
{
	return ns_curl_as(true, addr, port, cert_case);
}

Test(proxy_modes, transparent_mode_follows_the_redirect, .init = px_setup, .fini = px_teardown)
{
	const uint16_t srv_port = 18951, px_port = 18952;
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	const char *args[] = { "--listen", "[::]:18952", "--transparent", "--json", NULL, NULL };
	const char *rec;
	pid_t srv, proxy;

	if (geteuid() != 0)
		cr_skip_test("needs root for a network namespace");
	cr_assert(system("command -v nft >/dev/null && command -v ip >/dev/null") == 0,
		  "nft and ip are needed (Debian packages nftables, iproute2: scripts/deps test)");
	netns_up(srv_port, px_port);
	srv = px_start_s_server_in(ns_exec, "0.0.0.0", srv_port);
	args[4] = json;
	proxy = px_start_argv(ns_exec, log, args);

	cr_expect_eq(ns_curl("127.0.0.1", srv_port, "good"), 0, "the client reaches its server through the proxy");
	cr_expect_eq(ns_curl("::1", srv_port, NULL), ns_curl_as(false, "::1", srv_port, NULL),
		     "no certificate: the same answer as direct");
	cr_assert(e2e_wait_lines(json, 2, 5000), "%s", px_nth_line(log, 2));
	rec = px_nth_line(json, 0);
	cr_expect_str_eq(px_json_field(rec, "verdict"), "client_cert_accepted", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "mode"), "transparent", "%s", rec);
	cr_expect(strstr(rec, "\"server\":{\"ip\":\"127.0.0.1\",\"port\":18951}"), "the original destination: %s", rec);
	rec = px_nth_line(json, 1);
	cr_expect_str_eq(px_json_field(rec, "verdict"), "client_sent_no_cert", "%s", rec);
	cr_expect(strstr(rec, "\"server\":{\"ip\":\"::1\",\"port\":18951}"), "IPv6 original destination: %s", rec);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);

	/* run as the very user the rule redirects: its own upstream connection
	 * comes back to it, and it says so instead of looping */
	{
		const char *args2[] = { "--listen", "[::]:18952", "--transparent", "--user", "nobody", NULL };

		proxy = px_start_argv(ns_exec, px_tmp("loop.log"), args2);
		cr_expect_neq(ns_curl("127.0.0.1", srv_port, "good"), 0);
		cr_expect(e2e_wait_contains(px_tmp("loop.log"), "redirect loop", 3000), "%s",
			  px_nth_line(px_tmp("loop.log"), 2));
		cr_expect(e2e_count_lines(px_tmp("loop.log")) < 10, "it looped: %zu lines",
			  e2e_count_lines(px_tmp("loop.log")));
		cr_expect_eq(e2e_stop(proxy, 12000), 0);
	}
	px_stop_child(srv);
	{
		char cmd[128];

		test_fmt(cmd, "ip netns del %s", ns);
		(void)sh(cmd);
	}
}
