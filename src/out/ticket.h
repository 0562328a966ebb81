/* ticket: the evidence folder for a support ticket (--evidence DIR).
 *
 * For each connection that did not end well (every one with
 * --evidence-all) a folder NNNN-VERDICT/ holding report.md (the verdict
 * sentence, the handshake's timeline, the CA names asked for, both chains,
 * the chain check, the middlebox evidence, the remedies, how the verdict
 * was reached), connection.json (the record as --json writes it),
 * handshake.pcap (the connection to the end of its handshake and its
 * closing packets, application data as zeros of its length), certs/ (each
 * certificate as PEM) and, when asked, keys.log (that connection's key-log
 * lines only); at the top index.md and index.html (connections by
 * verdict, counts, the time span, the version and the command line; the
 * page is one file with inline SVG sequence diagrams).  doc/evidence.md
 * says what is and is never written.
 *
 * A front end opens the folder once, records each connection's bytes
 * through a tap (struct ticket_tap, fed as the observer is fed) and hands
 * every decided connection to ticket_add.  A write that fails (a full
 * disk) is reported once; the folder then takes nothing more and the run
 * goes on.  Thread-safe: the proxy's workers share one folder. */
#ifndef MTLSDIAG_TICKET_H
#define MTLSDIAG_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#include "analysis/verdict.h"
#include "wire/facts.h"

struct cert_cache;
struct keylog;

struct ticket_opts {
	const char *dir;              /* --evidence DIR */
	bool all;                     /* --evidence-all: every connection, not only those that ended badly */
	bool force;                   /* --force: write into a DIR that is not empty */
	bool keep_data;               /* --evidence-keep-data: application data as captured, not zeros */
	bool keys;                    /* --evidence-keys: keys.log per connection */
	bool redact;                  /* --redact-hosts */
	unsigned max_per_verdict;     /* --evidence-max N (0: not given, TICKET_DEFAULT_MAX) */
	mode_t file_mode;             /* files; folders get the matching search bits */
	const char *who;              /* "mtlsdiag pcap", in messages */
	int argc;                     /* the command line, for the index */
	char *const *argv;
};

/* Folders per verdict unless --evidence-max says otherwise: a capture of
 * a busy server's failures stays a folder a person can read. */
#define TICKET_DEFAULT_MAX 100

struct ticket;

/* Creates DIR (or takes it empty, or with force not empty).  NULL after
 * printing one line on standard error. */
struct ticket *ticket_open(const struct ticket_opts *o) __attribute__((nonnull, warn_unused_result));

/* The connection's bytes as the observer got them, side by side (SIDE_CLIENT:
 * the side that opened the TCP connection, as obs_conn_new's initiator). */
struct ticket_tap;

struct ticket_tap *ticket_tap_new(void) __attribute__((warn_unused_result));
void ticket_tap_data(struct ticket_tap *t, enum side from, const uint8_t *p, size_t n, const struct timeval *ts);
void ticket_tap_gap(struct ticket_tap *t, enum side from, size_t n, const struct timeval *ts);
void ticket_tap_close(struct ticket_tap *t, enum side from, enum close_kind how, const struct timeval *ts);
void ticket_tap_free(struct ticket_tap *t);

/* What a connection came with besides its facts and verdict. */
struct ticket_conn {
	const struct conn_facts *f;
	const struct verdict *v;
	const char *line;             /* the human line (report_line) */
	struct ticket_tap *tap;       /* its bytes, or NULL */
	struct cert_cache *certs;     /* the cache its certificates were parsed into (their DER) */
	struct keylog *keylog;        /* for keys.log, or NULL */
	/* The record as the front end's --json writes it (with its own
	 * members), or NULL: the connection record (report_json_members). */
	const char *record;
};

/* Counts the connection and, when it is one to keep (it did not end well,
 * or --evidence-all; within --evidence-max), writes its folder. */
void ticket_add(struct ticket *t, const struct ticket_conn *c) __attribute__((nonnull));

/* Writes index.md and index.html and frees the folder.  0, or -1 when
 * evidence was lost (said already).  NULL is allowed. */
int ticket_close(struct ticket *t);

#endif
