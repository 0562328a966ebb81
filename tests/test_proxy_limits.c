/* `mtlsdiag proxy` under abuse and at its limits: clients that send an
 * unfinished ClientHello of a quarter of a megabyte (the handshake
 * budget), that drip a byte a second (the handshake deadline), that open
 * too many connections from one address (the per-source cap); what an
 * idle mutual-TLS connection costs once its verdict is said; and the
 * stop: listeners closed at once, the open connections drained.  The
 * built program runs as a child between real sockets on loopback. */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "front/sourcecap.h"
#include "proxyutil.h"
#include "testutil.h"

/* ---- peers ---- */

/* Bytes process pid has read (rchar in /proc/PID/io), or -1. */
static long long bytes_read_by(pid_t pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "rchar:", 6) == 0)
			v = strtoll(line + 6, NULL, 10);
	fclose(f);
	return v;
}

/* The proxy in front of a server of its own that reads without answering
 * (room for `conns` connections at once), with the options in `extra`
 * (NULL-terminated); its log and records in proxy.log, proxy.json. */
static pid_t start_proxy_with_sink(uint16_t px_port, size_t conns, pid_t *sink, const char *const *extra)
{
	uint16_t up_port;
	int lfd = px_listen_any(AF_INET, &up_port);
	char listen_at[64], upstream[64];
	const char *args[32] = { "--listen", listen_at, "--upstream", upstream, "--json", px_tmp("proxy.json") };
	size_t n = 6, i;

	cr_assert(listen(lfd, (int)conns + 24) == 0);
	*sink = px_start_poll_server(lfd, conns + 16, false);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	for (i = 0; extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return px_start_argv(NULL, px_tmp("proxy.log"), args);
}

/* ---- the handshake budget ---- */

/* The flooding clients' ClientHello: its header claims HELLO_CLAIMED
 * bytes, of which only HELLO_SENT arrive (a valid start, never finished). */
#define HELLO_CLAIMED 260000u
#define HELLO_SENT 261000u

/* `sent` bytes of TLS records of 16 KiB carrying one ClientHello whose
 * header claims `claimed` bytes. */
static uint8_t *unfinished_hello(size_t claimed, size_t sent)
{
	uint8_t *buf = malloc(sent);
	size_t at = 0, body = 0;

	cr_assert_not_null(buf);
	while (at < sent) {
		size_t n = sent - at - 5 < 16384 ? sent - at - 5 : 16384, i;

		buf[at++] = 22;
		buf[at++] = 3;
		buf[at++] = 1;
		buf[at++] = (uint8_t)(n >> 8);
		buf[at++] = (uint8_t)n;
		for (i = 0; i < n; i++, body++) {
			if (body == 0)
				buf[at + i] = 1;   /* client_hello */
			else if (body < 4)
				buf[at + i] = (uint8_t)(claimed >> (8 * (3 - body)));
			else if (body < 6)
				buf[at + i] = 3;   /* legacy_version 3.3 */
			else
				buf[at + i] = (uint8_t)(body * 31);
		}
		at += n;
	}
	return buf;
}

struct flood_rss {
	long before, peak, held, after;
};

/* n clients each send the unfinished ClientHello through the proxy at
 * px_port and hold; then all leave.  The proxy's resident memory (KiB)
 * before, at its peak, while they hold (once the server has had all their
 * bytes), and once they have gone and their n records are in json. */
static struct flood_rss flood(pid_t proxy, pid_t sink, uint16_t px_port, size_t n, const char *json)
{
	struct flood_rss rss = { px_proc_status(proxy, "VmRSS"), 0, 0, 0 };
	int *fds = calloc(n, sizeof(int));
	size_t *sent = calloc(n, sizeof(size_t)), hello_len = HELLO_SENT, done = 0, i;
	uint8_t *hello = unfinished_hello(HELLO_CLAIMED, HELLO_SENT);
	long long deadline;

	cr_assert(fds && sent);
	for (i = 0; i < n; i++) {
		fds[i] = px_connect_to(AF_INET, px_port);
		cr_assert(fds[i] >= 0, "connection %zu: %s", i, strerror(errno));
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	deadline = e2e_now_ms() + 60000;
	while (done < n && e2e_now_ms() < deadline) {
		for (i = 0; i < n; i++) {
			ssize_t w;

			if (sent[i] == hello_len)
				continue;
			w = write(fds[i], hello + sent[i], hello_len - sent[i]);
			if (w > 0) {
				sent[i] += (size_t)w;
				done += sent[i] == hello_len;
			} else if (w < 0 && errno != EAGAIN) {
				cr_assert_fail("client %zu: write: %s", i, strerror(errno));
			}
		}
		usleep(1000);
	}
	cr_assert_eq(done, n, "%zu of %zu clients sent their ClientHello in time", done, n);
	/* what the kernel still holds reaches the proxy, and through it the
	 * server */
	deadline = e2e_now_ms() + 60000;
	while (bytes_read_by(sink) < (long long)(n * hello_len) && e2e_now_ms() < deadline)
		usleep(50000);
	cr_expect_geq(bytes_read_by(sink), (long long)(n * hello_len), "the server got %lld bytes of %zu",
		      bytes_read_by(sink), n * hello_len);
	/* the proxy gives freed memory back once a second */
	usleep(2500000);
	rss.held = px_proc_status(proxy, "VmRSS");
	rss.peak = px_proc_status(proxy, "VmHWM");
	for (i = 0; i < n; i++)
		close(fds[i]);
	cr_expect(e2e_wait_lines(json, n, 30000), "%zu records for %zu connections", e2e_count_lines(json), n);
	usleep(1500000);
	rss.after = px_proc_status(proxy, "VmRSS");
	free(hello);
	free(fds);
	free(sent);
	return rss;
}

/* The defaults (--max-handshake-bytes 64K, --max-handshake-total 64M,
 * --over-budget splice): each connection is relayed on unobserved once its
 * observer would hold more, and says so in its record; the memory goes
 * back after the burst.  MTLSDIAG_FLOOD_CLIENTS=2000 gives the figures
 * in doc/proxy.md. */
Test(proxy_limits, an_unfinished_quarter_megabyte_hello_is_relayed_unobserved, .init = px_setup,
     .fini = px_teardown)
{
	static const char *const opts[] = { NULL };
	const char *env = getenv("MTLSDIAG_FLOOD_CLIENTS");
	size_t n = env ? strtoul(env, NULL, 10) : 200;
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	struct flood_rss rss;
	pid_t sink, proxy;

	alarm(110);
	px_room_for_fds(3 * n + 100);
	proxy = start_proxy_with_sink(px_port, n, &sink, opts);
	rss = flood(proxy, sink, px_port, n, json);
	cr_log_info("%zu clients, %u-byte unfinished ClientHello each: proxy RSS %ld KiB before, %ld KiB at the peak, "
		    "%ld KiB while they held, %ld KiB after they left",
		    n, HELLO_SENT, rss.before, rss.peak, rss.held, rss.after);
#ifndef __SANITIZE_ADDRESS__
	/* without the budget the observers held the whole ClientHello: RSS
	 * grew by n times its size (and a third of that stayed).  (Under
	 * AddressSanitizer, whose allocator keeps what it was given, RSS
	 * says nothing about the proxy's own memory.) */
	cr_expect_lt((rss.peak - rss.before) * 1024, (long)(n * HELLO_SENT) / 2,
		     "RSS grew from %ld to %ld KiB", rss.before, rss.peak);
	cr_expect_lt((rss.after - rss.before) * 1024, (long)(n * HELLO_SENT) / 8,
		     "RSS %ld KiB after the clients left, %ld before", rss.after, rss.before);
#endif
	cr_expect_eq(px_count_lines(json, "\"observed\":false"), n, "%zu of %zu records unobserved",
		     px_count_lines(json, "\"observed\":false"), n);
	cr_expect_eq(px_count_lines(json, "handshake over budget: "), n);
	cr_expect_eq(px_count_lines(json, "\"verdict\":\"incomplete\""), n);
	cr_expect_eq(px_count_lines(json, "\"spliced\":true"), n, "%s", px_nth_line(json, 0));
	cr_expect_eq(px_count_lines(log, "relayed on unobserved"), 2 * n, "a line when it happened, one at the end");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(sink);
}

/* A client that sends `sent` bytes of a ClientHello claiming `claimed`
 * and holds; -1 if it could not connect. */
static int send_unfinished_hello(uint16_t px_port, size_t claimed, size_t sent)
{
	int fd = px_connect_to(AF_INET, px_port);
	uint8_t *hello = unfinished_hello(claimed, sent);

	cr_assert(fd >= 0);
	cr_assert(write(fd, hello, sent) == (ssize_t)sent, "write: %s", strerror(errno));
	free(hello);
	return fd;
}

/* How the proxy ended fd: 'F' at a FIN, 'R' at a reset, 0 if it did not
 * within timeout_ms. */
static char ended_by_proxy(int fd, int timeout_ms)
{
	long long end = e2e_now_ms() + timeout_ms;
	char buf[4096];

	while (e2e_now_ms() < end) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		r = read(fd, buf, sizeof(buf));
		if (r == 0)
			return 'F';
		if (r < 0)
			return errno == ECONNRESET ? 'R' : 0;
	}
	return 0;
}

/* --over-budget close: the connection past --max-handshake-bytes is closed
 * at once, both ways, with its record. */
Test(proxy_limits, over_budget_close_ends_the_connection_with_its_record, .init = px_setup, .fini = px_teardown)
{
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *rec;
	static const char *const opts[] = { "--max-handshake-bytes", "16K", "--over-budget", "close", NULL };
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	int fd = send_unfinished_hello(px_port, 40000, 30000);

	cr_expect_neq(ended_by_proxy(fd, 2000), 0, "the connection was not closed");
	cr_assert(e2e_wait_lines(json, 1, 3000), "no record");
	rec = px_nth_line(json, 0);
	cr_expect_str_eq(px_json_field(rec, "close"), "over_budget", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "closed_by"), "proxy");
	cr_expect_str_eq(px_json_field(rec, "observed"), "false");
	cr_expect_str_eq(px_json_field(rec, "verdict"), "incomplete");
	cr_expect(strstr(rec, "over --max-handshake-bytes 16384; connection closed (--over-budget close)"), "%s", rec);
	close(fd);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(sink);
}

