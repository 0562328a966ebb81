/* `mtlsdiag proxy` end to end: the built program ($MTLSDIAG_BIN) runs as a
 * child process between real peers on loopback (a TCP echo server written
 * here, `openssl s_server` with the lab PKI, curl), and everything is
 * stopped after each test, with deadlines so nothing hangs. */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "testutil.h"

#define PKI "tests/data/lab/pki/"

static char tmpdir[256];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mtlsdiag-proxy-test.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	signal(SIGPIPE, SIG_IGN);
	/* the hang guard: criterion's .timeout leaks in its runner (2.4.1)
	 * when timed tests overlap, which fails the sanitizer build */
	alarm(45);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static const char *tmp_file(const char *name)
{
	static char buf[4][400];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

/* A listening socket on a free loopback port (IPv4 or IPv6). */
static int listen_any(int family, uint16_t *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	cr_assert(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	cr_assert(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind: %s", strerror(errno));
	cr_assert(listen(fd, 64) == 0);
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* A port nothing listens on (bound, then released). */
static uint16_t free_port(void)
{
	uint16_t port;
	int fd = listen_any(AF_INET, &port);

	close(fd);
	return port;
}

static int connect_to(int family, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd = socket(family, SOCK_STREAM, 0);

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	}
	if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void child_guard(unsigned seconds)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(seconds);
}

static void sha256_hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char d[32];
	unsigned int n = 0, i;

	EVP_DigestFinal_ex(md, d, &n);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The echo server: a child that accepts connections one after the other,
 * echoes each until the client's FIN, then closes it, and writes the
 * SHA-256 of what it received (one line) to `report_fd`. */
static pid_t start_echo(int lfd, int report_fd)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	child_guard(60);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		char buf[65536], hex[65], line[80];
		ssize_t n;

		if (fd < 0)
			continue;
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			ssize_t off = 0;

			EVP_DigestUpdate(md, buf, (size_t)n);
			while (off < n) {
				ssize_t w = write(fd, buf + off, (size_t)(n - off));

				if (w <= 0)
					_exit(1);
				off += w;
			}
		}
		sha256_hex(md, hex);
		EVP_MD_CTX_free(md);
		close(fd);
		snprintf(line, sizeof(line), "%s\n", hex);
		if (report_fd >= 0 && write(report_fd, line, strlen(line)) < 0)
			_exit(1);
	}
}

static void stop_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static bool file_contains(const char *path, const char *needle)
{
	size_t len;
	uint8_t *data = test_try_load(path, &len);
	bool found;

	if (!data)
		return false;
	data = realloc(data, len + 1);
	data[len] = '\0';
	found = strstr((char *)data, needle) != NULL;
	free(data);
	return found;
}

static bool wait_contains(const char *path, const char *needle, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (now_ms() < end) {
		if (file_contains(path, needle))
			return true;
		usleep(20000);
	}
	return false;
}

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int ch;

	if (!f)
		return 0;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Line `i` (0-based) of a file, in a static buffer. */
static const char *nth_line(const char *path, size_t i)
{
	static char line[65536];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	line[0] = '\0';
	if (!f)
		return line;
	while (fgets(line, sizeof(line), f)) {
		if (n++ == i)
			break;
		line[0] = '\0';
	}
	fclose(f);
	return line;
}

static bool wait_lines(const char *path, size_t n, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (now_ms() < end) {
		if (count_lines(path) >= n)
			return true;
		usleep(20000);
	}
	return false;
}

/* Runs the proxy; returns once it says it listens. */
static pid_t start_proxy(const char *listen_at, const char *upstream)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	const char *log = tmp_file("proxy.log");
	pid_t pid;

	cr_assert_not_null(bin, "MTLSDIAG_BIN is not set (run through make check)");
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		child_guard(60);
		dup2(devnull, 0);
		dup2(devnull, 1);
		{
			/* under ASan, freed buffers sit in quarantine and would count as
			 * memory held: keep it small so the backpressure check holds */
			const char *asan = getenv("ASAN_OPTIONS");
			char opts[512];

			snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1", asan ? asan : "", asan && *asan ? ":" : "");
			setenv("ASAN_OPTIONS", opts, 1);
		}
		execl(bin, bin, "proxy", "--listen", listen_at, "--upstream", upstream,
		      "--log", log, "--json", tmp_file("proxy.json"), "--connect-timeout", "3",
		      (char *)NULL);
		_exit(127);
	}
	cr_assert(wait_contains(log, "listening on", 5000), "the proxy did not start: %s", nth_line(log, 0));
	return pid;
}

