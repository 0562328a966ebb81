/* recindex: the TLS records of a byte stream (see recindex.h). */
#include "config.h"

#include "wire/recindex.h"

#include <stdio.h>
#include <stdlib.h>

#include "wire/cursor.h"
#include "wire/tls.h"

/* A plausible record header: a known content type and a 3.x version
 * (SSL 3.0 .. TLS 1.3 all say 3.x; the first ClientHello may say 3.0). */
static int header_ok(uint8_t type, uint16_t version, uint16_t len)
{
	return type >= TLS_CT_CHANGE_CIPHER_SPEC && type <= TLS_CT_HEARTBEAT && (version >> 8) == 3 &&
	       len <= 16384 + 2048;
}

/* The handshake messages that start in one plaintext record's body;
 * *pending: bytes of a message begun in an earlier record, skipped first,
 * and on return those of one this record leaves unfinished.  A header cut
 * by the record's end loses the thread: nothing more is listed. */
static void list_messages(struct rec_entry *e, struct cursor body, size_t *pending, bool *lost)
{
	uint8_t type;
	uint32_t mlen;
	size_t skip = *pending < cursor_len(&body) ? *pending : cursor_len(&body);

	*pending -= skip;
	if (!cursor_skip(&body, skip) || *lost)
		return;
	while (cursor_len(&body) > 0) {
		if (!cursor_get_u8(&body, &type) || !cursor_get_u24(&body, &mlen)) {
			*lost = true;
			return;
		}
		if (e->n_msgs < RECINDEX_MAX_MSGS) {
			e->msg_len[e->n_msgs] = mlen;
			e->msgs[e->n_msgs++] = type;
		}
		if (!cursor_skip(&body, mlen)) {
			*pending = mlen - cursor_len(&body);
			return;
		}
	}
}

int rec_index_build(struct rec_index *ri, const uint8_t *stream, size_t len, bool tls13, size_t max_records)
{
	struct cursor c;
	size_t cap = 0;
	bool after_ccs = false, msgs_lost = false;
	size_t pending = 0;

	ri->recs = NULL;
	ri->n = 0;
	ri->lost = false;
	ri->framed_until = 0;
	cursor_init(&c, stream, stream ? len : 0);
	while (cursor_len(&c) > 0 && ri->n < max_records) {
		size_t at = len - cursor_len(&c);
		uint8_t type;
		uint16_t version, rlen;
		struct cursor body;
		struct rec_entry *e;

		if (!cursor_get_u8(&c, &type) || !cursor_get_u16(&c, &version) || !cursor_get_u16(&c, &rlen)) {
			ri->framed_until = len;   /* a header cut by the stream's end */
			return 1;
		}
		if (!header_ok(type, version, rlen)) {
			ri->framed_until = at;
			ri->lost = true;
			return 1;
		}
		if (ri->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct rec_entry *grown = realloc(ri->recs, ncap * sizeof(*grown));

			if (!grown)
				return 0;
			ri->recs = grown;
			cap = ncap;
		}
		e = &ri->recs[ri->n++];
		e->offset = at;
		e->type = type;
		e->len = rlen;
		e->n_msgs = 0;
		e->protected_ = after_ccs;
		e->complete = cursor_get_bytes(&c, &body, rlen);
		if (!e->complete)
			cursor_init(&body, cursor_data(&c), cursor_len(&c));
		e->alert_level = e->alert_desc = -1;
		if (type == TLS_CT_HANDSHAKE && !after_ccs)
			list_messages(e, body, &pending, &msgs_lost);
		if (type == TLS_CT_ALERT && !after_ccs && rlen == 2) {
			uint8_t level, desc;

			if (cursor_get_u8(&body, &level) && cursor_get_u8(&body, &desc)) {
				e->alert_level = level;
				e->alert_desc = desc;
			}
		}
		if (type == TLS_CT_CHANGE_CIPHER_SPEC && !tls13)
			after_ccs = true;
		if (!e->complete) {
			ri->framed_until = len;
			return 1;
		}
	}
	ri->framed_until = len - cursor_len(&c);
	return 1;
}

size_t rec_find_start(const uint8_t *stream, size_t len)
{
	for (size_t at = 0; at + 5 <= len; at++) {
		struct cursor c;
		uint8_t type, next;
		uint16_t version, rlen, nversion;

		cursor_init(&c, stream + at, len - at);
		if (!cursor_get_u8(&c, &type) || !cursor_get_u16(&c, &version) || !cursor_get_u16(&c, &rlen))
			break;
		if (type != TLS_CT_HANDSHAKE || !header_ok(type, version, rlen) || rlen == 0)
			continue;
		/* the record runs past the stream's end, or ends on another header */
		if (!cursor_skip(&c, rlen) || cursor_len(&c) == 0)
			return at;
		if (cursor_get_u8(&c, &next) && cursor_get_u16(&c, &nversion) && header_ok(next, nversion, 0))
			return at;
	}
	return len;
}

void rec_blank_http_headers(uint8_t *p, size_t n)
{
	struct cursor c, line;
	size_t at;
	bool first = true;

	cursor_init(&c, p, n);
	while (cursor_find(&c, "\r\n", 2, &at)) {
		if (!cursor_get_bytes(&c, &line, at) || !cursor_skip(&c, 2) || at == 0)
			return;   /* the blank line: the head ends */
		if (!first) {
			/* the line's bytes, from the cursor's view of them */
			uint8_t *w = p + (n - cursor_len(&c) - 2 - at);

			for (size_t i = 0; i < at; i++)
				w[i] = i == 0 ? 'X' : i == 1 ? ':' : i == 2 ? ' ' : 'x';
		}
		first = false;
	}
}

void rec_index_free(struct rec_index *ri)
{
	if (!ri)
		return;
	free(ri->recs);
	ri->recs = NULL;
	ri->n = 0;
}

const char *rec_hs_name(uint8_t type, char *buf, size_t len)
{
	switch (type) {
	case TLS_HS_HELLO_REQUEST: return "HelloRequest";
	case TLS_HS_CLIENT_HELLO: return "ClientHello";
	case TLS_HS_SERVER_HELLO: return "ServerHello";
	case TLS_HS_NEW_SESSION_TICKET: return "NewSessionTicket";
	case TLS_HS_END_OF_EARLY_DATA: return "EndOfEarlyData";
	case TLS_HS_ENCRYPTED_EXTENSIONS: return "EncryptedExtensions";
	case TLS_HS_CERTIFICATE: return "Certificate";
	case TLS_HS_SERVER_KEY_EXCHANGE: return "ServerKeyExchange";
	case TLS_HS_CERTIFICATE_REQUEST: return "CertificateRequest";
	case TLS_HS_SERVER_HELLO_DONE: return "ServerHelloDone";
	case TLS_HS_CERTIFICATE_VERIFY: return "CertificateVerify";
	case TLS_HS_CLIENT_KEY_EXCHANGE: return "ClientKeyExchange";
	case TLS_HS_FINISHED: return "Finished";
	case TLS_HS_KEY_UPDATE: return "KeyUpdate";
	}
	snprintf(buf, len, "handshake(%u)", type);
	return buf;
}
