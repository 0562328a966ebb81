/* Tests for the observer fed the way a front end feeds it: real plaintext
 * preambles (tests/data/preamble) segment by segment, in capture order,
 * and real captures whose first segment is longer than 16 KiB. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/capture.h"
#include "analysis/codes.h"
#include "analysis/observer.h"
#include "out/json.h"
#include "out/report.h"
#include "wire/preamble.h"
#include "testutil.h"
#include "wire/x509info.h"

#define RESYNC_TEST_BYTES 65536

struct fed {
	struct conn_facts facts;
	struct verdict verdict;
};

/* A fixture's two sides: dir/client.bin and dir/server.bin. */
static void load_sides(const char *dir, uint8_t **c, size_t *clen, uint8_t **s, size_t *slen)
{
	char rel[300];

	snprintf(rel, sizeof(rel), "%s/client.bin", dir);
	*c = test_load(rel, clen);
	snprintf(rel, sizeof(rel), "%s/server.bin", dir);
	*s = test_load(rel, slen);
}

/* A connection from cfg, fed a fixture's chunks in order (a lab stream,
 * "streams/NAME" in tests/data/msgs: the client's bytes, then the
 * server's); *ts is the time of the last. */
static struct obs_conn *fed_conn(const char *name, const struct observer_config *cfg, struct timeval *ts)
{
	char rel[256], side;
	size_t clen, slen, n, at[2] = { 0, 0 };
	uint8_t *c, *s;
	FILE *chunks;
	struct endpoint a = { "127.0.0.1", 40000 }, b = { "127.0.0.1", 5432 };
	struct obs_conn *conn;

	ts->tv_sec = 1700000000;
	ts->tv_usec = 0;
	if (strncmp(name, "streams/", 8) == 0) {
		snprintf(rel, sizeof(rel), "tests/data/msgs/%s", name);
		load_sides(rel, &c, &clen, &s, &slen);
		conn = obs_conn_new(cfg, &a, &b, ts, true);
		cr_assert_not_null(conn);
		obs_conn_feed(conn, SIDE_CLIENT, c, clen, ts);
		ts->tv_usec += 100;
		obs_conn_feed(conn, SIDE_SERVER, s, slen, ts);
		free(c);
		free(s);
		return conn;
	}
	snprintf(rel, sizeof(rel), "tests/data/preamble/%s", name);
	load_sides(rel, &c, &clen, &s, &slen);
	snprintf(rel, sizeof(rel), "tests/data/preamble/%s/chunks", name);
	chunks = fopen(test_path(rel), "r");
	cr_assert_not_null(chunks, "%s: no chunks file", name);
	conn = obs_conn_new(cfg, &a, &b, ts, true);
	cr_assert_not_null(conn);
	while (fscanf(chunks, " %c %zu", &side, &n) == 2) {
		enum side from = side == 'c' ? SIDE_CLIENT : SIDE_SERVER;
		size_t have = from == SIDE_CLIENT ? clen : slen;

		if (at[from] + n > have)
			n = have - at[from];   /* the fixtures are cut after the handshake starts */
		ts->tv_usec += 100;
		obs_conn_feed(conn, from, (from == SIDE_CLIENT ? c : s) + at[from], n, ts);
		at[from] += n;
	}
	fclose(chunks);
	free(c);
	free(s);
	return conn;
}

static void feed_fixture(const char *name, struct fed *out)
{
	struct observer_config cfg = { 0 };
	struct timeval ts;
	struct obs_conn *conn;

	cfg.certs = cert_cache_new(16);
	conn = fed_conn(name, &cfg, &ts);
	out->verdict = *obs_conn_finish(conn, true, &ts);
	out->facts = *obs_conn_facts(conn);
	obs_conn_free(conn);
	cert_cache_free(cfg.certs);
}

/* hellos: the fixture holds the whole ClientHello and ServerHello (some are
 * cut about 300 bytes into TLS, inside a 512-byte ClientHello record) */
static void expect_tls(const char *name, enum preamble_kind kind, bool hellos)
{
	struct fed r;

	feed_fixture(name, &r);
	cr_assert(r.facts.is_tls, "%s: TLS not found after the preamble", name);
	cr_assert_not(r.facts.not_tls, "%s", name);
	cr_assert_eq(r.facts.preamble, kind, "%s: preamble %d", name, r.facts.preamble);
	cr_assert_not(r.facts.dir[SIDE_CLIENT].desync || r.facts.dir[SIDE_SERVER].desync,
		      "%s: record framing lost", name);
	if (hellos) {
		cr_assert(r.facts.ch.seen, "%s: ClientHello not decoded", name);
		cr_assert(r.facts.sh.seen, "%s: ServerHello not decoded", name);
	}
	cr_assert_str_empty(r.facts.decode_error, "%s: %s", name, r.facts.decode_error);
}

