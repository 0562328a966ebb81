/* Tests for the verdict rules on hand-set facts: the TLS 1.3 record-size
 * reasoning (RFC 8446 sizes), and the rules' refusal to guess. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "analysis/chain.h"
#include "analysis/codes.h"
#include "analysis/evidence.h"
#include "analysis/verdict.h"

static uint32_t seq;

static void base13(struct conn_facts *f, uint16_t cipher)
{
	memset(f, 0, sizeof(*f));
	seq = 0;
	f->is_tls = f->saw_syn = true;
	f->ch.seen = true;
	f->sh.seen = true;
	f->sh.selected_version = 0x0304;
	f->sh.cipher = cipher;
	f->sh.seq = ++seq;
}

static void rec(struct conn_facts *f, enum side from, uint16_t len)
{
	struct direction_facts *d = &f->dir[from];

	d->enc[d->n_enc].content_type = 23;
	d->enc[d->n_enc].len = len;
	d->enc[d->n_enc].seq = ++seq;
	d->n_enc++;
	d->n_enc_total++;
}

static void closes(struct conn_facts *f, enum side from)
{
	f->dir[from].closed = CLOSE_FIN;
	f->dir[from].close_seq = ++seq;
}

/* server flight: EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished */
static void server_flight(struct conn_facts *f)
{
	rec(f, SIDE_SERVER, 23);
	rec(f, SIDE_SERVER, 120);
	rec(f, SIDE_SERVER, 1100);
	rec(f, SIDE_SERVER, 281);
	rec(f, SIDE_SERVER, 69);
}

Test(verdict13, empty_certificate_then_encrypted_alert_is_client_sent_no_cert)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1302);          /* SHA-384: Finished record 4+48+1+16 = 69 */
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 25);    /* empty Certificate: 8+1+16 */
	rec(&f, SIDE_CLIENT, 69);
	rec(&f, SIDE_SERVER, 19);    /* alert: 2+1+16 */
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_SENT_NO_CERT, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.fault, F_CLIENT);
	cr_assert_eq(v.basis, B_INFERRED);
	cr_assert_eq(v.cert_requested, TRI_YES);
	cr_assert_eq(v.client_cert_sent, TRI_NO);
}

Test(verdict13, coalesced_empty_certificate_and_finished_sha256)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1301);          /* SHA-256 */
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 61);    /* 8 + 36 + 1 + 16: one record */
	rec(&f, SIDE_SERVER, 19);
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_SENT_NO_CERT, "got %s", verdict_code_name(v.code));
}

Test(verdict13, lone_finished_means_not_requested)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1301);
	rec(&f, SIDE_SERVER, 23);
	rec(&f, SIDE_SERVER, 1100);
	rec(&f, SIDE_SERVER, 281);
	rec(&f, SIDE_SERVER, 53);
	rec(&f, SIDE_CLIENT, 53);    /* Finished: 4+32+1+16 */
	rec(&f, SIDE_CLIENT, 100);   /* request */
	rec(&f, SIDE_SERVER, 300);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CERT_NOT_REQUESTED, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.cert_requested, TRI_NO);
	cr_assert_eq(v.basis, B_INFERRED);
}

Test(verdict13, chain_then_alert_is_rejected_chain)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1302);
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 1900);  /* Certificate with a chain */
	rec(&f, SIDE_CLIENT, 281);   /* CertificateVerify */
	rec(&f, SIDE_CLIENT, 69);    /* Finished */
	rec(&f, SIDE_SERVER, 19);
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_SERVER_REJECTED_CHAIN, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.client_cert_sent, TRI_YES);
	cr_assert_eq(v.basis, B_INFERRED);
}

Test(verdict13, chain_and_session_goes_on_is_accepted)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1302);
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 1900);
	rec(&f, SIDE_CLIENT, 281);
	rec(&f, SIDE_CLIENT, 69);
	rec(&f, SIDE_CLIENT, 100);   /* first request */
	rec(&f, SIDE_SERVER, 250);   /* NewSessionTicket */
	rec(&f, SIDE_SERVER, 400);   /* response */
	rec(&f, SIDE_CLIENT, 100);   /* a second request: the session went on */
	rec(&f, SIDE_SERVER, 400);
	closes(&f, SIDE_CLIENT);
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_CERT_ACCEPTED, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.fault, F_NONE);
}

