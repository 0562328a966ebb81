/* h1frame: where each HTTP/1.x message of a stream ends (RFC 9112 6 and 7),
 * so that a connection is handed to another client only between messages.
 * One framer per direction of a connection; it reads the bytes as they pass
 * and keeps no copy of them: only the start of the line it is reading (the
 * request or status line, a Content-Length, Transfer-Encoding or Connection
 * field, a chunk size), the framing facts of the message in hand and, for
 * the requests, the methods of the last requests not yet answered. */
#ifndef MTLSDIAG_H1FRAME_H
#define MTLSDIAG_H1FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/cursor.h"

enum h1f_dir { H1F_REQUESTS, H1F_RESPONSES };

/* the longest line the framer reads (longer lines it must read: lost) */
#define H1F_LINE 256
/* requests sent but not answered that a response framer can pair */
#define H1F_PENDING 32

struct h1f {
	uint64_t messages;   /* complete messages so far (responses: final ones; 1xx interim not counted) */
	bool persistent;     /* after the last complete message the connection may carry another
	                        (HTTP/1.1 without "Connection: close"; HTTP/1.0 only with "Connection: keep-alive");
	                        true before the first message, false once lost */
	bool lost;           /* for good: the stream can no longer be delimited (see h1frame.c's phrases) */
	char why[96];        /* why lost, a phrase ("the response's body ends at the close"); "" if not */

	/* the framer's own state: read through the functions below */
	struct h1f *peer;    /* responses: the requests' framer; requests: the responses' */
	uint64_t remaining;  /* body or chunk bytes still to pass */
	uint64_t started;    /* requests: request lines read */
	uint64_t methods;    /* requests: 2 bits (enum in h1frame.c) for each of the last H1F_PENDING started */
	uint32_t line_len;   /* bytes of the line being read, without its LF (saturates) */
	uint16_t status;     /* responses: the status of the message in hand */
	uint8_t dir;         /* enum h1f_dir */
	uint8_t state;       /* where in a message (enum in h1frame.c) */
	uint16_t has;        /* facts of the message in hand's head (bits in h1frame.c) */
	uint8_t method;      /* requests: the message in hand's method kind */
	bool idempotent;     /* requests: every request begun so far used an idempotent method */
	uint8_t tail[10];    /* the last bytes of the line being read (the request line's version) */
	uint8_t line[H1F_LINE]; /* the first bytes of the line being read */
};

void h1f_init(struct h1f *f, enum h1f_dir dir) __attribute__((nonnull));
/* The response framer learns each request's method from the request framer of the same connection
 * (a response to HEAD has no body; 2xx to CONNECT is a tunnel): call once after both are initialised. */
void h1f_pair(struct h1f *responses, struct h1f *requests) __attribute__((nonnull));
/* Bytes of the stream, in order, in pieces of any size (a piece may end anywhere, even mid-line). */
void h1f_feed(struct h1f *f, const uint8_t *p, size_t n) __attribute__((nonnull(1)));
/* At a message boundary: not lost, and nothing of a next message seen yet. */
bool h1f_between(const struct h1f *f) __attribute__((nonnull));
/* Requests framer only: whether every request begun so far (its request line read) used a method
 * RFC 9110 9.2.2 calls idempotent (GET HEAD OPTIONS TRACE PUT DELETE): such a request may be sent again
 * on a new connection when a reused one turns out closed. */
bool h1f_idempotent(const struct h1f *f) __attribute__((nonnull));
/* Whether a field value that is a comma list (RFC 9110 5.6.1, e.g. Connection's) names token, its
 * case aside. */
bool h1f_list_has(struct cursor list, const char *token) __attribute__((nonnull));

#endif
