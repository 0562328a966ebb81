/* `mtlsdiag proxy` end to end: the built program ($MTLSDIAG_BIN) runs as a
 * child process between real peers on loopback (a TCP echo server written
 * here, `openssl s_server` with the lab PKI, curl), and everything is
 * stopped after each test, with deadlines so nothing hangs. */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "proxyutil.h"
#include "testutil.h"

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
	px_child_guard(60);
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

/* Runs the proxy in static mode in front of `upstream`, logging to the
 * scratch directory's proxy.log and proxy.json. */
static pid_t start_proxy(const char *listen_at, const char *upstream)
{
	return px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream,
			"--json", px_tmp("proxy.json"), "--connect-timeout", "3", (char *)NULL);
}

/* ---- byte-exactness and backpressure ---- */

#define PAYLOAD (32u << 20)

Test(proxy, relays_bytes_exactly_with_backpressure, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port, px_port = e2e_free_port();
	int pipefd[2], lfd = px_listen_any(AF_INET, &up_port), fd, small = 65536;
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
	base_rss = px_proc_status(proxy, "VmRSS");

	fd = px_connect_to(AF_INET6, px_port);
	cr_assert(fd >= 0, "connect to the proxy: %s", strerror(errno));
	/* a small receive buffer so the stalled reader is felt at once */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	EVP_DigestInit_ex(sent_md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(got_md, EVP_sha256(), NULL);
	start = e2e_now_ms();
	deadline = start + 30000;
	while (e2e_now_ms() < deadline) {
		/* the first second nothing is read; then slowly, then at full speed */
		long long t = e2e_now_ms() - start;
		bool reading = t > 1000;
		struct pollfd p = { fd, (short)((sent < PAYLOAD ? POLLOUT : 0) | (reading ? POLLIN : 0)), 0 };
		long r;

		if (sent == PAYLOAD && !shut) {
			shutdown(fd, SHUT_WR);   /* half-close: the echo must still come back */
			shut = true;
		}
		if ((r = px_proc_status(proxy, "VmRSS")) > max_rss)
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

	cr_assert(e2e_wait_lines(px_tmp("proxy.json"), 1, 5000), "no final record");
	cr_expect_eq(e2e_stop(proxy, 12000), 0, "the proxy did not exit 0 after SIGTERM");
	px_stop_child(echo);

	cr_assert_eq(sent, PAYLOAD, "the client could only send %zu of %u bytes", sent, PAYLOAD);
	cr_assert_eq(got, PAYLOAD, "the client got %zu of %u bytes back", got, PAYLOAD);
	cr_expect_str_eq(server_hash, sent_hex, "client -> server bytes differ");
	cr_expect_str_eq(got_hex, sent_hex, "server -> client bytes differ");
	/* Without backpressure the stalled second would leave megabytes in
	 * the proxy; with it, at most about two 256 KiB buffers and reads. */
	cr_expect_lt(max_rss - base_rss, 6 * 1024, "the proxy grew by %ld kB while the client was stalled",
		     max_rss - base_rss);
	{
		const char *rec = px_nth_line(px_tmp("proxy.json"), 0);
		char want[128];

		cr_expect(strstr(rec, "\"verdict\":\"not_tls\""), "%s", rec);
		snprintf(want, sizeof(want), "\"relayed\":{\"client\":%u,\"server\":%u}", PAYLOAD, PAYLOAD);
		cr_expect(strstr(rec, want), "%s", rec);
		cr_expect(strstr(rec, "\"closed_by\":\"client\",\"close\":\"fin\""), "%s", rec);
		/* not TLS is settled at the first bytes: the rest was spliced */
		cr_expect(strstr(rec, "\"spliced\":true"), "%s", rec);
		cr_expect(strstr(rec, "\"client\":{\"ip\":\"::1\""), "%s", rec);
	}
	EVP_MD_CTX_free(sent_md);
	EVP_MD_CTX_free(got_md);
	free(payload);
}

/* ---- mutual TLS through the proxy, against openssl s_server ---- */

Test(proxy, mutual_tls_verdicts_match_the_lab, .init = px_setup, .fini = px_teardown)
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
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64];
	pid_t srv, proxy;
	size_t i;

	if (system("command -v curl >/dev/null 2>&1") != 0)
		cr_skip_test("curl is not installed");
	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", srv_port);
	proxy = start_proxy(listen_at, upstream);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct px_curl direct = px_run_curl(srv_port, cases[i].tls, cases[i].cert_case, NULL);
		struct px_curl via = px_run_curl(px_port, cases[i].tls, cases[i].cert_case, NULL);
		const char *rec, *label = cases[i].cert_case ? cases[i].cert_case : "no cert";
		char want[96];

		cr_expect_eq(via.exit_code, direct.exit_code, "TLS %s %s: curl exit %d through the proxy, %d direct",
			     cases[i].tls, label, via.exit_code, direct.exit_code);
		cr_expect_str_eq(via.http_code, direct.http_code, "TLS %s %s: HTTP status", cases[i].tls, label);
		cr_assert(e2e_wait_lines(px_tmp("proxy.json"), i + 1, 5000), "TLS %s %s: no final record", cases[i].tls, label);
		rec = px_nth_line(px_tmp("proxy.json"), i);
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
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);
	/* the server's fatal alert made the verdict final before the close:
	 * it was logged then, without the close summary */
	{
		const char *log = px_tmp("proxy.log");
		size_t n = e2e_count_lines(log), k;
		bool early = false;

		for (k = 0; k < n && !early; k++) {
			const char *l = px_nth_line(log, k);

			early = strstr(l, "TLS1.2 server rejected chain: expired") && !strstr(l, "[closed by");
		}
		cr_expect(early, "no early verdict line for the expired TLS 1.2 chain");
	}
}

/* ---- a session that goes on: settled early, then spliced ---- */

/* A TLS 1.2 echo server on lfd (OpenSSL, the lab's server certificate,
 * a client certificate required): one connection, echoed until the
 * client's close_notify, then the SHA-256 of what it received on
 * report_fd. */
static pid_t start_tls_echo(int lfd, int report_fd)
{
	pid_t pid = fork();
	SSL_CTX *ctx;
	SSL *ssl;
	EVP_MD_CTX *md;
	char buf[16384], hex[65], line[80];
	int fd, n;

	cr_assert(pid >= 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	px_child_guard(60);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, px_pki("server.pem")) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, px_pki("server.key"), SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, px_pki("client-root.pem"), NULL) != 1)
		_exit(1);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	fd = accept(lfd, NULL, NULL);
	ssl = SSL_new(ctx);
	if (fd < 0 || !ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1)
		_exit(1);
	md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(md, buf, (size_t)n);
		if (SSL_write(ssl, buf, n) != n)
			_exit(1);
	}
	SSL_shutdown(ssl);
	sha256_hex(md, hex);
	snprintf(line, sizeof(line), "%s\n", hex);
	if (write(report_fd, line, strlen(line)) < 0)
		_exit(1);
	_exit(0);
}

