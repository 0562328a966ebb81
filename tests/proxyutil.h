/* proxyutil: what the proxy suites share, on top of e2e.h (processes,
 * ports, files): a scratch directory per test,
 * loopback sockets, child processes with deadlines (the proxy itself,
 * openssl s_server, curl, a poll server for many connections) and waiting
 * on the files the proxy writes. */
#ifndef MTLSDIAG_PROXYUTIL_H
#define MTLSDIAG_PROXYUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "e2e.h"

#define PKI "tests/data/lab/pki/"

/* Criterion .init/.fini: a fresh scratch directory, a hang guard. */
void px_setup(void);
void px_teardown(void);

/* A path inside the scratch directory; the same pointer for the same name. */
const char *px_tmp(const char *name);


/* A listening socket on a free loopback port (AF_INET or AF_INET6). */
int px_listen_any(int family, uint16_t *port);
/* A connected socket to loopback:port, or -1. */
int px_connect_to(int family, uint16_t port);

/* In a forked child: die with the test process, and after `seconds`. */
void px_child_guard(unsigned seconds);
void px_stop_child(pid_t pid);

/* Line i (0-based) of a file, in a static buffer ("" past the end). */
const char *px_nth_line(const char *path, size_t i);
/* The first line containing needle, in a static buffer, or NULL. */
const char *px_find_line(const char *path, const char *needle);

/* When not 0, the proxy starts with this soft RLIMIT_NOFILE (the common
 * default, where the test process's own limit was raised). */
extern unsigned long px_soft_nofile;

/* Runs `mtlsdiag proxy ARGS... --log LOG` ($MTLSDIAG_BIN), NULL-terminated
 * arguments; returns once LOG says it listens. */
pid_t px_start(const char *log, ...) __attribute__((sentinel));
/* The same, run under `prefix` (e.g. "ip netns exec NS"; NULL: none). */
pid_t px_start_argv(const char *prefix, const char *log, const char *const *args);

/* A member of a one-line JSON record: a string's text, or the literal
 * (number, true, null); "(absent)" when missing.  Static buffer. */
const char *px_json_field(const char *rec, const char *name);

/* A server for many connections at once (poll), in a child: takes up to
 * max_conns at a time from lfd (which it closes in the caller), echoes
 * what each sends (echo) or reads it without answering, and closes each at
 * its client's FIN. */
pid_t px_start_poll_server(int lfd, size_t max_conns, bool echo);

/* Raises this process's descriptor limit as far as the hard one, or skips
 * the test when that leaves no room for n. */
void px_room_for_fds(size_t n);

/* Lines of a file that contain needle. */
size_t px_count_lines(const char *path, const char *needle);

/* A number from /proc/PID/status ("VmRSS", "Uid": the first number after
 * the key), or -1. */
long px_proc_status(pid_t pid, const char *key);

/* openssl s_server -www on 127.0.0.1:port with the lab PKI, asking for a
 * client certificate (-Verify 1, -verify_return_error). */
pid_t px_start_s_server(uint16_t port);
/* The same run under `prefix` ("ip netns exec NS"), on addr:port
 * ("0.0.0.0": every address, IPv4 and IPv6). */
pid_t px_start_s_server_in(const char *prefix, const char *addr, uint16_t port);

/* A lab PKI file's path (tests/data/lab/pki/FILE); 8 rotating buffers. */
const char *px_pki(const char *file);

/* Whether a program is on PATH. */
bool px_have(const char *program);

/* Waits up to 25 s for 127.0.0.1:port to accept; otherwise stops pid and
 * fails the test with the end of log. */
void px_wait_port(uint16_t port, pid_t pid, const char *what, const char *log);

/* nginx on 127.0.0.1:port, one server block as the lab's nginx-on
 * (ssl_verify_client on with the lab's client root, depth 2), files in
 * the scratch directory. */
pid_t px_start_nginx(uint16_t port);
/* The same with ssl_verify_client `verify` ("on", "optional"). */
pid_t px_start_nginx_verify(uint16_t port, const char *verify);
/* The same with `location` as the body of its location / block (the
 * others answer `return 200 "ok nginx\n";`). */
pid_t px_start_nginx_answer(uint16_t port, const char *verify, const char *location);

/* What the nginx configuration written by px_write_nginx_conf varies in;
 * NULL and 0 members take the lab's nginx-on values. */
struct px_nginx {
	bool master;                 /* a master process (one that takes `nginx -s reload`) */
	const char *verify;          /* ssl_verify_client ("on") */
	const char *bundle;          /* ssl_client_certificate (the lab's client root) */
	int depth;                   /* ssl_verify_depth (0: 2) */
	const char *extra;           /* more server directives ("") */
	const char *location;        /* the body of location / (return 200 "ok nginx\n";) */
	int conns;                   /* worker_connections (0: 32) */
};

/* The scratch directory's nginx.conf for 127.0.0.1:port. */
void px_write_nginx_conf(uint16_t port, const struct px_nginx *n);
/* Writes it and starts nginx; returns once the port accepts. */
pid_t px_start_nginx_conf(uint16_t port, const struct px_nginx *n);

/* mitmdump as an explicit proxy on 127.0.0.1:port, accepting the lab
 * server's certificate (ssl_insecure); its CA (made on the first start,
 * with a scratch HOME) is confdir/mitmproxy-ca-cert.pem. */
pid_t px_start_mitmproxy(uint16_t port, const char *confdir);

struct px_curl {
	int exit_code;
	char http_code[8];
};

/* curl https://localhost:port/ (resolved to 127.0.0.1) with TLS version
 * tls ("1.2", "1.3"), a lab client certificate case or NULL, and any
 * further options (proxy, ...), or NULL. */
struct px_curl px_run_curl(uint16_t port, const char *tls, const char *cert_case, const char *extra);

#endif