Test(observer, tls_after_every_real_preamble)
{
	expect_tls("postgres", PREAMBLE_POSTGRES, true);
	expect_tls("mysql", PREAMBLE_MYSQL, false);
	expect_tls("smtp", PREAMBLE_SMTP, false);
	expect_tls("imap", PREAMBLE_IMAP, true);
	expect_tls("pop3", PREAMBLE_POP3, true);
	expect_tls("ftp", PREAMBLE_FTP, false);
	expect_tls("xmpp", PREAMBLE_XMPP, true);
	expect_tls("xmpp-s2s", PREAMBLE_XMPP, true);
	expect_tls("connect", PREAMBLE_HTTP_CONNECT, false);
	expect_tls("connect-auth", PREAMBLE_HTTP_CONNECT, false);
}

Test(observer, connect_target_is_kept)
{
	struct fed r;

	feed_fixture("connect", &r);
	cr_assert_str_eq(r.facts.connect_target, "127.0.0.1:54433");
}

Test(observer, plaintext_sessions_are_not_tls)
{
	static const char *const plain[] = { "postgres-no-ssl", "mysql-no-ssl", "smtp-plain", "connect-407-close" };
	size_t i;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		struct fed r;

		feed_fixture(plain[i], &r);
		cr_assert(r.facts.not_tls, "%s: should be not TLS", plain[i]);
		cr_assert_eq(r.verdict.code, V_NOT_TLS, "%s", plain[i]);
	}
}

/* ---- joining a connection mid-stream ---- */

static struct obs_conn *midstream_conn(struct observer_config *cfg)
{
	struct endpoint a = { "127.0.0.1", 40000 }, b = { "127.0.0.1", 443 };
	struct timeval ts = { 1700000000, 0 };

	cfg->certs = cert_cache_new(16);
	return obs_conn_new(cfg, &a, &b, &ts, false);
}

Test(observer, midstream_resync_byte_by_byte)
{
	size_t len, i;
	uint8_t *client = test_load("tests/data/msgs/streams/nginx-on_good_tls12/client.bin", &len);
	struct observer_config cfg = { 0 };
	struct obs_conn *c = midstream_conn(&cfg);
	struct timeval ts = { 1700000000, 0 };
	const struct conn_facts *f;

	/* start three bytes into the first record: the first header is lost */
	for (i = 3; i < len; i++)
		obs_conn_feed(c, SIDE_CLIENT, client + i, 1, &ts);
	obs_conn_finish(c, true, &ts);
	f = obs_conn_facts(c);
	cr_assert(f->is_tls, "the record boundary was not found again");
	cr_assert(f->dir[SIDE_CLIENT].ccs_seen || f->dir[SIDE_CLIENT].n_enc > 0,
		  "records after the resync point were not decoded");
	obs_conn_free(c);
	cert_cache_free(cfg.certs);
	free(client);
}

Test(observer, crafted_headers_cannot_make_resync_quadratic, .timeout = 10)
{
	/* every offset looks like a header whose successor has not arrived */
	static uint8_t junk[RESYNC_TEST_BYTES];
	struct observer_config cfg = { 0 };
	struct obs_conn *c = midstream_conn(&cfg);
	struct timeval ts = { 1700000000, 0 };
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = "\x16\x03\x03\x40\x00"[i % 5];
	for (i = 0; i < sizeof(junk); i++)
		obs_conn_feed(c, SIDE_CLIENT, junk + i, 1, &ts);
	obs_conn_finish(c, true, &ts);
	cr_assert_not(obs_conn_facts(c)->ch.seen);
	obs_conn_free(c);
	cert_cache_free(cfg.certs);
}

/* ---- a first segment longer than PREAMBLE_MAX ----
 *
 * Real captures (tests/data/capture, scripts/make-big-segment-fixtures) in
 * which the client's first segment is longer than 16 KiB: a ClientHello
 * spanning two records, and a ClientHello followed by 0-RTT records.  They
 * go through the capture layer into the observer, as captured or with the
 * client's first segment cut in two (a partial record header first, so the
 * observer holds the bytes and finds TLS in what it holds). */

