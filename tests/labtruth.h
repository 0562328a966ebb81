/* labtruth: the lab's ground truth (tests/data/lab/truth.tsv, written by
 * scripts/lab capture: one row per curl connection to a real server) and the
 * one rule that says whether a verdict agrees with a row. The capture suite
 * (test_lab) and the proxy suite (test_proxy_lab) both judge by it. */
#ifndef MTLSDIAG_TEST_LABTRUTH_H
#define MTLSDIAG_TEST_LABTRUTH_H

#include <stdbool.h>
#include <stddef.h>

struct lab_case {
	char name[64];         /* nginx-on_none_tls12 */
	char server_id[64];    /* nginx-on: the lab server (LAB_SERVERS in scripts/lab) */
	char server[24];       /* nginx, lighttpd-openssl */
	char mode[16];         /* on, optional, off, depth1, depth0, required */
	char client_case[16];  /* none, good, leafonly, expired, ... */
	char tls[8];           /* 1.2 or 1.3 */
	int curl_exit;
	char http_status[8];   /* 200, 400, 000 */
	char verdict[32];
	char reason[32];       /* "" when none */
	char fault[16];
	bool undetermined_ok;  /* encrypted without a key log: undetermined is honest */
	char keyless[96];      /* verdict/reason/fault the wire alone shows, "" if the truth */
	char client_mode[8];   /* ka: curl as it comes (keep-alive); close: HTTP/1.1 with Connection: close; h2: HTTP/2 */
};

struct lab_truth {
	struct lab_case *cases;
	size_t n;
};

/* A verdict as its names (verdict_code_name(), ...; the JSON's values):
 * reason "" when there is none. */
struct lab_got {
	const char *verdict, *reason, *fault, *basis;
};

/* A file of the lab: the committed one under tests/data/lab, or of a fresh
 * capture when MTLSDIAG_LAB_DIR is set (scripts/test). Static buffer. */
const char *lab_truth_path(const char *rel) __attribute__((nonnull));

/* Splits a TSV line in place (its line end dropped) into at most max
 * columns; the number of columns. */
size_t lab_split_tsv(char *line, char **cols, size_t max) __attribute__((nonnull));

/* Reads truth.tsv; 1 on success, 0 with the reason in err. */
int lab_truth_load(struct lab_truth *out, const char *path, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));
void lab_truth_free(struct lab_truth *t);

/* The row of that name, or NULL. */
const struct lab_case *lab_truth_find(const struct lab_truth *t, const char *name) __attribute__((nonnull));

/* Whether `got` agrees with the row: the truth itself; or what the wire
 * alone shows (keyless); or undetermined where the row allows it; or, in
 * TLS 1.3, the right verdict inferred without a reason or fault (the chain
 * and the alert are encrypted). */
bool lab_truth_accepts(const struct lab_case *c, const struct lab_got *got) __attribute__((nonnull));

/* "verdict/reason/fault" with "-" for no reason, the form of the keyless
 * column; for messages. */
void lab_got_format(char *out, size_t outlen, const struct lab_got *got) __attribute__((nonnull));

#endif
