/* tls: the incremental record layer of one direction (see tls.h). */
#include "config.h"

#include "wire/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Internal record type for the SSLv2-format ClientHello (RFC 5246 E.2). */
#define REC_SSL2 0x80
/* A reassembly buffer larger than this is given back once its message is
 * handed over: a big message is rare, and its buffer should not stay for
 * the connection's life. */
#define HS_KEEP 16384

void tls_dir_init(struct tls_dir *d)
{
	memset(d, 0, sizeof(*d));
}

void tls_dir_free(struct tls_dir *d)
{
	free(d->hs);
	d->hs = NULL;
	d->hs_len = d->hs_cap = 0;
	free(d->rec);
	d->rec = NULL;
	d->rec_have = 0;
	d->rec_protected = false;
}

static int header_ok(uint8_t type, uint16_t version, uint16_t len)
{
	if (type < TLS_CT_CHANGE_CIPHER_SPEC || type > TLS_CT_HEARTBEAT)
		return 0;
	if ((version >> 8) != 3 || (version & 0xff) > 4)
		return 0;
	return len <= TLS_MAX_RECORD;
}

int tls_looks_like_record(const struct cursor *c)
{
	struct cursor h = *c;
	uint8_t type;
	uint16_t version, len;

	if (!cursor_get_u8(&h, &type) || !cursor_get_u16(&h, &version) ||
	    !cursor_get_u16(&h, &len))
		return 0;
	return header_ok(type, version, len);
}

static int fail(struct tls_dir *d, const char *what)
{
	d->failed = true;
	snprintf(d->error, sizeof(d->error), "%s at stream offset %llu", what,
		 (unsigned long long)d->offset);
	return 0;
}

size_t tls_dir_buffered(const struct tls_dir *d)
{
	return d->hs_len + (d->rec_protected ? d->rec_have : 0);
}

/* Appends to the reassembly buffer: 1, or 0 once framing has stopped (out
 * of memory, or past the caller's budget). */
static int hs_append(struct tls_dir *d, const struct cursor *bytes)
{
	size_t n = cursor_len(bytes);
	struct cursor src = *bytes;

	if (d->hs_max && d->hs_len + n > d->hs_max) {
		d->over_budget = true;
		d->hs_refused = d->hs_len + n;
		return fail(d, "handshake message over the reassembly budget");
	}
	if (d->hs_len + n > d->hs_cap) {
		size_t cap = d->hs_cap ? d->hs_cap : 4096;
		uint8_t *grown;

		while (cap < d->hs_len + n)
			cap *= 2;
		if (d->hs_max && cap > d->hs_max)
			cap = d->hs_max;
		grown = realloc(d->hs, cap);
		if (!grown)
			return fail(d, "out of memory");
		d->hs = grown;
		d->hs_cap = cap;
	}
	/* the destination is inside our own buffer; the source is read through its cursor */
	if (!cursor_copy_bytes(&src, d->hs + d->hs_len, n))
		return fail(d, "internal copy error");
	d->hs_len += n;
	return 1;
}

/* The buffered message was handed over (or dropped). */
static void hs_reset(struct tls_dir *d)
{
	d->hs_len = 0;
	if (d->hs_cap > HS_KEEP) {
		free(d->hs);
		d->hs = NULL;
		d->hs_cap = 0;
	}
}

/* Hands over one handshake message whose 4-byte header is at the front of
 * `c`, if `c` holds all of it, and moves past it.  Returns 1 when one was
 * emitted, 0 when it is incomplete; an oversized message is reported as
 * skipped, and hs_skip then drops it together with what `c` holds of it. */
