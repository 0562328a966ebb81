/* Tests for the TLS record layer and the handshake parsers, on real bytes
 * from real peers (tests/data/msgs, made by scripts/lab fixtures). */
#include "config.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wire/tls.h"
#include "wire/ja4.h"
#include "wire/tls_msgs.h"

/* ---- handshake message fixtures ---- */

/* Loads a one-message fixture and checks its 4-byte header. */
static uint8_t *load_msg(const char *name, uint8_t want_type, struct cursor *body)
{
	char rel[256];
	size_t len;
	uint8_t *buf, type;
	uint32_t mlen;
	struct cursor c;

	snprintf(rel, sizeof(rel), "tests/data/msgs/%s", name);
	buf = test_load(rel, &len);
	cursor_init(&c, buf, len);
	cr_assert(cursor_get_u8(&c, &type) && cursor_get_u24(&c, &mlen), "%s: short", name);
	cr_assert_eq(type, want_type, "%s: handshake type %u", name, type);
	cr_assert_eq(mlen, cursor_len(&c), "%s: length field %u, body %zu", name, mlen, cursor_len(&c));
	*body = c;
	return buf;
}

Test(client_hello, curl_tls13)
{
	struct cursor body;
	uint8_t *buf = load_msg("clienthello_curl_tls13.bin", TLS_HS_CLIENT_HELLO, &body);
	struct client_hello ch;

	cr_assert(tls_parse_client_hello(&body, &ch));
	cr_assert_str_eq(ch.sni, "localhost");
	cr_assert_eq(ch.max_supported, TLS_V_1_3);
	cr_assert_eq(ch.legacy_version, TLS_V_1_2);
	cr_assert_geq(ch.n_alpn, 1);
	cr_assert_gt(ch.n_ciphers, 3);
	cr_assert_gt(ch.n_sigalgs, 3);
	cr_assert(ch.post_handshake_auth, "curl with OpenSSL 3 offers post-handshake auth");
	{
		char ja4[JA4_LEN];

		ja4_compute(&ch, 't', ja4);
		cr_assert_eq(strncmp(ja4, "t13d", 4), 0, "ja4 %s", ja4);
	}
	free(buf);
}

Test(client_hello, curl_tls12_capped)
{
	struct cursor body;
	uint8_t *buf = load_msg("clienthello_curl_tls12.bin", TLS_HS_CLIENT_HELLO, &body);
	struct client_hello ch;

	cr_assert(tls_parse_client_hello(&body, &ch));
	cr_assert_str_eq(ch.sni, "localhost");
	cr_assert(ch.max_supported == 0 || ch.max_supported == TLS_V_1_2,
		  "max_supported %04x", ch.max_supported);
	{
		char ja4[JA4_LEN];

		ja4_compute(&ch, 't', ja4);
		cr_assert_eq(strncmp(ja4, "t12d", 4), 0, "ja4 %s", ja4);
	}
	free(buf);
}

Test(client_hello, openssl_s_client)
{
	struct cursor body;
	uint8_t *buf = load_msg("clienthello_openssl.bin", TLS_HS_CLIENT_HELLO, &body);
	struct client_hello ch;

	cr_assert(tls_parse_client_hello(&body, &ch));
	cr_assert(ch.seen);
	cr_assert_eq(ch.max_supported, TLS_V_1_3);
	free(buf);
}

Test(client_hello, grease_values_are_ignored_for_version_and_ja4)
{
	struct cursor body;
	uint8_t *buf = load_msg("clienthello_chromium_grease.bin", TLS_HS_CLIENT_HELLO, &body);
	struct client_hello ch;
	size_t i, grease = 0;

	cr_assert(tls_parse_client_hello(&body, &ch));
	for (i = 0; i < ch.n_ciphers; i++)
		grease += tls_is_grease(ch.ciphers[i]);
	for (i = 0; i < ch.n_exts; i++)
		grease += tls_is_grease(ch.exts[i]);
	cr_assert_gt(grease, 0, "Chromium sends GREASE");
	cr_assert_eq(ch.max_supported, TLS_V_1_3, "GREASE in supported_versions must not win");
	{
		char ja4[JA4_LEN];

		ja4_compute(&ch, 't', ja4);
		cr_assert_eq(strncmp(ja4, "t13d", 4), 0, "ja4 %s", ja4);
	}
	free(buf);
}