Test(verdict13, chain_then_one_answer_is_undetermined_without_keys)
{
	struct conn_facts f;
	struct verdict v;

	/* nginx refuses inside the encrypted stream: one request, one answer
	 * looks the same whether it was 200 or 400 */
	base13(&f, 0x1302);
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 1900);
	rec(&f, SIDE_CLIENT, 281);
	rec(&f, SIDE_CLIENT, 69);
	rec(&f, SIDE_SERVER, 74);
	rec(&f, SIDE_SERVER, 74);
	rec(&f, SIDE_CLIENT, 96);
	rec(&f, SIDE_SERVER, 384);
	rec(&f, SIDE_CLIENT, 19);
	closes(&f, SIDE_CLIENT);
	rec(&f, SIDE_SERVER, 19);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_UNDETERMINED, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.client_cert_sent, TRI_YES);
}

Test(verdict13, padded_records_are_undetermined_not_guessed)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1301);
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 256);   /* padded to a block: matches nothing */
	rec(&f, SIDE_SERVER, 19);
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_UNDETERMINED, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.fault, F_UNKNOWN);
}

Test(verdict13, client_alert_instead_of_finished_rejects_server_cert)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1301);
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 19);
	closes(&f, SIDE_CLIENT);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_REJECTED_SERVER_CERT, "got %s", verdict_code_name(v.code));
	cr_assert_eq(v.fault, F_SERVER);
}

Test(verdict13, ccm8_sizes_follow_the_shorter_tag)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1305);          /* TLS_AES_128_CCM_8_SHA256: 8-byte tag */
	server_flight(&f);
	rec(&f, SIDE_CLIENT, 17);    /* 8+1+8 */
	rec(&f, SIDE_CLIENT, 45);    /* 4+32+1+8 */
	rec(&f, SIDE_SERVER, 11);    /* 2+1+8 */
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_SENT_NO_CERT, "got %s", verdict_code_name(v.code));
}

Test(verdict13, psk_resumption_is_resumed)
{
	struct conn_facts f;
	struct verdict v;

	base13(&f, 0x1301);
	f.sh.psk_selected = true;
	rec(&f, SIDE_SERVER, 23);
	rec(&f, SIDE_SERVER, 53);
	rec(&f, SIDE_CLIENT, 53);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_RESUMED);
}

Test(verdict, mid_connection_capture_is_incomplete)
{
	struct conn_facts f;
	struct verdict v;

	memset(&f, 0, sizeof(f));
	f.is_tls = true;
	f.saw_syn = false;
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_INCOMPLETE);
	cr_assert(strstr(v.evidence[0], "mid-connection"));
}

Test(verdict, not_tls)
{
	struct conn_facts f;
	struct verdict v;

	memset(&f, 0, sizeof(f));
	f.not_tls = true;
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_NOT_TLS);
	cr_assert_str_eq(verdict_code_text(v.code), "not TLS");
}

Test(verdict12, empty_certificate_and_fatal_alert_observed)
{
	struct conn_facts f;
	struct verdict v;

	memset(&f, 0, sizeof(f));
	seq = 0;
	f.is_tls = f.saw_syn = f.ch.seen = f.sh.seen = true;
	f.sh.selected_version = 0x0303;
	f.sh.seq = ++seq;
	f.server_cert_seen = true;
	f.cr.seen = true;
	f.cr.seq = ++seq;
	static const char names[1][256] = { "CN=Lab Client Root CA, O=mtlsdiag Lab" };

	f.cr.n_ca_names = 1;
	f.cr.ca_names = names;
	f.server_hello_done = true;
	f.client_cert_seen = f.client_cert_empty = true;
	f.client_cert_seq = ++seq;
	f.alerts[0] = (struct alert){ .from = SIDE_SERVER, .level = 2, .description = 40, .seq = ++seq };
	f.n_alerts = 1;
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_SENT_NO_CERT);
	cr_assert_eq(v.basis, B_OBSERVED);
	cr_assert_eq(v.fault, F_CLIENT);
	cr_assert(strstr(v.evidence[0], "CN=Lab Client Root CA"), "evidence: %s", v.evidence[0]);
}

/* TLS 1.3 read with a key log: the client sent its chain and Finished. */
static void decrypted13_chain_sent(struct conn_facts *f)
{
	base13(f, 0x1302);
	f->dir[SIDE_SERVER].decrypted = f->dir[SIDE_CLIENT].decrypted = 6;
	f->dir[SIDE_SERVER].finished_seen = true;
	f->cr.seen = true;
	f->cr.seq = ++seq;
	f->dir[SIDE_SERVER].finished_seq = ++seq;
	f->client_cert_seen = true;
	f->client_cert_seq = ++seq;
	f->dir[SIDE_CLIENT].finished_seen = true;
	f->dir[SIDE_CLIENT].finished_seq = ++seq;
}

/* Java closes a TLS 1.3 session it served with a warning user_canceled
 * and close_notify: after its data, that ends the session, it refuses
 * nothing. */
