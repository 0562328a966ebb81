/* json: builds one JSON record in memory, member by member, and writes it
 * as one line. Every record mtlsdiag writes (pcap, proxy, probe) is made
 * here, so every string goes through one escaper: valid UTF-8 passes as it
 * is, any other byte below 0x20 or above 0x7e becomes \u00XX.
 *
 *     struct json j;
 *     json_init(&j);
 *     json_object(&j, NULL);
 *     json_string(&j, "type", "connection");
 *     json_uint(&j, "port", 443);
 *     json_end(&j);
 *     json_write_line(&j, out);
 *     json_free(&j);
 *
 * `key` names the member inside an object and is NULL for an array's
 * elements and for the record itself. A builder that ran out of memory
 * writes nothing and json_write_line says so. */
#ifndef MTLSDIAG_OUT_JSON_H
#define MTLSDIAG_OUT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* objects and arrays open at once, the record included */
#define JSON_MAX_DEPTH 16

struct json_memo;

struct json {
	char *buf;
	size_t len, cap;
	struct json_memo *memo;           /* values kept for reuse (json_recall), or NULL */
	bool failed;                      /* out of memory, or nesting past JSON_MAX_DEPTH */
	unsigned depth;
	bool has_member[JSON_MAX_DEPTH];  /* the open container has a member: the next needs a comma */
	char closer[JSON_MAX_DEPTH];      /* '}' or ']' for each open container */
};

void json_init(struct json *j) __attribute__((nonnull));
/* Empties the builder for the next record, keeping its memory. */
void json_reset(struct json *j) __attribute__((nonnull));
void json_free(struct json *j) __attribute__((nonnull));

/* A member's name the compiler knows (a string literal: the program's own
 * name, plain ASCII) comes with its length plus one and is copied as it
 * is; any other name (0 here) is checked, and escaped like a value.  With
 * GCC the common case, every literal name, costs a copy. */
static inline __attribute__((always_inline)) size_t json_known_name_(const char *key)
{
	const char *k = key ? key : "";

	return key && __builtin_constant_p(__builtin_strlen(k)) ? __builtin_strlen(k) + 1 : 0;
}

void json_object_(struct json *j, const char *key, size_t known) __attribute__((nonnull(1)));
void json_array_(struct json *j, const char *key, size_t known) __attribute__((nonnull(1)));
void json_string_(struct json *j, const char *key, size_t known, const char *s) __attribute__((nonnull(1)));
void json_uint_(struct json *j, const char *key, size_t known, unsigned long long v) __attribute__((nonnull(1)));
void json_int_(struct json *j, const char *key, size_t known, long long v) __attribute__((nonnull(1)));
void json_bool_(struct json *j, const char *key, size_t known, bool v) __attribute__((nonnull(1)));
void json_null_(struct json *j, const char *key, size_t known) __attribute__((nonnull(1)));

/* Opens an object or array; json_end closes the innermost one. */
static inline __attribute__((always_inline, nonnull(1))) void json_object(struct json *j, const char *key)
{
	json_object_(j, key, json_known_name_(key));
}

static inline __attribute__((always_inline, nonnull(1))) void json_array(struct json *j, const char *key)
{
	json_array_(j, key, json_known_name_(key));
}

void json_end(struct json *j) __attribute__((nonnull));

/* A string; NULL writes null. */
static inline __attribute__((always_inline, nonnull(1))) void json_string(struct json *j, const char *key,
									 const char *s)
{
	json_string_(j, key, json_known_name_(key), s);
}

static inline __attribute__((always_inline, nonnull(1))) void json_uint(struct json *j, const char *key,
								       unsigned long long v)
{
	json_uint_(j, key, json_known_name_(key), v);
}

static inline __attribute__((always_inline, nonnull(1))) void json_int(struct json *j, const char *key, long long v)
{
	json_int_(j, key, json_known_name_(key), v);
}

static inline __attribute__((always_inline, nonnull(1))) void json_bool(struct json *j, const char *key, bool v)
{
	json_bool_(j, key, json_known_name_(key), v);
}

static inline __attribute__((always_inline, nonnull(1))) void json_null(struct json *j, const char *key)
{
	json_null_(j, key, json_known_name_(key));
}

/* Values formatted once and copied in again: a value (an object, an
 * array) that is the same wherever a key is the same (a certificate's
 * object under its fingerprint) is built once between json_mark and
 * json_remember, and json_recall writes it again as an element of the
 * open array.  The builder keeps at most JSON_MEMO_SLOTS of them (a new
 * one takes its slot from an older one), across json_reset, until
 * json_free.  Keys are at most JSON_MEMO_KEY bytes; longer ones are never
 * kept. */
#define JSON_MEMO_SLOTS 128
#define JSON_MEMO_KEY 64
/* true when the value kept under key was written (as an array's element) */
bool json_recall(struct json *j, const char *key) __attribute__((nonnull));
/* where the next value begins: give it to json_remember after building it */
size_t json_mark(const struct json *j) __attribute__((nonnull));
void json_remember(struct json *j, const char *key, size_t mark) __attribute__((nonnull));

/* The record so far, NUL-terminated (an empty string after a failure). */
const char *json_text(const struct json *j) __attribute__((nonnull));

/* Writes the finished record and a newline with one write (records from
 * several threads do not interleave); flushing is the caller's choice.
 * 0, or -1 with errno set (ENOMEM when the builder failed, EINVAL when a
 * container is still open, else the stream's error). */
int json_write_line(struct json *j, FILE *out) __attribute__((nonnull));

#endif
