/* probe: `mtlsdiag probe`'s active check: one TCP connection to a server,
 * directly or through an HTTP proxy (CONNECT), one TLS handshake with
 * OpenSSL at one version, optionally with a client certificate, then a
 * `GET /` and the first HTTP answer (unless the server does not speak
 * HTTP).  Every byte the socket sends and receives, the CONNECT exchange
 * included, is fed to an observer (observer.h), and so are the session's
 * secrets, through an in-memory key log: a probe ends in the verdict
 * record a capture of it with its key log would give, decrypted.  What
 * OpenSSL itself knows (the CertificateRequest's CA names and signature
 * algorithms, the server chain, alerts, also under TLS 1.3) is kept beside
 * it in struct probe_result.  Blocking I/O on a non-blocking socket with
 * poll(2) and one deadline per probe: nothing waits longer than the
 * timeout. */
#ifndef MTLSDIAG_PROBE_H
#define MTLSDIAG_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "wire/facts.h"
#include "analysis/inspect.h"
#include "analysis/observer.h"
#include "out/ticket.h"

#define PROBE_MAX_SIGALGS 48

struct probe_options {
	const char *host;                /* the server: a name or a numeric address */
	const char *sni;                 /* the name to ask for (SNI and Host), or NULL: host when a name */
	uint16_t port;
	const char *via_host;            /* an HTTP proxy to CONNECT through, or NULL */
	uint16_t via_port;
	int tls_version;                 /* TLS1_2_VERSION or TLS1_3_VERSION */
	unsigned timeout_ms;             /* the whole probe: resolve, connect, CONNECT, TLS, HTTP */
	/* the server does not speak HTTP: no ALPN offered, no request sent
	 * (otherwise ALPN http/1.1 is offered and GET / is sent unless the
	 * server chose another protocol) */
	bool no_http;
	X509 *cert;                      /* client certificate (NULL: none), its key and chain */
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	const struct inspect_catalogue *cat;  /* may be NULL */
	const struct observer_config *ocfg;
	bool keep_bytes;                 /* --evidence: the session's bytes kept in out->tap */
};

enum probe_client_auth {
	PROBE_AUTH_NOT_REQUESTED,        /* the server did not ask */
	PROBE_AUTH_ACCEPTED,             /* asked; what we sent (a chain or nothing) was taken */
	PROBE_AUTH_REJECTED,             /* asked; the server refused (alert, or nginx's 400; also
					  * nginx's 400 behind a middlebox that never asked) */
	PROBE_AUTH_UNKNOWN,              /* the handshake failed before it could tell */
	/* asked, and the handshake completed without an alert, but the
	 * server's verdict on it could not be read: no HTTP answer, a server
	 * that speaks HTTP/2 only, or TLS 1.3 with no_http */
	PROBE_AUTH_UNDETERMINED,
};

struct probe_result {
	/* could the probe run at all: false with a one-line reason (DNS,
	 * connect, the proxy's refusal, timeout before TLS) */
	bool ran;
	char error[1024];
	char proxy_status[256];          /* the proxy's status line (via) */
	struct endpoint local, peer;     /* the TCP connection (peer: the proxy with via) */

	bool handshake_ok;
	char handshake_error[1024];       /* why it failed, one line */
	int tls_version;                 /* negotiated (SSL_version), 0 if none */
	char cipher[64];

	bool cert_requested;
	char ca_names[FACTS_MAX_CA_NAMES][256];
	size_t n_ca_names;
	STACK_OF(X509_NAME) *ca_list;    /* the same names as OpenSSL read them (owned) */
	char sigalgs[PROBE_MAX_SIGALGS][32];
	size_t n_sigalgs;

	struct cert_info *chain;         /* the server's chain, whole (n_chain entries) */
	size_t n_chain;
	struct inspect_match interception;   /* rule NULL: none */

	bool cert_offered;               /* we had a certificate to give */
	bool cert_sent;                  /* a non-empty Certificate went out */
	enum probe_client_auth client_auth;
	int alert_received;              /* description of the server's alert, -1 none */
	int alert_sent;                  /* ours, -1 none */
	bool server_closed;

	char alpn[32];                   /* the protocol the server chose (ALPN), "" none */
	bool http_sent;                  /* GET / went out */
	bool h2_only;                    /* the server speaks HTTP/2 and not HTTP/1.1 */
	int http_status;                 /* 0: none read */
	char http_status_line[256];
	char http_title[128];            /* an error page's <title> */
	char http_nginx[96];             /* nginx's 400 reason text, when seen */
	char http_error[256];            /* why no HTTP answer was read, when one was looked for */
	char undetermined[256];          /* PROBE_AUTH_UNDETERMINED: why, one line */

	/* the observer's view: the same verdict as pcap/proxy would give with
	 * the key log, corrected where the probe knows better: undetermined
	 * when it cannot tell, and (no_http) a TLS 1.2 handshake's completion */
	struct obs_conn *obs;
	const struct verdict *verdict;
	struct keylog *keylog;           /* the session's secrets, as OpenSSL logged them */
	struct ticket_tap *tap;          /* its bytes for the evidence folder (keep_bytes), or NULL */
};

/* Runs one probe; always fills *out (out->ran says whether it got as far
 * as TLS).  Release with probe_result_clear. */
void probe_run(const struct probe_options *opt, struct probe_result *out) __attribute__((nonnull));
void probe_result_clear(struct probe_result *r);

/* What differs between a direct probe and one through a proxy, each a
 * line "WHAT: direct X, via proxy Y" (server certificate issuer or
 * fingerprint, whether a client certificate was requested, the CA names,
 * TLS version, handshake outcome, inspection-CA match, client-certificate
 * outcome).  `intercepted`: the proxy presented another server
 * certificate than the server's, i.e. it terminates TLS. */
#define PROBE_MAX_DIFFS 8

struct probe_diff {
	char lines[PROBE_MAX_DIFFS][2560];
	size_t n;
	bool intercepted;
};

/* 0 when either probe did not run (nothing to compare). */
int probe_compare(const struct probe_result *direct, const struct probe_result *via, struct probe_diff *out)
	__attribute__((nonnull));

const char *probe_client_auth_name(enum probe_client_auth a);  /* "accepted", ... */

/* IANA name of a TLS SignatureScheme ("ecdsa_secp256r1_sha256"), or NULL. */
const char *probe_sigalg_name(uint16_t code);

#endif