Test(server_hello, tls13_and_hello_retry_request)
{
	struct cursor body;
	uint8_t *buf = load_msg("serverhello_tls13.bin", TLS_HS_SERVER_HELLO, &body);
	uint8_t *hrr;
	struct server_hello sh = { 0 };

	cr_assert(tls_parse_server_hello(&body, NULL, &sh));
	cr_assert_eq(sh.selected_version, TLS_V_1_3);
	cr_assert_not(sh.hello_retry);
	hrr = load_msg("helloretryrequest.bin", TLS_HS_SERVER_HELLO, &body);
	memset(&sh, 0, sizeof(sh));
	cr_assert(tls_parse_server_hello(&body, NULL, &sh));
	cr_assert(sh.hello_retry);
	cr_assert_eq(sh.n_hrr, 1);
	free(hrr);
	free(buf);
}

Test(server_hello, tls12)
{
	struct cursor body;
	uint8_t *buf = load_msg("serverhello_tls12.bin", TLS_HS_SERVER_HELLO, &body);
	struct server_hello sh = { 0 };

	cr_assert(tls_parse_server_hello(&body, NULL, &sh));
	cr_assert_eq(sh.selected_version, TLS_V_1_2);
	cr_assert_not(sh.hello_retry);
	free(buf);
}

static void check_cert_request(const char *name, uint16_t version, size_t min_sigalgs)
{
	struct cursor body;
	uint8_t *buf = load_msg(name, TLS_HS_CERTIFICATE_REQUEST, &body);
	struct cert_request cr = { 0 };
	struct cert_request_wire names;
	const uint8_t *p;
	X509_NAME *n;
	char text[256];

	cr_assert(tls_parse_cert_request(&body, version, &cr, &names), "%s", name);
	cr_assert_eq(names.n_ca, 1, "%s: %zu CA names", name, names.n_ca);
	p = cursor_data(&names.ca_der[0]);
	n = d2i_X509_NAME(NULL, &p, (long)cursor_len(&names.ca_der[0]));
	cr_assert_not_null(n, "%s: CA name is not a DER name", name);
	X509_NAME_oneline(n, text, sizeof(text));
	cr_assert(strstr(text, "Lab Client Root CA"), "%s: %s", name, text);
	X509_NAME_free(n);
	cr_assert_geq(cr.n_sigalgs, min_sigalgs, "%s: %zu signature algorithms", name, cr.n_sigalgs);
	if (version < TLS_V_1_3)
		cr_assert_gt(cr.n_types, 0, "%s: certificate types", name);
	free(buf);
}

Test(cert_request, nginx_haproxy_apache_gnutls_openssl_tls12)
{
	check_cert_request("certificate_request_nginx_tls12.bin", TLS_V_1_2, 1);
	check_cert_request("certificate_request_haproxy_tls12.bin", TLS_V_1_2, 1);
	check_cert_request("certificate_request_apache_tls12.bin", TLS_V_1_2, 1);
	check_cert_request("certificate_request_gnutls_tls12.bin", TLS_V_1_2, 1);
	check_cert_request("certificate_request_openssl_tls12.bin", TLS_V_1_2, 1);
}

Test(cert_request, nginx_haproxy_apache_gnutls_openssl_tls13)
{
	check_cert_request("certificate_request_nginx_tls13.bin", TLS_V_1_3, 1);
	check_cert_request("certificate_request_haproxy_tls13.bin", TLS_V_1_3, 1);
	check_cert_request("certificate_request_apache_tls13.bin", TLS_V_1_3, 1);
	check_cert_request("certificate_request_gnutls_tls13.bin", TLS_V_1_3, 1);
	check_cert_request("certificate_request_openssl_tls13.bin", TLS_V_1_3, 1);
}