/* Writes len bytes and reads the same number back (the echo). */
static bool tls_round_trip(SSL *ssl, const uint8_t *out, size_t len, uint8_t *in)
{
	size_t got = 0;

	if (SSL_write(ssl, out, (int)len) != (int)len)
		return false;
	while (got < len) {
		int n = SSL_read(ssl, in + got, (int)(len - got));

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

#define SPLICED_PAYLOAD (8u << 20)
#define SPLICED_CHUNK 16384

Test(proxy, a_session_that_went_on_is_logged_then_spliced, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port, px_port = e2e_free_port();
	int pipefd[2], lfd = px_listen_any(AF_INET, &up_port), fd = -1, i;
	char listen_at[64], upstream[64], server_hash[80] = "", sent_hex[65], got_hex[65], all_hex[65];
	EVP_MD_CTX *sent_md = EVP_MD_CTX_new(), *got_md = EVP_MD_CTX_new(), *all_md = EVP_MD_CTX_new();
	uint8_t *payload = malloc(SPLICED_PAYLOAD), back[SPLICED_CHUNK];
	const char *log = px_tmp("proxy.log"), *rec, *early = NULL;
	uint64_t x = 0x2545f4914f6cdd1dull;
	long long deadline;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	pid_t echo, proxy;
	size_t off, k;
	ssize_t n;
	char want[128];

	cr_assert(payload && ctx);
	for (off = 0; off < SPLICED_PAYLOAD; off++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		payload[off] = (uint8_t)(x >> 24);
	}
	cr_assert(pipe(pipefd) == 0);
	echo = start_tls_echo(lfd, pipefd[1]);
	close(pipefd[1]);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);

	cr_assert(SSL_CTX_use_certificate_chain_file(ctx, px_pki("good-chain.pem")) == 1);
	cr_assert(SSL_CTX_use_PrivateKey_file(ctx, px_pki("good.key"), SSL_FILETYPE_PEM) == 1);
	cr_assert(SSL_CTX_load_verify_locations(ctx, px_pki("server-root.pem"), NULL) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	ssl = SSL_new(ctx);
	cr_assert(ssl && SSL_set_fd(ssl, fd));
	SSL_set_tlsext_host_name(ssl, "localhost");
	cr_assert_eq(SSL_connect(ssl), 1, "the mutual-TLS handshake through the proxy failed");

	/* a few requests and answers: the session visibly goes on (the
	 * server's hash covers them too) */
	EVP_DigestInit_ex(all_md, EVP_sha256(), NULL);
	for (i = 0; i < 3; i++) {
		char ping[32];
		int len = snprintf(ping, sizeof(ping), "request %d\n", i);

		cr_assert(tls_round_trip(ssl, (const uint8_t *)ping, (size_t)len, back), "round trip %d", i);
		cr_assert(memcmp(back, ping, (size_t)len) == 0);
		EVP_DigestUpdate(all_md, ping, (size_t)len);
	}
	/* ... so the verdict is logged while the connection is still open */
	deadline = e2e_now_ms() + 5000;
	while (!early && e2e_now_ms() < deadline) {
		early = px_find_line(log, "TLS1.2 client cert accepted");
		if (!early)
			usleep(20000);
	}
	cr_assert(early, "no verdict logged while the session was open: %s", e2e_tail(log, 400));
	cr_expect(!strstr(early, "[closed by"), "the accepted verdict came only at the close: %s", early);

	/* and what follows is relayed without decoding, byte for byte */
	EVP_DigestInit_ex(sent_md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(got_md, EVP_sha256(), NULL);
	for (off = 0; off < SPLICED_PAYLOAD; off += SPLICED_CHUNK) {
		cr_assert(tls_round_trip(ssl, payload + off, SPLICED_CHUNK, back), "echo at offset %zu", off);
		EVP_DigestUpdate(sent_md, payload + off, SPLICED_CHUNK);
		EVP_DigestUpdate(all_md, payload + off, SPLICED_CHUNK);
		EVP_DigestUpdate(got_md, back, SPLICED_CHUNK);
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	sha256_hex(sent_md, sent_hex);
	sha256_hex(got_md, got_hex);
	sha256_hex(all_md, all_hex);
	n = read(pipefd[0], server_hash, sizeof(server_hash) - 1);
	server_hash[n > 0 ? n : 0] = '\0';
	server_hash[strcspn(server_hash, "\n")] = '\0';
	cr_expect_str_eq(server_hash, all_hex, "client -> server plaintext differs");
	cr_expect_str_eq(got_hex, sent_hex, "server -> client plaintext differs");

	cr_assert(e2e_wait_lines(px_tmp("proxy.json"), 1, 5000), "no final record");
	rec = px_nth_line(px_tmp("proxy.json"), 0);
	cr_expect(strstr(rec, "\"verdict\":\"client_cert_accepted\""), "%s", rec);
	cr_expect(strstr(rec, "\"spliced\":true"), "%s", rec);
	for (k = 0; k < 2; k++) {
		unsigned long long relayed = 0;
		const char *at;

		snprintf(want, sizeof(want), "\"relayed\":{\"client\":");
		at = strstr(rec, want);
		cr_assert(at, "%s", rec);
		if (k == 0)
			relayed = strtoull(at + strlen(want), NULL, 10);
		else if ((at = strstr(at, "\"server\":")))
			relayed = strtoull(at + 9, NULL, 10);
		cr_expect_gt(relayed, SPLICED_PAYLOAD, "%s relayed %llu bytes: %s", k ? "server" : "client", relayed, rec);
	}
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
	EVP_MD_CTX_free(sent_md);
	EVP_MD_CTX_free(got_md);
	EVP_MD_CTX_free(all_md);
	free(payload);
}

/* ---- long-lived sessions: the verdict while they are open ---- */

/* One keep-alive request to the test's nginx and its whole answer. */
static bool nginx_exchange(SSL *ssl)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char buf[4096];
	size_t got = 0;

	if (SSL_write(ssl, req, (int)(sizeof(req) - 1)) != (int)(sizeof(req) - 1))
		return false;
	while (got < sizeof(buf) - 1) {
		int n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got));

		if (n <= 0)
			return false;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "ok nginx\n"))
			return true;
	}
	return false;
}