/* --max-handshake-total: connections each within their own budget hold
 * until the total would pass it; the one that passes it goes on
 * unobserved, the others stay observed. */
Test(proxy_limits, the_total_budget_is_shared_by_all_connections, .init = px_setup, .fini = px_teardown)
{
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	static const char *const opts[] = { "--max-handshake-bytes", "48K", "--max-handshake-total", "64K", NULL };
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	int fd[3], i;

	for (i = 0; i < 3; i++) {
		fd[i] = send_unfinished_hello(px_port, 40000, 30000);
		usleep(300000);
	}
	cr_expect(e2e_wait_contains(log, "over --max-handshake-total 65536; relayed on unobserved", 2000), "%s",
		  e2e_tail(log, 400));
	cr_expect_eq(px_count_lines(log, "handshake over budget"), 1, "%s", e2e_tail(log, 600));
	for (i = 0; i < 3; i++)
		close(fd[i]);
	cr_assert(e2e_wait_lines(json, 3, 3000));
	cr_expect_eq(px_count_lines(json, "\"observed\":false"), 1);
	cr_expect_eq(px_count_lines(json, "\"observed\":true"), 2);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(sink);
}

/* ---- the handshake deadline ---- */

/* curl's real ClientHello in its record. */
static uint8_t *client_hello_record(size_t *len)
{
	size_t mlen;
	uint8_t *msg = test_load("tests/data/msgs/clienthello_curl_tls13.bin", &mlen);
	uint8_t *rec = malloc(5 + mlen);

	cr_assert_not_null(rec);
	rec[0] = 22;
	rec[1] = 3;
	rec[2] = 1;
	rec[3] = (uint8_t)(mlen >> 8);
	rec[4] = (uint8_t)mlen;
	memcpy(rec + 5, msg, mlen);
	free(msg);
	*len = 5 + mlen;
	return rec;
}