Test(cert_request, a_tls12_request_read_as_tls13_fails)
{
	struct cursor body;
	uint8_t *buf = load_msg("certificate_request_nginx_tls12.bin", TLS_HS_CERTIFICATE_REQUEST, &body);
	struct cert_request cr = { 0 };
	struct cert_request_wire names;

	cr_assert_not(tls_parse_cert_request(&body, TLS_V_1_3, &cr, &names));
	free(buf);
}

Test(certificate, empty_tls12_and_tls13)
{
	struct cursor body;
	struct cert_list list;
	uint8_t *a = load_msg("certificate_client_empty_tls12.bin", TLS_HS_CERTIFICATE, &body);
	uint8_t *b;

	cr_assert_eq(cursor_len(&body), 3, "an empty 1.2 Certificate is a zero u24");
	cr_assert(tls_parse_certificate(&body, false, &list));
	cr_assert_eq(list.n_total, 0);
	b = load_msg("certificate_client_empty_tls13.bin", TLS_HS_CERTIFICATE, &body);
	cr_assert_eq(cursor_len(&body), 4, "an empty 1.3 Certificate: context and list lengths");
	cr_assert(tls_parse_certificate(&body, true, &list));
	cr_assert_eq(list.n_total, 0);
	cr_assert_not(tls_parse_certificate(&body, false, &list), "1.3 layout is not a 1.2 Certificate");
	free(a);
	free(b);
}

static void check_chain(const char *name, bool tls13)
{
	struct cursor body;
	uint8_t *buf = load_msg(name, TLS_HS_CERTIFICATE, &body);
	struct cert_list list;
	struct cursor it, der;
	size_t i;

	cr_assert(tls_parse_certificate(&body, tls13, &list), "%s", name);
	cr_assert_geq(list.n_total, 1, "%s", name);
	it = list.certs;
	for (i = 0; tls_cert_list_next(&list, &it, &der); i++) {
		const uint8_t *p = cursor_data(&der);
		X509 *x = d2i_X509(NULL, &p, (long)cursor_len(&der));

		cr_assert_not_null(x, "%s: certificate %zu does not parse", name, i);
		X509_free(x);
	}
	cr_assert_eq(i, list.n_total, "%s: every certificate handed out", name);
	cr_assert_eq(cursor_len(&it), 0, "%s", name);
	free(buf);
}

/* No count limits a chain: forty copies of a real certificate are forty
 * entries, all handed out.  An empty entry is malformed (ASN.1Cert<1..>). */
Test(certificate, any_number_of_entries_none_empty)
{
	struct cursor body, it, der, first;
	struct cert_list list;
	uint8_t *buf = load_msg("certificate_client_chain_tls12.bin", TLS_HS_CERTIFICATE, &body);
	static uint8_t many[3 + 40 * (3 + 4096)];
	static const uint8_t empty_entry[] = { 0x00, 0x00, 0x03, 0x00, 0x00, 0x00 };
	size_t n = 3, i, len;

	cr_assert(tls_parse_certificate(&body, false, &list));
	it = list.certs;
	cr_assert(tls_cert_list_next(&list, &it, &first));
	len = cursor_len(&first);
	cr_assert_leq(len, 4096);
	for (i = 0; i < 40; i++) {
		many[n++] = (uint8_t)(len >> 16);
		many[n++] = (uint8_t)(len >> 8);
		many[n++] = (uint8_t)len;
		memcpy(many + n, cursor_data(&first), len);
		n += len;
	}
	many[0] = (uint8_t)((n - 3) >> 16);
	many[1] = (uint8_t)((n - 3) >> 8);
	many[2] = (uint8_t)(n - 3);
	cursor_init(&body, many, n);
	cr_assert(tls_parse_certificate(&body, false, &list));
	cr_assert_eq(list.n_total, 40);
	it = list.certs;
	for (i = 0; tls_cert_list_next(&list, &it, &der); i++)
		cr_assert_eq(cursor_len(&der), len);
	cr_assert_eq(i, 40);
	cursor_init(&body, empty_entry, sizeof(empty_entry));
	cr_assert_not(tls_parse_certificate(&body, false, &list), "an empty certificate entry");
	free(buf);
}

