/* e2e: helpers for the suites that run real programs as child processes
 * (curl, openssl s_client, scripts/lab, the built mtlsdiag): spawning with a
 * deadline so nothing hangs, free loopback ports, and reading the files
 * those programs write. */
#ifndef MTLSDIAG_TEST_E2E_H
#define MTLSDIAG_TEST_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where a child's standard streams go: a path, or NULL for /dev/null
 * (err may name the same file as out: one stream, in order). */
struct e2e_io {
	const char *in, *out, *err;
};

/* Monotonic milliseconds. */
long long e2e_now_ms(void);

/* A TCP port nothing listened on a moment ago, below the ephemeral range. */
uint16_t e2e_free_port(void);

/* Starts argv[0] (looked up in PATH) with the given streams; the child is
 * killed when the test process dies, and after `guard_s` seconds at most.
 * Returns the pid, or -1 if fork failed. */
pid_t e2e_spawn(char *const argv[], const struct e2e_io *io, unsigned guard_s)
	__attribute__((nonnull(1, 2), warn_unused_result));

/* Runs argv to completion: its exit status, 128 + signal if a signal ended
 * it, or -1 if it could not be started or was still running after
 * timeout_ms (it is then killed). */
int e2e_run(char *const argv[], const struct e2e_io *io, int timeout_ms) __attribute__((nonnull(1, 2)));

/* Waits up to timeout_ms for pid to exit, then SIGKILL; the exit status as
 * e2e_run returns it (-1 when it had to be killed). */
int e2e_wait(pid_t pid, int timeout_ms);

/* SIGTERM, up to timeout_ms for the exit, then SIGKILL. Returns the exit
 * status as e2e_run does (-1 when it had to be killed). */
int e2e_stop(pid_t pid, int timeout_ms);

/* A whole file as a NUL-terminated string (NULL if it cannot be read).
 * Caller frees. */
char *e2e_slurp(const char *path) __attribute__((nonnull, warn_unused_result));

/* Newlines in a file (0 if it does not exist). */
size_t e2e_count_lines(const char *path) __attribute__((nonnull));

/* Polls until the file has at least n lines; false at the deadline. */
bool e2e_wait_lines(const char *path, size_t n, int timeout_ms) __attribute__((nonnull));

/* Polls until the file contains needle; false at the deadline. */
bool e2e_wait_contains(const char *path, const char *needle, int timeout_ms) __attribute__((nonnull));

/* Line i (0-based) of a file without its newline, into out; false if the
 * file has fewer lines. */
bool e2e_line(const char *path, size_t i, char *out, size_t outlen) __attribute__((nonnull));

/* The last `max` bytes of a file, newlines turned into " | ", for a
 * one-line failure message (static buffer). */
const char *e2e_tail(const char *path, size_t max) __attribute__((nonnull));

/* The value of member `key` in one line of JSON, first occurrence: a
 * string's characters (escapes left as they are), or the bare token (null,
 * true, a number). False if the member is absent. */
bool e2e_json_member(const char *json, const char *key, char *out, size_t outlen) __attribute__((nonnull));
/* e2e_json_member's value, or "(absent)", in one of 8 rotating buffers
 * (so several can stand in one assertion). */
const char *e2e_member(const char *json, const char *key) __attribute__((nonnull));

/* The entries of a folder whose names begin with a digit (an evidence
 * folder's NNNN-verdict), sorted, into names (at most max): how many. */
size_t e2e_numbered(const char *dir, char names[][64], size_t max) __attribute__((nonnull));

#endif