/* SIGTERM, then the exit status (-1 if it had to be killed). */
static int stop_proxy(pid_t pid)
{
	long long end = now_ms() + 12000;
	int status;

	kill(pid, SIGTERM);
	while (now_ms() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- byte-exactness and backpressure ---- */

#define PAYLOAD (32u << 20)

Test(proxy, relays_bytes_exactly_with_backpressure, .init = setup, .fini = teardown)
{
	uint16_t up_port, px_port = free_port();
	int pipefd[2], lfd = listen_any(AF_INET, &up_port), fd, small = 65536;
	pid_t echo, proxy;
	char listen_at[64], upstream[64], server_hash[80] = "", sent_hex[65], got_hex[65];
	EVP_MD_CTX *sent_md = EVP_MD_CTX_new(), *got_md = EVP_MD_CTX_new();
	uint8_t *payload = malloc(PAYLOAD), buf[65536];
	size_t sent = 0, got = 0, i;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	long base_rss, max_rss = 0;
	long long start, deadline;
	bool shut = false;
	ssize_t n;

	cr_assert_not_null(payload);
	for (i = 0; i < PAYLOAD; i++) {   /* xorshift: incompressible, reproducible */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		payload[i] = (uint8_t)(x >> 32);
	}
	cr_assert(pipe(pipefd) == 0);
	echo = start_echo(lfd, pipefd[1]);
	close(pipefd[1]);
	/* IPv6 towards the proxy, IPv4 towards the upstream */
	snprintf(listen_at, sizeof(listen_at), "[::1]:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	base_rss = rss_kb(proxy);

	fd = connect_to(AF_INET6, px_port);
	cr_assert(fd >= 0, "connect to the proxy: %s", strerror(errno));
	/* a small receive buffer so the stalled reader is felt at once */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	EVP_DigestInit_ex(sent_md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(got_md, EVP_sha256(), NULL);
	start = now_ms();
	deadline = start + 30000;
	while (now_ms() < deadline) {
		/* the first second nothing is read; then slowly, then at full speed */
		long long t = now_ms() - start;
		bool reading = t > 1000;
		struct pollfd p = { fd, (short)((sent < PAYLOAD ? POLLOUT : 0) | (reading ? POLLIN : 0)), 0 };
		long r;

		if (sent == PAYLOAD && !shut) {
			shutdown(fd, SHUT_WR);   /* half-close: the echo must still come back */
			shut = true;
		}
		if ((r = rss_kb(proxy)) > max_rss)
			max_rss = r;
		if (poll(&p, 1, 50) < 0)
			break;
		if (p.revents & POLLOUT) {
			n = write(fd, payload + sent, PAYLOAD - sent > 65536 ? 65536 : PAYLOAD - sent);
			if (n > 0) {
				EVP_DigestUpdate(sent_md, payload + sent, (size_t)n);
				sent += (size_t)n;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, buf, t < 2000 ? 4096 : sizeof(buf));
			if (n == 0)
				break;
			if (n > 0) {
				EVP_DigestUpdate(got_md, buf, (size_t)n);
				got += (size_t)n;
			}
			if (t < 2000)
				usleep(1000);
		}
	}
	close(fd);
	sha256_hex(sent_md, sent_hex);
	sha256_hex(got_md, got_hex);
	n = read(pipefd[0], server_hash, sizeof(server_hash) - 1);
	server_hash[n > 0 ? n : 0] = '\0';
	server_hash[strcspn(server_hash, "\n")] = '\0';

	cr_assert(wait_lines(tmp_file("proxy.json"), 1, 5000), "no final record");
	cr_expect_eq(stop_proxy(proxy), 0, "the proxy did not exit 0 after SIGTERM");
	stop_child(echo);

	cr_assert_eq(sent, PAYLOAD, "the client could only send %zu of %u bytes", sent, PAYLOAD);
	cr_assert_eq(got, PAYLOAD, "the client got %zu of %u bytes back", got, PAYLOAD);
	cr_expect_str_eq(server_hash, sent_hex, "client -> server bytes differ");
	cr_expect_str_eq(got_hex, sent_hex, "server -> client bytes differ");
	/* Without backpressure the stalled second would leave megabytes in
	 * the proxy; with it, at most about two 256 KiB buffers and reads. */
	cr_expect_lt(max_rss - base_rss, 6 * 1024, "the proxy grew by %ld kB while the client was stalled",
		     max_rss - base_rss);
	{
		const char *rec = nth_line(tmp_file("proxy.json"), 0);
		char want[128];

		cr_expect(strstr(rec, "\"verdict\":\"not_tls\""), "%s", rec);
		snprintf(want, sizeof(want), "\"relayed\":{\"client\":%u,\"server\":%u}", PAYLOAD, PAYLOAD);
		cr_expect(strstr(rec, want), "%s", rec);
		cr_expect(strstr(rec, "\"closed_by\":\"client\",\"close\":\"fin\""), "%s", rec);
		cr_expect(strstr(rec, "\"client\":{\"ip\":\"::1\""), "%s", rec);
	}
	EVP_MD_CTX_free(sent_md);
	EVP_MD_CTX_free(got_md);
	free(payload);
}

/* ---- mutual TLS through the proxy, against openssl s_server ---- */

static pid_t start_s_server(uint16_t port)
{
	char accept[32];
	pid_t pid;
	long long end;

	snprintf(accept, sizeof(accept), "127.0.0.1:%u", port);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		child_guard(60);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (chdir(test_path("")) != 0)
			_exit(126);
		execlp("openssl", "openssl", "s_server", "-accept", accept,
		       "-cert", PKI "server.pem", "-key", PKI "server.key",
		       "-CAfile", PKI "client-root.pem", "-Verify", "1", "-verify_return_error",
		       "-www", (char *)NULL);
		_exit(127);
	}
	end = now_ms() + 5000;
	while (now_ms() < end) {
		int fd = connect_to(AF_INET, port);

		if (fd >= 0) {
			close(fd);
			return pid;
		}
		usleep(20000);
	}
	stop_child(pid);
	cr_assert_fail("openssl s_server did not start");
	return -1;
}

struct curl_result {
	int exit_code;
	char http_code[8];
};

/* curl https://127.0.0.1:port/ with a client certificate case. */
static struct curl_result run_curl(uint16_t port, const char *tls, const char *cert_case)
{
	char cmd[2048], url[64], cert[512] = "";
	struct curl_result r = { -1, "" };
	FILE *p;
	int status;

	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", port);
	if (cert_case)
		snprintf(cert, sizeof(cert), "--cert '%s%s-chain.pem' --key '%s%s.key'",
			 test_path(PKI), cert_case, test_path(PKI), cert_case);
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --cacert '%sserver-root.pem' --tlsv%s --tls-max %s %s '%s'",
		 test_path(PKI), tls, tls, cert, url);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(r.http_code, sizeof(r.http_code), p))
		r.http_code[0] = '\0';
	status = pclose(p);
	r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return r;
}

Test(proxy, mutual_tls_verdicts_match_the_lab, .init = setup, .fini = teardown)
{
	static const struct {
		const char *tls, *cert_case, *verdict[2], *reason;
	} cases[] = {
		{ "1.2", NULL, { "client_sent_no_cert" }, NULL },
		{ "1.2", "good", { "client_cert_accepted" }, NULL },
		{ "1.2", "expired", { "server_rejected_chain" }, "expired" },
		{ "1.3", NULL, { "client_sent_no_cert" }, NULL },
		/* one request, encrypted chain: accepted, or undetermined by the rules */
		{ "1.3", "good", { "client_cert_accepted", "undetermined" }, NULL },
		{ "1.3", "expired", { "server_rejected_chain" }, NULL },
	};
	uint16_t srv_port = free_port(), px_port = free_port();
	char listen_at[64], upstream[64];
	pid_t srv, proxy;
	size_t i;

	if (system("command -v curl >/dev/null 2>&1") != 0)
		cr_skip_test("curl is not installed");
	srv = start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", srv_port);
	proxy = start_proxy(listen_at, upstream);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct curl_result direct = run_curl(srv_port, cases[i].tls, cases[i].cert_case);
		struct curl_result via = run_curl(px_port, cases[i].tls, cases[i].cert_case);
		const char *rec, *label = cases[i].cert_case ? cases[i].cert_case : "no cert";
		char want[96];

		cr_expect_eq(via.exit_code, direct.exit_code, "TLS %s %s: curl exit %d through the proxy, %d direct",
			     cases[i].tls, label, via.exit_code, direct.exit_code);
		cr_expect_str_eq(via.http_code, direct.http_code, "TLS %s %s: HTTP status", cases[i].tls, label);
		cr_assert(wait_lines(tmp_file("proxy.json"), i + 1, 5000), "TLS %s %s: no final record", cases[i].tls, label);
		rec = nth_line(tmp_file("proxy.json"), i);
		snprintf(want, sizeof(want), "\"verdict\":\"%s\"", cases[i].verdict[0]);
		if (!strstr(rec, want) && cases[i].verdict[1])
			snprintf(want, sizeof(want), "\"verdict\":\"%s\"", cases[i].verdict[1]);
		cr_expect(strstr(rec, want), "TLS %s %s: want %s in %s", cases[i].tls, label, want, rec);
		if (cases[i].reason) {
			snprintf(want, sizeof(want), "\"reason\":\"%s\"", cases[i].reason);
			cr_expect(strstr(rec, want), "TLS %s %s: want %s in %s", cases[i].tls, label, want, rec);
		}
		snprintf(want, sizeof(want), "\"tls_version\":\"%s\"", cases[i].tls);
		cr_expect(strstr(rec, want), "TLS %s %s: %s", cases[i].tls, label, rec);
		cr_expect(strstr(rec, "\"duration_ms\":"), "%s", rec);
	}
	cr_expect_eq(stop_proxy(proxy), 0);
	stop_child(srv);
	/* the server's fatal alert made the verdict final before the close:
	 * it was logged then, without the close summary */
	{
		const char *log = tmp_file("proxy.log");
		size_t n = count_lines(log), k;
		bool early = false;

		for (k = 0; k < n && !early; k++) {
			const char *l = nth_line(log, k);

			early = strstr(l, "TLS1.2 server rejected chain: expired") && !strstr(l, "[closed by");
		}
		cr_expect(early, "no early verdict line for the expired TLS 1.2 chain");
	}
}