struct cut_sink {
	struct flow_sink inner;
	size_t first;       /* 0: as captured; else the client's first segment is fed as first bytes, then the rest */
	bool cut_done;
	size_t n;           /* connections finished */
	struct conn_facts facts;
	struct verdict verdict;
};

static void *cut_open(void *ctx, const struct endpoint *initiator, const struct endpoint *responder,
		      const struct timeval *ts, bool saw_syn)
{
	struct cut_sink *s = ctx;

	return s->inner.open(s->inner.ctx, initiator, responder, ts, saw_syn);
}

static void cut_data(void *ctx, void *flow, enum side from, const uint8_t *p, size_t n,
		     const struct timeval *ts)
{
	struct cut_sink *s = ctx;

	if (s->first && !s->cut_done && from == SIDE_CLIENT) {
		cr_assert_gt(n, s->first);
		s->cut_done = true;
		s->inner.data(s->inner.ctx, flow, from, p, s->first, ts);
		s->inner.data(s->inner.ctx, flow, from, p + s->first, n - s->first, ts);
		return;
	}
	s->inner.data(s->inner.ctx, flow, from, p, n, ts);
}

static void cut_gap(void *ctx, void *flow, enum side from, size_t n, const struct timeval *ts)
{
	struct cut_sink *s = ctx;

	s->inner.gap(s->inner.ctx, flow, from, n, ts);
}

static void cut_close(void *ctx, void *flow, enum side from, enum close_kind how, const struct timeval *ts)
{
	struct cut_sink *s = ctx;

	s->inner.close(s->inner.ctx, flow, from, how, ts);
}

static bool cut_wants_bytes(void *ctx, void *flow)
{
	struct cut_sink *s = ctx;

	return !s->inner.wants_bytes || s->inner.wants_bytes(s->inner.ctx, flow);
}

static void cut_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	struct cut_sink *s = ctx;

	s->inner.finish(s->inner.ctx, flow, truncated, ts);
}

static void cut_finished(void *ctx, struct obs_conn *c, bool truncated, const struct timeval *ts)
{
	struct cut_sink *s = ctx;

	s->verdict = *obs_conn_finish(c, truncated, ts);
	s->facts = *obs_conn_facts(c);
	s->n++;
	obs_conn_free(c);
}

static void run_cut(const char *name, size_t first, struct cut_sink *s)
{
	char rel[256], err[256];
	struct observer_config cfg = { 0 };
	struct obs_sink os = { .cfg = &cfg, .finished = cut_finished, .ctx = s };
	struct flow_sink sink = {
		.ctx = s, .open = cut_open, .data = cut_data, .gap = cut_gap, .close = cut_close,
		.wants_bytes = cut_wants_bytes, .finish = cut_finish,
	};
	struct capture_opts opts = { 0 };
	struct capture_stats stats;

	memset(s, 0, sizeof(*s));
	s->first = first;
	cfg.certs = cert_cache_new(16);
	cr_assert_not_null(cfg.certs);
	obs_sink_init(&os, &s->inner);
	snprintf(rel, sizeof(rel), "tests/data/capture/%s", name);
	cr_assert_eq(capture_read_file(test_path(rel), &opts, &sink, &stats, err, sizeof(err)), 0,
		     "%s: %s", name, err);
	cr_assert_eq(s->n, 1, "%s: %zu connections", name, s->n);
	cr_assert(!first || s->cut_done, "%s: no client data to cut", name);
	cert_cache_free(cfg.certs);
}

static void expect_big_first_segment(const char *name, size_t first, enum verdict_code code)
{
	struct cut_sink s;
	const struct conn_facts *f = &s.facts;

	run_cut(name, first, &s);
	cr_assert_not(f->not_tls, "%s (cut at %zu): reported not TLS", name, first);
	cr_assert(f->is_tls, "%s (cut at %zu)", name, first);
	cr_assert(f->ch.seen && f->sh.seen, "%s (cut at %zu): hellos not decoded", name, first);
	cr_assert_str_eq(f->ch.sni, "localhost", "%s", name);
	cr_assert_not(f->dir[SIDE_CLIENT].desync || f->dir[SIDE_SERVER].desync,
		      "%s (cut at %zu): record framing lost", name, first);
	cr_assert_str_empty(f->decode_error, "%s (cut at %zu): %s", name, first, f->decode_error);
	cr_assert_eq(f->sh.selected_version, TLS_V_1_3, "%s", name);
	cr_assert_eq(s.verdict.code, code, "%s (cut at %zu): verdict %s", name, first,
		     verdict_code_name(s.verdict.code));
}