Test(certificate, chains_tls12_and_tls13)
{
	check_chain("certificate_client_chain_tls12.bin", false);
	check_chain("certificate_client_chain_tls13.bin", true);
}

Test(alert, fixtures_are_two_bytes)
{
	static const struct { const char *file; uint8_t desc; } alerts[] = {
		{ "alert_handshake_failure.bin", 40 },
		{ "alert_bad_certificate.bin", 42 },
		{ "alert_certificate_expired.bin", 45 },
		{ "alert_unknown_ca.bin", 48 },
		{ "alert_certificate_required.bin", 116 },
	};
	size_t i, len;

	for (i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++) {
		char rel[128];
		uint8_t *buf;

		snprintf(rel, sizeof(rel), "tests/data/msgs/%s", alerts[i].file);
		buf = test_load(rel, &len);
		cr_assert_eq(len, 2);
		cr_assert_eq(buf[0], 2, "%s: fatal", alerts[i].file);
		cr_assert_eq(buf[1], alerts[i].desc, "%s", alerts[i].file);
		free(buf);
	}
}

/* Every parser refuses each truncation and a trailing byte, and never
 * reads out of bounds (the sanitizer build runs this too). */
Test(parsers, truncations_and_trailing_bytes)
{
	static const struct { const char *file; uint8_t type; } msgs[] = {
		{ "clienthello_curl_tls13.bin", 1 }, { "clienthello_chromium_grease.bin", 1 },
		{ "serverhello_tls13.bin", 2 }, { "helloretryrequest.bin", 2 },
		{ "certificate_request_nginx_tls12.bin", 13 }, { "certificate_request_gnutls_tls13.bin", 13 },
		{ "certificate_client_chain_tls12.bin", 11 }, { "certificate_client_chain_tls13.bin", 11 },
	};
	size_t i, cut;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct cursor body;
		uint8_t *buf = load_msg(msgs[i].file, msgs[i].type, &body);
		size_t full = cursor_len(&body);
		uint8_t *copy = malloc(full + 1);

		cr_assert_not_null(copy);
		memcpy(copy, cursor_data(&body), full);
		for (cut = 0; cut <= full + 1; cut++) {
			struct cursor c;
			struct client_hello ch;
			struct server_hello sh = { 0 };
			struct cert_request cr = { 0 };
			struct cert_request_wire names;
			struct cert_list list;
			int ok = 0;

			copy[full] = 0;
			cursor_init(&c, copy, cut);
			switch (msgs[i].type) {
			case 1: ok = tls_parse_client_hello(&c, &ch); break;
			case 2: ok = tls_parse_server_hello(&c, NULL, &sh); break;
			case 13: ok = tls_parse_cert_request(&c, strstr(msgs[i].file, "13") ? TLS_V_1_3 : TLS_V_1_2, &cr, &names); break;
			case 11: ok = tls_parse_certificate(&c, strstr(msgs[i].file, "13") != NULL, &list); break;
			}
			if (cut == full)
				cr_assert(ok, "%s: the whole message must parse", msgs[i].file);
			else if (cut == full + 1)
				cr_assert_not(ok, "%s: a trailing byte must be refused", msgs[i].file);
		}
		free(copy);
		free(buf);
	}
}

/* ---- the record layer: split and coalesced input ---- */

struct ev_log {
	char text[512][96];
	size_t n;
};

static void log_event(void *ctx, const struct tls_event *ev)
{
	struct ev_log *log = ctx;
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (log->n >= 512)
		return;
	if (ev->kind == TLS_EV_HANDSHAKE || ev->kind == TLS_EV_SSL2_CLIENT_HELLO)
		EVP_Digest(cursor_data(&ev->body), cursor_len(&ev->body), md, &mdlen, EVP_sha256(), NULL);
	else
		memset(md, 0, sizeof(md));
	snprintf(log->text[log->n++], sizeof(log->text[0]), "k%d t%u l%u h%u/%u a%u.%u e%d %02x%02x%02x%02x",
		 ev->kind, ev->content_type, ev->record_len, ev->hs_type, ev->hs_len, ev->alert_level,
		 ev->alert_desc, ev->encrypted, md[0], md[1], md[2], md[3]);
}