/* ---- faults ---- */

/* Reads until EOF or reset; true if the connection ended within the time. */
static bool closed_within(int fd, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	char buf[4096];

	while (now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return true;
	}
	return false;
}

/* One round trip through the proxy to an echo upstream. */
static bool echo_round_trip(uint16_t px_port, const char *msg)
{
	int fd = connect_to(AF_INET, px_port);
	char buf[256];
	size_t got = 0, len = strlen(msg);
	long long end = now_ms() + 3000;
	bool ok;

	if (fd < 0)
		return false;
	if (write(fd, msg, len) != (ssize_t)len) {
		close(fd);
		return false;
	}
	while (got < len && now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	ok = got == len && memcmp(buf, msg, len) == 0;
	close(fd);
	return ok;
}

Test(proxy, upstream_down_is_logged_and_the_proxy_keeps_serving, .init = setup, .fini = teardown)
{
	uint16_t up_port = free_port(), px_port = free_port();
	char listen_at[64], upstream[64], want[96];
	pid_t proxy, echo;
	int fd, lfd;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);

	fd = connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect(write(fd, "hello", 5) == 5);
	cr_expect(closed_within(fd, 5000), "the client's connection stayed open");
	close(fd);
	snprintf(want, sizeof(want), "-> %s upstream unreachable: connect: Connection refused", upstream);
	cr_expect(wait_contains(tmp_file("proxy.log"), want, 3000), "log: %s", nth_line(tmp_file("proxy.log"), 1));
	cr_expect(file_contains(tmp_file("proxy.json"), "\"type\":\"upstream_error\""));

	/* the upstream comes back: the same proxy relays again */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_port = htons(up_port);
	cr_assert(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "rebind %u: %s", up_port, strerror(errno));
	cr_assert(listen(lfd, 16) == 0);
	echo = start_echo(lfd, -1);
	cr_expect(echo_round_trip(px_port, "still serving\n"), "no echo through the proxy after the failure");
	cr_expect_eq(stop_proxy(proxy), 0);
	stop_child(echo);
}

