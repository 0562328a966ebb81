/* tls: the incremental TLS record layer of one direction.
 *
 * Bytes arrive split or coalesced in any way; records are framed, plaintext
 * handshake messages are reassembled across records (several may share one
 * record), and each finding is handed to a callback as a struct tls_event.
 * Encrypted records are reported by type and size only and their bodies are
 * skipped without copying.  An SSLv2-format ClientHello is recognised.
 *
 * With a key log the caller sets keep_protected: each protected record is
 * then collected whole and handed over (TLS_EV_PROTECTED); the caller opens
 * it and gives the plaintext back to tls_dir_plaintext, which feeds it to
 * the same handshake reassembly and events as a plaintext record. */
#ifndef MTLSDIAG_TLS_H
#define MTLSDIAG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/cursor.h"

#define TLS_CT_CHANGE_CIPHER_SPEC 20
#define TLS_CT_ALERT 21
#define TLS_CT_HANDSHAKE 22
#define TLS_CT_APPLICATION_DATA 23
#define TLS_CT_HEARTBEAT 24

/* Alert descriptions the verdict rules name (RFC 8446 6, RFC 5246 7.2;
 * 41 is SSL 3.0's). */
enum tls_alert_description {
	TLS_ALERT_CLOSE_NOTIFY = 0,
	TLS_ALERT_NO_CERTIFICATE = 41,
	TLS_ALERT_BAD_CERTIFICATE = 42,
	TLS_ALERT_UNSUPPORTED_CERTIFICATE = 43,
	TLS_ALERT_CERTIFICATE_REVOKED = 44,
	TLS_ALERT_CERTIFICATE_EXPIRED = 45,
	TLS_ALERT_CERTIFICATE_UNKNOWN = 46,
	TLS_ALERT_UNKNOWN_CA = 48,
	TLS_ALERT_DECRYPT_ERROR = 51,
	TLS_ALERT_USER_CANCELED = 90,
	TLS_ALERT_NO_RENEGOTIATION = 100,
	TLS_ALERT_CERTIFICATE_REQUIRED = 116,
};

#define TLS_HS_HELLO_REQUEST 0
#define TLS_HS_CLIENT_HELLO 1
#define TLS_HS_SERVER_HELLO 2
#define TLS_HS_NEW_SESSION_TICKET 4
#define TLS_HS_END_OF_EARLY_DATA 5
#define TLS_HS_ENCRYPTED_EXTENSIONS 8
#define TLS_HS_CERTIFICATE 11
#define TLS_HS_SERVER_KEY_EXCHANGE 12
#define TLS_HS_CERTIFICATE_REQUEST 13
#define TLS_HS_SERVER_HELLO_DONE 14
#define TLS_HS_CERTIFICATE_VERIFY 15
#define TLS_HS_CLIENT_KEY_EXCHANGE 16
#define TLS_HS_FINISHED 20
#define TLS_HS_KEY_UPDATE 24

/* Largest record length field accepted (RFC 5246 6.2.3: 2^14 + 2048). */
#define TLS_MAX_RECORD 18432
/* Largest handshake message reassembled; bigger ones are skipped. */
#define TLS_MAX_HANDSHAKE (256 * 1024)

enum tls_event_kind {
	TLS_EV_HANDSHAKE,        /* a whole plaintext handshake message */
	TLS_EV_SSL2_CLIENT_HELLO,/* body of an SSLv2-format ClientHello */
	TLS_EV_ALERT,            /* plaintext alert, or an encrypted one (encrypted set) */
	TLS_EV_CCS,              /* ChangeCipherSpec */
	TLS_EV_ENCRYPTED,        /* an encrypted record (any outer type), header seen */
	TLS_EV_SKIPPED,          /* a handshake message too big to keep (hs_type, length) */
	TLS_EV_PROTECTED,        /* a whole protected record (keep_protected): body is its bytes */
	TLS_EV_APPDATA,          /* decrypted application data (body) */
};

struct tls_event {
	enum tls_event_kind kind;
	uint8_t content_type;    /* outer record type */
	uint16_t record_version;
	uint16_t record_len;
	uint8_t hs_type;         /* TLS_EV_HANDSHAKE / TLS_EV_SKIPPED */
	uint32_t hs_len;
	struct cursor body;      /* handshake body (after the 4-byte header), valid during the callback */
	uint8_t alert_level, alert_desc;
	bool encrypted;
	bool decrypted;          /* the content came out of tls_dir_plaintext */
};

typedef void (*tls_event_fn)(void *ctx, const struct tls_event *ev);

struct tls_dir {
	uint8_t hdr[5];
	size_t hdr_have;
	size_t rec_left;         /* body bytes of the current record still to come */
	uint8_t rec_type;
	uint16_t rec_version, rec_len;
	bool rec_plain_hs;       /* the current record's body feeds the handshake buffer */
	uint8_t alert[2];
	size_t alert_have;
	bool encrypted;          /* records from this side are protected (after CCS below 1.3) */
	bool tls13;              /* set by the caller once TLS 1.3 is negotiated */
	bool started;            /* at least one byte framed */
	bool sslv2;              /* the first record is SSLv2 format */
	uint8_t *hs;             /* handshake reassembly buffer */
	size_t hs_len, hs_cap;
	size_t hs_skip;          /* bytes of an oversized message still to drop */
	/* The caller's budget: at most hs_max bytes held in the reassembly
	 * buffer (0: no limit beyond TLS_MAX_HANDSHAKE).  A message that needs
	 * more stops the framing with over_budget set, hs_refused the bytes
	 * it would have held. */
	size_t hs_max;
	bool over_budget;
	size_t hs_refused;
	bool keep_protected;     /* collect protected records whole (TLS_EV_PROTECTED) */
	bool rec_protected;      /* the current record is being collected */
	uint8_t *rec;            /* its body (TLS_MAX_RECORD bytes, allocated on first use) */
	size_t rec_have;
	bool in_plaintext;       /* inside tls_dir_plaintext: events are decrypted content */
	bool failed;             /* framing lost: everything after is ignored */
	char error[120];         /* why framing was lost */
	uint64_t offset;         /* stream bytes consumed */
};

void tls_dir_init(struct tls_dir *d);
void tls_dir_free(struct tls_dir *d);

/* Bytes held until more arrive: a handshake message being reassembled
 * and a protected record being collected. */
size_t tls_dir_buffered(const struct tls_dir *d) __attribute__((nonnull));

/* Feeds stream bytes. Returns 1, or 0 once framing is lost (d->error says
 * why, with the stream offset; over_budget when hs_max was the cause);
 * later calls then do nothing. */
int tls_dir_feed(struct tls_dir *d, const uint8_t *data, size_t len,
		 tls_event_fn fn, void *ctx);

/* The plaintext of a protected record (inner content type `type`), fed as
 * if it had arrived in a plaintext record: handshake messages are
 * reassembled, alerts and application data reported with `decrypted` set.
 * Called from the TLS_EV_PROTECTED callback or later; 0 once framing is
 * lost. */
int tls_dir_plaintext(struct tls_dir *d, uint8_t type, const struct cursor *plain,
		      tls_event_fn fn, void *ctx);

/* 1 if the bytes plausibly start a TLS record (type, version, length). */
int tls_looks_like_record(const struct cursor *c);

#endif
