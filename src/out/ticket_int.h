/* ticket_int: what the evidence folder's files share (ticket.c, the tap
 * and the capture, the report, the page, the redaction). */
#ifndef MTLSDIAG_TICKET_INT_H
#define MTLSDIAG_TICKET_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#include "analysis/codes.h"
#include "out/ticket.h"
#include "wire/recindex.h"

/* ---- the tap: a connection's bytes, in the order they came ---- */

/* Bytes kept per side; past this the tap counts them only (the
 * handshake is long over: what follows is application data). */
#define TK_TAP_MAX (256 * 1024)

enum tk_ev_kind { TK_DATA, TK_GAP, TK_CLOSE };

struct tk_event {
	uint8_t kind;                   /* enum tk_ev_kind */
	uint8_t side;                   /* enum side, as the tap was fed */
	uint8_t how;                    /* enum close_kind (TK_CLOSE) */
	struct timeval ts;
	size_t off;                     /* TK_DATA: where its bytes are in the side's buffer */
	size_t len;                     /* TK_DATA: kept bytes; TK_GAP: missing ones */
};

struct ticket_tap {
	struct tk_event *ev;
	size_t n_ev, cap_ev;
	uint8_t *buf[2];
	size_t len[2], cap[2];
	uint64_t unkept[2];             /* bytes past TK_TAP_MAX */
	bool failed;                    /* memory ran out: what is kept is a prefix */
};

/* ---- redaction (--redact-hosts) ---- */

struct tk_host {
	char *orig, *ph;                /* the text and its placeholder */
	uint8_t bin[16], phbin[16];     /* an address's bytes and its placeholder's */
	size_t binlen;                  /* 4, 16, or 0 for a name */
};

struct tk_redact {
	struct tk_host *h;
	size_t n, cap;
	unsigned n_v4, n_v6, n_names;
};

/* Learns the addresses and names of a connection (its endpoints, SNI,
 * CONNECT target, gateway partner). */
void tk_redact_learn(struct tk_redact *r, const struct conn_facts *f, const struct verdict *v);
/* A copy of s with every known address and name replaced (malloc'd; NULL
 * when memory ran out). */
char *tk_redact_text(const struct tk_redact *r, const char *s, size_t len, size_t *outlen);
/* The same in bytes, keeping their length: names by same-length
 * placeholders, addresses in binary by theirs, textual addresses when
 * their placeholder is as long. */
void tk_redact_bytes(const struct tk_redact *r, uint8_t *p, size_t n);
/* The placeholder of an address or name (s itself when unknown). */
const char *tk_redact_one(const struct tk_redact *r, const char *s);
void tk_redact_free(struct tk_redact *r);

/* ---- the timeline: who sent what, when ---- */

enum tk_step_kind { ST_HANDSHAKE, ST_CCS, ST_ALERT, ST_PROTECTED, ST_APPDATA, ST_CLOSE, ST_GAP };

struct tk_step {
	enum side from;                 /* TLS role */
	enum tk_step_kind kind;
	uint32_t t_us;                  /* after the connection's first byte */
	uint32_t bytes;                 /* on the wire (record header included) */
	bool no_cert;                   /* the client's Certificate, empty: the missing certificate */
	bool refusal;                   /* a fatal alert, or a reset */
	char what[112];
};

/* The tap's streams ready to be written: records indexed, application
 * data zeroed (unless keep_data), names and addresses rewritten (r). */
struct tk_streams {
	uint8_t *buf[2];
	size_t len[2];
	struct rec_index ri[2];
	size_t start[2];                /* where the records begin (after a preamble) */
	enum side role[2];              /* the TLS role of each tap side */
	bool *zeroed[2];                /* per record: its body was replaced by zeros */
	size_t n_zeroed;                /* records whose body was */
};

int tk_streams_prepare(struct tk_streams *s, const struct ticket_tap *tap, const struct conn_facts *f,
		       bool keep_data, const struct tk_redact *r) __attribute__((nonnull(1, 2, 3)));
void tk_streams_free(struct tk_streams *s);
/* The steps, in order (malloc'd). 0 when memory ran out. */
int tk_timeline(const struct tk_streams *s, const struct ticket_tap *tap, const struct conn_facts *f,
		struct tk_step **steps, size_t *n) __attribute__((nonnull));
/* handshake.pcap from the tap and the prepared streams.  0, or -1 with
 * errno set (err: one line). */
int tk_pcap_write(const char *path, mode_t mode, const struct ticket_tap *tap, const struct tk_streams *s,
		  const struct conn_facts *f, const struct tk_redact *r, char *err, size_t errlen);

/* ---- the folder ---- */

struct tk_entry {
	enum verdict_code code;
	enum fault fault;
	enum basis basis;
	struct timeval ts;
	char folder[64];
	char *line;                     /* the human line, redacted */
	char client[80], server[300];   /* endpoints, redacted */
	enum tristate cert_requested, client_cert_sent;
	struct tk_step *steps;
	size_t n_steps;
};

struct ticket {
	struct ticket_opts o;
	char *dir;
	char *cmdline;                  /* argv joined */
	pthread_mutex_t lock;
	bool failed;                    /* a write failed: nothing more is written */
	uint64_t seen[V_COUNT], kept[V_COUNT], over[V_COUNT];
	uint64_t connections;
	struct timeval first, last;
	struct tk_entry *e;
	size_t n, cap;
	unsigned next;
	struct tk_redact redact;
};

/* Writes dir/rel (text, redacted when asked).  0, or -1 after the one
 * report of a failed write. */
int tk_write_text(struct ticket *t, const char *rel, const char *text, size_t len);
/* The same for bytes written as they are. */
int tk_write_bytes(struct ticket *t, const char *rel, const uint8_t *p, size_t len);
/* Says once that evidence is no longer written (why: errno) and stops. */
void tk_fail(struct ticket *t, const char *what, int error);

/* report.md of one connection, into out. */
void tk_report_md(FILE *out, const struct ticket *t, const struct ticket_conn *c, const struct tk_entry *e,
		  const struct tk_streams *s, bool keys_written);
/* index.md and index.html, into out. */
void tk_index_md(FILE *out, const struct ticket *t);
void tk_index_html(FILE *out, const struct ticket *t);
/* The time span line ("2026-... to 2026-..., 12.3 s"). */
void tk_span(const struct ticket *t, char *buf, size_t len);

#endif