/* A client that drips its ClientHello a byte a second keeps the idle
 * timeout from ever running out; --handshake-timeout 3 closes it about 3 s
 * after the accept, with its record.  A client that is not TLS is left
 * alone past the deadline. */
Test(proxy_limits, a_handshake_dripped_a_byte_a_second_is_closed_at_the_deadline, .init = px_setup,
     .fini = px_teardown)
{
	static const char *const opts[] = { "--handshake-timeout", "3", "--idle-timeout", "60", NULL };
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *rec;
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	size_t len, at;
	uint8_t *hello = client_hello_record(&len);
	int fd = px_connect_to(AF_INET, px_port), plain = px_connect_to(AF_INET, px_port);
	long long start = e2e_now_ms(), ended = 0;
	char how = 0;

	cr_assert(fd >= 0 && plain >= 0);
	cr_assert(write(plain, "hello, not TLS\n", 15) == 15);
	for (at = 0; at < len && !how; at++) {
		if (write(fd, hello + at, 1) != 1)
			break;
		how = ended_by_proxy(fd, 1000);
	}
	ended = e2e_now_ms() - start;
	cr_expect_neq(how, 0, "still open after %lld ms, %zu bytes dripped", ended, at);
	cr_expect(ended >= 2500 && ended <= 4500, "closed after %lld ms", ended);
	cr_assert(e2e_wait_contains(json, "handshake_timeout", 2000), "no record: %s", e2e_tail(px_tmp("proxy.log"), 400));
	rec = px_find_line(json, "handshake_timeout");
	cr_expect_str_eq(px_json_field(rec, "closed_by"), "proxy", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "close"), "handshake_timeout");
	cr_expect(strstr(rec, "its TLS handshake was not over 3 s after it was accepted (--handshake-timeout 3)"), "%s",
		  rec);
	/* the one that is not TLS: still open, past the deadline */
	cr_expect_eq(ended_by_proxy(plain, 1500), 0, "the connection that is not TLS was closed");
	cr_expect_eq(e2e_count_lines(json), 1);
	close(fd);
	close(plain);
	cr_expect(e2e_wait_lines(json, 2, 3000));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(sink);
	free(hello);
}

