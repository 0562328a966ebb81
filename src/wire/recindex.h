/* recindex: where the TLS records of one side's byte stream lie.
 *
 * The evidence writer keeps a connection's handshake and replaces its
 * application data by zeros of the same length; for that it needs each
 * record's header and body positions, and for the timeline the record's
 * type, size and (plaintext handshake records) the messages in it.  Pure:
 * reads through the cursor, decides nothing, prints nothing. */
#ifndef MTLSDIAG_RECINDEX_H
#define MTLSDIAG_RECINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECINDEX_MAX_MSGS 6

struct rec_entry {
	size_t offset;                  /* of the 5-byte header in the stream */
	uint8_t type;                   /* content type (TLS_CT_*) */
	uint16_t len;                   /* body length (the header's length field) */
	bool complete;                  /* the whole body is in the stream */
	bool protected_;                /* sent after this side's ChangeCipherSpec (below 1.3) */
	/* handshake messages starting in a plaintext handshake record
	 * (their TLS_HS_* types), as far as they can be told */
	uint8_t msgs[RECINDEX_MAX_MSGS];
	uint32_t msg_len[RECINDEX_MAX_MSGS];  /* each message's length field */
	size_t n_msgs;
	/* a plaintext alert's level and description; -1 otherwise */
	int alert_level, alert_desc;
};

struct rec_index {
	struct rec_entry *recs;         /* allocated */
	size_t n;
	/* where framing stopped: the stream's length when every byte was a
	 * record (or the start of one cut by the stream's end), else the
	 * offset of the first byte that is not a record header */
	size_t framed_until;
	bool lost;                      /* bytes past framed_until are not TLS records */
};

/* Indexes up to max_records records of stream[0..len).  tls13: the
 * version spoken (a ChangeCipherSpec then protects nothing).  0 when
 * memory ran out. */
int rec_index_build(struct rec_index *ri, const uint8_t *stream, size_t len, bool tls13, size_t max_records)
	__attribute__((nonnull(1), warn_unused_result));
void rec_index_free(struct rec_index *ri);

/* Where TLS begins in a stream that starts with something else (a
 * STARTTLS exchange, an HTTP CONNECT, an SSLRequest): the first offset
 * holding a handshake record header (type 22, version 3.x) whose record
 * runs to the stream's end or is followed by another plausible header.
 * len when there is none. */
size_t rec_find_start(const uint8_t *stream, size_t len) __attribute__((nonnull));

/* The header lines of an HTTP message head at the start of p[0..n) (the
 * lines after the first, up to the blank line) overwritten in place by
 * "X: xxx..." of the same length: the request or status line stays, no
 * header's name or value does.  Bytes past the head are untouched. */
void rec_blank_http_headers(uint8_t *p, size_t n) __attribute__((nonnull));

/* "ClientHello", "Certificate", ... for a TLS_HS_* type; "handshake(N)"
 * unknown ones are written to buf. */
const char *rec_hs_name(uint8_t type, char *buf, size_t len) __attribute__((nonnull));

#endif
