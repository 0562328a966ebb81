/* pingpong: request/response latency over one long-lived TCP connection,
 * for scripts/bench-proxy.
 *
 *   pingpong serve PORT               echo every byte back (127.0.0.1:PORT),
 *                                     one thread per connection
 *   pingpong run HOST PORT N [SIZE]   N round trips of SIZE bytes (64) on one
 *                                     connection after 1,000 warm-up trips;
 *                                     prints "p50_us p99_us mean_us"
 *
 * Each trip writes SIZE bytes and waits until all SIZE have come back, so it
 * times what a relay adds to a small request and its answer: two passes
 * through it, one each way.  TCP_NODELAY on both ends. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000
#define MAX_SIZE 65536

static void die(const char *what)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Reads exactly n bytes; 0 at end of stream or on error. */
static int read_full(int fd, char *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, buf, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		buf += r;
		n -= (size_t)r;
	}
	return 1;
}

static int write_full(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0;
		buf += w;
		n -= (size_t)w;
	}
	return 1;
}

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[MAX_SIZE];
	ssize_t r;

	nodelay(fd);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (!write_full(fd, buf, (size_t)r))
			break;
	close(fd);
	return NULL;
}

static _Noreturn void serve(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0)
		die("socket");
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		die("bind");
	if (listen(lfd, 128) != 0)
		die("listen");
	for (;;) {
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd) != 0)
			die("pthread_create");
		pthread_detach(t);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int run(const char *host, const char *port, long n, long size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	static char out[MAX_SIZE], in[MAX_SIZE];
	unsigned long long *rtt, sum = 0;
	long i;
	int fd;

	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "pingpong: cannot resolve %s\n", host);
		return 1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		die("connect");
	freeaddrinfo(ai);
	nodelay(fd);
	memset(out, 'p', (size_t)size);
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt)
		die("calloc");
	for (i = -WARMUP; i < n; i++) {
		unsigned long long t0 = now_ns();

		if (!write_full(fd, out, (size_t)size) || !read_full(fd, in, (size_t)size)) {
			fprintf(stderr, "pingpong: the connection ended after %ld trips\n", i + WARMUP);
			return 1;
		}
		if (i >= 0) {
			rtt[i] = now_ns() - t0;
			sum += rtt[i];
		}
	}
	close(fd);
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_u64);
	printf("%.1f %.1f %.1f\n", rtt[n / 2] / 1000.0, rtt[(n * 99) / 100] / 1000.0,
	       (double)sum / (double)n / 1000.0);
	free(rtt);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		serve(atoi(argv[2]));
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "run") == 0) {
		long n = atol(argv[4]), size = argc == 6 ? atol(argv[5]) : 64;

		if (n < 1 || size < 1 || size > MAX_SIZE) {
			fprintf(stderr, "pingpong: N must be positive and SIZE 1-%d\n", MAX_SIZE);
			return 2;
		}
		return run(argv[2], argv[3], n, size);
	}
	fprintf(stderr, "usage: pingpong serve PORT | pingpong run HOST PORT N [SIZE]\n");
	return 2;
}
