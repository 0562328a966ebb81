/* intercept: `mtlsdiag proxy --intercept`, the proxy as the server's
 * stand-in.  With the operator's keys (the real server's certificate and
 * key, or a diagnostic CA that issues one for each name asked for) it
 * terminates the client's TLS as the server would (the same CA names,
 * signature algorithms, versions and verify depth), sees the client's
 * certificate in every TLS version, verifies it with OpenSSL, and then,
 * unless it refuses the client as nginx would (HTTP 400) or as OpenSSL
 * would (an alert), relays the plaintext to the real server over a TLS
 * connection of its own.
 *
 * Each side is a TLS endpoint of the proxy's, observed as the probe
 * observes its own connection (observer_config.endpoint): the raw bytes of
 * the socket and OpenSSL's secrets (an in-memory key log) go to one
 * observer per leg, so every verdict rule applies unchanged and decrypts.
 * The two legs make one connection record (doc/verdicts.md: client_leg,
 * upstream_leg).
 *
 * The configuration is read once at start (cmd_intercept.c): keys never
 * leave memory and are never logged. */
#ifndef MTLSDIAG_INTERCEPT_H
#define MTLSDIAG_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

enum icpt_verify {
	ICPT_VERIFY_REQUIRE,     /* nginx ssl_verify_client on */
	ICPT_VERIFY_OPTIONAL,    /* asked for, recorded, forwarded whatever it is */
};

enum icpt_refuse {
	ICPT_REFUSE_HTTP,        /* complete the handshake, answer 400 as nginx does */
	ICPT_REFUSE_ALERT,       /* the alert OpenSSL sends (certificate_required, unknown_ca, ...) */
};

struct intercept_config {
	/* the certificate shown to clients: the real server's ... */
	X509 *server_cert;
	EVP_PKEY *server_key;
	STACK_OF(X509) *server_chain;
	/* ... or one issued per name by this CA (--forge-ca) */
	X509 *forge_ca;
	EVP_PKEY *forge_ca_key;
	/* --ca-bundle: the client CAs, as names for the CertificateRequest and
	 * as the store that verifies (shared with the observer's chain checks) */
	STACK_OF(X509_NAME) *ca_names;
	X509_STORE *ca_store;
	enum icpt_verify verify;
	int verify_depth;                /* --verify-depth, as nginx's ssl_verify_depth (default 1) */
	enum icpt_refuse refuse;
	/* towards the real server */
	X509 *upstream_cert;             /* --upstream-cert, or NULL */
	EVP_PKEY *upstream_key;
	STACK_OF(X509) *upstream_chain;
	X509_STORE *upstream_ca;         /* --upstream-ca, or NULL: the system's store */
	int upstream_tls;                /* --upstream-tls: TLS1_2_VERSION, TLS1_3_VERSION, or 0 (auto:
					  * 1.2 when the server has it, whose resumption is the cheapest) */
	bool forward_identity;           /* X-SSL-Client-* headers on the first request */
	bool faithful;                   /* learn the server's request by a probe at start */
	bool post_handshake_auth;        /* TLS 1.3: ask once the first request is in */
	bool resumption;                 /* clients may resume (default: every connection is full) */
	unsigned upstream_keepalive;     /* idle connections to the server kept per worker; 0 none */
	unsigned upstream_keepalive_timeout_s; /* for this long */
};

/* A handful of idle connections serve a worker's next clients; they go
 * before most servers' own idle timeouts close them (Apache's and
 * Node's 5 s). */
#define ICPT_KEEPALIVE_DEFAULT 16
#define ICPT_KEEPALIVE_TIMEOUT_DEFAULT_S 4

struct intercept;

/* The TLS contexts from the configuration (which must outlive them), for
 * the proxy's workers to share; NULL with why in err. */
/* For the real server at host:port, asked at start what it asks of its
 * clients when cfg->faithful (a blocking probe, intercept_probe.c). */
struct intercept *intercept_new(const struct intercept_config *cfg, const char *host, uint16_t port, char *err,
				size_t errlen) __attribute__((nonnull, warn_unused_result));
/* One line for the start-up log: what the stand-in asks its clients,
 * and whence (learnt from the server, or --ca-bundle). */
const char *intercept_describe(const struct intercept *ic) __attribute__((nonnull));
void intercept_free(struct intercept *ic);

/* Frees what the configuration holds (keys cleansed by OpenSSL). */
void intercept_config_clear(struct intercept_config *c);

#endif
