/* codes: the verdict vocabulary (doc/verdicts.md), shared from decoder to
 * report.  The strings are a stable contract: add, never rename. */
#ifndef MTLSDIAG_CODES_H
#define MTLSDIAG_CODES_H

enum verdict_code {
	V_CLIENT_SENT_NO_CERT,
	V_SERVER_REJECTED_CHAIN,
	V_CLIENT_CERT_ACCEPTED,
	V_NO_CERT_ACCEPTED,
	V_CERT_NOT_REQUESTED,
	V_CLIENT_REJECTED_SERVER_CERT,
	V_HANDSHAKE_FAILED,
	V_RESUMED,
	V_UNDETERMINED,
	V_INCOMPLETE,
	V_NOT_TLS,
	V_COUNT
};

enum reason_code {
	R_NONE,
	R_EXPIRED,
	R_NOT_YET_VALID,
	R_UNKNOWN_ISSUER,
	R_MISSING_INTERMEDIATE,
	R_SELF_SIGNED,
	R_DEPTH_EXCEEDED,
	R_BAD_EKU,
	R_BAD_KEY_USAGE,
	R_BAD_SIGNATURE,
	R_REVOKED,
	R_NO_MATCHING_CA,
	R_NOT_REQUESTED_UPSTREAM,
	R_UNKNOWN,
	R_COUNT
};

enum fault { F_CLIENT, F_SERVER, F_MIDDLEBOX, F_NONE, F_UNKNOWN };

enum basis { B_OBSERVED, B_DECRYPTED, B_INFERRED };

/* The server software whose habits a verification imitates and whose
 * directives a remedy names. */
enum server_kind { SK_UNKNOWN, SK_NGINX, SK_APACHE, SK_HAPROXY, SK_ENVOY, SK_COUNT };

/* How the server's kind was told. */
enum server_kind_source {
	SKS_NONE,           /* not told */
	SKS_OPTION,         /* --server-kind */
	SKS_SERVER_HEADER,  /* the decrypted HTTP answer's Server header */
	SKS_ERROR_PAGE,     /* the decrypted answer is one of nginx's own error pages */
	SKS_REFUSAL,        /* it refused inside the HTTP stream, not with an alert: nginx's way */
};

const char *verdict_code_name(enum verdict_code v);   /* "client_sent_no_cert" */
const char *verdict_code_text(enum verdict_code v);   /* "client did not send cert" */
const char *reason_code_name(enum reason_code r);     /* NULL for R_NONE */
const char *fault_name(enum fault f);
const char *basis_name(enum basis b);
const char *server_kind_name(enum server_kind k);     /* "nginx"; NULL for SK_UNKNOWN */
/* --server-kind's argument ("nginx", "apache", "haproxy", "envoy",
 * "unknown"), case-insensitive; 0 when it names none. */
int server_kind_parse(const char *s, enum server_kind *out);
const char *server_kind_source_name(enum server_kind_source s);  /* NULL for SKS_NONE */
/* TLS alert description (RFC 8446 6.2 and older) or NULL if unassigned. */
const char *tls_alert_name(int description);

#endif
