/* codes: names for the verdict vocabulary and TLS alerts. */
#include "config.h"

#include "analysis/codes.h"

#include <stddef.h>
#include <strings.h>

static const char *const verdict_names[V_COUNT][2] = {
	[V_CLIENT_SENT_NO_CERT] = { "client_sent_no_cert", "client did not send cert" },
	[V_SERVER_REJECTED_CHAIN] = { "server_rejected_chain", "server rejected chain" },
	[V_CLIENT_CERT_ACCEPTED] = { "client_cert_accepted", "client cert accepted" },
	[V_NO_CERT_ACCEPTED] = { "no_cert_accepted", "no cert sent, server accepted" },
	[V_CERT_NOT_REQUESTED] = { "cert_not_requested", "server did not request a cert" },
	[V_CLIENT_REJECTED_SERVER_CERT] = { "client_rejected_server_cert", "client rejected server cert" },
	[V_HANDSHAKE_FAILED] = { "handshake_failed", "handshake failed" },
	[V_RESUMED] = { "resumed", "resumed session" },
	[V_UNDETERMINED] = { "undetermined", "undetermined" },
	[V_INCOMPLETE] = { "incomplete", "incomplete" },
	[V_NOT_TLS] = { "not_tls", "not TLS" },
};

static const char *const reason_names[R_COUNT] = {
	[R_NONE] = NULL,
	[R_EXPIRED] = "expired",
	[R_NOT_YET_VALID] = "not_yet_valid",
	[R_UNKNOWN_ISSUER] = "unknown_issuer",
	[R_MISSING_INTERMEDIATE] = "missing_intermediate",
	[R_SELF_SIGNED] = "self_signed",
	[R_DEPTH_EXCEEDED] = "depth_exceeded",
	[R_BAD_EKU] = "bad_eku",
	[R_BAD_KEY_USAGE] = "bad_key_usage",
	[R_BAD_SIGNATURE] = "bad_signature",
	[R_REVOKED] = "revoked",
	[R_NO_MATCHING_CA] = "no_matching_ca",
	[R_NOT_REQUESTED_UPSTREAM] = "not_requested_upstream",
	[R_UNKNOWN] = "unknown",
};

const char *verdict_code_name(enum verdict_code v)
{
	return (unsigned)v < V_COUNT ? verdict_names[v][0] : "undetermined";
}

const char *verdict_code_text(enum verdict_code v)
{
	return (unsigned)v < V_COUNT ? verdict_names[v][1] : "undetermined";
}

const char *reason_code_name(enum reason_code r)
{
	return (unsigned)r < R_COUNT ? reason_names[r] : NULL;
}

const char *fault_name(enum fault f)
{
	switch (f) {
	case F_CLIENT: return "client";
	case F_SERVER: return "server";
	case F_MIDDLEBOX: return "middlebox";
	case F_NONE: return "none";
	case F_UNKNOWN: break;
	}
	return "unknown";
}

const char *basis_name(enum basis b)
{
	switch (b) {
	case B_OBSERVED: return "observed";
	case B_DECRYPTED: return "decrypted";
	case B_INFERRED: break;
	}
	return "inferred";
}

static const char *const server_kind_names[SK_COUNT] = {
	[SK_UNKNOWN] = "unknown",
	[SK_NGINX] = "nginx",
	[SK_APACHE] = "apache",
	[SK_HAPROXY] = "haproxy",
	[SK_ENVOY] = "envoy",
};

const char *server_kind_name(enum server_kind k)
{
	return (unsigned)k < SK_COUNT && k != SK_UNKNOWN ? server_kind_names[k] : NULL;
}

int server_kind_parse(const char *s, enum server_kind *out)
{
	int k;

	for (k = 0; k < SK_COUNT; k++) {
		if (strcasecmp(s, server_kind_names[k]) == 0) {
			*out = (enum server_kind)k;
			return 1;
		}
	}
	return 0;
}

const char *server_kind_source_name(enum server_kind_source s)
{
	switch (s) {
	case SKS_OPTION: return "option";
	case SKS_SERVER_HEADER: return "server_header";
	case SKS_ERROR_PAGE: return "error_page";
	case SKS_REFUSAL: return "refusal";
	case SKS_NONE: break;
	}
	return NULL;
}

const char *tls_alert_name(int d)
{
	switch (d) {
	case 0: return "close_notify";
	case 10: return "unexpected_message";
	case 20: return "bad_record_mac";
	case 21: return "decryption_failed";
	case 22: return "record_overflow";
	case 30: return "decompression_failure";
	case 40: return "handshake_failure";
	case 41: return "no_certificate";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 47: return "illegal_parameter";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 50: return "decode_error";
	case 51: return "decrypt_error";
	case 60: return "export_restriction";
	case 70: return "protocol_version";
	case 71: return "insufficient_security";
	case 80: return "internal_error";
	case 86: return "inappropriate_fallback";
	case 90: return "user_canceled";
	case 100: return "no_renegotiation";
	case 109: return "missing_extension";
	case 110: return "unsupported_extension";
	case 111: return "certificate_unobtainable";
	case 112: return "unrecognized_name";
	case 113: return "bad_certificate_status_response";
	case 114: return "bad_certificate_hash_value";
	case 115: return "unknown_psk_identity";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	}
	return NULL;
}