/* ---- the per-source cap ---- */

/* The sum of a member over the records that have it. */
static unsigned long long sum_member(const char *path, const char *type, const char *member)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, want[64];
	size_t cap = 0;
	unsigned long long sum = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "\"type\":\"%s\"", type);
	while (getline(&line, &cap, f) > 0)
		if (strstr(line, want))
			sum += strtoull(px_json_field(line, member), NULL, 10);
	free(line);
	fclose(f);
	return sum;
}

/* --max-conns-per-source 2: a third connection from the address is reset
 * at once; one line says so at the first refusal, the rest are counted
 * and said later (here at the stop), and the records add up; once one of
 * the two closes, the address may connect again. */
Test(proxy_limits, a_source_past_its_cap_is_refused_and_reported_without_a_flood, .init = px_setup,
     .fini = px_teardown)
{
	static const char *const opts[] = { "--max-conns-per-source", "2", NULL };
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log"), *rec;
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	int held[2], fd, i;

	for (i = 0; i < 2; i++) {
		held[i] = px_connect_to(AF_INET, px_port);
		cr_assert(held[i] >= 0 && write(held[i], "x", 1) == 1);
	}
	usleep(200000);
	for (i = 0; i < 5; i++) {
		long long t0 = e2e_now_ms();
		char how;

		fd = px_connect_to(AF_INET, px_port);
		cr_assert(fd >= 0, "connect: %s", strerror(errno));
		how = ended_by_proxy(fd, 1000);
		cr_expect_eq(how, 'R', "refusal %d: %s after %lld ms", i, how ? "a FIN" : "still open", e2e_now_ms() - t0);
		close(fd);
	}
	cr_expect(e2e_wait_contains(log, "mtlsdiag proxy: --max-conns-per-source 2: 1 connection from 127.0.0.1 refused since ", 1000),
		  "%s", e2e_tail(log, 500));
	cr_expect_eq(px_count_lines(log, "--max-conns-per-source 2: "), 1, "one line, not one per refusal: %s",
		     e2e_tail(log, 800));
	cr_expect(!ended_by_proxy(held[0], 100) && !ended_by_proxy(held[1], 100), "the two open ones were closed");
	close(held[0]);
	cr_assert(e2e_wait_lines(json, 2, 3000), "%s", e2e_tail(json, 400));
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect_eq(ended_by_proxy(fd, 500), 0, "refused below the cap");
	close(fd);
	close(held[1]);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	cr_expect_eq(sum_member(json, "refused", "refused"), 5, "%s", e2e_tail(json, 800));
	rec = px_find_line(json, "\"type\":\"refused\"");
	cr_assert_not_null(rec);
	cr_expect(strstr(rec, "\"client\":{\"ip\":\"127.0.0.1\"},\"reason\":\"per-source limit\",\"limit\":2,\"open\":2,\"refused\":1,"),
		  "%s", rec);
	cr_expect_eq(px_count_lines(json, "\"type\":\"connection\""), 3);
	cr_expect(e2e_wait_contains(log, "stopped; 5 connections refused over --max-conns-per-source", 0), "%s",
		  e2e_tail(log, 300));
	px_stop_child(sink);
}