Test(verdict13, a_warning_after_the_servers_data_is_no_refusal)
{
	struct conn_facts f;
	struct verdict v;

	decrypted13_chain_sent(&f);
	f.dir[SIDE_SERVER].first_app_seq = ++seq;
	f.alerts[0] = (struct alert){ .from = SIDE_SERVER, .level = 1, .description = 90, .encrypted = true,
				      .decrypted = true, .seq = ++seq };
	f.alerts[1] = (struct alert){ .from = SIDE_SERVER, .level = 1, .description = 0, .encrypted = true,
				      .decrypted = true, .seq = ++seq };
	f.n_alerts = 2;
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_CERT_ACCEPTED, "%s", verdict_code_name(v.code));
	cr_assert_eq(v.basis, B_DECRYPTED);
}

/* The same warning before any data ends the handshake: a refusal. */
Test(verdict13, a_warning_before_any_data_still_ends_the_handshake)
{
	struct conn_facts f;
	struct verdict v;

	decrypted13_chain_sent(&f);
	f.alerts[0] = (struct alert){ .from = SIDE_SERVER, .level = 1, .description = 90, .encrypted = true,
				      .decrypted = true, .seq = ++seq };
	f.n_alerts = 1;
	closes(&f, SIDE_SERVER);
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_SERVER_REJECTED_CHAIN, "%s", verdict_code_name(v.code));
}

/* An application's 401 after a client-certificate handshake, decrypted,
 * is a refusal (Node.js with rejectUnauthorized false). */
Test(verdict13, a_decrypted_401_is_a_refusal)
{
	struct conn_facts f;
	struct verdict v;

	decrypted13_chain_sent(&f);
	f.dir[SIDE_SERVER].first_app_seq = ++seq;
	f.http_status = 401;
	verdict_decide(&f, NULL, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_SERVER_REJECTED_CHAIN, "%s", verdict_code_name(v.code));
	cr_assert_eq(v.basis, B_DECRYPTED);
	{
		size_t i;
		bool said = false;

		for (i = 0; i < v.n_evidence; i++)
			said = said || strstr(v.evidence[i], "answered HTTP 401");
		cr_assert(said, "the status is in the evidence");
	}
}

/* TLS 1.2 without keys: an expired chain the checks refuse, sent to a
 * server that asked; the handshake completed. */
static void expired_chain12(struct conn_facts *f, struct chain_report *chain)
{
	static const char names[1][256] = { "CN=Lab Client Root CA, O=mtlsdiag Lab" };

	memset(f, 0, sizeof(*f));
	memset(chain, 0, sizeof(*chain));
	seq = 0;
	f->is_tls = f->saw_syn = f->ch.seen = f->sh.seen = true;
	f->sh.selected_version = 0x0303;
	f->sh.seq = ++seq;
	f->server_cert_seen = f->server_hello_done = true;
	f->cr.seen = true;
	f->cr.seq = ++seq;
	f->cr.n_ca_names = 1;
	f->cr.ca_names = names;
	f->client_cert_seen = true;
	f->client_cert_seq = ++seq;
	f->dir[SIDE_CLIENT].ccs_seen = true;
	f->dir[SIDE_CLIENT].ccs_seq = ++seq;
	f->dir[SIDE_SERVER].ccs_seen = true;
	f->dir[SIDE_SERVER].ccs_seq = ++seq;
	chain->checked = true;
	chain->n = 1;
	chain->findings[0].reason = R_EXPIRED;
	snprintf(chain->findings[0].text, sizeof(chain->findings[0].text),
		 "client certificate CN=expired-client expired 2021-01-01T00:00:00Z");
}

static void rec12(struct conn_facts *f, enum side from, uint16_t len, uint32_t us)
{
	struct direction_facts *d = &f->dir[from];

	d->enc[d->n_enc].content_type = 23;
	d->enc[d->n_enc].len = len;
	d->enc[d->n_enc].seq = ++seq;
	d->enc[d->n_enc].t_us = us;
	d->n_enc++;
	d->n_enc_total++;
	d->app_records++;
}

/* A server in optional mode (lighttpd without enforce) that visibly went
 * on with the chain: accepted, and the failed check is a security note. */