/* A TLS 1.3 client with the good certificate, connected through the proxy. */
static SSL *mtls13_connect(SSL_CTX *ctx, uint16_t port, int *fd)
{
	SSL *ssl;

	cr_assert(SSL_CTX_use_certificate_chain_file(ctx, px_pki("good-chain.pem")) == 1);
	cr_assert(SSL_CTX_use_PrivateKey_file(ctx, px_pki("good.key"), SSL_FILETYPE_PEM) == 1);
	cr_assert(SSL_CTX_load_verify_locations(ctx, px_pki("server-root.pem"), NULL) == 1);
	cr_assert(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	*fd = px_connect_to(AF_INET, port);
	cr_assert(*fd >= 0);
	ssl = SSL_new(ctx);
	cr_assert(ssl && SSL_set_fd(ssl, *fd));
	SSL_set_tlsext_host_name(ssl, "localhost");
	cr_assert_eq(SSL_connect(ssl), 1, "the mutual-TLS handshake through the proxy failed");
	return ssl;
}

/* Polls the proxy's log for `needle` until deadline_ms; the line or NULL. */
static const char *await_line(const char *log, const char *needle, long long deadline_ms)
{
	const char *line = NULL;

	while (!(line = px_find_line(log, needle)) && e2e_now_ms() < deadline_ms)
		usleep(50000);
	return line;
}

/* A pooled connection that asks every second: TLS 1.3 without a key log,
 * its verdict is logged in its first seconds (the second exchange shows
 * the first was served), not when it closes. */
Test(proxy, a_long_lived_session_gets_its_verdict_in_its_first_seconds, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64];
	const char *log = px_tmp("proxy.log"), *line = NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	long long start, logged_at = 0;
	pid_t nginx, proxy;
	SSL *ssl;
	int fd, i;

	nginx = px_start_nginx(up_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	ssl = mtls13_connect(ctx, px_port, &fd);
	start = e2e_now_ms();
	for (i = 0; i < 6; i++) {
		cr_assert(nginx_exchange(ssl), "request %d", i);
		if (!line && (line = px_find_line(log, "TLS1.3 client cert accepted")))
			logged_at = e2e_now_ms();
		if (i < 5)
			usleep(1000000);
	}
	cr_assert(line, "no verdict while the session was open: %s", e2e_tail(log, 600));
	cr_expect(!strstr(line, "[closed by"), "the verdict came only at the close: %s", line);
	cr_expect(strstr(line, "(fault: none; inferred)"), "%s", line);
	cr_expect_lt(logged_at - start, 3000, "logged %lld ms into the session", logged_at - start);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	cr_assert(e2e_wait_lines(px_tmp("proxy.json"), 1, 5000), "no final record");
	cr_expect(strstr(px_nth_line(px_tmp("proxy.json"), 0), "\"verdict\":\"client_cert_accepted\""), "%s",
		  px_nth_line(px_tmp("proxy.json"), 0));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(nginx);
}

/* One request, then the connection is kept open and quiet: the proxy's
 * timer sees the quiet (a refusing server closes at once) and logs the
 * verdict after about three seconds, before the client leaves. */
Test(proxy, an_open_quiet_session_gets_its_verdict_before_it_closes, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64];
	const char *log = px_tmp("proxy.log"), *line;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	long long start, waited;
	pid_t nginx, proxy;
	SSL *ssl;
	int fd;

	nginx = px_start_nginx(up_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	ssl = mtls13_connect(ctx, px_port, &fd);
	cr_assert(nginx_exchange(ssl));
	start = e2e_now_ms();
	line = await_line(log, "TLS1.3 client cert accepted", start + 8000);
	waited = e2e_now_ms() - start;
	cr_assert(line, "no verdict while the quiet session was open: %s", e2e_tail(log, 600));
	cr_expect(!strstr(line, "[closed by"), "the verdict came only at the close: %s", line);
	cr_expect(strstr(line, "stayed open"), "%s", line);
	cr_expect_geq(waited, 2000, "logged after %lld ms: before the session could show it went on", waited);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(nginx);
}

/* ---- faults ---- */

/* How a connection ended, as one end sees it. */
enum peer_end { PEER_OPEN, PEER_EOF, PEER_RESET };

static const char *peer_end_name(enum peer_end e)
{
	return e == PEER_EOF ? "eof" : e == PEER_RESET ? "rst" : "open";
}

/* Reads until EOF or reset, at most timeout_ms; counts what arrived. */
static enum peer_end read_to_end(int fd, int timeout_ms, size_t *got)
{
	long long end = e2e_now_ms() + timeout_ms;
	char buf[4096];

	*got = 0;
	while (e2e_now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			*got += (size_t)n;
		else if (n == 0)
			return PEER_EOF;
		else if (errno != EINTR && errno != EAGAIN)
			return PEER_RESET;
	}
	return PEER_OPEN;
}

/* True if the connection ended within the time. */
static bool closed_within(int fd, int timeout_ms)
{
	size_t got;

	return read_to_end(fd, timeout_ms, &got) != PEER_OPEN;
}

/* One round trip through the proxy to an echo upstream. */
static bool echo_round_trip(uint16_t px_port, const char *msg)
{
	int fd = px_connect_to(AF_INET, px_port);
	char buf[256];
	size_t got = 0, len = strlen(msg);
	long long end = e2e_now_ms() + 3000;
	bool ok;

	if (fd < 0)
		return false;
	if (write(fd, msg, len) != (ssize_t)len) {
		close(fd);
		return false;
	}
	while (got < len && e2e_now_ms() < end) {
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

/* ---- key logs written while the connections run ---- */

/* curl writes SSLKEYLOGFILE as it connects through the proxy: the proxy
 * reads what was appended when a connection needs a secret, holds the
 * records it cannot open yet, and its verdicts are decrypted. */
Test(proxy, keylog_written_by_the_client_while_connecting, .init = px_setup, .fini = px_teardown)
{
	static const struct {
		const char *tls, *cert_case, *verdict, *reason, *http;
	} cases[] = {
		{ "1.3", NULL, "client_sent_no_cert", "null", "null" },
		{ "1.3", "good", "client_cert_accepted", "null", "200" },
		{ "1.3", "expired", "server_rejected_chain", "expired", "null" },
		{ "1.2", "good", "client_cert_accepted", "null", "200" },
	};
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64];
	const char *keys = px_tmp("keys.log");
	FILE *f;
	pid_t srv, proxy;
	size_t i;

	if (system("command -v curl >/dev/null 2>&1") != 0)
		cr_skip_test("curl is not installed");
	f = fopen(keys, "w");
	cr_assert_not_null(f);
	fclose(f);
	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", srv_port);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream,
			 "--json", px_tmp("proxy.json"), "--keylog", keys, (char *)NULL);
	cr_assert_eq(setenv("SSLKEYLOGFILE", keys, 1), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *label = cases[i].cert_case ? cases[i].cert_case : "no cert";
		const char *rec;

		px_run_curl(px_port, cases[i].tls, cases[i].cert_case, NULL);
		cr_assert(e2e_wait_lines(px_tmp("proxy.json"), i + 1, 5000), "TLS %s %s: no final record", cases[i].tls, label);
		rec = px_nth_line(px_tmp("proxy.json"), i);
		cr_expect_str_eq(px_json_field(rec, "verdict"), cases[i].verdict, "TLS %s %s: %s", cases[i].tls, label, rec);
		cr_expect_str_eq(px_json_field(rec, "reason"), cases[i].reason, "TLS %s %s: %s", cases[i].tls, label, rec);
		cr_expect_str_eq(px_json_field(rec, "keylog"), "decrypted", "TLS %s %s: %s", cases[i].tls, label, rec);
		cr_expect_str_eq(px_json_field(rec, "http_status"), cases[i].http, "TLS %s %s: %s", cases[i].tls, label, rec);
		if (strcmp(cases[i].tls, "1.3") == 0)
			cr_expect_str_eq(px_json_field(rec, "basis"), "decrypted", "TLS %s %s: %s", cases[i].tls, label, rec);
	}
	unsetenv("SSLKEYLOGFILE");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);
	cr_expect(px_find_line(px_tmp("proxy.log"), "TLS1.3 client did not send cert (fault: client; decrypted)"),
		  "the human line says decrypted");
}

/* A decrypted request line loses its query string (tokens, passwords)
 * unless --keep-query; the same in the proxy's records and when its
 * capture is read again with mtlsdiag pcap. */
Test(proxy, the_query_string_is_redacted_unless_kept, .init = px_setup, .fini = px_teardown, .timeout = 60)
{
	uint16_t srv_port = e2e_free_port();
	const char *keys = px_tmp("keys.log");
	char cmd[2048];
	pid_t srv;

	if (system("command -v curl >/dev/null 2>&1") != 0)
		cr_skip_test("curl is not installed");
	fclose(fopen(keys, "w"));   /* the proxy follows it from the start */
	srv = px_start_s_server(srv_port);
	cr_assert_eq(setenv("SSLKEYLOGFILE", keys, 1), 0);
	for (int keep = 0; keep < 2; keep++) {
		uint16_t px_port = e2e_free_port();
		char listen_at[64], upstream[64], json[32], pcap[32], log[32];
		const char *rec, *want = keep ? "GET /reset?token=abc123&password=hunter2 HTTP/1.1"
					      : "GET /reset?\xe2\x80\xa6 HTTP/1.1";
		pid_t proxy;

		test_fmt(listen_at, "127.0.0.1:%u", px_port);
		test_fmt(upstream, "127.0.0.1:%u", srv_port);
		test_fmt(json, "proxy%d.json", keep);
		test_fmt(pcap, "proxy%d.pcap", keep);
		test_fmt(log, "proxy%d.log", keep);
		proxy = px_start(px_tmp(log), "--listen", listen_at, "--upstream", upstream, "--json", px_tmp(json),
				 "--keylog", keys, "--pcap-out", px_tmp(pcap), "--pcap-full",
				 keep ? "--keep-query" : "--workers", keep ? "--workers" : "1", keep ? "1" : NULL, (char *)NULL);
		test_fmt(cmd, "curl -s -o /dev/null --max-time 5 --cacert '%s' --cert '%s' --key '%s' "
			 "--resolve localhost:%u:127.0.0.1 'https://localhost:%u/reset?token=abc123&password=hunter2'",
			 px_pki("server-root.pem"), px_pki("good-chain.pem"), px_pki("good.key"), px_port, px_port);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
		cr_assert(e2e_wait_lines(px_tmp(json), 1, 5000), "no record");
		rec = px_nth_line(px_tmp(json), 0);
		cr_assert_str_eq(px_json_field(rec, "http_request"), want, "%s", rec);
		cr_assert_null(keep ? NULL : strstr(rec, "hunter2"), "%s", rec);
		cr_expect_eq(e2e_stop(proxy, 12000), 0);

		/* the capture read again: redacted the same way, or kept when asked */
		test_fmt(cmd, "'%s' pcap --keylog '%s' --json - %s '%s' 2>/dev/null | grep -c '\"http_request\":\"%s\"'",
			 getenv("MTLSDIAG_BIN"), keys, keep ? "--keep-query" : "", px_tmp(pcap), want);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
	}
	unsetenv("SSLKEYLOGFILE");
	px_stop_child(srv);
}

