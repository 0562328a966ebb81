/* facts: the data model of one observed connection.
 *
 * Decoders fill these plain structs, the verdict rules read them, reporters
 * print them.  Nothing here points into packet buffers: every field is owned
 * by the struct so a connection's facts outlive the bytes they came from. */
#ifndef MTLSDIAG_FACTS_H
#define MTLSDIAG_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#define FACTS_MAX_CIPHERS 256
#define FACTS_MAX_EXTS 96
#define FACTS_MAX_SIGALGS 64
#define FACTS_MAX_ALPN 8
#define FACTS_MAX_CA_NAMES 32
#define FACTS_MAX_ALERTS 8
/* Certificates of one Certificate message summarized: OpenSSL verifies no
 * chain deeper than 100 (its default verify depth), and a summary costs
 * about 1 KiB, so a message of tiny entries must not cost more */
#define FACTS_MAX_CHAIN_KEPT 100
#define FACTS_MAX_EVIDENCE 12
#define FACTS_MAX_ENC_RECORDS 16

/* TLS version numbers as on the wire (0x0300 SSL 3.0 .. 0x0304 TLS 1.3);
 * 0x0002 marks an SSLv2-format ClientHello. */
#define TLS_V_SSL2 0x0002
#define TLS_V_SSL3 0x0300
#define TLS_V_1_0 0x0301
#define TLS_V_1_1 0x0302
#define TLS_V_1_2 0x0303
#define TLS_V_1_3 0x0304

enum side { SIDE_CLIENT = 0, SIDE_SERVER = 1 };

struct endpoint {
	char ip[48]; /* textual, IPv4 or IPv6 */
	uint16_t port;
};

struct client_hello {
	bool seen;
	bool sslv2;                   /* SSLv2-compatible record format */
	uint16_t legacy_version;
	uint16_t max_supported;       /* highest in supported_versions, GREASE ignored; 0 if absent */
	uint8_t random[32];
	uint8_t session_id[32];
	uint8_t session_id_len;
	char sni[256];
	char alpn[FACTS_MAX_ALPN][64];
	size_t n_alpn;
	uint16_t ciphers[FACTS_MAX_CIPHERS]; /* in order, GREASE included */
	size_t n_ciphers;
	uint16_t exts[FACTS_MAX_EXTS];  /* in order, GREASE included */
	size_t n_exts;
	uint16_t sigalgs[FACTS_MAX_SIGALGS];
	size_t n_sigalgs;
	bool post_handshake_auth;
	bool has_psk;                  /* pre_shared_key offered (resumption attempt) */
	bool has_session_ticket;       /* non-empty SessionTicket extension */
	bool early_data;
};

struct server_hello {
	bool seen;
	bool hello_retry;               /* the last ServerHello seen was an HRR */
	unsigned n_hrr;
	uint16_t legacy_version;
	uint16_t selected_version;      /* supported_versions, or legacy_version */
	uint16_t cipher;
	uint8_t session_id_len;
	bool session_id_echoed;         /* equals the client's non-empty one: 1.2 resumption */
	bool psk_selected;              /* 1.3 pre_shared_key: resumption */
	bool encrypt_then_mac;          /* RFC 7366 extension echoed */
	char alpn[32];                  /* the protocol it selected (ServerHello below 1.3, EncryptedExtensions decrypted), "" if none seen */
	uint8_t random[32];
	uint32_t seq;
};

struct cert_info {
	char subject[256];
	char issuer[256];
	char serial[80];
	char not_before[32];            /* RFC 3339 */
	char not_after[32];
	time_t not_before_t, not_after_t;
	char sha256[65];
	char spki_sha256[65];           /* SHA-256 of the SubjectPublicKeyInfo (a key pin) */
	char ski[41];                   /* subject key identifier, hex; empty if absent */
	char aki[41];                   /* authority key identifier (keyid), hex; empty if absent */
	char key[32];                   /* "RSA-2048", "EC-P-256", ... */
	char eku[96];                   /* "clientAuth,serverAuth"; empty if no EKU */
	bool has_eku, eku_client_auth;
	bool has_key_usage, ku_digital_signature;
	bool self_issued, self_signed;
	bool is_ca;
	bool parse_failed;
};

/* The certificates of a Certificate message, all of them: no count limits
 * a chain (the handshake size limit does).  `certs` (n entries) is the
 * observer's, shared with the connections that sent the same certificates
 * (cert_cache_chain_find), and lives as long as the connection. */
struct cert_chain {
	const struct cert_info *certs;
	size_t n;                       /* summaries: n_on_wire, unless memory ran out */
	size_t n_on_wire;               /* certificates in the message */
	size_t wire_len;                /* certificate_list length in bytes */
};

