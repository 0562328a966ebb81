/* intercept_int.h: what the stand-in's own files share (intercept.h is
 * what the proxy sees).  The rooms:
 *   intercept.c         the TLS contexts, built once at start: what clients
 *                       are asked and shown, how the real server is met
 *   intercept_forge.c   --forge-ca: a certificate per name, cached
 *   intercept_probe.c   faithful mode: the real server's request, learnt
 *   intercept_conn.c    one intercepted connection: two TLS legs, the
 *                       decision, the relay of the plaintext, one teardown
 *   intercept_pool.c    idle connections to the real server, kept for the
 *                       next clients (--upstream-keepalive)
 *   intercept_http.c    the proxy's own HTTP: the refusal and 502 pages,
 *                       the identity headers of --forward-identity
 *   intercept_record.c  the human line and JSON record of both legs */
#ifndef MTLSDIAG_INTERCEPT_INT_H
#define MTLSDIAG_INTERCEPT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <openssl/ssl.h>

#include "analysis/observer.h"
#include "front/intercept.h"
#include "front/proxy_int.h"
#include "wire/facts.h"
#include "wire/h1frame.h"

struct icpt_forge;
struct evbuffer;

#define ICPT_MAX_SIGALGS 48

/* What the real server asks of its clients, as the start-up probe saw it
 * (faithful mode). */
struct icpt_server_profile {
	bool learnt;                     /* a probe completed a handshake */
	int min_version, max_version;    /* of those it completed (TLS1_2_VERSION, TLS1_3_VERSION) */
	bool cert_requested;
	STACK_OF(X509_NAME) *ca_names;   /* the CertificateRequest's names (owned) */
	char sigalgs[ICPT_MAX_SIGALGS * 32]; /* its signature algorithms, as OpenSSL takes a list; "" none */
	size_t n_sigalgs;
};

/* One listener's contexts, shared by the workers (an SSL_CTX may serve
 * several threads once set up). */
struct intercept {
	const struct intercept_config *cfg;
	const char *up_host;             /* the real server (the listener's --upstream) */
	uint16_t up_port;
	struct icpt_server_profile profile;
	char description[1400];          /* intercept_describe's line */
	SSL_CTX *server_ctx;             /* towards clients: the stand-in */
	SSL_CTX *client_ctx;             /* towards the real server */
	struct icpt_forge *forge;        /* --forge-ca, or NULL */
	int ex_leg;                      /* SSL ex_data index: the leg an SSL belongs to */
};

/* OpenSSL's verdict on a peer's chain, as its verify callback saw it: the
 * first error, the one `openssl verify` reports for the same chain. */
struct icpt_verify_seen {
	bool ran;                        /* the callback was called: a chain was checked */
	int err;                         /* X509_V_OK, or the first error */
	int depth;
	char subject[256];               /* the certificate at that depth */
};

enum icpt_leg_id { ICPT_CLIENT_LEG = 0, ICPT_UPSTREAM_LEG = 1 };

struct icpt_conn;

/* One TLS connection of the proxy's: the client's to it (the proxy is the
 * server, SIDE_SERVER of its observer), or its own to the real server
 * (the proxy is the client). */
struct icpt_leg {
	struct icpt_conn *c;
	enum icpt_leg_id id;
	struct bufferevent *bev;         /* bufferevent_openssl on the socket; NULL before or after */
	struct bufferevent *connecting;  /* upstream: the plain socket while it connects */
	SSL *ssl;                        /* the bufferevent's, freed with it */
	struct obs_conn *obs;
	struct ticket_tap *tap;          /* the client leg's bytes for --evidence, or NULL */
	struct keylog *keys;             /* the session's secrets, as OpenSSL derives them */
	struct endpoint local, peer;
	bool tls_done;                   /* handshake completed */
	bool eof;                        /* the peer will send nothing more */
	bool shut;                       /* close_notify sent, writing shut */
	bool shut_pending;               /* shut once the output drains */
	bool dead;                       /* error or reset: unusable */
	bool paused;                     /* not read: the other leg's output is full */
	bool tap_closed[2];              /* its sides' closes told to the observer */
	uint64_t bytes;                  /* plaintext read from this leg */
	struct icpt_verify_seen verify;
	bool peer_cert;                  /* the peer presented a certificate */
	int alert_sent, alert_received;  /* the first alert each way (its description), -1 none */
	char error[400];                 /* why it failed, one line; "" none */
	/* upstream, --upstream-keepalive */
	bool reused;                     /* kept from an earlier client: no handshake of this client's */
	unsigned served;                 /* clients it carried before this one */
	bool parked;                     /* the client left between two exchanges: the leg goes to the
					  * idle connections at teardown, not closed */
};