static void decode(const uint8_t *data, size_t len, const size_t *cuts, size_t n_cuts, bool tls13,
		   struct ev_log *log)
{
	struct tls_dir d;
	size_t at = 0, i;

	tls_dir_init(&d);
	d.tls13 = tls13;
	log->n = 0;
	for (i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;

		cr_assert(tls_dir_feed(&d, data + at, end - at, log_event, log), "framing lost: %s", d.error);
		at = end;
	}
	tls_dir_free(&d);
}

static void same_events_however_split(const char *stream, const char *side)
{
	char rel[256];
	size_t len, cut, i;
	uint8_t *data;
	bool tls13 = strstr(stream, "tls13") != NULL;
	static struct ev_log whole, split;

	snprintf(rel, sizeof(rel), "tests/data/msgs/streams/%s/%s.bin", stream, side);
	data = test_load(rel, &len);
	decode(data, len, NULL, 0, tls13, &whole);
	cr_assert_gt(whole.n, 2, "%s/%s: %zu events", stream, side, whole.n);
	for (cut = 1; cut < len; cut++) {
		decode(data, len, &cut, 1, tls13, &split);
		cr_assert_eq(split.n, whole.n, "%s/%s split at %zu: %zu events, whole %zu", stream, side, cut,
			     split.n, whole.n);
		for (i = 0; i < whole.n; i++)
			cr_assert_str_eq(split.text[i], whole.text[i], "%s/%s split at %zu, event %zu", stream,
					 side, cut, i);
	}
	{
		/* one byte at a time */
		size_t *cuts = malloc(len * sizeof(*cuts));

		cr_assert_not_null(cuts);
		for (i = 0; i + 1 < len; i++)
			cuts[i] = i + 1;
		decode(data, len, cuts, len - 1, tls13, &split);
		free(cuts);
		cr_assert_eq(split.n, whole.n, "%s/%s byte by byte", stream, side);
		for (i = 0; i < whole.n; i++)
			cr_assert_str_eq(split.text[i], whole.text[i], "%s/%s byte by byte, event %zu", stream, side, i);
	}
	free(data);
}

Test(records, every_split_gives_the_same_events, .timeout = 120)
{
	static const char *const streams[] = {
		"nginx-on_none_tls12", "nginx-on_good_tls12", "haproxy_expired_tls12",
		"nginx-on_none_tls13", "nginx-on_good_tls13", "openssl_none_tls13",
	};
	size_t i;

	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		same_events_however_split(streams[i], "client");
		same_events_however_split(streams[i], "server");
	}
}

Test(records, tls12_empty_certificate_and_alert_are_seen)
{
	size_t len, i;
	uint8_t *c = test_load("tests/data/msgs/streams/haproxy_expired_tls12/server.bin", &len);
	static struct ev_log log;
	bool alert = false;

	decode(c, len, NULL, 0, false, &log);
	for (i = 0; i < log.n; i++)
		alert |= strncmp(log.text[i], "k2 t21 l2 h0/0 a2.45", 20) == 0;
	cr_assert(alert, "HAProxy answers an expired chain with fatal certificate_expired (45)");
	free(c);
}

Test(records, garbage_loses_framing_with_an_offset)
{
	static const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct tls_dir d;
	static struct ev_log log;

	tls_dir_init(&d);
	cr_assert_not(tls_dir_feed(&d, junk, sizeof(junk) - 1, log_event, &log));
	cr_assert(d.failed);
	cr_assert(strstr(d.error, "offset"), "%s", d.error);
	cr_assert_not(tls_dir_feed(&d, junk, 5, log_event, &log), "stays failed");
	tls_dir_free(&d);
}

