/* soakload: many short TCP connections through a relay, for scripts/soak.
 *
 *   soakload [OPTIONS] HOST PORT
 *     -n N                 connections to make (default 1,000,000)
 *     -c C                 connections in flight at once (default 32)
 *     --payload plain|hello
 *                          what each connection sends: plain, 16 bytes that
 *                          are not TLS (the cheapest; a relay that looks at
 *                          TLS finds none); hello, a real TLS ClientHello
 *                          (made once at start by OpenSSL, SNI soak.test)
 *                          (default plain)
 *     --timeout S          give up on a connection's answer after S seconds
 *                          (default 10 for plain, 2 for hello)
 *     --every N            a progress line every N connections (100,000)
 *     --tick S             a status line every S seconds (0: none)
 *     --max-seconds S      start no connection after S seconds (0: no
 *                          limit); those in flight end as usual
 *
 * Each connection: connect, write the payload, read until the peer closes
 * or the answer is complete (as many bytes as the payload: an echo; with
 * hello, also one whole TLS record: a real server's first flight), then
 * close.  One thread, non-blocking sockets, epoll.
 *
 * A million connections on loopback would run out of source ports if the
 * client closed with FIN: the side that closes first keeps each port in
 * TIME_WAIT for 60 s, and 127.0.0.1 -> HOST:PORT has ~28,000 of them
 * (ip_local_port_range), i.e. fewer than 500 connections a second.  So
 * every connection is closed with SO_LINGER 0: close() sends an RST, no
 * TIME_WAIT is left on this side, and the only ports held are those in
 * flight.  It is still a whole relayed connection (the answer came back
 * first); the relay sees it end with a reset ("close":"rst" in
 * mtlsdiag's record).  Should a connect still fail for want of a port or a
 * listener (EADDRNOTAVAIL, ECONNREFUSED, EAGAIN...), it is not counted:
 * it never reached the relay.  It is retried after a short pause, and
 * counted apart (connect_errors); 30 s without a single connect ends the
 * run.
 *
 * Lines on standard output, one at a time (scripts/soak reads them as they
 * come):
 *   progress CONNS done D failed F connect_errors E elapsed S rate R
 *   tick CONNS done D failed F connect_errors E elapsed S rate R
 *   final CONNS done D failed F connect_errors E elapsed S rate R answered A closed_first P timeouts T resets X
 * CONNS: connections made (connected, hence seen by the relay) and ended;
 * done: ended as planned (answered, or closed by the peer), failed: reset
 * or no answer in time.  Exit status 0 when all N were made, 1 otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_PAYLOAD 16384
#define NO_CONNECT_LIMIT 30.0   /* seconds without a connect: give up */

enum state { IDLE, CONNECTING, WRITING, READING };

struct slot {
	int fd;
	enum state state;
	size_t sent, got;
	double deadline;        /* READING/CONNECTING: give up; IDLE: retry at */
	unsigned char head[5];  /* the answer's first bytes (a TLS record header) */
};

static struct addrinfo *target;
static unsigned char payload[MAX_PAYLOAD];
static size_t payload_len;
static bool hello;
static double timeout_s;
static int ep;

static unsigned long target_n, started, made, n_done, n_failed, n_connect_errors;
static unsigned long n_answered, n_closed_first, n_timeouts, n_resets;
static double t0, last_connect;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "soakload: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A ClientHello as OpenSSL's client writes it: SSL_connect on memory BIOs,
 * whose output BIO then holds the first flight.  TLS 1.2 to 1.3, SNI
 * soak.test. */