struct cert_request {
	bool seen;
	bool post_handshake;            /* 1.3 request after the handshake */
	uint8_t types[16];
	size_t n_types;
	uint16_t sigalgs[FACTS_MAX_SIGALGS];
	size_t n_sigalgs;
	/* The CA names, formatted; they point into a list shared by every
	 * connection that saw the same request, held as long as the connection. */
	const char (*ca_names)[256];
	size_t n_ca_names;
	size_t n_ca_names_on_wire;
	uint32_t seq;
	bool decrypted;                 /* read with the key log (1.3, or a 1.2 renegotiation) */
};

struct alert {
	enum side from;
	int level;                      /* 1 warning, 2 fatal, -1 unknown (encrypted) */
	int description;                /* -1 when encrypted (and not decrypted) */
	bool encrypted;
	bool decrypted;                 /* encrypted on the wire, read with the key log */
	uint32_t seq;                   /* position in the connection's event order */
	uint32_t t_us;                  /* microseconds after the connection's first byte */
};

/* An encrypted record seen on the wire: for TLS 1.3 without keys the sizes
 * are what the verdict is inferred from. */
struct enc_record {
	uint8_t content_type;           /* outer type */
	uint16_t len;                   /* record length field (no 5-byte header) */
	uint32_t seq;
	uint32_t t_us;                  /* microseconds after the connection's first byte */
};

enum close_kind { CLOSE_NONE = 0, CLOSE_FIN, CLOSE_RST, CLOSE_TIMEOUT, CLOSE_EOF };

struct direction_facts {
	uint64_t bytes;                 /* TCP payload bytes seen */
	uint64_t records;
	bool ccs_seen;
	uint32_t ccs_seq;               /* the last ChangeCipherSpec (a renegotiation sends another) */
	bool finished_seen;             /* plaintext, or decrypted with a key log */
	uint32_t finished_seq;          /* the last Finished */
	struct enc_record enc[FACTS_MAX_ENC_RECORDS]; /* first encrypted records */
	size_t n_enc;
	uint64_t n_enc_total;
	uint64_t enc_handshake_after_done; /* 1.2: encrypted handshake records after the handshake: renegotiation */
	uint64_t app_records;
	enum close_kind closed;
	uint32_t close_seq;
	struct timeval close_ts;
	uint64_t gap_bytes;             /* bytes lost to capture gaps */
	bool desync;                    /* record framing lost */
	/* with a key log */
	uint64_t decrypted;             /* protected records opened */
	uint64_t undecrypted;           /* protected records that could not be */
	uint32_t first_app_seq;         /* first decrypted application data (0: none) */
	uint32_t nst_seq;               /* first NewSessionTicket (0: none) */
	uint32_t key_updates;           /* TLS 1.3 KeyUpdate messages */
};

/* What the key log did for a connection. */
enum keylog_use {
	KEYLOG_UNUSED = 0,              /* no key log given, or nothing protected to open */
	KEYLOG_DECRYPTED,               /* records were decrypted */
	KEYLOG_NO_ENTRY,                /* no line for this client random */
	KEYLOG_MISSING_SECRET,          /* an entry, but not the secret a record needed */
	KEYLOG_BAD_KEY,                 /* the secret does not decrypt the records */
	KEYLOG_UNSUPPORTED,             /* a cipher suite or version we cannot decrypt */
};

enum preamble_kind {
	PREAMBLE_NONE = 0,
	PREAMBLE_HTTP_CONNECT,
	PREAMBLE_SMTP,
	PREAMBLE_IMAP,
	PREAMBLE_POP3,
	PREAMBLE_FTP,
	PREAMBLE_XMPP,
	PREAMBLE_POSTGRES,
	PREAMBLE_MYSQL,
	PREAMBLE_LDAP,
};

struct conn_facts {
	struct endpoint client, server;
	struct timeval first_ts, last_ts;
	struct timeval seen_until;      /* watched until then (a capture's end, the proxy's clock): idle time counts */
	bool roles_swapped;             /* the TLS client was the tap's responder */
	bool saw_syn;                   /* connection start observed */
	bool is_tls;
	bool not_tls;
	enum preamble_kind preamble;
	const char *source;             /* the capture file it came from (set by the pcap front end), or NULL */
	unsigned n_client_hellos;
	unsigned renegotiations;        /* below 1.3: renegotiation ClientHellos read with the key log */
	struct server_hello sh;
	struct cert_chain server_chain;
	bool server_cert_seen;
	bool server_hello_done;
	struct cert_request cr;
	bool client_cert_seen;          /* the client's Certificate message (plaintext, or decrypted) */
	bool client_cert_empty;
	bool client_cert_decrypted;     /* read with the key log */
	uint32_t client_cert_seq;
	struct cert_chain client_chain;
	bool client_cert_verify_seen;
	bool new_session_ticket_seen;
	struct alert alerts[FACTS_MAX_ALERTS];
	size_t n_alerts;
	struct direction_facts dir[2];
	uint32_t seq;                   /* event counter */
	int http_status;                /* 0 if unknown */
	bool http2;                     /* the decrypted exchange is HTTP/2 */
	bool endpoint;                  /* seen by the client itself (the probe), which holds the keys */
	enum keylog_use keylog;
	bool truncated;                 /* capture ended mid-connection */
	/* Last, what facts_clear does not make zero whole: the ClientHello
	 * (client_hello_clear) and the texts (their first byte). */
	struct client_hello ch;
	char connect_target[300];       /* CONNECT host:port */
	char http_request[256];         /* the client's request line (decrypted), "" if unknown */
	char http_reason[64];           /* the status line's reason phrase */
	char http_title[128];           /* <title> of an error page (status >= 400) */
	char http_server[64];           /* the answer's Server header (HTTP/1.x), "" if none */
	char keylog_note[160];          /* why the key log did not help, for the evidence */
	char decode_error[160];         /* first decode error, if any */
};