/* The table itself: counts per address, the first refusal reported at
 * once, the next ones after SOURCECAP_REPORT_S, an address forgotten once
 * it has nothing open or to say. */
Test(proxy_limits, sourcecap_counts_and_reports_each_address_apart)
{
	struct sourcecap *sc = sourcecap_new(2);
	struct sourcecap_report r, due[4];
	struct timeval t = { 1700000000, 0 };

	cr_assert_not_null(sc);
	cr_assert(sourcecap_take(sc, "192.0.2.1", &t, &r) && r.refused == 0);
	cr_assert(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert(sourcecap_take(sc, "2001:db8::1", &t, &r), "another address has its own count");
	cr_assert_not(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert_eq(r.refused, 1, "the first refusal is reported at once");
	cr_assert_str_eq(r.ip, "192.0.2.1");
	cr_assert_eq(r.open, 2);
	t.tv_sec += 3;
	cr_assert_not(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert_eq(r.refused, 0, "reported again within the period");
	cr_assert_not(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert_eq(sourcecap_due(sc, &t, false, due, 4), 0);
	t.tv_sec += SOURCECAP_REPORT_S;
	cr_assert_eq(sourcecap_due(sc, &t, false, due, 4), 1);
	cr_assert_eq(due[0].refused, 2);
	cr_assert_eq(due[0].first.tv_sec, 1700000003);
	sourcecap_release(sc, "192.0.2.1");
	cr_assert(sourcecap_take(sc, "192.0.2.1", &t, &r), "below the limit again");
	sourcecap_release(sc, "192.0.2.1");
	sourcecap_release(sc, "192.0.2.1");
	sourcecap_release(sc, "2001:db8::1");
	t.tv_sec += SOURCECAP_REPORT_S;
	cr_assert_eq(sourcecap_due(sc, &t, false, due, 4), 0);
	/* forgotten: its next refusal (were it over again) would be said at once */
	cr_assert(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert_not(sourcecap_take(sc, "192.0.2.1", &t, &r));
	cr_assert_eq(r.refused, 1);
	sourcecap_free(sc);
}

/* ---- the stop ---- */

/* SIGTERM closes the listener at once: a client that connects during the
 * drain is refused at once, not left hanging; the connection that was
 * open goes on being relayed, and gets its record when it ends. */
Test(proxy_limits, a_client_connecting_during_the_drain_is_refused_at_once, .init = px_setup,
     .fini = px_teardown)
{
	static const char *const opts[] = { NULL };
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json"), *log = px_tmp("proxy.log");
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	int open_fd = px_connect_to(AF_INET, px_port), late;
	long long t0;

	cr_assert(open_fd >= 0 && write(open_fd, "before the stop", 15) == 15);
	/* no --max-conns: the limit's origin is said, and it is not --max-conns */
	cr_expect(e2e_wait_contains(log, " connections open (from the descriptor limit, ", 0), "%s", e2e_tail(log, 300));
	cr_expect(!e2e_wait_contains(log, "--max-conns", 0));
	usleep(200000);
	kill(proxy, SIGTERM);
	cr_assert(e2e_wait_contains(log, "SIGTERM: listeners closed, no longer accepting", 2000), "%s",
		  e2e_tail(log, 300));
	t0 = e2e_now_ms();
	late = px_connect_to(AF_INET, px_port);
	if (late >= 0) {   /* accepted by the kernel after all: closed at once */
		cr_expect_neq(ended_by_proxy(late, 1000), 0, "a connection during the drain was left open");
		close(late);
	} else {
		cr_expect_eq(errno, ECONNREFUSED, "connect: %s", strerror(errno));
	}
	cr_expect_lt(e2e_now_ms() - t0, 1000, "refused after %lld ms", e2e_now_ms() - t0);
	/* the open connection is still relayed */
	cr_expect(write(open_fd, " and after", 10) == 10);
	usleep(300000);
	cr_expect_eq(ended_by_proxy(open_fd, 200), 0, "the open connection was closed by the stop");
	cr_expect_eq(e2e_count_lines(json), 0);
	close(open_fd);
	cr_expect_eq(e2e_wait(proxy, 5000), 0, "the proxy did not exit 0 once the connection ended");
	cr_expect_eq(e2e_count_lines(json), 1);
	cr_expect_str_eq(px_json_field(px_nth_line(json, 0), "closed_by"), "client");
	cr_expect_str_eq(px_json_field(px_nth_line(json, 0), "relayed"), "{\"client\":25");
	px_stop_child(sink);
}

/* --on-output-error stop: the --json file cannot take the first record
 * (/dev/full); the proxy says so on standard error and stops as on
 * SIGTERM, exit status 2 (a lost record). */
Test(proxy_limits, on_output_error_stop_stops_at_the_first_lost_record, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port), fd;
	char listen_at[64], upstream[64];
	const char *log = px_tmp("proxy.log"), *err = px_tmp("proxy.err");
	const char *argv[] = { getenv("MTLSDIAG_BIN"), "proxy", "--listen", listen_at, "--upstream", upstream,
			       "--json", "/dev/full", "--log", log, "--on-output-error", "stop", NULL };
	struct e2e_io io = { .out = NULL, .err = err };
	pid_t sink = px_start_poll_server(lfd, 8, false), proxy;

	cr_assert_not_null(argv[0]);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = e2e_spawn((char *const *)argv, &io, 30);
	cr_assert(proxy > 0);
	cr_assert(e2e_wait_contains(log, "listening on", 5000), "%s", e2e_tail(err, 300));
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0 && write(fd, "one record", 10) == 10);
	usleep(100000);
	close(fd);
	cr_expect_eq(e2e_wait(proxy, 4000), 2, "the proxy did not stop with status 2");
	cr_expect(e2e_wait_contains(err, "mtlsdiag proxy: --json /dev/full: 1 record lost (No space left on device); stopping (--on-output-error stop)", 0),
		  "%s", e2e_tail(err, 500));
	cr_expect(e2e_wait_contains(log, "--on-output-error stop: listeners closed", 0), "%s", e2e_tail(log, 500));
	px_stop_child(sink);
}

/* ---- names, libevent's messages ---- */

/* Runs in a mount namespace of its own where /etc/resolv.conf is
 * $MTLSDIAG_RESOLV_CONF. */
static const char *in_own_resolv_conf(const char *resolv)
{
	const char *script = px_tmp("own-resolv.sh");
	FILE *f = fopen(script, "w");
	static char prefix[512];

	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nmount --bind \"$MTLSDIAG_RESOLV_CONF\" /etc/resolv.conf || exit 126\nexec \"$@\"\n");
	fclose(f);
	setenv("MTLSDIAG_RESOLV_CONF", resolv, 1);
	snprintf(prefix, sizeof(prefix), "unshare -m sh %s", script);
	return prefix;
}

/* A name server that never answers (a UDP socket nobody reads) and a
 * line libevent cannot parse: the resolver's complaint goes to --log as
 * the proxy's own line, and a name not resolved within --connect-timeout
 * is said to be that, not a connect timeout. */
Test(proxy_limits, a_resolver_that_never_answers_is_a_dns_timeout, .init = px_setup, .fini = px_teardown)
{
	struct sockaddr_in dns = { .sin_family = AF_INET, .sin_port = htons(53) };
	uint16_t px_port = e2e_free_port();
	const char *log = px_tmp("proxy.log"), *json = px_tmp("proxy.json"), *resolv = px_tmp("resolv.conf"), *rec;
	char listen_at[64];
	const char *args[] = { "--listen", listen_at, "--upstream", "nowhere.invalid:443", "--connect-timeout", "2",
			       "--json", json, NULL };
	int udp, fd;
	FILE *f;
	pid_t proxy;

	if (geteuid() != 0 || !px_have("unshare") || access("/etc/resolv.conf", F_OK) != 0)
		cr_skip_test("needs root, unshare and an /etc/resolv.conf to mount over");
	/* a loopback address of its own: nothing else listens on its port 53 */
	dns.sin_addr.s_addr = htonl(0x7f350000u | (uint32_t)(getpid() & 0xffff));
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert(udp >= 0);
	if (bind(udp, (struct sockaddr *)&dns, sizeof(dns)) != 0)
		cr_skip_test("cannot bind a UDP socket on port 53: %s", strerror(errno));
	f = fopen(resolv, "w");
	cr_assert_not_null(f);
	fprintf(f, "nameserver not-an-address\nnameserver %s\noptions timeout:30 attempts:1\n", inet_ntoa(dns.sin_addr));
	fclose(f);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	proxy = px_start_argv(in_own_resolv_conf(resolv), log, args);
	cr_expect(e2e_wait_contains(log, "mtlsdiag proxy: libevent: Unable to parse nameserver address not-an-address", 0),
		  "%s", e2e_tail(log, 500));
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect_eq(ended_by_proxy(fd, 4000), 'F', "not closed after the timeout");
	cr_assert(e2e_wait_lines(json, 1, 2000));
	rec = px_nth_line(json, 0);
	cr_expect_str_eq(px_json_field(rec, "type"), "upstream_error", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "error"), "resolving nowhere.invalid timed out after 2 s", "%s", rec);
	cr_expect(e2e_wait_contains(log, "upstream unreachable: resolving nowhere.invalid timed out after 2 s", 0), "%s",
		  e2e_tail(log, 500));
	close(fd);
	close(udp);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
}

/* ---- an idle connection's memory ---- */

/* One keep-alive GET on ssl, its answer read whole: 1 when it was 200. */
static int get_answered(SSL *ssl)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char buf[2048], *end;
	size_t have = 0;
	int r;

	if (SSL_write(ssl, req, (int)sizeof(req) - 1) <= 0)
		return 0;
	while (have < sizeof(buf) - 1 && (r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have))) > 0) {
		const char *cl;

		have += (size_t)r;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) && (cl = strcasestr(buf, "Content-Length:")) &&
		    have >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
			break;
	}
	return have >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