static size_t make_client_hello(unsigned char *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	if (!ssl || !rbio || !wbio) {
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_tlsext_host_name(ssl, "soak.test");
	if (SSL_connect(ssl) == 1 || SSL_get_error(ssl, -1) != SSL_ERROR_WANT_READ) {
		fprintf(stderr, "soakload: making a ClientHello failed\n");
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	len = BIO_get_mem_data(wbio, &data);
	if (len <= 5 || (size_t)len > cap) {
		fprintf(stderr, "soakload: odd ClientHello (%ld bytes)\n", len);
		exit(1);
	}
	memcpy(out, data, (size_t)len);
	SSL_free(ssl);   /* frees both BIOs */
	SSL_CTX_free(ctx);
	return (size_t)len;
}

static void report(const char *kind)
{
	double took = now_s() - t0;
	unsigned long ended = n_done + n_failed;

	printf("%s %lu done %lu failed %lu connect_errors %lu elapsed %.1f rate %.0f", kind, ended, n_done,
	       n_failed, n_connect_errors, took, took > 0 ? (double)ended / took : 0.0);
	if (strcmp(kind, "final") == 0)
		printf(" answered %lu closed_first %lu timeouts %lu resets %lu", n_answered, n_closed_first,
		       n_timeouts, n_resets);
	putchar('\n');
	fflush(stdout);
}

static unsigned long every;

/* Ends the slot's connection: with an RST (SO_LINGER 0 was set at
 * socket()), which leaves no TIME_WAIT behind. */
static void finish(struct slot *s, bool ok)
{
	close(s->fd);   /* also leaves the epoll set */
	s->fd = -1;
	s->state = IDLE;
	s->deadline = 0;
	if (ok)
		n_done++;
	else
		n_failed++;
	if ((n_done + n_failed) % every == 0)
		report("progress");
}

/* A connect that failed: the slot retries after a pause, doubling while
 * connects keep failing (10 ms up to 1 s). */
static double pause_s = 0.01;

static void connect_failed(struct slot *s, int err)
{
	static int said;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->state = IDLE;
	n_connect_errors++;
	started--;   /* not made: another try */
	if (said++ < 5)
		fprintf(stderr, "soakload: connect: %s (retrying)\n", strerror(err));
	s->deadline = now_s() + pause_s;
	if (pause_s < 1.0)
		pause_s *= 2;
	if (now_s() - last_connect > NO_CONNECT_LIMIT) {
		fprintf(stderr, "soakload: no connection could be made for %.0f s; giving up\n", NO_CONNECT_LIMIT);
		report("final");
		exit(1);
	}
}

static void watch(struct slot *s, int op, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (epoll_ctl(ep, op, s->fd, &ev) != 0)
		die("epoll_ctl");
}

static void on_connected(struct slot *s)
{
	made++;
	last_connect = now_s();
	pause_s = 0.01;
	s->state = WRITING;
	s->sent = s->got = 0;
	s->deadline = now_s() + timeout_s;
}

static void step(struct slot *s);

static void start(struct slot *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int one = 1, fd;

	fd = socket(target->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	started++;
	if (connect(fd, target->ai_addr, target->ai_addrlen) == 0) {
		on_connected(s);
		watch(s, EPOLL_CTL_ADD, EPOLLIN);
		step(s);
		return;
	}
	if (errno != EINPROGRESS) {
		connect_failed(s, errno);
		return;
	}
	s->state = CONNECTING;
	s->deadline = now_s() + timeout_s;
	watch(s, EPOLL_CTL_ADD, EPOLLOUT);
}

/* Is the answer complete?  As many bytes as the payload (an echo), or, for
 * a ClientHello, one whole TLS record (a server's first flight). */
static bool answered(const struct slot *s)
{
	if (s->got >= payload_len)
		return true;
	if (hello && s->got >= 5) {
		size_t rec = 5 + ((size_t)s->head[3] << 8 | s->head[4]);

		return s->got >= rec;
	}
	return false;
}

/* Moves the slot's connection on as far as it can go without blocking. */
static void step(struct slot *s)
{
	if (s->state == CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err) {
			connect_failed(s, err);
			return;
		}
		on_connected(s);
		watch(s, EPOLL_CTL_MOD, EPOLLIN);
	}
	while (s->state == WRITING) {
		ssize_t w = write(s->fd, payload + s->sent, payload_len - s->sent);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			watch(s, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
			return;
		}
		if (w <= 0) {
			n_resets++;
			finish(s, false);
			return;
		}
		s->sent += (size_t)w;
		if (s->sent == payload_len) {
			s->state = READING;
			watch(s, EPOLL_CTL_MOD, EPOLLIN);
		}
	}
	while (s->state == READING) {
		unsigned char buf[MAX_PAYLOAD];
		ssize_t r = read(s->fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0) {
			n_resets++;
			finish(s, false);
			return;
		}
		if (r == 0) {
			n_closed_first++;
			finish(s, true);
			return;
		}
		for (ssize_t i = 0; i < r && s->got + (size_t)i < sizeof(s->head); i++)
			s->head[s->got + (size_t)i] = buf[i];
		s->got += (size_t)r;
		if (answered(s)) {
			n_answered++;
			finish(s, true);
			return;
		}
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: soakload [-n N] [-c C] [--payload plain|hello] [--timeout S] [--every N] "
			"[--tick S] [--max-seconds S] HOST PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	long n = 1000000, c = 32;
	double tick = 0, next_tick, last_sweep = 0, max_s = 0;
	const char *mode = "plain";
	struct slot *slots;
	int i;

	signal(SIGPIPE, SIG_IGN);
	every = 100000;
	timeout_s = -1;
	for (i = 1; i < argc - 2; i++) {
		if (strcmp(argv[i], "-n") == 0)
			n = atol(argv[++i]);
		else if (strcmp(argv[i], "-c") == 0)
			c = atol(argv[++i]);
		else if (strcmp(argv[i], "--payload") == 0)
			mode = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_s = atof(argv[++i]);
		else if (strcmp(argv[i], "--every") == 0)
			every = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--tick") == 0)
			tick = atof(argv[++i]);
		else if (strcmp(argv[i], "--max-seconds") == 0)
			max_s = atof(argv[++i]);
		else
			return usage();
	}
	if (i != argc - 2 || n < 1 || c < 1 || c > 60000 || every < 1 || tick < 0 || max_s < 0)
		return usage();
	if (strcmp(mode, "plain") == 0) {
		/* not a TLS record: the first byte is no TLS content type */
		payload_len = 16;
		memcpy(payload, "soakload ping.\r\n", payload_len);
	} else if (strcmp(mode, "hello") == 0) {
		hello = true;
		payload_len = make_client_hello(payload, sizeof(payload));
	} else {
		return usage();
	}
	if (timeout_s < 0)
		timeout_s = hello ? 2 : 10;
	if (getaddrinfo(argv[argc - 2], argv[argc - 1], &hints, &target) != 0) {
		fprintf(stderr, "soakload: cannot resolve %s\n", argv[argc - 2]);
		return 1;
	}
	if (c > n)
		c = n;
	target_n = (unsigned long)n;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	slots = calloc((size_t)c, sizeof(*slots));
	if (!slots)
		die("calloc");
	for (i = 0; i < c; i++)
		slots[i].fd = -1;

	t0 = last_connect = now_s();
	next_tick = t0 + tick;
	for (;;) {
		struct epoll_event evs[256];
		double now = now_s();
		int k, busy = 0;

		if (max_s > 0 && now - t0 >= max_s && target_n > started) {
			fprintf(stderr, "soakload: time is up (%.0f s): no new connections after %lu\n", max_s,
				started);
			target_n = started;
		}

		/* start what may start; give up on what took too long */
		if (now - last_sweep >= 0.005) {
			last_sweep = now;
			for (i = 0; i < c; i++) {
				struct slot *s = &slots[i];

				if (s->state == IDLE && started < target_n && s->deadline <= now)
					start(s);
				else if (s->state != IDLE && s->deadline <= now) {
					if (s->state == CONNECTING) {
						connect_failed(s, ETIMEDOUT);
					} else {
						n_timeouts++;
						finish(s, false);
					}
				}
				busy += s->state != IDLE;
			}
			if (!busy && started >= target_n)
				break;
		}
		if (tick > 0 && now >= next_tick) {
			report("tick");
			next_tick += tick;
		}
		k = epoll_wait(ep, evs, 256, 5);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < k; i++) {
			struct slot *s = evs[i].data.ptr;

			step(s);
			/* the slot is free at once: its next connection now */
			if (s->state == IDLE && started < target_n && s->deadline == 0)
				start(s);
		}
	}
	report("final");
	free(slots);
	close(ep);
	freeaddrinfo(target);
	return made == (unsigned long)n ? 0 : 1;
}