Test(verdict12, a_chain_the_checks_refuse_served_twice_is_accepted_with_a_note)
{
	struct conn_facts f;
	struct chain_report chain;
	struct verdict v;
	size_t i;
	bool noted = false;

	expired_chain12(&f, &chain);
	rec12(&f, SIDE_CLIENT, 103, 1000);
	rec12(&f, SIDE_SERVER, 244, 2000);
	rec12(&f, SIDE_CLIENT, 103, 3000);
	rec12(&f, SIDE_SERVER, 244, 4000);
	verdict_decide(&f, &chain, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_CLIENT_CERT_ACCEPTED, "%s", verdict_code_name(v.code));
	cr_assert_eq(v.basis, B_INFERRED);
	for (i = 0; i < v.n_evidence; i++)
		noted = noted || strstr(v.evidence[i], "a security note, not a failure");
	cr_assert(noted, "the failed check is kept as a note");
}

/* The same chain, one small answer, and no close that tells: the
 * predicted refusal is not claimed (an optional-mode server serves it). */
Test(verdict12, a_chain_the_checks_refuse_and_a_small_answer_is_undetermined)
{
	struct conn_facts f;
	struct chain_report chain;
	struct verdict v;

	expired_chain12(&f, &chain);
	rec12(&f, SIDE_CLIENT, 103, 1000);
	rec12(&f, SIDE_SERVER, 244, 2000);
	verdict_decide(&f, &chain, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_UNDETERMINED, "%s", verdict_code_name(v.code));
}

/* ... but an answer of an error page's size confirms it (nginx's 400, its
 * close crossing the client's). */
Test(verdict12, a_chain_the_checks_refuse_and_an_error_page_is_refused)
{
	struct conn_facts f;
	struct chain_report chain;
	struct verdict v;

	expired_chain12(&f, &chain);
	rec12(&f, SIDE_CLIENT, 103, 1000);
	rec12(&f, SIDE_SERVER, 391, 2000);
	verdict_decide(&f, &chain, SK_UNKNOWN, &v);
	cr_assert_eq(v.code, V_SERVER_REJECTED_CHAIN, "%s", verdict_code_name(v.code));
	cr_assert_eq(v.reason, R_EXPIRED);
}

/* Evidence lines are formatted without vsnprintf when their conversions
 * are %s, %d, %u, %zu, %llu and %%: the same bytes as vsnprintf, cut at
 * the same place, and anything else still through vsnprintf. */
/* what vsnprintf makes of a line */
static __attribute__((format(printf, 2, 3))) void reference(char *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, VERDICT_EVIDENCE_LEN, fmt, ap);
	va_end(ap);
}

Test(evidence, lines_as_snprintf_writes_them)
{
	static struct verdict v;
	char want[VERDICT_EVIDENCE_LEN], long_s[400];
	size_t i = 0;

	memset(long_s, 'x', sizeof(long_s) - 1);
	long_s[sizeof(long_s) - 1] = '\0';
	memset(&v, 0, sizeof(v));
#define SAME(...)                                                                       \
	do {                                                                            \
		verdict_line(&v, __VA_ARGS__);                                          \
		reference(want, __VA_ARGS__);                                           \
		cr_assert_str_eq(v.evidence[i], want);                                  \
		i++;                                                                    \
	} while (0)
	SAME("a constant line");
	SAME("%s and %s", "one", "");
	SAME("%d %d %d %u", 0, -7, -2147483647 - 1, 4294967295u);
	SAME("%zu of %llu: 100%%", (size_t)12, 18446744073709551615ULL);
	SAME("cut: %s", long_s);
	SAME("%s", long_s + 200);
	SAME("width %5d and %.3s go through vsnprintf", 42, "abcdef");
	SAME("%ld, %x", 9L, 255u);
#undef SAME
	cr_assert_eq(v.n_evidence, i);
	cr_assert_eq(strlen(v.evidence[4]), VERDICT_EVIDENCE_LEN - 1);
}

/* evidence_snprintf returns what snprintf returns, the cut line's whole
 * length included, and writes the same bytes into a small buffer. */
Test(evidence, snprintf_return_and_cut)
{
	char got[8], want[8];
	int n;

	n = evidence_snprintf(got, sizeof(got), "%s alert %s (%d)%s", "fatal", "bad_certificate", 42, "");
	cr_assert_eq(n, (int)strlen("fatal alert bad_certificate (42)"));
	cr_assert_str_eq(got, "fatal a");
	n = evidence_snprintf(got, sizeof(got), "%u us", 999u);
	cr_assert_eq(n, 6);
	cr_assert_str_eq(got, "999 us");
	cr_assert_eq(evidence_snprintf(got, 1, "%zu", (size_t)123), 3);
	cr_assert_str_eq(got, "");
	/* other conversions: vsnprintf's own */
	n = evidence_snprintf(got, sizeof(got), "%05.1f", 2.5);
	cr_assert_eq(n, snprintf(want, sizeof(want), "%05.1f", 2.5));
	cr_assert_str_eq(got, "002.5");
}