static int hs_message(struct tls_dir *d, struct cursor *c, tls_event_fn fn, void *ctx)
{
	struct tls_event ev = { .kind = TLS_EV_HANDSHAKE };
	struct cursor m = *c;
	uint8_t type;
	uint32_t len;

	if (!cursor_get_u8(&m, &type) || !cursor_get_u24(&m, &len))
		return 0;
	ev.content_type = TLS_CT_HANDSHAKE;
	ev.record_version = d->rec_version;
	ev.record_len = d->rec_len;
	ev.hs_type = type;
	ev.hs_len = len;
	ev.decrypted = ev.encrypted = d->in_plaintext;
	if (len > TLS_MAX_HANDSHAKE) {
		ev.kind = TLS_EV_SKIPPED;
		fn(ctx, &ev);
		d->hs_skip = len - cursor_len(&m);
		cursor_init(c, cursor_data(&m), 0);
		return 0;
	}
	if (!cursor_get_bytes(&m, &ev.body, len))
		return 0;
	fn(ctx, &ev);
	*c = m;
	return 1;
}

/* Bytes a message started in the handshake buffer still lacks: the rest
 * of its header, or of its body once the header is there. */
static size_t hs_missing(const struct tls_dir *d)
{
	struct cursor c;
	uint8_t type;
	uint32_t len;

	cursor_init(&c, d->hs, d->hs_len);
	if (!cursor_get_u8(&c, &type) || !cursor_get_u24(&c, &len))
		return 4 - d->hs_len;
	if (len > TLS_MAX_HANDSHAKE)
		return 0;
	return len - cursor_len(&c);
}

/* Plaintext handshake bytes of a record body.  Messages that lie whole in
 * the body are handed over from it; only one split across records (or TCP
 * segments) is gathered in the handshake buffer. */
static int hs_feed(struct tls_dir *d, struct cursor *c, tls_event_fn fn, void *ctx)
{
	while (cursor_len(c)) {
		struct cursor part, buffered;
		size_t n;

		if (d->hs_skip) {
			n = cursor_len(c) < d->hs_skip ? cursor_len(c) : d->hs_skip;
			d->hs_skip -= n;
			if (!cursor_skip(c, n))
				return fail(d, "internal skip error");
			continue;
		}
		if (d->hs_len == 0) {
			while (hs_message(d, c, fn, ctx))
				;
			if (d->hs_skip || !cursor_len(c))
				continue;
			/* the start of a message the next bytes complete */
			return hs_append(d, c);
		}
		n = hs_missing(d);
		if (n > cursor_len(c))
			n = cursor_len(c);
		if (!cursor_get_bytes(c, &part, n))
			return fail(d, "internal read error");
		if (!hs_append(d, &part))
			return 0;
		cursor_init(&buffered, d->hs, d->hs_len);
		if (hs_message(d, &buffered, fn, ctx) || d->hs_skip)
			hs_reset(d);
	}
	return 1;
}

static void emit_simple(struct tls_dir *d, enum tls_event_kind kind, tls_event_fn fn, void *ctx)
{
	struct tls_event ev = { .kind = kind };

	ev.content_type = d->rec_type;
	ev.record_version = d->rec_version;
	ev.record_len = d->rec_len;
	ev.encrypted = d->encrypted;
	fn(ctx, &ev);
}

