/* tls_msgs: handshake message parsers (see tls_msgs.h). */
#include "config.h"

#include "wire/tls_msgs.h"

#include <string.h>

/* RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest. */
static const uint8_t hrr_random[32] = {
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

const char *tls_version_name(uint16_t v)
{
	switch (v) {
	case TLS_V_SSL2: return "SSL2";
	case TLS_V_SSL3: return "SSL3";
	case TLS_V_1_0: return "1.0";
	case TLS_V_1_1: return "1.1";
	case TLS_V_1_2: return "1.2";
	case TLS_V_1_3: return "1.3";
	}
	return "?";
}

static int parse_u16_list(struct cursor *list, uint16_t *out, size_t max, size_t *n)
{
	uint16_t v;

	*n = 0;
	if (cursor_len(list) % 2)
		return 0;
	while (cursor_get_u16(list, &v))
		if (*n < max)
			out[(*n)++] = v;
	return 1;
}

static int parse_sni(struct cursor data, struct client_hello *out)
{
	struct cursor list, name;
	uint8_t type;

	if (!cursor_get_u16_prefixed(&data, &list) || cursor_len(&data))
		return 0;
	while (cursor_len(&list)) {
		if (!cursor_get_u8(&list, &type) || !cursor_get_u16_prefixed(&list, &name))
			return 0;
		if (type == 0 && !out->sni[0])
			cursor_copy_printable(&name, out->sni, sizeof(out->sni));
	}
	return 1;
}

/* One extension of a list (RFC 8446 4.2): its type and its data, inside
 * their own bounds. */
static int next_extension(struct cursor *exts, uint16_t *type, struct cursor *data)
{
	return cursor_get_u16(exts, type) && cursor_get_u16_prefixed(exts, data);
}

static int parse_alpn(struct cursor data, struct client_hello *out)
{
	struct cursor list, proto;

	if (!cursor_get_u16_prefixed(&data, &list) || cursor_len(&data))
		return 0;
	while (cursor_len(&list)) {
		if (!cursor_get_u8_prefixed(&list, &proto))
			return 0;
		if (out->n_alpn < FACTS_MAX_ALPN)
			cursor_copy_printable(&proto, out->alpn[out->n_alpn++], sizeof(out->alpn[0]));
	}
	return 1;
}

static int parse_ch_extension(uint16_t type, struct cursor data, struct client_hello *out)
{
	struct cursor list;
	uint16_t v;

	switch (type) {
	case TLS_EXT_SERVER_NAME:
		return parse_sni(data, out);
	case TLS_EXT_ALPN:
		return parse_alpn(data, out);
	case TLS_EXT_SIGNATURE_ALGORITHMS:
		return cursor_get_u16_prefixed(&data, &list) && !cursor_len(&data) &&
		       parse_u16_list(&list, out->sigalgs, FACTS_MAX_SIGALGS, &out->n_sigalgs);
	case TLS_EXT_SUPPORTED_VERSIONS:
		if (!cursor_get_u8_prefixed(&data, &list) || cursor_len(&data) || cursor_len(&list) % 2)
			return 0;
		while (cursor_get_u16(&list, &v))
			if (!tls_is_grease(v) && v > out->max_supported)
				out->max_supported = v;
		return 1;
	case TLS_EXT_PRE_SHARED_KEY:
		out->has_psk = true;
		return 1;
	case TLS_EXT_SESSION_TICKET:
		out->has_session_ticket = cursor_len(&data) > 0;
		return 1;
	case TLS_EXT_EARLY_DATA:
		out->early_data = true;
		return 1;
	case TLS_EXT_POST_HANDSHAKE_AUTH:
		out->post_handshake_auth = true;
		return 1;
	}
	return 1;
}

int tls_parse_client_hello(const struct cursor *body, struct client_hello *out)
{
	struct cursor c = *body, sid, ciphers, comp, exts, ext;
	uint16_t v;

	client_hello_clear(out);
	if (!cursor_get_u16(&c, &out->legacy_version) ||
	    !cursor_copy_bytes(&c, out->random, sizeof(out->random)) ||
	    !cursor_get_u8_prefixed(&c, &sid) || cursor_len(&sid) > 32 ||
	    !cursor_get_u16_prefixed(&c, &ciphers) || cursor_len(&ciphers) % 2 ||
	    !cursor_get_u8_prefixed(&c, &comp))
		return 0;
	out->session_id_len = (uint8_t)cursor_len(&sid);
	if (!cursor_copy_bytes(&sid, out->session_id, cursor_len(&sid)))
		return 0;
	while (cursor_get_u16(&ciphers, &v))
		if (out->n_ciphers < FACTS_MAX_CIPHERS)
			out->ciphers[out->n_ciphers++] = v;
	if (cursor_len(&c)) {
		if (!cursor_get_u16_prefixed(&c, &exts) || cursor_len(&c))
			return 0;
		while (cursor_len(&exts)) {
			uint16_t type;

			if (!next_extension(&exts, &type, &ext))
				return 0;
			if (out->n_exts < FACTS_MAX_EXTS)
				out->exts[out->n_exts++] = type;
			if (!parse_ch_extension(type, ext, out))
				return 0;
		}
	}
	out->seen = true;
	return 1;
}

int tls_parse_sslv2_client_hello(const struct cursor *body, struct client_hello *out)
{
	struct cursor c = *body, specs, sid, challenge;
	uint16_t specs_len, sid_len, challenge_len;
	uint8_t hi;
	uint16_t lo;

	client_hello_clear(out);
	if (!cursor_get_u16(&c, &out->legacy_version) || !cursor_get_u16(&c, &specs_len) ||
	    !cursor_get_u16(&c, &sid_len) || !cursor_get_u16(&c, &challenge_len) ||
	    specs_len % 3 || !cursor_get_bytes(&c, &specs, specs_len) ||
	    !cursor_get_bytes(&c, &sid, sid_len) || !cursor_get_bytes(&c, &challenge, challenge_len) ||
	    cursor_len(&c))
		return 0;
	/* SSLv2 cipher specs are three bytes; those with a zero first byte are TLS suites */
	while (cursor_get_u8(&specs, &hi) && cursor_get_u16(&specs, &lo))
		if (hi == 0 && out->n_ciphers < FACTS_MAX_CIPHERS)
			out->ciphers[out->n_ciphers++] = lo;
	out->sslv2 = true;
	out->seen = true;
	return 1;
}

/* The protocol a server selected (RFC 7301 3.1: a list of exactly one). */
static int parse_alpn_selected(struct cursor data, char *out, size_t outlen)
{
	struct cursor list, proto;

	if (!cursor_get_u16_prefixed(&data, &list) || cursor_len(&data) || !cursor_get_u8_prefixed(&list, &proto) ||
	    cursor_len(&list))
		return 0;
	cursor_copy_printable(&proto, out, outlen);
	return 1;
}

int tls_parse_encrypted_extensions(const struct cursor *body, struct server_hello *sh)
{
	struct cursor c = *body, exts, ext;

	if (!cursor_get_u16_prefixed(&c, &exts) || cursor_len(&c))
		return 0;
	while (cursor_len(&exts)) {
		uint16_t type;

		if (!next_extension(&exts, &type, &ext))
			return 0;
		if (type == TLS_EXT_ALPN && !parse_alpn_selected(ext, sh->alpn, sizeof(sh->alpn)))
			return 0;
	}
	return 1;
}

int tls_parse_server_hello(const struct cursor *body, const struct client_hello *ch,
			   struct server_hello *out)
{
	struct cursor c = *body, sid, exts, ext;
	uint8_t random[32], comp;
	unsigned n_hrr = out->n_hrr;

	memset(out, 0, sizeof(*out));
	out->n_hrr = n_hrr;
	if (!cursor_get_u16(&c, &out->legacy_version) ||
	    !cursor_copy_bytes(&c, random, sizeof(random)) ||
	    !cursor_get_u8_prefixed(&c, &sid) || cursor_len(&sid) > 32 ||
	    !cursor_get_u16(&c, &out->cipher) || !cursor_get_u8(&c, &comp))
		return 0;
	out->selected_version = out->legacy_version;
	out->session_id_len = (uint8_t)cursor_len(&sid);
	out->session_id_echoed = ch && ch->session_id_len && ch->session_id_len == cursor_len(&sid) &&
				 memcmp(cursor_data(&sid), ch->session_id, ch->session_id_len) == 0;
	if (cursor_len(&c)) {
		if (!cursor_get_u16_prefixed(&c, &exts) || cursor_len(&c))
			return 0;
		while (cursor_len(&exts)) {
			uint16_t type, v;

			if (!next_extension(&exts, &type, &ext))
				return 0;
			if (type == TLS_EXT_SUPPORTED_VERSIONS) {
				if (!cursor_get_u16(&ext, &v) || cursor_len(&ext))
					return 0;
				out->selected_version = v;
			} else if (type == TLS_EXT_PRE_SHARED_KEY) {
				out->psk_selected = true;
			} else if (type == TLS_EXT_ENCRYPT_THEN_MAC) {
				out->encrypt_then_mac = true;
			} else if (type == TLS_EXT_ALPN) {
				if (!parse_alpn_selected(ext, out->alpn, sizeof(out->alpn)))
					return 0;
			}
		}
	}
	memcpy(out->random, random, sizeof(random));
	out->hello_retry = memcmp(random, hrr_random, sizeof(random)) == 0;
	if (out->hello_retry)
		out->n_hrr++;
	out->seen = true;
	return 1;
}

int tls_cert_list_next(const struct cert_list *list, struct cursor *it, struct cursor *der)
{
	struct cursor c = *it, exts;

	/* ASN.1Cert<1..2^24-1>, cert_data<1..2^24-1> */
	if (!cursor_get_u24_prefixed(&c, der) || cursor_len(der) == 0)
		return 0;
	if (list->tls13 && !cursor_get_u16_prefixed(&c, &exts))
		return 0;
	*it = c;
	return 1;
}

int tls_parse_certificate(const struct cursor *body, bool tls13, struct cert_list *out)
{
	struct cursor c = *body, ctx, it, der;

	memset(out, 0, sizeof(*out));
	out->tls13 = tls13;
	if (tls13) {
		if (!cursor_get_u8_prefixed(&c, &ctx))
			return 0;
		out->context_len = cursor_len(&ctx);
	}
	if (!cursor_get_u24_prefixed(&c, &out->certs) || cursor_len(&c))
		return 0;
	out->list_len = cursor_len(&out->certs);
	it = out->certs;
	while (cursor_len(&it)) {
		if (!tls_cert_list_next(out, &it, &der))
			return 0;
		out->n_total++;
	}
	return 1;
}

static int parse_ca_names(struct cursor list, struct cert_request_wire *names)
{
	struct cursor dn;

	names->ca_vector = list;

	while (cursor_len(&list)) {
		if (!cursor_get_u16_prefixed(&list, &dn))
			return 0;
		if (names->n_ca < FACTS_MAX_CA_NAMES)
			names->ca_der[names->n_ca++] = dn;
		names->n_ca_total++;
	}
	return 1;
}

int tls_parse_cert_request(const struct cursor *body, uint16_t version,
			   struct cert_request *out, struct cert_request_wire *names)
{
	struct cursor c = *body, ctx, types, algs, cas, exts, ext;
	uint8_t t;

	memset(names, 0, sizeof(*names));
	out->n_types = out->n_sigalgs = 0;
	if (version == TLS_V_1_3) {
		if (!cursor_get_u8_prefixed(&c, &ctx) || !cursor_get_u16_prefixed(&c, &exts) || cursor_len(&c))
			return 0;
		names->context_len = cursor_len(&ctx);
		while (cursor_len(&exts)) {
			uint16_t type;

			if (!next_extension(&exts, &type, &ext))
				return 0;
			if (type == TLS_EXT_SIGNATURE_ALGORITHMS) {
				if (!cursor_get_u16_prefixed(&ext, &algs) || cursor_len(&ext) ||
				    !parse_u16_list(&algs, out->sigalgs, FACTS_MAX_SIGALGS, &out->n_sigalgs))
					return 0;
			} else if (type == TLS_EXT_CERTIFICATE_AUTHORITIES) {
				if (!cursor_get_u16_prefixed(&ext, &cas) || cursor_len(&ext) ||
				    !parse_ca_names(cas, names))
					return 0;
			}
		}
		return 1;
	}
	if (!cursor_get_u8_prefixed(&c, &types))
		return 0;
	while (cursor_get_u8(&types, &t))
		if (out->n_types < sizeof(out->types))
			out->types[out->n_types++] = t;
	if (version >= TLS_V_1_2) {
		if (!cursor_get_u16_prefixed(&c, &algs) ||
		    !parse_u16_list(&algs, out->sigalgs, FACTS_MAX_SIGALGS, &out->n_sigalgs))
			return 0;
	}
	if (!cursor_get_u16_prefixed(&c, &cas) || cursor_len(&c))
		return 0;
	return parse_ca_names(cas, names);
}
