/* conversation: what a connection did after its handshake, read as turns
 * from the records' sizes, order and times alone (they need not be opened):
 * how often the client asked and the server answered, how large the first
 * answer was, and who closed first, how soon after that answer.
 *
 * A handshake can hide its outcome: TLS 1.3 encrypts the alert, and nginx
 * refuses a certificate inside the HTTP answer in every version.  The
 * conversation shows it: a server that refuses answers once (its error
 * page) and closes before the client; one that serves keeps the connection
 * for the client to close or to ask again.  Pure: no I/O. */
#ifndef MTLSDIAG_CONVERSATION_H
#define MTLSDIAG_CONVERSATION_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/facts.h"

/* How a side ended its part of the conversation. */
enum conv_close { CONV_OPEN = 0, CONV_CLOSE_NOTIFY, CONV_FIN, CONV_RST };

struct conversation {
	unsigned requests;              /* client turns of application data */
	unsigned answers;               /* server turns that followed a client turn */
	unsigned server_first;          /* server records before the first request (tickets, an HTTP/2 preface) */
	uint64_t first_answer_bytes;    /* the first answer's record payload, protection overhead excluded */
	unsigned first_answer_records;
	uint32_t first_answer_largest;  /* its largest record's payload: the page, beside tickets sent late */
	uint32_t first_answer_end_us;   /* the time of its last record */
	bool more;                      /* records beyond those kept: the conversation went on past them */
	/* HTTP/2: the server selected it (ALPN seen); or the client sent a
	 * record of one bare frame header (9 bytes: a SETTINGS ACK), which no
	 * HTTP/1 client sends; or, having offered h2, it spoke again after a
	 * server turn of control frames only (the SETTINGS that answer its
	 * preface).  nginx refuses over HTTP/2 with a 400 and keeps the
	 * connection: the close order tells nothing there. */
	bool http2;
	/* the first side to end it: close_notify (or another alert), FIN or RST */
	bool closed;
	enum side first_closer;
	enum conv_close how;
	uint32_t close_us;
	bool server_close_notify;       /* the server sent an alert of its own (close_notify), whenever */
	bool server_ended;              /* its FIN or RST was seen: it will say nothing more */
	uint32_t quiet_us;              /* from the last event to the end of the watch, if nobody closed */
};

/* Reads the conversation after event `after` (the end of the client's
 * flight).  alert_len: in TLS 1.3 without keys the size of an encrypted
 * alert record (close_notify looks like any other alert), 0 when alerts
 * are seen as such (TLS 1.2, or decrypted). overhead: bytes a record adds
 * to its payload (TLS 1.3: inner type and tag). */
void conversation_read(const struct conn_facts *f, uint32_t after, size_t alert_len, size_t overhead,
		       struct conversation *out) __attribute__((nonnull));

/* What the conversation says about the handshake's hidden outcome. */
enum conv_outcome {
	CONV_UNKNOWN,       /* too little of it: nothing to infer */
	CONV_WENT_ON,       /* a second exchange, the client closed first, or a quiet open session */
	CONV_REFUSED,       /* one small answer, then the server closed first at once */
	CONV_SERVED_CLOSE,  /* one answer larger than an error page, then the server closed first */
};

/* An error page a server refuses with comes in one record this large:
 * nginx's 400 pages are 330 to 420 bytes with their headers, other
 * servers' a few hundred.  A smaller answer (a one-line body) is not told
 * from a served one; a record of more than CONV_ANSWER_LARGE bytes is more
 * than an error page: served. */
#define CONV_ERROR_PAGE_MIN 300
#define CONV_ERROR_PAGE_MAX 1024
#define CONV_ANSWER_LARGE 2048
/* A refusing server closes at once after its page (nginx: well under a
 * millisecond); a client that got what it wanted takes its time. */
#define CONV_CLOSE_SOON_US 200000
/* An open session quiet this long after an answer was served: a server
 * that refuses closes at once. */
#define CONV_QUIET_US 3000000

enum conv_outcome conversation_outcome(const struct conversation *c) __attribute__((nonnull));

/* The first answer came in a record of an error page's size. */
bool conversation_error_page(const struct conversation *c) __attribute__((nonnull));

/* The pattern in words, for an evidence line ("the server answered once
 * (406 bytes) and closed the connection 1 ms later, before the client"). */
void conversation_describe(const struct conversation *c, char *buf, size_t len) __attribute__((nonnull));

#endif