/* A record header is complete: decide how its body will be handled. */
static int record_start(struct tls_dir *d, tls_event_fn fn, void *ctx)
{
	struct cursor h;
	uint8_t b0 = d->hdr[0], b2 = d->hdr[2], b3 = d->hdr[3];

	if (!d->started && (b0 & 0x80) && b2 == TLS_HS_CLIENT_HELLO && (b3 == 0 || b3 == 3)) {
		/* SSLv2 two-byte header; the three bytes after it start the body */
		size_t len = ((size_t)(b0 & 0x7f) << 8) | d->hdr[1];
		struct cursor first;

		if (len < 3)
			return fail(d, "SSLv2 ClientHello too short");
		d->started = d->sslv2 = true;
		d->rec_type = REC_SSL2;
		d->rec_len = (uint16_t)len;
		d->rec_left = len - 3;
		cursor_init(&first, d->hdr + 2, 3);
		return hs_append(d, &first);
	}
	cursor_init(&h, d->hdr, sizeof(d->hdr));
	if (!cursor_get_u8(&h, &d->rec_type) || !cursor_get_u16(&h, &d->rec_version) ||
	    !cursor_get_u16(&h, &d->rec_len))
		return fail(d, "short record header");
	if (!header_ok(d->rec_type, d->rec_version, d->rec_len))
		return fail(d, "not a TLS record header");
	d->started = true;
	d->rec_left = d->rec_len;
	d->alert_have = 0;
	d->rec_plain_hs = false;
	/* protected: everything after this side's CCS below 1.3; in 1.3 every
	 * application_data record (RFC 8446 5.2: the outer type of a
	 * TLSCiphertext) */
	d->rec_protected = d->keep_protected && d->rec_type != TLS_CT_CHANGE_CIPHER_SPEC &&
			   (d->encrypted || (d->tls13 && d->rec_type == TLS_CT_APPLICATION_DATA));
	if (d->rec_protected) {
		if (!d->rec && !(d->rec = malloc(TLS_MAX_RECORD)))
			return fail(d, "out of memory");
		d->rec_have = 0;
	}

	switch (d->rec_type) {
	case TLS_CT_HANDSHAKE:
		if (d->encrypted)
			emit_simple(d, TLS_EV_ENCRYPTED, fn, ctx);
		else
			d->rec_plain_hs = true;
		break;
	case TLS_CT_ALERT:
		/* a collected alert is reported once opened (or not) */
		if (d->encrypted && !d->rec_protected)
			emit_simple(d, TLS_EV_ALERT, fn, ctx);
		break;
	case TLS_CT_CHANGE_CIPHER_SPEC:
		emit_simple(d, TLS_EV_CCS, fn, ctx);
		/* Below TLS 1.3 everything this side sends next is protected;
		 * in 1.3 the CCS is a middlebox-compatibility dummy (RFC 8446 D.4). */
		if (!d->tls13)
			d->encrypted = true;
		hs_reset(d);
		break;
	default:
		emit_simple(d, TLS_EV_ENCRYPTED, fn, ctx);
		break;
	}
	return 1;
}

/* The collected protected record is complete: hand it over. */
static int protected_done(struct tls_dir *d, tls_event_fn fn, void *ctx)
{
	struct tls_event ev = { .kind = TLS_EV_PROTECTED };

	d->rec_protected = false;
	ev.content_type = d->rec_type;
	ev.record_version = d->rec_version;
	ev.record_len = d->rec_len;
	ev.encrypted = true;
	cursor_init(&ev.body, d->rec, d->rec_have);
	fn(ctx, &ev);
	return !d->failed;
}

/* Handles `body`, the next bytes of the current record's body. */
static int record_body(struct tls_dir *d, const struct cursor *body, tls_event_fn fn, void *ctx)
{
	struct cursor c = *body;

	if (d->rec_protected) {
		size_t n = cursor_len(&c);

		if (d->rec_have + n > TLS_MAX_RECORD || !cursor_copy_bytes(&c, &d->rec[d->rec_have], n))
			return fail(d, "internal record buffer error");
		d->rec_have += n;
		if (d->rec_left == n)
			return protected_done(d, fn, ctx);
		return 1;
	}
	if (d->rec_type == REC_SSL2) {
		if (!hs_append(d, &c))
			return 0;
		if (d->rec_left == cursor_len(&c)) {
			struct tls_event ev = { .kind = TLS_EV_SSL2_CLIENT_HELLO };
			ev.record_len = d->rec_len;
			ev.hs_type = TLS_HS_CLIENT_HELLO;
			cursor_init(&ev.body, d->hs, d->hs_len);
			/* skip the message type byte: the body starts at the version */
			if (!cursor_skip(&ev.body, 1))
				return fail(d, "SSLv2 ClientHello too short");
			fn(ctx, &ev);
			hs_reset(d);
		}
		return 1;
	}
	if (d->rec_plain_hs)
		return hs_feed(d, &c, fn, ctx);
	if (d->rec_type == TLS_CT_ALERT && !d->encrypted) {
		uint8_t b;

		while (cursor_get_u8(&c, &b)) {
			d->alert[d->alert_have++] = b;
			if (d->alert_have == 2) {
				struct tls_event ev = { .kind = TLS_EV_ALERT };
				ev.content_type = TLS_CT_ALERT;
				ev.record_version = d->rec_version;
				ev.record_len = d->rec_len;
				ev.alert_level = d->alert[0];
				ev.alert_desc = d->alert[1];
				fn(ctx, &ev);
				d->alert_have = 0;
			}
		}
	}
	/* everything else (encrypted records, application data) is skipped */
	return 1;
}