/* openssl s_client offering a 17 KB ALPN list: the first segment is the
 * ClientHello's first record, whole (16389 bytes); the second record
 * follows in the next segment. */
Test(observer, client_hello_over_16k_is_tls)
{
	struct cut_sink s;

	expect_big_first_segment("big_hello.pcap", 0, V_CERT_NOT_REQUESTED);
	expect_big_first_segment("big_hello.pcap", 3, V_CERT_NOT_REQUESTED);
	run_cut("big_hello.pcap", 0, &s);
	cr_assert_eq(s.facts.ch.n_alpn, FACTS_MAX_ALPN, "the ALPN list was read");
	cr_assert(strncmp(s.facts.ch.alpn[0], "mtlsdiag-00-xxx", 15) == 0, "%s", s.facts.ch.alpn[0]);
}

/* A TLS 1.3 resumption whose client wrote its ClientHello and 40000 bytes
 * of early data at once: a 32741-byte first segment. */
Test(observer, client_hello_and_early_data_in_one_segment_is_tls)
{
	struct cut_sink s;

	expect_big_first_segment("early_data.pcap", 0, V_RESUMED);
	expect_big_first_segment("early_data.pcap", 3, V_RESUMED);
	run_cut("early_data.pcap", 0, &s);
	cr_assert(s.facts.ch.early_data, "the early_data extension was read");
	cr_assert(s.facts.ch.has_psk);
}

/* ---- a chain past any verify depth ---- */

static void put_u24(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}

/* Feeds one handshake message as TLS 1.2 records of at most 16 KiB, one
 * feed each; returns the most the connection held between two. */
static size_t feed_records(struct obs_conn *c, enum side from, const uint8_t *msg, size_t len,
			   const struct timeval *ts)
{
	uint8_t rec[5 + 16384];
	size_t off, n, peak = 0;

	for (off = 0; off < len; off += n) {
		n = len - off < 16384 ? len - off : 16384;
		rec[0] = 22;
		rec[1] = 3;
		rec[2] = 3;
		rec[3] = (uint8_t)(n >> 8);
		rec[4] = (uint8_t)n;
		memcpy(rec + 5, msg + off, n);
		obs_conn_feed(c, from, rec, 5 + n, ts);
		if (obs_conn_buffered(c) > peak)
			peak = obs_conn_buffered(c);
	}
	return peak;
}

/* A client Certificate message of `copies` copies of the lab's client
 * leaf (about 1 KB each). */
static uint8_t *long_chain(size_t copies, size_t *msg_len)
{
	size_t cert_len, der_len, i, at;
	uint8_t *cert = test_load("tests/data/msgs/certificate_client_chain_tls12.bin", &cert_len), *msg;

	/* type, length, list length, then the first entry: its length and DER */
	der_len = (size_t)cert[7] << 16 | (size_t)cert[8] << 8 | cert[9];
	cr_assert_lt(10 + der_len, cert_len + 1);
	*msg_len = 4 + 3 + copies * (3 + der_len);
	msg = malloc(*msg_len);
	cr_assert_not_null(msg);
	msg[0] = 11;
	put_u24(msg + 1, *msg_len - 4);
	put_u24(msg + 4, *msg_len - 7);
	for (i = 0, at = 7; i < copies; i++, at += 3 + der_len)
		memcpy(msg + at, cert + 7, 3 + der_len);
	free(cert);
	return msg;
}

/* A client Certificate of 150 copies of the lab's leaf (curl's real
 * ClientHello and the server's ServerHello before it): the first
 * FACTS_MAX_CHAIN_KEPT are summarized, the rest counted, the chain is not
 * judged, and the record says so. */