/* A TLS 1.2 mutual-TLS connection through port with the lab's good client
 * certificate and two requests answered, left open (a session that went
 * on: its verdict is said before it closes). */
static SSL *open_session(SSL_CTX *ctx, uint16_t port)
{
	int fd = px_connect_to(AF_INET, port);
	SSL *ssl = fd >= 0 ? SSL_new(ctx) : NULL;

	cr_assert(ssl && SSL_set_fd(ssl, fd) == 1, "connect: %s", strerror(errno));
	cr_assert_eq(SSL_connect(ssl), 1, "the handshake through the proxy failed");
	cr_assert(get_answered(ssl) && get_answered(ssl), "a request through the proxy was not answered 200");
	return ssl;
}

static void close_session(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);

	SSL_free(ssl);
	close(fd);
}

/* Lines of the log with the early verdict, said while a connection was
 * open (the final one ends with "[closed by ...]"). */
static size_t early_lines(const char *log)
{
	return px_count_lines(log, "client cert accepted") - px_count_lines(log, "[closed by ");
}

/* The bound: at most 16 KiB per idle mutual-TLS connection once its
 * verdict is said (scripts/bench-proxy measures 2,000 against nginx).
 * Its observer keeps the facts and the chain checks for the final record
 * and gives back its decoding state and early verdict (obs_conn_shrink);
 * certificate summaries are shared by the connections that sent the same
 * certificates. */