Test(proxy, keylog_missing_is_one_line_and_exit_2, .init = px_setup, .fini = px_teardown)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' proxy --listen 127.0.0.1:%u --upstream 127.0.0.1:9 --keylog /nonexistent/keys.log 2>%s",
		 getenv("MTLSDIAG_BIN"), e2e_free_port(), px_tmp("err"));
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	cr_assert(strstr(px_nth_line(px_tmp("err"), 0), "--keylog /nonexistent/keys.log: No such file or directory"),
		  "%s", px_nth_line(px_tmp("err"), 0));
	cr_assert_str_eq(px_nth_line(px_tmp("err"), 1), "");
}

Test(proxy, upstream_down_is_logged_and_the_proxy_keeps_serving, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port = e2e_free_port(), px_port = e2e_free_port();
	char listen_at[64], upstream[64], want[96];
	pid_t proxy, echo;
	int fd, lfd;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);

	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect(write(fd, "hello", 5) == 5);
	cr_expect(closed_within(fd, 5000), "the client's connection stayed open");
	close(fd);
	test_fmt(want, "-> %s upstream unreachable: connect: Connection refused", upstream);
	cr_expect(e2e_wait_contains(px_tmp("proxy.log"), want, 3000), "log: %s", px_nth_line(px_tmp("proxy.log"), 1));
	cr_expect(e2e_wait_contains(px_tmp("proxy.json"), "\"type\":\"upstream_error\"", 0));

	/* the upstream comes back: the same proxy relays again */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_port = htons(up_port);
	cr_assert(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "rebind %u: %s", up_port, strerror(errno));
	cr_assert(listen(lfd, 16) == 0);
	echo = start_echo(lfd, -1);
	cr_expect(echo_round_trip(px_port, "still serving\n"), "no echo through the proxy after the failure");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
}

/* A JSON output that cannot be written: the proxy keeps relaying, and at
 * the end says so and exits 2. */
Test(proxy, json_write_failure_is_said_at_exit_with_status_2, .init = px_setup, .fini = px_teardown)
{
	uint16_t px_port = e2e_free_port();
	char listen_at[64], upstream[64];
	int saved = dup(2), errfd = open(px_tmp("err"), O_WRONLY | O_CREAT | O_TRUNC, 0644), fd;
	pid_t proxy;
	char *err;

	test_fmt(listen_at, "127.0.0.1:%u", px_port);
	test_fmt(upstream, "127.0.0.1:%u", e2e_free_port());
	cr_assert(saved >= 0 && errfd >= 0);
	dup2(errfd, 2);   /* the proxy's standard error, to read */
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream,
			 "--json", "/dev/full", (char *)NULL);
	dup2(saved, 2);
	close(saved);
	close(errfd);

	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_expect(write(fd, "hello", 5) == 5);
	cr_expect(closed_within(fd, 5000), "the client's connection stayed open");
	close(fd);
	cr_expect(e2e_wait_contains(px_tmp("proxy.log"), "upstream unreachable", 3000));
	cr_assert_eq(e2e_stop(proxy, 12000), 2);
	err = e2e_slurp(px_tmp("err"));
	cr_assert_not_null(err);
	cr_expect(strstr(err, "mtlsdiag proxy: --json /dev/full: No space left on device: records are being lost"), "%s", err);
	cr_expect(strstr(err, "mtlsdiag proxy: --json /dev/full: 1 record lost (No space left on device)\n"), "%s", err);
	free(err);
}

/* A JSON file that fills (a file size limit): the relay keeps relaying,
 * the file keeps only whole records, and the rest are counted and said,
 * once as they start being lost and in a total at the end. */
