/* hsload: full mutual-TLS handshakes per second, for scripts/bench-proxy.
 *
 *   hsload [OPTIONS] HOST PORT
 *     --cert FILE --key FILE   the client certificate and key (PEM)
 *     --ca FILE                the server's CA (the server chain is verified)
 *     --tls 1.2|1.3            the version (default 1.3)
 *     -t THREADS               connections in flight at once (default 2)
 *     -d SECONDS               how long to run (default 5)
 *     --hold N                 instead: open N connections, each with two
 *                              keep-alive requests answered (a session that
 *                              went on), print "held N", and keep them open
 *                              until standard input ends
 *
 * Every connection is new and resumes nothing (no tickets, no session
 * cache), so each is a full handshake with the client's certificate, then a
 * "GET /" whose answer must be 200: a handshake only counts when the server
 * accepted the certificate.  Prints "handshakes N failures F seconds S
 * rate R". */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;
static struct addrinfo *target;
static const char *host_name;
static double deadline;
static atomic_ulong n_ok, n_failed;
static atomic_int first_error_said;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say_failure(const char *what)
{
	if (atomic_exchange(&first_error_said, 1))
		return;
	fprintf(stderr, "hsload: first failure: %s", what);
	ERR_print_errors_fp(stderr);
	fputc('\n', stderr);
}

/* One request on ssl and its answer, which must be 200.  1 on success. */
static int request(SSL *ssl, bool keep_alive)
{
	char req[300], buf[4096];
	size_t have = 0;
	int r;

	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: %s\r\n\r\n", host_name,
		 keep_alive ? "keep-alive" : "close");
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0) {
		say_failure("write");
		return 0;
	}
	/* the status line, then (keep-alive) up to the end of a short body */
	for (;;) {
		char *end;

		r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have));
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end && keep_alive) {
			const char *cl = strcasestr(buf, "Content-Length:");
			size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;

			if (have >= (size_t)(end + 4 - buf) + body)
				break;
		}
		if (have == sizeof(buf) - 1)
			break;
	}
	buf[have] = '\0';
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
		say_failure(have ? "the answer is not 200" : "no answer");
		return 0;
	}
	return 1;
}

/* One connection: TCP connect, handshake, `requests` requests (the last
 * with "Connection: close" unless keep_alive).  Returns the SSL (open,
 * answers read) or NULL. */
static SSL *open_one(int requests, bool keep_alive)
{
	SSL *ssl = NULL;
	int fd, one = 1, i;

	fd = socket(target->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, target->ai_addr, target->ai_addrlen) != 0) {
		say_failure(strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto Fail;
	SSL_set_tlsext_host_name(ssl, host_name);
	if (SSL_connect(ssl) != 1) {
		say_failure("handshake");
		goto Fail;
	}
	for (i = 0; i < requests; i++)
		if (!request(ssl, keep_alive || i + 1 < requests))
			goto Fail;
	return ssl;
Fail:
	if (ssl)
		SSL_free(ssl);
	close(fd);
	return NULL;
}

static void close_one(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);

	SSL_free(ssl);
	close(fd);
}

static void *loop(void *arg)
{
	(void)arg;
	while (now_s() < deadline) {
		SSL *ssl = open_one(1, false);

		if (!ssl) {
			atomic_fetch_add(&n_failed, 1);
			continue;
		}
		atomic_fetch_add(&n_ok, 1);
		close_one(ssl);
	}
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: hsload --cert FILE --key FILE --ca FILE [--tls 1.2|1.3] [-t N] [-d S] "
			"[--hold N] HOST PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL, *tls = "1.3";
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	long threads = 2, hold = 0;
	double seconds = 5, t0, took;
	pthread_t *tids;
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc - 2; i++) {
		if (strcmp(argv[i], "--cert") == 0)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0)
			key = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0)
			ca = argv[++i];
		else if (strcmp(argv[i], "--tls") == 0)
			tls = argv[++i];
		else if (strcmp(argv[i], "-t") == 0)
			threads = atol(argv[++i]);
		else if (strcmp(argv[i], "-d") == 0)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--hold") == 0)
			hold = atol(argv[++i]);
		else
			return usage();
	}
	if (i != argc - 2 || !cert || !key || !ca || threads < 1 || seconds <= 0 || hold < 0)
		return usage();
	host_name = argv[argc - 2];
	if (getaddrinfo(host_name, argv[argc - 1], &hints, &target) != 0) {
		fprintf(stderr, "hsload: cannot resolve %s\n", host_name);
		return 1;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		fprintf(stderr, "hsload: cannot load the certificate, key or CA\n");
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (strcmp(tls, "1.2") == 0) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	} else {
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	}

	if (hold > 0) {
		SSL **held = calloc((size_t)hold, sizeof(*held));
		char c;

		for (i = 0; i < hold; i++)
			if (!(held[i] = open_one(2, true))) {
				fprintf(stderr, "hsload: connection %d of %ld failed\n", i + 1, hold);
				return 1;
			}
		printf("held %ld\n", hold);
		fflush(stdout);
		while (read(0, &c, 1) > 0)
			;
		for (i = 0; i < hold; i++)
			close_one(held[i]);
		free(held);
		return 0;
	}

	tids = calloc((size_t)threads, sizeof(*tids));
	t0 = now_s();
	deadline = t0 + seconds;
	for (i = 0; i < threads; i++)
		pthread_create(&tids[i], NULL, loop, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	took = now_s() - t0;
	printf("handshakes %lu failures %lu seconds %.2f rate %.1f\n", atomic_load(&n_ok), atomic_load(&n_failed),
	       took, (double)atomic_load(&n_ok) / took);
	free(tids);
	SSL_CTX_free(ctx);
	freeaddrinfo(target);
	return atomic_load(&n_ok) > 0 ? 0 : 1;
}