Test(proxy_limits, an_idle_mutual_tls_connection_holds_under_16_kib, .init = px_setup, .fini = px_teardown)
{
	const char *env = getenv("MTLSDIAG_IDLE_CONNS");
	size_t n = env ? strtoul(env, NULL, 10) : 300, warm = 20, said, i;
	const struct px_nginx ng = { .conns = (int)(n + warm) * 2 + 64 };
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	const char *log = px_tmp("proxy.log");
	char listen_at[64], upstream[64];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL **held = calloc(n, sizeof(*held));
	long before, after, per_conn;
	long long deadline;
	pid_t nginx, proxy;

	alarm(60);
	cr_assert(ctx && held);
	px_room_for_fds(3 * (n + warm) + 100);
	cr_assert_eq(SSL_CTX_use_certificate_chain_file(ctx, px_pki("good-chain.pem")), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, px_pki("good.key"), SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	nginx = px_start_nginx_conf(up_port, &ng);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--workers", "1", "--idle-timeout", "600",
			 NULL);
	/* what the first connections set up once (the certificate cache, the
	 * worker's JSON builder, OpenSSL's tables) is not what each costs */
	for (i = 0; i < warm; i++)
		close_session(open_session(ctx, px_port));
	deadline = e2e_now_ms() + 10000;
	while (px_count_lines(log, "[closed by ") < warm && e2e_now_ms() < deadline)
		usleep(50000);
	cr_assert_eq(px_count_lines(log, "[closed by "), warm);
	usleep(1500000);   /* the proxy gives freed memory back once a second */
	before = px_proc_status(proxy, "VmRSS");
	said = early_lines(log);   /* the warm-up's, said before they closed */
	for (i = 0; i < n; i++)
		held[i] = open_session(ctx, px_port);
	deadline = e2e_now_ms() + 10000;
	while (early_lines(log) - said < n && e2e_now_ms() < deadline)
		usleep(50000);
	cr_assert_eq(early_lines(log) - said, n, "%zu of %zu verdicts said while open: %s", early_lines(log) - said, n,
		     e2e_tail(log, 400));
	usleep(1500000);
	after = px_proc_status(proxy, "VmRSS");
	per_conn = (after - before) * 1024 / (long)n;
	cr_log_info("%zu idle mutual-TLS connections: proxy RSS %ld KiB before, %ld KiB with them open, %ld bytes each",
		    n, before, after, per_conn);
#ifndef __SANITIZE_ADDRESS__
	/* (AddressSanitizer's allocator pads and keeps what it was given:
	 * RSS then says nothing about the proxy's own memory) */
	cr_expect_lt(per_conn, 16 * 1024, "%ld bytes per idle connection (RSS %ld KiB before, %ld KiB after)",
		     per_conn, before, after);
#endif
	for (i = 0; i < n; i++)
		close_session(held[i]);
	deadline = e2e_now_ms() + 10000;
	while (px_count_lines(log, "[closed by client: fin") < n + warm && e2e_now_ms() < deadline)
		usleep(50000);
	cr_expect_eq(px_count_lines(log, "[closed by client: fin"), n + warm, "%zu final lines for %zu connections",
		     px_count_lines(log, "[closed by client: fin"), n + warm);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(nginx);
	free(held);
	SSL_CTX_free(ctx);
}

