/* proxyutil: what the proxy suites share: a scratch directory per test,
 * loopback sockets, child processes with deadlines (the proxy itself,
 * openssl s_server, curl) and waiting on the files the proxy writes. */
#ifndef MTLSDIAG_PROXYUTIL_H
#define MTLSDIAG_PROXYUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PKI "tests/data/lab/pki/"

/* Criterion .init/.fini: a fresh scratch directory, a hang guard. */
void px_setup(void);
void px_teardown(void);

/* A path inside the scratch directory; the same pointer for the same name. */
const char *px_tmp(const char *name);

long long px_now_ms(void);

/* A listening socket on a free loopback port (AF_INET or AF_INET6). */
int px_listen_any(int family, uint16_t *port);
/* A port nothing listens on (bound, then released). */
uint16_t px_free_port(void);
/* A connected socket to loopback:port, or -1. */
int px_connect_to(int family, uint16_t port);

/* In a forked child: die with the test process, and after `seconds`. */
void px_child_guard(unsigned seconds);
void px_stop_child(pid_t pid);

bool px_file_contains(const char *path, const char *needle);
bool px_wait_contains(const char *path, const char *needle, int timeout_ms);
size_t px_count_lines(const char *path);
/* Line i (0-based) of a file, in a static buffer ("" past the end). */
const char *px_nth_line(const char *path, size_t i);
bool px_wait_lines(const char *path, size_t n, int timeout_ms);
/* The first line containing needle, in a static buffer, or NULL. */
const char *px_find_line(const char *path, const char *needle);

/* Runs `mtlsdiag proxy ARGS... --log LOG` ($MTLSDIAG_BIN), NULL-terminated
 * arguments; returns once LOG says it listens. */
pid_t px_start(const char *log, ...) __attribute__((sentinel));
/* The same, run under `prefix` (e.g. "ip netns exec NS"; NULL: none). */
pid_t px_start_argv(const char *prefix, const char *log, const char *const *args);
/* SIGTERM, then the exit status (-1 if it had to be killed). */
int px_stop(pid_t pid);

/* openssl s_server -www on 127.0.0.1:port with the lab PKI, asking for a
 * client certificate (-Verify 1, -verify_return_error). */
pid_t px_start_s_server(uint16_t port);
/* The same run under `prefix` ("ip netns exec NS"), on addr:port
 * ("0.0.0.0": every address, IPv4 and IPv6). */
pid_t px_start_s_server_in(const char *prefix, const char *addr, uint16_t port);

struct px_curl {
	int exit_code;
	char http_code[8];
};

/* curl https://localhost:port/ (resolved to 127.0.0.1) with TLS version
 * tls ("1.2", "1.3"), a lab client certificate case or NULL, and any
 * further options (proxy, ...), or NULL. */
struct px_curl px_run_curl(uint16_t port, const char *tls, const char *cert_case, const char *extra);

#endif