Test(proxy, garbage_is_relayed_unchanged_and_logged_not_tls, .init = setup, .fini = teardown)
{
	static const char garbage[] = "\x01\x02 this is not TLS at all \xff\xfe\r\n\x16\x03";
	uint16_t up_port, px_port = free_port();
	int lfd = listen_any(AF_INET, &up_port), fd;
	char listen_at[64], upstream[64], buf[256];
	size_t got = 0, len = sizeof(garbage) - 1;
	pid_t echo, proxy;
	long long end;
	const char *rec;

	echo = start_echo(lfd, -1);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	fd = connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_assert(write(fd, garbage, len) == (ssize_t)len);
	shutdown(fd, SHUT_WR);
	end = now_ms() + 5000;
	while (now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	cr_expect_eq(got, len);
	cr_expect(memcmp(buf, garbage, len) == 0, "the garbage came back changed");
	cr_assert(wait_lines(tmp_file("proxy.json"), 1, 5000), "no final record");
	rec = nth_line(tmp_file("proxy.json"), 0);
	cr_expect(strstr(rec, "\"verdict\":\"not_tls\""), "%s", rec);
	cr_expect(strstr(rec, "\"relayed\":{\"client\":"), "%s", rec);
	cr_expect(file_contains(tmp_file("proxy.log"), "not TLS"));
	cr_expect(echo_round_trip(px_port, "next connection\n"));
	cr_expect_eq(stop_proxy(proxy), 0);
	stop_child(echo);
}

/* ---- usage errors: one line, exit 2 ---- */

static int run_status(const char *args, const char *out)
{
	char cmd[1024];
	int status;

	snprintf(cmd, sizeof(cmd), "timeout 5 '%s' proxy %s >'%s' 2>&1", getenv("MTLSDIAG_BIN"), args, out);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(proxy, bad_addresses_and_busy_ports_exit_2, .init = setup, .fini = teardown)
{
	uint16_t busy;
	int lfd = listen_any(AF_INET, &busy);
	char args[256];
	const char *out = tmp_file("out");

	cr_assert_not_null(getenv("MTLSDIAG_BIN"));
	cr_expect_eq(run_status("--listen nowhere:99999 --upstream 127.0.0.1:1", out), 2);
	cr_expect(file_contains(out, "--listen 'nowhere:99999'"));
	cr_expect_eq(count_lines(out), 1);
	cr_expect_eq(run_status("--listen 127.0.0.1:8443 --upstream 'host:0'", out), 2);
	cr_expect(file_contains(out, "--upstream 'host:0'"));
	cr_expect_eq(run_status("--listen 127.0.0.1:8443 --upstream '::1:443'", out), 2);
	snprintf(args, sizeof(args), "--listen 127.0.0.1:%u --upstream 127.0.0.1:1", busy);
	cr_expect_eq(run_status(args, out), 2);
	cr_expect(file_contains(out, "Address already in use"), "%s", nth_line(out, 0));
	cr_expect_eq(count_lines(out), 1);
	close(lfd);
}