/* ---- records ---- */

/* Connections accepted in one pass of the loop each get the time of their
 * own accept, not one they share. */
Test(proxy_limits, connections_accepted_together_have_their_own_times, .init = px_setup, .fini = px_teardown)
{
	static const char *const opts[] = { NULL };
	uint16_t px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json");
	pid_t sink, proxy = start_proxy_with_sink(px_port, 64, &sink, opts);
	int fds[20], i, j;
	char ts[20][40];

	/* connected before the proxy's loop gets to them: one pass takes all */
	kill(proxy, SIGSTOP);
	for (i = 0; i < 20; i++)
		cr_assert((fds[i] = px_connect_to(AF_INET, px_port)) >= 0);
	kill(proxy, SIGCONT);
	usleep(300000);
	for (i = 0; i < 20; i++)
		close(fds[i]);
	cr_assert(e2e_wait_lines(json, 20, 3000));
	for (i = 0; i < 20; i++)
		snprintf(ts[i], sizeof(ts[i]), "%s", px_json_field(px_nth_line(json, (size_t)i), "ts"));
	for (i = 0; i < 20; i++)
		for (j = i + 1; j < 20; j++)
			cr_expect_str_neq(ts[i], ts[j], "records %d and %d share the time %s", i, j, ts[i]);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(sink);
}
