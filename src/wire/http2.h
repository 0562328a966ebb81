/* http2: the first bytes of a decrypted HTTP/2 exchange (RFC 9113): that
 * the client spoke it (its connection preface), and the status of the
 * server's first response, read from the first field of its first HEADERS
 * block (HPACK, RFC 7541: `:status` comes first, indexed from the static
 * table or a literal, Huffman-coded or not).  nginx refuses a client
 * certificate over HTTP/2 with a 400 and keeps the connection open, so
 * over HTTP/2 only the status tells.  Nothing else is kept. */
#ifndef MTLSDIAG_HTTP2_H
#define MTLSDIAG_HTTP2_H

#include <stdbool.h>

#include "wire/cursor.h"
#include "wire/http1.h"

/* The client's first bytes begin with the HTTP/2 connection preface. */
enum http1_result http2_client_preface(const struct cursor *head) __attribute__((nonnull));

/* The server's first bytes begin with an HTTP/2 frame on stream 0: its
 * preface, a SETTINGS frame (RFC 9113 3.4), or a GOAWAY, its answer to
 * bytes that are not a client preface. */
bool http2_server_preface(const struct cursor *head) __attribute__((nonnull));

/* The status of the first response in `head` (the server's first bytes,
 * frames): HTTP1_DONE with out->status set (reason and title stay "").
 * `complete`: no more bytes will come. */
enum http1_result http2_response(const struct cursor *head, bool complete, struct http1_response *out)
	__attribute__((nonnull));

#endif