Test(proxy, a_json_file_that_fills_keeps_whole_records_and_counts_the_rest, .init = px_setup, .fini = px_teardown,
     .timeout = 60)
{
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port);
	int saved = dup(2), errfd = open(px_tmp("err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char listen_at[64], upstream[64], lost[80], *err, *json, *line;
	const char *args[] = { "--listen", listen_at, "--upstream", upstream, "--json", px_tmp("full.json"), NULL };
	size_t records = 0;
	pid_t echo, proxy;
	struct stat st;

	if (!px_have("prlimit"))
		cr_skip_test("prlimit (util-linux) is not installed");
	cr_assert(lfd >= 0 && saved >= 0 && errfd >= 0);
	echo = start_echo(lfd, -1);
	test_fmt(listen_at, "127.0.0.1:%u", px_port);
	test_fmt(upstream, "127.0.0.1:%u", up_port);
	dup2(errfd, 2);
	/* every file the proxy writes stops at 12,000 bytes: about nine records */
	proxy = px_start_argv("prlimit --fsize=12000 --", px_tmp("proxy.log"), args);
	dup2(saved, 2);
	close(saved);
	close(errfd);
	for (int i = 0; i < 40; i++)
		cr_assert(echo_round_trip(px_port, "relayed while records are lost\n"), "round trip %d", i);
	cr_assert(e2e_wait_lines(px_tmp("proxy.log"), 41, 5000), "%s", e2e_tail(px_tmp("proxy.log"), 300));
	cr_assert_eq(e2e_stop(proxy, 12000), 2, "records were lost: exit 2");
	px_stop_child(echo);

	cr_assert_eq(stat(px_tmp("full.json"), &st), 0);
	cr_assert_leq(st.st_size, 12000);
	json = e2e_slurp(px_tmp("full.json"));
	cr_assert_not_null(json);
	for (line = json; *line; records++) {
		char *nl = strchr(line, '\n');

		cr_assert_not_null(nl, "the file ends inside a record");
		cr_assert(strncmp(line, "{\"type\":\"connection\",", 21) == 0 && nl[-1] == '}',
			  "not a whole record: %.60s ... %.60s", line, nl - 60 > line ? nl - 60 : line);
		line = nl + 1;
	}
	cr_assert(records > 0 && records < 40, "%zu records kept", records);
	err = e2e_slurp(px_tmp("err"));
	cr_assert_not_null(err);
	cr_assert(strstr(err, "File too large: records are being lost"), "%s", err);
	test_fmt(lost, "%zu records lost (File too large)", 40 - records);
	cr_assert(strstr(err, lost), "want '%s' in: %s", lost, err);
	free(json);
	free(err);
}

/* A capture output that cannot be written: said once in the log as it
 * starts, the relay goes on, and the count at the end (exit 2). */
Test(proxy, pcap_out_write_failure_is_said_and_the_relay_goes_on, .init = px_setup, .fini = px_teardown,
     .timeout = 60)
{
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port);
	int saved = dup(2), errfd = open(px_tmp("err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char listen_at[64], upstream[64], *err;
	pid_t echo, proxy;

	cr_assert(lfd >= 0 && saved >= 0 && errfd >= 0);
	echo = start_echo(lfd, -1);
	test_fmt(listen_at, "127.0.0.1:%u", px_port);
	test_fmt(upstream, "127.0.0.1:%u", up_port);
	dup2(errfd, 2);
	proxy = px_start(px_tmp("proxy.log"), "--listen", listen_at, "--upstream", upstream, "--pcap-out", "/dev/full",
			 "--pcap-full", (char *)NULL);
	dup2(saved, 2);
	close(saved);
	close(errfd);
	for (int i = 0; i < 5; i++)
		cr_assert(echo_round_trip(px_port, "relayed all the same\n"), "round trip %d", i);
	cr_assert(e2e_wait_contains(px_tmp("proxy.log"), "--pcap-out /dev/full: No space left on device: packets are "
			 "being lost", 3000), "%s", e2e_tail(px_tmp("proxy.log"), 400));
	cr_assert_eq(e2e_stop(proxy, 12000), 2);
	px_stop_child(echo);
	err = e2e_slurp(px_tmp("err"));
	cr_assert_not_null(err);
	cr_assert(strstr(err, "mtlsdiag proxy: --pcap-out /dev/full: ") && strstr(err, "packets lost (No space left on device)"),
		  "%s", err);
	free(err);
}

Test(proxy, garbage_is_relayed_unchanged_and_logged_not_tls, .init = px_setup, .fini = px_teardown)
{
	static const char garbage[] = "\x01\x02 this is not TLS at all \xff\xfe\r\n\x16\x03";
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port), fd;
	char listen_at[64], upstream[64], buf[256];
	size_t got = 0, len = sizeof(garbage) - 1;
	pid_t echo, proxy;
	long long end;
	const char *rec;

	echo = start_echo(lfd, -1);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_assert(write(fd, garbage, len) == (ssize_t)len);
	shutdown(fd, SHUT_WR);
	end = e2e_now_ms() + 5000;
	while (e2e_now_ms() < end) {
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
	cr_assert(e2e_wait_lines(px_tmp("proxy.json"), 1, 5000), "no final record");
	rec = px_nth_line(px_tmp("proxy.json"), 0);
	cr_expect(strstr(rec, "\"verdict\":\"not_tls\""), "%s", rec);
	cr_expect(strstr(rec, "\"relayed\":{\"client\":"), "%s", rec);
	cr_expect(e2e_wait_contains(px_tmp("proxy.log"), "not TLS", 0));
	cr_expect(echo_round_trip(px_port, "next connection\n"));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
}

/* ---- faults: peers that reset, abort, trickle or crowd ---- */

/* The first record of a real client's stream: curl's TLS 1.3 ClientHello
 * from the lab capture nginx-on_none_tls13.  Returns the whole stream;
 * `len` is the length of that first record. */
static uint8_t *load_client_hello(size_t *len)
{
	size_t n;
	uint8_t *data = test_load("tests/data/msgs/streams/nginx-on_none_tls13/client.bin", &n);

	cr_assert(n > 5 && data[0] == 0x16 && data[5] == 0x01, "the stream does not start with a ClientHello");
	*len = 5 + ((size_t)data[3] << 8 | data[4]);
	cr_assert_leq(*len, n);
	return data;
}

/* close() then sends a reset instead of a FIN. */
static void set_linger0(int fd)
{
	struct linger lg = { 1, 0 };

	cr_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
}

enum upstream_script {
	UP_RESET_AFTER_HELLO,   /* read `hello_len` bytes, then close with a reset */
	UP_READ_TO_END,         /* read until EOF or reset, never answer, then close */
};

/* An upstream that plays `script` on `n` connections, one after the other,
 * then exits; for each it writes "<bytes read> <eof|rst|open>" to
 * report_fd.  The caller keeps lfd open, to serve later connections. */
static pid_t start_scripted_upstream(int lfd, enum upstream_script script, int n, size_t hello_len,
				     int report_fd)
{
	pid_t pid = fork();
	int i;

	cr_assert(pid >= 0);
	if (pid > 0)
		return pid;
	px_child_guard(60);
	for (i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		enum peer_end end = PEER_OPEN;
		size_t got = 0;
		char line[64], buf[4096];

		if (fd < 0)
			_exit(1);
		if (script == UP_RESET_AFTER_HELLO) {
			while (got < hello_len) {
				ssize_t r = read(fd, buf, hello_len - got < sizeof(buf) ? hello_len - got : sizeof(buf));

				if (r <= 0) {
					end = r == 0 ? PEER_EOF : PEER_RESET;
					break;
				}
				got += (size_t)r;
			}
			set_linger0(fd);
		} else {
			end = read_to_end(fd, 20000, &got);
		}
		close(fd);
		snprintf(line, sizeof(line), "%zu %s\n", got, peer_end_name(end));
		if (write(report_fd, line, strlen(line)) < 0)
			_exit(1);
	}
	_exit(0);
}

/* One line from a child's report pipe, without its newline. */
static bool read_report(int fd, char *line, size_t len, int timeout_ms)
{
	long long end = e2e_now_ms() + timeout_ms;
	size_t used = 0;

	line[0] = '\0';
	while (used + 1 < len && e2e_now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		char ch;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read(fd, &ch, 1) != 1)
			break;
		if (ch == '\n')
			return true;
		line[used++] = ch;
		line[used] = '\0';
	}
	return false;
}

/* Reaps a child that should exit by itself; kills it after the time. */
static bool wait_exit(pid_t pid, int timeout_ms)
{
	long long end = e2e_now_ms() + timeout_ms;

	while (e2e_now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(20000);
	}
	px_stop_child(pid);
	return false;
}

Test(proxy, upstream_reset_mid_handshake_is_passed_on_and_logged, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port), pipefd[2], fd;
	size_t hello_len, got;
	uint8_t *hello = load_client_hello(&hello_len);
	char listen_at[64], upstream[64], report[64], want[96];
	const char *json = px_tmp("proxy.json"), *rec;
	pid_t up, echo, proxy;
	enum peer_end end;
	long long took;

	cr_assert(pipe(pipefd) == 0);
	up = start_scripted_upstream(lfd, UP_RESET_AFTER_HELLO, 1, hello_len, pipefd[1]);
	close(pipefd[1]);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);

	fd = px_connect_to(AF_INET, px_port);
	cr_assert(fd >= 0);
	cr_assert(write(fd, hello, hello_len) == (ssize_t)hello_len);
	took = e2e_now_ms();
	end = read_to_end(fd, 5000, &got);
	took = e2e_now_ms() - took;
	close(fd);
	/* nothing came from the server, so the proxy passes its reset on */
	cr_expect_eq(end, PEER_RESET, "the client's side ended with %s, not the upstream's reset", peer_end_name(end));
	cr_expect_lt(took, 2000, "the client's side ended only after %lld ms", took);
	cr_expect_eq(got, 0, "the client got %zu bytes", got);
	cr_expect(read_report(pipefd[0], report, sizeof(report), 3000), "the upstream did not report");
	snprintf(want, sizeof(want), "%zu ", hello_len);
	cr_expect(strncmp(report, want, strlen(want)) == 0, "the upstream read '%s', not the %zu-byte ClientHello",
		  report, hello_len);

	cr_assert(e2e_wait_lines(json, 1, 5000), "no final record");
	rec = px_nth_line(json, 0);
	cr_expect_str_eq(px_json_field(rec, "closed_by"), "server", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "close"), "rst", "%s", rec);
	/* a ClientHello and no ServerHello: the connection ended before any
	 * verdict about certificates (doc/verdicts.md: incomplete) */
	cr_expect_str_eq(px_json_field(rec, "verdict"), "incomplete", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "reason"), "null", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "fault"), "unknown", "%s", rec);
	cr_expect_str_eq(px_json_field(rec, "basis"), "observed", "%s", rec);
	cr_expect(strstr(rec, "\"evidence\":[\"no ServerHello"), "%s", rec);
	cr_expect(strstr(rec, "\"sni\":\"localhost\""), "the ClientHello was not decoded: %s", rec);
	snprintf(want, sizeof(want), "\"relayed\":{\"client\":%zu,\"server\":0}", hello_len);
	cr_expect(strstr(rec, want), "%s", rec);
	cr_expect(e2e_wait_contains(px_tmp("proxy.log"), "incomplete (fault: unknown; observed)", 0));
	cr_expect(e2e_wait_contains(px_tmp("proxy.log"), "[closed by server: rst; ", 0));

	/* the upstream served its one connection; an echo takes its port over */
	cr_expect(wait_exit(up, 3000), "the scripted upstream did not finish");
	echo = start_echo(lfd, -1);
	cr_expect(echo_round_trip(px_port, "after the reset\n"), "no echo through the proxy after the reset");
	cr_expect(e2e_wait_lines(json, 2, 3000), "no record for the echo connection");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
	close(pipefd[0]);
	free(hello);
}