/* Empty facts for a new connection, as if made zero whole, but with less
 * written: a connection's facts are 4 KiB, mostly long arrays it never
 * fills, and making them zero took a tenth of the deciding thread's time
 * on a busy capture (every line of a reused connection's memory fetched
 * and written).  The arrays that count only up to their count (the
 * ClientHello's ciphers, extensions, signature algorithms and ALPN
 * names) are left as they were, the texts but for their first byte: what
 * reads them stops at the count or the NUL. */

/* Member b of T comes right after member a (but for b's alignment):
 * nothing lies between them for the clearing to miss. */
#define FACTS_NEXT(T, a, b) \
	(offsetof(T, b) >= offsetof(T, a) + sizeof(((T *)0)->a) && \
	 offsetof(T, b) < offsetof(T, a) + sizeof(((T *)0)->a) + _Alignof(__typeof__(((T *)0)->b)))

static inline void client_hello_clear(struct client_hello *ch)
{
	_Static_assert(FACTS_NEXT(struct client_hello, sni, alpn) && FACTS_NEXT(struct client_hello, alpn, n_alpn) &&
		       FACTS_NEXT(struct client_hello, n_alpn, ciphers) &&
		       FACTS_NEXT(struct client_hello, ciphers, n_ciphers) &&
		       FACTS_NEXT(struct client_hello, n_ciphers, exts) && FACTS_NEXT(struct client_hello, exts, n_exts) &&
		       FACTS_NEXT(struct client_hello, n_exts, sigalgs) &&
		       FACTS_NEXT(struct client_hello, sigalgs, n_sigalgs),
		       "between the SNI and n_sigalgs, only the arrays and their counts");
	/* the scalars before the SNI, and its first byte */
	memset(ch, 0, offsetof(struct client_hello, sni) + 1);
	ch->n_alpn = 0;
	ch->n_ciphers = 0;
	ch->n_exts = 0;
	/* the count and flags after the signature algorithms */
	memset(&ch->n_sigalgs, 0, sizeof(*ch) - offsetof(struct client_hello, n_sigalgs));
}

static inline void facts_clear(struct conn_facts *f)
{
	_Static_assert(FACTS_NEXT(struct conn_facts, ch, connect_target) &&
		       FACTS_NEXT(struct conn_facts, connect_target, http_request) &&
		       FACTS_NEXT(struct conn_facts, http_request, http_reason) &&
		       FACTS_NEXT(struct conn_facts, http_reason, http_title) &&
		       FACTS_NEXT(struct conn_facts, http_title, http_server) &&
		       FACTS_NEXT(struct conn_facts, http_server, keylog_note) &&
		       FACTS_NEXT(struct conn_facts, keylog_note, decode_error) &&
		       offsetof(struct conn_facts, decode_error) + sizeof(f->decode_error) + _Alignof(struct conn_facts) >
		       sizeof(struct conn_facts),
		       "after the ClientHello, only the texts");
	memset(f, 0, offsetof(struct conn_facts, ch));
	client_hello_clear(&f->ch);
	f->connect_target[0] = '\0';
	f->http_request[0] = '\0';
	f->http_reason[0] = '\0';
	f->http_title[0] = '\0';
	f->http_server[0] = '\0';
	f->keylog_note[0] = '\0';
	f->decode_error[0] = '\0';
}

/* Microseconds from the connection's first byte to ts, saturating: the
 * time of an event (enc_record, alert), or of a close, in the conversation. */
static inline uint32_t facts_us_since_start(const struct conn_facts *f, const struct timeval *ts)
{
	int64_t us = ((int64_t)ts->tv_sec - f->first_ts.tv_sec) * 1000000 + (ts->tv_usec - f->first_ts.tv_usec);

	return us <= 0 ? 0 : us >= UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

#endif