enum icpt_phase {
	IP_HANDSHAKE,                    /* the client's handshake */
	IP_PHA_WAIT,                     /* --post-handshake-auth: done, the certificate is asked once
					  * the first request is in */
	IP_PHA_ASKED,                    /* asked after the handshake: the client's answer awaited */
	IP_REFUSING,                     /* refused: waiting for the request to answer 400 */
	IP_CONNECTING,                   /* the real server: TCP, then TLS */
	IP_RELAY,
	IP_ANSWERED,                     /* the proxy answered itself (400, 502): closing */
};

enum icpt_outcome {
	IO_NONE,                         /* not decided (the client left during its handshake) */
	IO_FORWARDED,
	IO_REFUSED_HTTP,
	IO_REFUSED_ALERT,
	IO_HANDSHAKE_FAILED,             /* the client's handshake failed for another reason */
	IO_UPSTREAM_FAILED,              /* the real server could not be reached: 502 */
};

/* --post-handshake-auth: how the client's certificate was asked for. */
enum icpt_pha {
	PHA_OFF,                         /* not configured */
	PHA_IN_HANDSHAKE,                /* TLS 1.2: in the handshake, as without the option */
	PHA_WAITING,                     /* TLS 1.3: not yet (no request) */
	PHA_ASKED,                       /* CertificateRequest sent after the handshake */
	PHA_ANSWERED,                    /* the client answered it (with a certificate or none) */
	PHA_NOT_OFFERED,                 /* the client did not offer post_handshake_auth: never asked */
	PHA_UNANSWERED,                  /* asked, and no answer in time */
	PHA_NO_REQUEST,                  /* the client left before its first request */
};

struct icpt_conn {
	struct worker *w;
	struct wlistener *wl;
	struct icpt_conn *prev, *next;
	struct icpt_leg leg[2];
	enum icpt_phase phase;
	enum icpt_outcome outcome;
	struct event *timer;
	struct endpoint client;
	char shown_for[256];             /* forged: the name the certificate was issued for */
	bool forged;
	char refusal[512];               /* why the client was refused, in words */
	bool up_started;                 /* the connection to the real server was begun */
	enum icpt_pha pha;
	bool identity_added;             /* --forward-identity: the headers went out */
	/* where each request and response ends (--upstream-keepalive): the
	 * connection to the server is kept only between two exchanges */
	struct h1f requests, responses;
	struct evbuffer *resend;         /* a reused connection's first request, kept until the server
					  * answers (sent again on a new connection if the kept one was
					  * closed); NULL none or too large */
	bool retried;                    /* a kept connection was found closed: sent again on a new one */
	bool head_seen;                  /* the client's first request head was looked at */
	bool close_after;                /* it said "Connection: close": the line left out, the proxy
					  * closes the client's leg once the answer is through */
	char identity_note[160];         /* why they did not, when they did not */
	struct timeval start, last_activity;
	struct timeval hs_end;           /* the client leg's handshake completed then (tls_done) */
	enum closer closed_by;
	enum end_kind end;
	bool torn_down;
};

/* ---- intercept.c ---- */
/* The leg an SSL belongs to (ex_data), or NULL. */
struct icpt_leg *icpt_leg_of(const SSL *ssl);
/* An SSL of leg's, with the leg its callbacks find. */
SSL *icpt_ssl_new(struct intercept *ic, struct icpt_leg *leg);
/* The leg is going: its SSL (which libevent may free later, from a
 * callback still running) no longer leads to it. */
void icpt_ssl_forget(SSL *ssl);
/* "verify error 20: unable to get local issuer certificate at depth 0 (CN=...)",
 * the wording `openssl verify` uses for the number and text. */
void icpt_verify_text(const struct icpt_verify_seen *v, char *out, size_t len);

/* A leg's SSL moves to another leg (a kept connection to its next
 * client): its callbacks find that one. */
void icpt_ssl_adopt(SSL *ssl, struct icpt_leg *leg);

/* An alert's name ("certificate_required"), or "alert N". */
const char *icpt_alert_name(int description);