Test(proxy, client_aborts_reach_the_upstream_with_one_record_each, .init = px_setup, .fini = px_teardown)
{
	static const char garbage[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
	static const struct {
		const char *what;
		bool hello, reset;
		const char *data, *verdict, *spliced;
	} cases[] = {
		{ "ClientHello, then a reset", true, true, NULL, "incomplete", "false" },
		{ "connect, then close at once", false, false, NULL, "incomplete", "false" },
		{ "connect, then reset at once", false, true, NULL, "incomplete", "false" },
		/* not TLS: settled at the first bytes and spliced, then the reset */
		{ "not TLS, then a reset", false, true, garbage, "not_tls", "true" },
	};
	const size_t n_cases = sizeof(cases) / sizeof(cases[0]);
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port), pipefd[2];
	size_t hello_len, i;
	uint8_t *hello = load_client_hello(&hello_len);
	char listen_at[64], upstream[64];
	const char *json = px_tmp("proxy.json");
	pid_t up, echo, proxy;

	cr_assert(pipe(pipefd) == 0);
	up = start_scripted_upstream(lfd, UP_READ_TO_END, (int)n_cases, 0, pipefd[1]);
	close(pipefd[1]);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);

	for (i = 0; i < n_cases; i++) {
		int fd = px_connect_to(AF_INET, px_port);
		size_t sent = cases[i].hello ? hello_len : cases[i].data ? strlen(cases[i].data) : 0, up_got = 0;
		char report[64], up_end[16] = "", want[96];
		const char *rec;

		cr_assert(fd >= 0);
		if (cases[i].hello)
			cr_assert(write(fd, hello, hello_len) == (ssize_t)hello_len);
		if (cases[i].data) {
			cr_assert(write(fd, cases[i].data, sent) == (ssize_t)sent);
			usleep(100000);   /* relayed, and the connection spliced, before the reset */
		}
		if (cases[i].reset)
			set_linger0(fd);
		close(fd);

		cr_expect(read_report(pipefd[0], report, sizeof(report), 3000),
			  "%s: the upstream did not see the connection end ('%s')", cases[i].what, report);
		cr_expect(sscanf(report, "%zu %15s", &up_got, up_end) == 2, "%s: '%s'", cases[i].what, report);
		cr_expect(strcmp(up_end, "eof") == 0 || strcmp(up_end, "rst") == 0, "%s: the upstream saw '%s'",
			  cases[i].what, report);
		if (cases[i].data)   /* an established relay passes the reset on as a reset */
			cr_expect_str_eq(up_end, "rst", "%s: the upstream saw '%s'", cases[i].what, report);
		/* what reached the proxy before the reset is delivered */
		cr_expect_eq(up_got, sent, "%s: the upstream read %zu of %zu bytes", cases[i].what, up_got, sent);

		cr_assert(e2e_wait_lines(json, i + 1, 3000), "%s: no final record", cases[i].what);
		rec = px_nth_line(json, i);
		cr_expect_str_eq(px_json_field(rec, "type"), "connection", "%s: %s", cases[i].what, rec);
		cr_expect_str_eq(px_json_field(rec, "closed_by"), "client", "%s: %s", cases[i].what, rec);
		cr_expect_str_eq(px_json_field(rec, "close"), cases[i].reset ? "rst" : "fin", "%s: %s", cases[i].what, rec);
		cr_expect_str_eq(px_json_field(rec, "verdict"), cases[i].verdict, "%s: %s", cases[i].what, rec);
		cr_expect_str_eq(px_json_field(rec, "spliced"), cases[i].spliced, "%s: %s", cases[i].what, rec);
		snprintf(want, sizeof(want), "\"relayed\":{\"client\":%zu,\"server\":0}", sent);
		cr_expect(strstr(rec, want), "%s: %s", cases[i].what, rec);
	}
	/* one record per connection, no more */
	usleep(200000);
	cr_expect_eq(e2e_count_lines(json), n_cases, "%zu records for %zu connections", e2e_count_lines(json), n_cases);

	cr_expect(wait_exit(up, 3000), "the scripted upstream did not finish");
	echo = start_echo(lfd, -1);
	cr_expect(echo_round_trip(px_port, "after the aborts\n"), "no echo through the proxy after the aborts");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
	close(pipefd[0]);
	free(hello);
}

/* ---- a client that trickles its ClientHello ---- */

/* Sends what the TLS engine wrote; with `gap_us`, one byte per write. */
static bool flush_tls(int fd, BIO *wbio, unsigned gap_us)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0) {
		size_t off = 0, step = gap_us ? 1 : (size_t)n;

		while (off < (size_t)n) {
			ssize_t w = write(fd, buf + off, step < (size_t)n - off ? step : (size_t)n - off);

			if (w <= 0)
				return false;
			off += (size_t)w;
			if (gap_us)
				usleep(gap_us);
		}
	}
	return true;
}

/* Hands the TLS engine what the socket has; false on EOF, error or time out. */
static bool fill_tls(int fd, BIO *rbio, long long deadline)
{
	char buf[16384];
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	while (poll(&p, 1, 50) == 0)
		if (e2e_now_ms() > deadline)
			return false;
	n = read(fd, buf, sizeof(buf));
	return n > 0 && BIO_write(rbio, buf, (int)n) == (int)n;
}

struct tls_outcome {
	bool handshake_ok;   /* SSL_do_handshake succeeded */
	bool answered;       /* the HTTP answer came back */
};

/* A TLS client (OpenSSL over memory BIOs, so the test decides how its bytes
 * reach the socket): handshake with `tls` ("1.2", "1.3") and an optional
 * client certificate case, one HTTP request, the answer, then close.  With
 * `gap_us`, the first flight (the ClientHello) goes out a byte at a time. */
static struct tls_outcome tls_client(uint16_t port, const char *tls, const char *cert_case, unsigned gap_us)
{
	int version = strcmp(tls, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct tls_outcome out = { false, false };
	long long deadline = e2e_now_ms() + 8000;
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	static const char request[] = "GET / HTTP/1.0\r\n\r\n";
	char path[512], buf[4096];
	bool first = true;
	SSL *ssl;
	int fd, one = 1, r;

	cr_assert(ctx && rbio && wbio);
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	cr_assert(SSL_CTX_load_verify_locations(ctx, test_path(PKI "server-root.pem"), NULL) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert_case) {
		snprintf(path, sizeof(path), "%s%s-chain.pem", test_path(PKI), cert_case);
		cr_assert(SSL_CTX_use_certificate_chain_file(ctx, path) == 1, "%s", path);
		snprintf(path, sizeof(path), "%s%s.key", test_path(PKI), cert_case);
		cr_assert(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) == 1, "%s", path);
	}
	cr_assert_not_null(ssl = SSL_new(ctx));
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	fd = px_connect_to(AF_INET, port);
	cr_assert(fd >= 0);
	/* one segment per byte, not coalesced by Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	for (;;) {
		r = SSL_do_handshake(ssl);
		if (!flush_tls(fd, wbio, first ? gap_us : 0))
			break;
		first = false;
		if (r == 1) {
			out.handshake_ok = true;
			break;
		}
		if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !fill_tls(fd, rbio, deadline))
			break;
	}
	if (out.handshake_ok && SSL_write(ssl, request, (int)strlen(request)) > 0 && flush_tls(fd, wbio, 0)) {
		/* s_server -www answers and closes */
		for (;;) {
			r = SSL_read(ssl, buf, sizeof(buf));
			if (r > 0) {
				out.answered |= r >= 8 && memcmp(buf, "HTTP/1.", 7) == 0;
				continue;
			}
			flush_tls(fd, wbio, 0);   /* e.g. a key update's answer */
			if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !fill_tls(fd, rbio, deadline))
				break;
		}
	}
	close(fd);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return out;
}