Test(records, sslv2_client_hello)
{
	/* The SSLv2-compatible ClientHello layout of RFC 5246 E.2: two-byte
	 * length with the high bit set, msg_type 1, version 3.1, three 3-byte
	 * cipher specs (two TLS suites, one SSLv2-only), no session id, a
	 * 16-byte challenge. */
	static const uint8_t hello[] = {
		0x80, 0x22, 0x01, 0x03, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00, 0x10,
		0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x07, 0x00, 0xc0,
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	};
	struct tls_dir d;
	static struct ev_log log;
	struct client_hello ch;

	tls_dir_init(&d);
	log.n = 0;
	cr_assert(tls_dir_feed(&d, hello, sizeof(hello), log_event, &log));
	tls_dir_free(&d);
	cr_assert_eq(log.n, 1);
	cr_assert(strncmp(log.text[0], "k1 ", 3) == 0, "%s", log.text[0]);
	{
		struct cursor body;

		cursor_init(&body, hello + 3, sizeof(hello) - 3);
		cr_assert(tls_parse_sslv2_client_hello(&body, &ch));
		cr_assert(ch.sslv2);
		cr_assert_eq(ch.legacy_version, TLS_V_1_0);
		cr_assert_eq(ch.n_ciphers, 2, "only the TLS suites are kept");
		cr_assert_eq(ch.ciphers[1], 0x0035);
	}
}

struct hs_msg {
	uint8_t type;
	uint32_t len;
};

/* Handshake messages in TLS 1.2 records of 16 KiB; message i's body byte b
 * is b * 7 + i. */
static uint8_t *records_of(const struct hs_msg *msgs, size_t n_msgs, size_t *out_len)
{
	size_t hs_len = 0, at = 0, len = 0, i;
	uint8_t *hs, *stream;

	for (i = 0; i < n_msgs; i++)
		hs_len += 4 + msgs[i].len;
	hs = malloc(hs_len);
	stream = malloc(hs_len + 5 * (hs_len / 16384 + 1));
	cr_assert(hs && stream);
	for (i = 0; i < n_msgs; i++) {
		hs[at++] = msgs[i].type;
		hs[at++] = (uint8_t)(msgs[i].len >> 16);
		hs[at++] = (uint8_t)(msgs[i].len >> 8);
		hs[at++] = (uint8_t)msgs[i].len;
		for (uint32_t b = 0; b < msgs[i].len; b++)
			hs[at++] = (uint8_t)(b * 7 + i);
	}
	for (at = 0; at < hs_len; at += 16384) {
		size_t n = hs_len - at < 16384 ? hs_len - at : 16384;

		stream[len++] = TLS_CT_HANDSHAKE;
		stream[len++] = 3;
		stream[len++] = 3;
		stream[len++] = (uint8_t)(n >> 8);
		stream[len++] = (uint8_t)n;
		memcpy(stream + len, hs + at, n);
		len += n;
	}
	free(hs);
	*out_len = len;
	return stream;
}

/* Handshake messages against record and segment boundaries: a message
 * spread over two records, an empty one sharing a record, an oversized one
 * (skipped across many records), and one after it. */
