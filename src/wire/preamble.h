/* preamble: finds where TLS starts on a connection that may begin in
 * plaintext: an HTTP CONNECT exchange (explicit proxies, web gateways),
 * STARTTLS in SMTP, IMAP, POP3, FTP (AUTH TLS) and XMPP, PostgreSQL's
 * SSLRequest, MySQL's SSL request.  Direct TLS is the trivial case. */
#ifndef MTLSDIAG_PREAMBLE_H
#define MTLSDIAG_PREAMBLE_H

#include <stddef.h>

#include "wire/cursor.h"
#include "wire/facts.h"

/* Bytes of one side examined before the connection is declared not TLS. */
#define PREAMBLE_MAX 16384

enum preamble_status {
	PREAMBLE_MORE,     /* cannot tell yet: call again with more bytes */
	PREAMBLE_TLS,      /* this side's TLS starts at *tls_start */
	PREAMBLE_NOT_TLS,  /* this connection is not TLS, or not one we can follow */
};

struct preamble {
	enum preamble_kind kind;   /* what was recognised so far */
	char target[300];          /* CONNECT host:port, when kind is HTTP_CONNECT */
	/* private to preamble.c */
	int state;
	size_t start[2];
	unsigned char started[2];
	size_t pos[2];             /* bytes of each side parsed so far */
	unsigned units[2];         /* requests the client sent, answers the server gave */
	unsigned upgrade;          /* index of the request asking for TLS */
	size_t upgrade_end;        /* client offset just after that request */
	unsigned char waiting;     /* the client waits for the answer to `upgrade` */
	unsigned char accepted;    /* the server agreed to start TLS */
	unsigned char greeted;     /* the server's greeting has been read */
	unsigned char in_message[2]; /* HTTP: inside a header block */
	unsigned code;             /* code of the multi-line reply being read */
	unsigned long long flags;  /* bit i: request i has a multi-line answer (POP3)
				      or is a GSSENCRequest (PostgreSQL) */
	int http_status;           /* status of the HTTP response being read */
	unsigned char http_close;  /* that response ends the connection */
	unsigned char http_length_known;
	size_t http_length;        /* its Content-Length */
	size_t http_skip;          /* body bytes of a refused CONNECT still to pass */
};

void preamble_init(struct preamble *p);

/* Examines one side's stream.  `stream` is everything `from` has sent since
 * the connection opened (the caller accumulates it); only its first
 * PREAMBLE_MAX bytes are examined, so the caller need hold no more, and a
 * longer stream is judged by that much of it.  SIDE_CLIENT is the side
 * that opened the TCP connection.  Called
 * again each time that side sends more, for either side in any order
 * (the answer for one side may depend on what the other side has said,
 * e.g. the server's TLS starts after its reply to STARTTLS).
 * PREAMBLE_TLS: this side's first TLS byte is at *tls_start. */
enum preamble_status preamble_scan(struct preamble *p, enum side from,
				   const struct cursor *stream, size_t *tls_start);

/* An HTTP proxy's view of a CONNECT request (RFC 9110 9.3.6), for the
 * proxy's --connect mode: the request line and the header block. */
#define CONNECT_HEAD_MAX 8192

enum connect_parse {
	CONNECT_MORE,   /* the header block is not complete yet */
	CONNECT_OK,     /* complete: the tunnel starts at head_len */
	CONNECT_BAD,    /* not a CONNECT request, or too long: error says what */
};

struct connect_request {
	char target[300];     /* as the client wrote it: host:port or [v6]:port */
	size_t head_len;      /* bytes of the request, up to its blank line */
	const char *error;    /* CONNECT_BAD: why */
};

/* Parses the start of what a client sent to an HTTP proxy. */
enum connect_parse preamble_parse_connect(const struct cursor *in, struct connect_request *req)
	__attribute__((nonnull));

/* Short name for reports: "HTTP CONNECT", "SMTP STARTTLS", ... or NULL. */
const char *preamble_kind_name(enum preamble_kind k);

#endif