Test(proxy, trickled_client_hello_gets_the_same_verdict, .init = px_setup, .fini = px_teardown)
{
	static const struct {
		const char *tls, *cert_case;
		bool handshake_ok, answered;
		const char *verdict[2];
	} cases[] = {
		/* s_server -Verify 1 -verify_return_error: a certificate is required */
		{ "1.2", "good", true, true, { "client_cert_accepted" } },
		{ "1.2", NULL, false, false, { "client_sent_no_cert" } },
		/* 1.3: the client's chain is encrypted (see the lab test) */
		{ "1.3", "good", true, true, { "client_cert_accepted", "undetermined" } },
		/* 1.3: the client's handshake ends before the server refuses */
		{ "1.3", NULL, true, false, { "client_sent_no_cert" } },
	};
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	const char *json = px_tmp("proxy.json");
	char listen_at[64], upstream[64];
	pid_t srv, proxy;
	size_t i, line = 0;

	srv = px_start_s_server(srv_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", srv_port);
	proxy = start_proxy(listen_at, upstream);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *label = cases[i].cert_case ? cases[i].cert_case : "no cert";
		char verdict[2][64], ja4[2][64], ver[2][16];
		int k;

		for (k = 0; k < 2; k++) {   /* at once, then a byte every 2 ms */
			struct tls_outcome o = tls_client(px_port, cases[i].tls, cases[i].cert_case, k ? 2000 : 0);
			const char *rec;

			cr_expect_eq(o.handshake_ok, cases[i].handshake_ok, "TLS %s %s%s: handshake %s", cases[i].tls,
				     label, k ? " trickled" : "", o.handshake_ok ? "succeeded" : "failed");
			cr_expect_eq(o.answered, cases[i].answered, "TLS %s %s%s: HTTP answer", cases[i].tls, label,
				     k ? " trickled" : "");
			cr_assert(e2e_wait_lines(json, line + 1, 5000), "TLS %s %s: no final record", cases[i].tls, label);
			rec = px_nth_line(json, line++);
			snprintf(verdict[k], sizeof(verdict[k]), "%s", px_json_field(rec, "verdict"));
			snprintf(ja4[k], sizeof(ja4[k]), "%s", px_json_field(rec, "ja4"));
			snprintf(ver[k], sizeof(ver[k]), "%s", px_json_field(rec, "tls_version"));
		}
		cr_expect(strcmp(verdict[0], cases[i].verdict[0]) == 0 ||
			  (cases[i].verdict[1] && strcmp(verdict[0], cases[i].verdict[1]) == 0),
			  "TLS %s %s: verdict %s", cases[i].tls, label, verdict[0]);
		cr_expect_str_eq(verdict[1], verdict[0], "TLS %s %s: trickled %s, at once %s", cases[i].tls, label,
				 verdict[1], verdict[0]);
		cr_expect_str_eq(ja4[1], ja4[0], "TLS %s %s: JA4", cases[i].tls, label);
		cr_expect_str_eq(ver[1], cases[i].tls, "TLS %s %s: version", cases[i].tls, label);
	}
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);
}

/* ---- a thousand connections at once ---- */

#define CROWD 1000

/* px_connect_to for IPv4 loopback, giving up after the time (a full backlog
 * drops SYNs, and a blocking connect would wait for minutes). */