Test(records, messages_across_records_and_an_oversized_one, .timeout = 120)
{
	static const struct hs_msg msgs[] = {
		{ TLS_HS_CERTIFICATE, 20000 },
		{ TLS_HS_SERVER_HELLO_DONE, 0 },
		{ TLS_HS_CERTIFICATE, TLS_MAX_HANDSHAKE + 40000 },
		{ TLS_HS_SERVER_HELLO_DONE, 0 },
	};
	size_t len, i, cut;
	uint8_t *stream = records_of(msgs, 4, &len), first[20000];
	static struct ev_log whole, split;

	decode(stream, len, NULL, 0, false, &whole);
	cr_assert_eq(whole.n, 4, "%zu events", whole.n);
	cr_assert(strncmp(whole.text[0], "k0 t22 l16384 h11/20000 ", 24) == 0, "%s", whole.text[0]);
	cr_assert(strncmp(whole.text[1], "k0 t22 l16384 h14/0 ", 20) == 0, "%s", whole.text[1]);
	cr_assert(strncmp(whole.text[2], "k5 t22 l16384 h11/302144 ", 25) == 0, "%s", whole.text[2]);
	cr_assert(strncmp(whole.text[3], "k0 t22 ", 7) == 0 && strstr(whole.text[3], " h14/0 "),
		  "%s", whole.text[3]);
	{
		/* the first message's body arrives intact from two records */
		unsigned char md[32];
		char want[9];

		for (i = 0; i < sizeof(first); i++)
			first[i] = (uint8_t)(i * 7);
		EVP_Digest(first, sizeof(first), md, NULL, EVP_sha256(), NULL);
		snprintf(want, sizeof(want), "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
		cr_assert(strstr(whole.text[0], want), "%s, want %s", whole.text[0], want);
	}
	for (cut = 1; cut < len; cut += 499) {
		decode(stream, len, &cut, 1, false, &split);
		cr_assert_eq(split.n, whole.n, "split at %zu: %zu events", cut, split.n);
		for (i = 0; i < whole.n; i++)
			cr_assert_str_eq(split.text[i], whole.text[i], "split at %zu, event %zu", cut, i);
	}
	{
		size_t *cuts = malloc(len * sizeof(*cuts));

		cr_assert_not_null(cuts);
		for (i = 0; i + 1 < len; i++)
			cuts[i] = i + 1;
		decode(stream, len, cuts, len - 1, false, &split);
		free(cuts);
		cr_assert_eq(split.n, whole.n, "byte by byte: %zu events", split.n);
		for (i = 0; i < whole.n; i++)
			cr_assert_str_eq(split.text[i], whole.text[i], "byte by byte, event %zu", i);
	}
	free(stream);
}

/* The caller's budget for the reassembly buffer: a message within it is
 * handed over as without one (and its big buffer given back); one past it
 * stops the framing with over_budget, having held no more than the budget. */
Test(records, the_reassembly_budget_stops_a_message_past_it)
{
	static const struct hs_msg fits[] = { { TLS_HS_CERTIFICATE, 30000 }, { TLS_HS_CERTIFICATE, 100 } },
		past[] = { { TLS_HS_CERTIFICATE, 100 }, { TLS_HS_CERTIFICATE, 70000 } };
	static struct ev_log log;
	struct tls_dir d;
	uint8_t *stream;
	size_t len, at, peak = 0;

	stream = records_of(fits, 2, &len);
	tls_dir_init(&d);
	d.hs_max = 32768;
	log.n = 0;
	cr_assert(tls_dir_feed(&d, stream, len, log_event, &log), "%s", d.error);
	cr_assert_eq(log.n, 2);
	cr_assert(strstr(log.text[0], " h11/30000 "), "%s", log.text[0]);
	cr_assert_eq(d.hs_cap, 0, "the 30000-byte message's buffer was kept (%zu bytes)", d.hs_cap);
	cr_assert_eq(tls_dir_buffered(&d), 0);
	cr_assert_not(d.over_budget);
	tls_dir_free(&d);
	free(stream);

	stream = records_of(past, 2, &len);
	tls_dir_init(&d);
	d.hs_max = 65536;
	log.n = 0;
	for (at = 0; at < len && !d.failed; at += 1000) {
		size_t n = len - at < 1000 ? len - at : 1000;

		(void)tls_dir_feed(&d, stream + at, n, log_event, &log);
		if (tls_dir_buffered(&d) > peak)
			peak = tls_dir_buffered(&d);
	}
	cr_assert(d.failed && d.over_budget, "framing went on past the budget");
	cr_assert(strstr(d.error, "reassembly budget"), "%s", d.error);
	cr_assert_eq(log.n, 1, "the message before it was handed over: %zu events", log.n);
	cr_assert_leq(peak, 65536, "%zu bytes held", peak);
	cr_assert_leq(d.hs_cap, 65536, "a %zu-byte buffer", d.hs_cap);
	cr_assert_gt(d.hs_refused, 65536);
	cr_assert_leq(d.hs_refused, 65536 + 1000);
	tls_dir_free(&d);
	free(stream);
}