Test(observer, a_chain_past_any_verify_depth_is_kept_in_part_and_not_judged)
{
	size_t ch_len, sh_len, msg_len;
	uint8_t *ch = test_load("tests/data/msgs/clienthello_curl_tls12.bin", &ch_len);
	uint8_t *sh = test_load("tests/data/msgs/serverhello_tls12.bin", &sh_len);
	uint8_t *msg = long_chain(150, &msg_len);
	struct observer_config cfg = { 0 };
	struct endpoint a = { "127.0.0.1", 40000 }, b = { "127.0.0.1", 443 };
	struct timeval ts = { 1700000000, 0 };
	struct obs_conn *c;
	const struct conn_facts *f;
	const struct verdict *v;

	cfg.certs = cert_cache_new(16);
	c = obs_conn_new(&cfg, &a, &b, &ts, true);
	feed_records(c, SIDE_CLIENT, ch, ch_len, &ts);
	feed_records(c, SIDE_SERVER, sh, sh_len, &ts);
	feed_records(c, SIDE_CLIENT, msg, msg_len, &ts);
	v = obs_conn_finish(c, true, &ts);
	f = obs_conn_facts(c);
	cr_assert(f->client_cert_seen && !f->client_cert_empty);
	cr_assert_eq(f->client_chain.n_on_wire, 150);
	cr_assert_eq(f->client_chain.n, FACTS_MAX_CHAIN_KEPT);
	cr_assert_str_eq(f->client_chain.certs[0].subject, "CN=good-client, O=mtlsdiag Lab");
	cr_assert(strstr(f->decode_error, "the client sent 150 certificates: the first 100 are kept"), "%s",
		  f->decode_error);
	cr_assert_neq(v->code, V_SERVER_REJECTED_CHAIN, "a cut chain is not judged");
	obs_conn_free(c);
	cert_cache_free(cfg.certs);
	free(msg);
	free(ch);
	free(sh);
}

/* ---- the front end's budget ---- */

/* The same 150-certificate chain (about 150 KB) with a budget of 64 KiB:
 * no more than that is ever held, the observing stops, its buffers go,
 * and the verdict says why instead of judging a handshake seen in part. */
Test(observer, a_message_past_the_budget_stops_the_observing)
{
	size_t ch_len, sh_len, msg_len, peak, need = 0;
	uint8_t *ch = test_load("tests/data/msgs/clienthello_curl_tls12.bin", &ch_len);
	uint8_t *sh = test_load("tests/data/msgs/serverhello_tls12.bin", &sh_len);
	uint8_t *msg = long_chain(150, &msg_len);
	struct observer_config cfg = { .max_buffered = 65536 };
	struct endpoint a = { "127.0.0.1", 40000 }, b = { "127.0.0.1", 443 };
	struct timeval ts = { 1700000000, 0 };
	const struct verdict *v;
	struct obs_conn *c;

	cfg.certs = cert_cache_new(16);
	c = obs_conn_new(&cfg, &a, &b, &ts, true);
	feed_records(c, SIDE_CLIENT, ch, ch_len, &ts);
	feed_records(c, SIDE_SERVER, sh, sh_len, &ts);
	cr_assert_not(obs_conn_over_budget(c, &need));
	cr_assert_not(obs_conn_handshake_over(c));
	peak = feed_records(c, SIDE_CLIENT, msg, msg_len, &ts);
	cr_assert(obs_conn_over_budget(c, &need));
	cr_assert_gt(need, 65536);
	cr_assert_leq(peak, 65536, "%zu bytes held", peak);
	cr_assert_eq(obs_conn_buffered(c), 0, "the buffers were kept");
	cr_assert_not(obs_conn_wants_bytes(c));
	cr_assert(obs_conn_handshake_over(c), "no longer watched: over for the front end");
	cr_assert_null(obs_conn_early_verdict(c), "no early verdict for a handshake seen in part");
	v = obs_conn_finish(c, false, &ts);
	cr_assert_eq(v->code, V_INCOMPLETE, "%s", verdict_code_name(v->code));
	cr_assert_eq(v->fault, F_UNKNOWN);
	cr_assert(v->n_evidence > 0 && strstr(v->evidence[v->n_evidence - 1], "over budget"), "%s",
		  v->n_evidence ? v->evidence[v->n_evidence - 1] : "(none)");
	obs_conn_free(c);

	/* the front end gives up itself, with its own reason */
	c = obs_conn_new(&cfg, &a, &b, &ts, true);
	feed_records(c, SIDE_CLIENT, ch, ch_len, &ts);
	obs_conn_abandon(c, "the front end's reason");
	cr_assert_not(obs_conn_wants_bytes(c));
	cr_assert_eq(obs_conn_buffered(c), 0);
	feed_records(c, SIDE_SERVER, sh, sh_len, &ts);
	v = obs_conn_finish(c, false, &ts);
	cr_assert_eq(v->code, V_INCOMPLETE);
	cr_assert_str_eq(v->evidence[v->n_evidence - 1], "the front end's reason");
	cr_assert_not(obs_conn_facts(c)->sh.seen, "fed after it gave up");
	obs_conn_free(c);
	cert_cache_free(cfg.certs);
	free(msg);
	free(ch);
	free(sh);
}