/* ---- intercept_probe.c ---- */
/* Faithful mode: probes the real server (TLS 1.3, then 1.2, with the
 * upstream identity) and fills ic->profile; a line saying what was learnt,
 * or why nothing was, into ic->description. */
void icpt_learn(struct intercept *ic);

/* ---- intercept_conn.c ---- */
/* The client's hello is read (its name, its ALPN): the connection to the
 * real server begins, in parallel with the rest of the client's handshake. */
void icpt_client_hello(struct icpt_leg *cl);
/* The client finished answering a certificate request sent after the
 * handshake (OpenSSL's info callback): the decision is taken on the next
 * turn of the loop, outside OpenSSL. */
void icpt_pha_answered(struct icpt_leg *cl);

/* Frees what a leg holds (its connection closed) and clears it. */
void icpt_leg_free(struct icpt_leg *leg);

/* ---- intercept_pool.c ---- */
/* The name a connection to the real server is kept under: the name the
 * client asked for (SNI, which goes on upstream), "" for none. */
const char *icpt_pool_key(SSL *client);
/* Whether an idle connection kept under key is there. */
bool icpt_pool_has(struct wlistener *wl, const char *key);
/* Moves the newest idle connection kept under key into leg (which the
 * caller then owns: its callbacks to set, icpt_ssl_adopt); 0 none. */
int icpt_pool_take(struct wlistener *wl, const char *key, struct icpt_leg *leg);
/* Keeps leg's connection (established, between two exchanges, nothing
 * buffered, its observer and key log already let go) under key for the
 * next client; leg is cleared.  The oldest goes when more than the limit
 * would be kept; each goes after the timeout, or when the server closes
 * it or sends anything. */
void icpt_pool_put(struct wlistener *wl, const char *key, struct icpt_leg *leg);
/* Closes every idle connection of wl. */
void icpt_pool_close_all(struct wlistener *wl);

/* ---- intercept_forge.c ---- */
struct icpt_forge *icpt_forge_new(X509 *ca, EVP_PKEY *ca_key, char *err, size_t errlen);
void icpt_forge_free(struct icpt_forge *f);
/* Puts the certificate for `name` (issued now, or from the cache) on ssl.
 * 0 when the name cannot be a certificate's or issuing failed. */
int icpt_forge_use(struct icpt_forge *f, SSL *ssl, const char *name);
/* Certificates issued so far (the cache's misses). */
unsigned long icpt_forge_issued(struct icpt_forge *f);

/* ---- intercept_http.c ---- */
/* The first request's head ends in buf (\r\n\r\n): its length, head
 * included; 0 not yet; -1 when it is not found within max bytes. */
long icpt_http_head_len(struct evbuffer *buf, size_t max);
/* An error page as nginx writes one (its <title> is what the verdict rules
 * read), with `detail` in plain words after it, into out. */
void icpt_http_page(struct evbuffer *out, int status, const char *phrase, const char *title,
		    const char *detail);
/* The head of the first request (head, len bytes) into out with the
 * client's identity added (X-SSL-Client-Verify, -S-DN, -Cert), any such
 * header the client sent removed, and "Connection: close" (later requests
 * on the connection would go without them).  0 when the head is not an
 * HTTP/1.x request (then out is untouched), with why in note. */
int icpt_http_add_identity(struct evbuffer *out, const uint8_t *head, size_t len, SSL *client,
			   const struct icpt_verify_seen *v, char *note, size_t notelen);

/* In a request's head (head, len bytes, up to its empty line), the
 * Connection header line of an HTTP/1.1 request that asks the server to
 * close after it ("Connection: close"): its offset and length, its line
 * end included, in *at and *n; 0 when there is none. */
int icpt_http_close_line(const uint8_t *head, size_t len, size_t *at, size_t *n);

/* ---- intercept_record.c ---- */
/* Whether the upstream leg failed: not reached, its handshake or the
 * certificate exchange went wrong, or the server refused in HTTP. */
bool icpt_upstream_failed(const struct icpt_conn *c, const struct verdict *uv);
/* The one human line and JSON record of both legs, at teardown; the
 * observers are finished by then (v: their verdicts, NULL when a leg has
 * none). */
void icpt_record(struct icpt_conn *c, const struct verdict *cv, const struct verdict *uv, uint64_t ms);

#endif