int tls_dir_feed(struct tls_dir *d, const uint8_t *data, size_t len,
		 tls_event_fn fn, void *ctx)
{
	struct cursor in;

	if (d->failed)
		return 0;
	cursor_init(&in, data, len);
	while (cursor_len(&in) > 0) {
		struct cursor part;
		size_t take;

		if (d->rec_left == 0 && d->hdr_have < sizeof(d->hdr)) {
			if (d->hdr_have == 0 && cursor_len(&in) >= sizeof(d->hdr)) {
				/* usually the whole header is there: a fixed-size copy */
				take = sizeof(d->hdr);
				if (!cursor_copy_bytes(&in, d->hdr, sizeof(d->hdr)))
					return fail(d, "internal read error");
			} else {
				take = sizeof(d->hdr) - d->hdr_have;
				if (take > cursor_len(&in))
					take = cursor_len(&in);
				if (!cursor_copy_bytes(&in, d->hdr + d->hdr_have, take))
					return fail(d, "internal read error");
			}
			d->hdr_have += take;
			d->offset += take;
			if (d->hdr_have < sizeof(d->hdr))
				return 1;
			d->hdr_have = 0;
			if (!record_start(d, fn, ctx))
				return 0;
			if (d->rec_left == 0 && d->rec_type == REC_SSL2) {
				struct cursor none;
				cursor_init(&none, d->hdr, 0);
				if (!record_body(d, &none, fn, ctx))
					return 0;
			}
			if (d->rec_left == 0 && d->rec_protected && !protected_done(d, fn, ctx))
				return 0;
			continue;
		}
		take = d->rec_left < cursor_len(&in) ? d->rec_left : cursor_len(&in);
		if (!cursor_get_bytes(&in, &part, take))
			return fail(d, "internal read error");
		if (!record_body(d, &part, fn, ctx))
			return 0;
		d->rec_left -= take;
		d->offset += take;
	}
	return 1;
}

int tls_dir_plaintext(struct tls_dir *d, uint8_t type, const struct cursor *plain,
		      tls_event_fn fn, void *ctx)
{
	struct cursor c = *plain;
	struct tls_event ev = { .kind = TLS_EV_ALERT };
	uint8_t level, desc;

	if (d->failed)
		return 0;
	d->in_plaintext = true;
	switch (type) {
	case TLS_CT_HANDSHAKE:
		(void)hs_feed(d, &c, fn, ctx);
		break;
	case TLS_CT_ALERT:
		/* a protected alert record holds whole alerts (RFC 8446 5.1
		 * forbids fragmenting them) */
		ev.content_type = TLS_CT_ALERT;
		ev.record_version = d->rec_version;
		ev.record_len = d->rec_len;
		ev.encrypted = ev.decrypted = true;
		while (cursor_get_u8(&c, &level) && cursor_get_u8(&c, &desc)) {
			ev.alert_level = level;
			ev.alert_desc = desc;
			fn(ctx, &ev);
		}
		break;
	case TLS_CT_APPLICATION_DATA:
		ev.kind = TLS_EV_APPDATA;
		ev.content_type = TLS_CT_APPLICATION_DATA;
		ev.record_version = d->rec_version;
		ev.record_len = d->rec_len;
		ev.encrypted = ev.decrypted = true;
		ev.body = c;
		fn(ctx, &ev);
		break;
	default:
		/* heartbeat, or a type that should not be inside: nothing to read */
		break;
	}
	d->in_plaintext = false;
	return !d->failed;
}