/* Each side of a real stream, fed in turn: the handshake is over once both
 * sides' protected flights (or Finished) are in, not before. */
static void handshake_over_after_both(const char *stream)
{
	char rel[256];
	size_t clen, slen;
	uint8_t *cl, *sv;
	struct observer_config cfg = { 0 };
	struct endpoint a = { "127.0.0.1", 40000 }, b = { "127.0.0.1", 443 };
	struct timeval ts = { 1700000000, 0 };
	struct obs_conn *c;

	snprintf(rel, sizeof(rel), "tests/data/msgs/streams/%s", stream);
	load_sides(rel, &cl, &clen, &sv, &slen);
	cfg.certs = cert_cache_new(16);
	c = obs_conn_new(&cfg, &a, &b, &ts, true);
	obs_conn_feed(c, SIDE_CLIENT, cl, 300, &ts);
	cr_assert_not(obs_conn_handshake_over(c), "%s: over after the ClientHello", stream);
	obs_conn_feed(c, SIDE_SERVER, sv, slen, &ts);
	cr_assert_not(obs_conn_handshake_over(c), "%s: over before the client's flight", stream);
	obs_conn_feed(c, SIDE_CLIENT, cl + 300, clen - 300, &ts);
	cr_assert(obs_conn_handshake_over(c), "%s: not over after both flights", stream);
	obs_conn_free(c);
	cert_cache_free(cfg.certs);
	free(cl);
	free(sv);
}

Test(observer, the_handshake_is_over_once_both_flights_are_in)
{
	handshake_over_after_both("nginx-on_good_tls12");
	handshake_over_after_both("nginx-on_good_tls13");
	handshake_over_after_both("openssl_none_tls13");
}

/* ---- a connection's memory used again ---- */

/* The fixture's JSON record, read through a connection from cfg. */
static char *record_of(const char *name, const struct observer_config *cfg)
{
	struct timeval ts;
	struct obs_conn *conn = fed_conn(name, cfg, &ts);
	const struct verdict *v = obs_conn_finish(conn, true, &ts);
	struct json j;
	char *text;

	json_init(&j);
	json_object(&j, NULL);
	report_json_members(&j, obs_conn_facts(conn), v, NULL);
	json_end(&j);
	text = strdup(json_text(&j));
	json_free(&j);
	obs_conn_free(conn);
	return text;
}

/* A new connection takes a spare from the pool with an earlier one's
 * facts still in its memory, made empty only where it counts (the counts,
 * the texts' first bytes: facts_clear): every fixture read right after
 * every other gives the record it gives on memory of its own. */
Test(observer, a_connection_on_reused_memory_reads_as_on_fresh)
{
	static const char *const names[] = { "postgres", "imap", "xmpp", "connect", "connect-auth",
					     "connect-407-close", "mysql-no-ssl", "smtp-plain", "ftp",
					     "streams/nginx-on_good_tls13", "streams/nginx-on_none_tls12",
					     "streams/haproxy_expired_tls12", "streams/openssl_none_tls13" };
	const size_t n = sizeof(names) / sizeof(names[0]);
	struct observer_config fresh = { 0 }, reused = { 0 };
	char *want[sizeof(names) / sizeof(names[0])];

	fresh.certs = reused.certs = cert_cache_new(64);
	for (size_t i = 0; i < n; i++)
		want[i] = record_of(names[i], &fresh);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < n; k++) {
			char *earlier, *got;

			/* a pool of one: the second connection takes the first's memory */
			reused.pool = obs_pool_new();
			cr_assert_not_null(reused.pool);
			earlier = record_of(names[i], &reused);
			got = record_of(names[k], &reused);
			cr_assert_str_eq(earlier, want[i]);
			cr_assert_str_eq(got, want[k], "%s read after %s", names[k], names[i]);
			free(earlier);
			free(got);
			obs_pool_free(reused.pool);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(want[i]);
	cert_cache_free(fresh.certs);
}