static int connect_within(uint16_t port, long long timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				   .sin_port = htons(port) };
	struct timeval tv = { 0, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (timeout_ms < 1)
		timeout_ms = 1;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	/* Linux applies the send timeout to connect() */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	tv.tv_sec = tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static size_t count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(proxy, a_thousand_concurrent_connections_are_relayed_and_logged, .init = px_setup, .fini = px_teardown)
{
	uint16_t up_port, px_port = e2e_free_port();
	int lfd = px_listen_any(AF_INET, &up_port), *fds = calloc(CROWD, sizeof(int));
	char (*msg)[48] = calloc(CROWD, sizeof(*msg)), (*got)[48] = calloc(CROWD, sizeof(*got));
	size_t *got_len = calloc(CROWD, sizeof(size_t)), i, open_fds, done = 0, bad = 0, n_fin;
	char listen_at[64], upstream[64];
	const char *json = px_tmp("proxy.json");
	long long start, deadline;
	pid_t echo, proxy;

	cr_assert(fds && msg && got && got_len);
	/* this process, the echo and the proxy each hold about 1,000 to 2,000
	 * descriptors: raise the soft limit as far as the hard one allows */
	px_room_for_fds(2 * CROWD + 100);
	/* the proxy starts with the usual default and must raise its own */
	px_soft_nofile = 1024;

	/* the proxy connects a thousand times at once: room in the backlog, so
	 * no SYN is dropped and retried after a second */
	cr_assert(listen(lfd, CROWD + 24) == 0);
	echo = px_start_poll_server(lfd, CROWD + 16, true);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", px_port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", up_port);
	proxy = start_proxy(listen_at, upstream);
	open_fds = count_fds(proxy);

	start = e2e_now_ms();
	for (i = 0; i < CROWD; i++) {
		fds[i] = connect_within(px_port, start + 8000 - e2e_now_ms());
		cr_assert(fds[i] >= 0, "connection %zu: %s (the proxy log says: %s)", i, strerror(errno),
			  px_nth_line(px_tmp("proxy.log"), 1));
	}
	/* a SYN dropped by a full accept queue is retried only after a second */
	cr_expect_lt(e2e_now_ms() - start, 1500, "opening %d connections took %lld ms: the proxy's accept queue overflowed",
		     CROWD, e2e_now_ms() - start);
	for (i = 0; i < CROWD; i++) {
		size_t len = (size_t)snprintf(msg[i], sizeof(msg[i]), "connection %04zu of %d says %08x\n", i, CROWD,
					     (unsigned)(i * 2654435761u));

		cr_assert(write(fds[i], msg[i], len) == (ssize_t)len, "write %zu: %s", i, strerror(errno));
	}
	/* every echo back, with all thousand open */
	deadline = e2e_now_ms() + 8000;
	while (done < CROWD && e2e_now_ms() < deadline) {
		struct pollfd *p = calloc(CROWD, sizeof(*p));
		size_t *idx = calloc(CROWD, sizeof(size_t)), n = 0, k;

		cr_assert(p && idx);
		for (i = 0; i < CROWD; i++)
			if (got_len[i] < strlen(msg[i])) {
				p[n].fd = fds[i];
				p[n].events = POLLIN;
				idx[n++] = i;
			}
		if (poll(p, (nfds_t)n, 100) > 0) {
			for (k = 0; k < n; k++) {
				ssize_t r;

				if (!p[k].revents)
					continue;
				i = idx[k];
				r = read(fds[i], got[i] + got_len[i], sizeof(got[i]) - got_len[i]);
				if (r <= 0) {   /* ended early: counted as bad below */
					got_len[i] = sizeof(got[i]);
					done++;
					continue;
				}
				got_len[i] += (size_t)r;
				done += got_len[i] >= strlen(msg[i]);
			}
		}
		free(p);
		free(idx);
	}
	for (i = 0; i < CROWD; i++)
		bad += got_len[i] != strlen(msg[i]) || memcmp(got[i], msg[i], got_len[i]) != 0;
	cr_expect_eq(done, CROWD, "%zu of %d echoes came back in time", done, CROWD);
	cr_expect_eq(bad, 0, "%zu of %d echoes are wrong or missing", bad, CROWD);
	cr_log_info("%d connections relayed in %lld ms", CROWD, e2e_now_ms() - start);

	for (i = 0; i < CROWD; i++)
		close(fds[i]);
	cr_expect(e2e_wait_lines(json, CROWD, 10000), "%zu final records for %d connections", e2e_count_lines(json), CROWD);
	n_fin = px_count_lines(json, "\"closed_by\":\"client\",\"close\":\"fin\"");
	cr_expect_eq(n_fin, CROWD, "%zu of %zu records closed by the client's FIN", n_fin, e2e_count_lines(json));
	cr_expect_eq(px_count_lines(json, "\"verdict\":\"not_tls\""), CROWD);
	cr_expect_eq(px_count_lines(px_tmp("proxy.log"), "accept:"), 0, "the proxy ran out of descriptors");
	/* every descriptor is given back */
	deadline = e2e_now_ms() + 3000;
	while (count_fds(proxy) > open_fds && e2e_now_ms() < deadline)
		usleep(20000);
	cr_expect_eq(count_fds(proxy), open_fds, "the proxy holds %zu descriptors, %zu before", count_fds(proxy),
		     open_fds);

	cr_expect(echo_round_trip(px_port, "after the crowd\n"), "no echo through the proxy after the crowd");
	cr_expect(e2e_wait_lines(json, CROWD + 1, 3000));
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(echo);
	free(fds);
	free(msg);
	free(got);
	free(got_len);
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

Test(proxy, bad_addresses_and_busy_ports_exit_2, .init = px_setup, .fini = px_teardown)
{
	uint16_t busy;
	int lfd = px_listen_any(AF_INET, &busy);
	char args[256];
	const char *out = px_tmp("out");

	cr_assert_not_null(getenv("MTLSDIAG_BIN"));
	cr_expect_eq(run_status("--listen nowhere:99999 --upstream 127.0.0.1:1", out), 2);
	cr_expect(e2e_wait_contains(out, "--listen 'nowhere:99999'", 0));
	cr_expect_eq(e2e_count_lines(out), 1);
	cr_expect_eq(run_status("--listen 127.0.0.1:8443 --upstream 'host:0'", out), 2);
	cr_expect(e2e_wait_contains(out, "--upstream 'host:0'", 0));
	cr_expect_eq(run_status("--listen 127.0.0.1:8443 --upstream '::1:443'", out), 2);
	snprintf(args, sizeof(args), "--listen 127.0.0.1:%u --upstream 127.0.0.1:1", busy);
	cr_expect_eq(run_status(args, out), 2);
	cr_expect(e2e_wait_contains(out, "Address already in use", 0), "%s", px_nth_line(out, 0));
	cr_expect_eq(e2e_count_lines(out), 1);
	close(lfd);
}

/* ---- records leave in batches, and the stop loses none ---- */

#define BATCH_CONNS 40

/* Every line of path is whole: it starts with one of the two heads and
 * ends with its newline (and a JSON record with its closing brace); the
 * lines that contain needle are counted. */
static size_t whole_lines(const char *path, const char *head1, const char *head2, const char *needle)
{
	char *text = e2e_slurp(path), *line, *nl;
	size_t n = 0;

	cr_assert_not_null(text, "%s", path);
	cr_assert(text[0] == '\0' || text[strlen(text) - 1] == '\n', "%s ends inside a line: %s", path, text);
	for (line = text; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		cr_assert(strncmp(line, head1, strlen(head1)) == 0 || strncmp(line, head2, strlen(head2)) == 0,
			  "%s: a torn or foreign line: %s", path, line);
		if (line[0] == '{')
			cr_assert_eq(nl[-1], '}', "%s: a torn record: %s", path, line);
		n += strstr(line, needle) != NULL;
	}
	free(text);
	return n;
}

/* BATCH_CONNS connections through the proxy at px_port, each echoed once;
 * half end before `sig`, half during the drain it starts.  The proxy's
 * exit status. */
static int connections_then_signal(pid_t proxy, uint16_t px_port, int sig, const char *log)
{
	int fds[BATCH_CONNS];
	char buf[16];

	for (int i = 0; i < BATCH_CONNS; i++) {
		fds[i] = px_connect_to(AF_INET, px_port);
		cr_assert(fds[i] >= 0);
		cr_assert_eq(write(fds[i], "hello\n", 6), 6);
	}
	for (int i = 0; i < BATCH_CONNS; i++)
		cr_assert_eq(read(fds[i], buf, sizeof(buf)), 6, "connection %d was not relayed", i);
	for (int i = 0; i < BATCH_CONNS / 2; i++)
		close(fds[i]);
	usleep(100000);
	kill(proxy, sig);
	cr_assert(e2e_wait_contains(log, "listeners closed", 5000), "%s", e2e_tail(log, 600));
	for (int i = BATCH_CONNS / 2; i < BATCH_CONNS; i++)
		close(fds[i]);
	return e2e_wait(proxy, 12000);
}

/* A proxy with --json, its log in a file (--log) or on standard error
 * (a file here: in batches too), stopped by sig in the middle of
 * BATCH_CONNS connections: every connection's line and record is there,
 * whole, and the stop is said. */
static void stop_keeps_every_record(bool log_on_stderr, int sig)
{
	uint16_t px_port = e2e_free_port(), up_port;
	int lfd = px_listen_any(AF_INET, &up_port);
	const char *bin = getenv("MTLSDIAG_BIN");
	const char *log = log_on_stderr ? px_tmp("err") : px_tmp("proxy.log");
	char listen_at[64], upstream[64];
	char *argv[] = { (char *)bin, "proxy", "--listen", listen_at, "--upstream", upstream, "--json",
			 (char *)px_tmp("proxy.json"), NULL };
	struct e2e_io io = { .in = "/dev/null", .out = "/dev/null", .err = px_tmp("err") };
	pid_t server, proxy;

	cr_assert_not_null(bin);
	test_fmt(listen_at, "127.0.0.1:%u", px_port);
	test_fmt(upstream, "127.0.0.1:%u", up_port);
	server = px_start_poll_server(lfd, 2 * BATCH_CONNS, true);
	if (log_on_stderr) {
		proxy = e2e_spawn(argv, &io, 60);
		cr_assert(proxy > 0);
		cr_assert(e2e_wait_contains(log, "listening on", 5000), "%s", e2e_tail(log, 600));
	} else {
		proxy = px_start(log, "--listen", listen_at, "--upstream", upstream, "--json", px_tmp("proxy.json"),
				 (char *)NULL);
	}
	cr_assert_eq(connections_then_signal(proxy, px_port, sig, log), 0);
	px_stop_child(server);
	cr_expect_eq(whole_lines(px_tmp("proxy.json"), "{\"type\":\"connection\",", "{\"type\":\"connection\",",
				 "\"type\":\"connection\""),
		     BATCH_CONNS);
	cr_expect_eq(whole_lines(log, "20", "mtlsdiag proxy: ", "[closed by "), BATCH_CONNS);
	cr_expect_eq(whole_lines(log, "20", "mtlsdiag proxy: ", sig == SIGINT ? "SIGINT: listeners closed" :
									       "SIGTERM: listeners closed"), 1);
	cr_expect_eq(whole_lines(log, "20", "mtlsdiag proxy: ", "mtlsdiag proxy: stopped"), 1);
}

Test(proxy, records_are_all_there_and_whole_after_sigterm, .init = px_setup, .fini = px_teardown)
{
	stop_keeps_every_record(false, SIGTERM);
}

Test(proxy, records_are_all_there_and_whole_after_sigint_on_standard_error, .init = px_setup,
     .fini = px_teardown)
{
	stop_keeps_every_record(true, SIGINT);
}
