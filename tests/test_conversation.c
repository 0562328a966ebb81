/* The conversation after a handshake (src/analysis/conversation.c): each pattern
 * the rules read, built as the observer records it from the records of a
 * TLS 1.3 connection without keys (sizes with the AES-GCM overhead: a
 * 19-byte record is an alert), with the lab captures' sizes and times. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "analysis/conversation.h"
#include "wire/tls.h"

#define ALERT_LEN 19
#define OVERHEAD 17

struct script {
	struct conn_facts f;
};

static void start(struct script *s)
{
	memset(s, 0, sizeof(*s));
	s->f.first_ts.tv_sec = 1000;
	s->f.last_ts = s->f.seen_until = s->f.first_ts;
	s->f.seq = 10;   /* the handshake ended at event 10 */
}

static void at(struct conn_facts *f, uint32_t us)
{
	f->last_ts.tv_sec = f->first_ts.tv_sec + us / 1000000;
	f->last_ts.tv_usec = us % 1000000;
}

/* A record of `len` bytes from `side`, `us` after the first byte. */
static void rec(struct script *s, enum side side, uint16_t len, uint32_t us)
{
	struct direction_facts *d = &s->f.dir[side];

	s->f.seq++;
	at(&s->f, us);
	d->n_enc_total++;
	if (d->n_enc < FACTS_MAX_ENC_RECORDS) {
		d->enc[d->n_enc].content_type = TLS_CT_APPLICATION_DATA;
		d->enc[d->n_enc].len = len;
		d->enc[d->n_enc].seq = s->f.seq;
		d->enc[d->n_enc].t_us = us;
		d->n_enc++;
	}
}

static void fin(struct script *s, enum side side, enum close_kind how, uint32_t us)
{
	struct direction_facts *d = &s->f.dir[side];

	s->f.seq++;
	at(&s->f, us);
	d->closed = how;
	d->close_seq = s->f.seq;
	d->close_ts = s->f.last_ts;
}

static enum conv_outcome read(struct script *s, struct conversation *cv, char *words, size_t len)
{
	conversation_read(&s->f, 10, ALERT_LEN, OVERHEAD, cv);
	conversation_describe(cv, words, len);
	return conversation_outcome(cv);
}

/* nginx serving curl: tickets, the request, the answer; curl closes and
 * nginx only lets it go (a FIN, no close_notify). */
Test(conversation, client_leaves_while_the_server_lets_it_go_is_served)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_SERVER, 74, 15355);
	rec(&s, SIDE_SERVER, 74, 15399);
	rec(&s, SIDE_CLIENT, 96, 15771);
	rec(&s, SIDE_SERVER, 177, 15947);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 16172);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 16248);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 16960);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
	cr_assert_eq(cv.server_first, 2, "the tickets came before the request");
	cr_assert_eq(cv.requests, 1);
	cr_assert_eq(cv.answers, 1);
	cr_assert_eq(cv.first_answer_bytes, 177 - OVERHEAD);
	cr_assert_eq(cv.first_closer, SIDE_CLIENT);
	cr_assert_eq(cv.how, CONV_CLOSE_NOTIFY);
	cr_assert_not(cv.server_close_notify);
	cr_assert(strstr(words, "the client closed first, 225 us later (close_notify), and the server only let it go"), "%s", words);
}

/* nginx refusing: its 400 page, then its close_notify and FIN at once. */
Test(conversation, one_error_page_then_the_server_closes_at_once_is_a_refusal)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_SERVER, 74, 24247);
	rec(&s, SIDE_SERVER, 74, 24318);
	rec(&s, SIDE_CLIENT, 96, 24670);
	rec(&s, SIDE_SERVER, 384, 24866);
	rec(&s, SIDE_SERVER, ALERT_LEN, 24914);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 24967);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 25172);
	fin(&s, SIDE_SERVER, CLOSE_RST, 25199);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_REFUSED, "%s", words);
	cr_assert_eq(cv.first_closer, SIDE_SERVER);
	cr_assert_eq(cv.first_answer_largest, 384 - OVERHEAD);
	cr_assert(strstr(words, "the server answered once (367 bytes) and closed first, 48 us later (close_notify), before the client"), "%s", words);
}

/* Tickets sent late fall into the answer's turn: the page is its largest
 * record, and decides. */
Test(conversation, late_tickets_do_not_hide_the_error_page)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 14906);
	rec(&s, SIDE_SERVER, 74, 15798);
	rec(&s, SIDE_SERVER, 74, 15843);
	rec(&s, SIDE_SERVER, 384, 15913);
	rec(&s, SIDE_SERVER, ALERT_LEN, 15947);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 15990);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_REFUSED, "%s", words);
	cr_assert_eq(cv.first_answer_records, 3);
	cr_assert_eq(cv.first_answer_bytes, 57 + 57 + 367);
	cr_assert_eq(cv.first_answer_largest, 367);
}

/* s_server -www closes after every answer: 8,915 bytes is more than an
 * error page. */
Test(conversation, a_large_answer_before_the_servers_close_was_served)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_SERVER, 1098, 17645);
	rec(&s, SIDE_SERVER, 1098, 18373);
	rec(&s, SIDE_CLIENT, 96, 18901);
	rec(&s, SIDE_SERVER, 8932, 19936);
	rec(&s, SIDE_SERVER, ALERT_LEN, 20293);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 20384);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 20503);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 22541);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_SERVED_CLOSE, "%s", words);
	cr_assert(strstr(words, "more than an error page"), "%s", words);
}

/* A client that reads its large answer and leaves first (the probe): the
 * size alone says served. */
Test(conversation, a_large_answer_was_served_whoever_closes)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 18901);
	rec(&s, SIDE_SERVER, 8932, 19936);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 19963);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
}

/* Apache's tickets, sent after the request, share the answer's turn: their
 * sum is no page, so they do not make a small answer large. */
Test(conversation, late_tickets_do_not_make_an_answer_large)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 13391);
	rec(&s, SIDE_SERVER, 1162, 15075);
	rec(&s, SIDE_SERVER, 1162, 15646);
	rec(&s, SIDE_SERVER, 384, 15936);
	rec(&s, SIDE_SERVER, ALERT_LEN, 15990);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 16000);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert_eq(cv.first_answer_bytes, 1145 + 1145 + 367);
	cr_assert_eq(cv.first_answer_largest, 1145);
}

/* A one-line answer and the server's close: a server that closes after
 * every answer, or a client that asked it to, looks the same. */
Test(conversation, a_small_answer_before_the_servers_close_tells_nothing)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 106, 2000);
	rec(&s, SIDE_SERVER, ALERT_LEN, 2000);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 2000);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert(strstr(words, "not an error page's size"), "%s", words);
}

/* An error page's size, but the server closed long after it: not the
 * refusal's immediate close. */
Test(conversation, a_late_close_after_an_error_sized_answer_tells_nothing)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 384, 2000);
	rec(&s, SIDE_SERVER, ALERT_LEN, 2000 + CONV_CLOSE_SOON_US + 1);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert_lt(CONV_CLOSE_SOON_US, CONV_QUIET_US);
}

/* Apache and HAProxy answer curl's close with a close_notify of their
 * own; nginx's close after a refusal can cross curl's the same way. */
Test(conversation, a_close_answered_with_a_close_is_ambiguous)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 13391);
	rec(&s, SIDE_SERVER, 1162, 15075);
	rec(&s, SIDE_SERVER, 1162, 15646);
	rec(&s, SIDE_SERVER, 269, 15936);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 16238);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 16369);
	rec(&s, SIDE_SERVER, ALERT_LEN, 16385);
	fin(&s, SIDE_CLIENT, CLOSE_RST, 16413);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert(cv.server_close_notify);
	cr_assert(strstr(words, "the server sent its own close_notify"), "%s", words);
}

/* A keep-alive client asking again: the first answer served it. */
Test(conversation, a_second_exchange_means_the_first_was_served)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 384, 2000);
	rec(&s, SIDE_CLIENT, 96, 1002000);
	rec(&s, SIDE_SERVER, 384, 1003000);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
	cr_assert_eq(cv.answers, 2);
	cr_assert(strstr(words, "a second request"), "%s", words);
}

/* A pooled connection that stays open and quiet after its answer: served
 * once it has been quiet for CONV_QUIET_US, not before. */
Test(conversation, an_open_quiet_session_went_on_after_a_while)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 384, 2000);
	s.f.seen_until.tv_sec = s.f.first_ts.tv_sec + 1;
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	s.f.seen_until.tv_sec = s.f.first_ts.tv_sec + 4;
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
	cr_assert(strstr(words, "stayed open 3998 ms after it"), "%s", words);
}

/* Closed, but only long after the answer: a refusal closes at once. */
Test(conversation, a_close_long_after_the_answer_went_on)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 384, 2000);
	rec(&s, SIDE_SERVER, ALERT_LEN, 2000 + CONV_QUIET_US);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 2000 + CONV_QUIET_US);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
	cr_assert(strstr(words, "stayed open 3000 ms after it, until the server closed it"), "%s", words);
}

/* Nothing asked, nothing answered: nothing to infer. */
Test(conversation, no_request_tells_nothing)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	rec(&s, SIDE_SERVER, 74, 1000);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 2000);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 2100);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert_eq(cv.requests, 0);
	cr_assert(strstr(words, "no request"), "%s", words);
}

/* Records before the end of the client's flight are the handshake's. */
Test(conversation, only_what_follows_the_flight_counts)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	s.f.seq = 0;
	rec(&s, SIDE_CLIENT, 96, 100);   /* event 1: before `after` (10) */
	s.f.seq = 10;
	rec(&s, SIDE_CLIENT, 96, 1000);
	rec(&s, SIDE_SERVER, 384, 2000);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert_eq(cv.requests, 1);
	cr_assert_eq(cv.answers, 1);
}

static void offer_h2(struct script *s)
{
	snprintf(s->f.ch.alpn[0], sizeof(s->f.ch.alpn[0]), "h2");
	snprintf(s->f.ch.alpn[1], sizeof(s->f.ch.alpn[1]), "http/1.1");
	s->f.ch.n_alpn = 2;
}

/* curl --http2 to nginx refusing (as the proxy reads it, the client's
 * SETTINGS ACK sent with its HEADERS): preface, the server's SETTINGS, the
 * request, the 400, and the client leaves while nginx lets it go.  The
 * server's turn of control frames says HTTP/2: the close order tells
 * nothing. */
Test(conversation, http2_settings_turn_makes_the_close_order_tell_nothing)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	offer_h2(&s);
	rec(&s, SIDE_SERVER, 74, 3174);
	rec(&s, SIDE_SERVER, 74, 3201);
	rec(&s, SIDE_CLIENT, 81, 3221);
	rec(&s, SIDE_SERVER, 57, 3226);
	rec(&s, SIDE_SERVER, 26, 3250);
	rec(&s, SIDE_CLIENT, 83, 3259);
	rec(&s, SIDE_SERVER, 322, 3352);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 3543);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 3629);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_UNKNOWN, "%s", words);
	cr_assert(cv.http2);
	cr_assert(strstr(words, "HTTP/2"), "%s", words);
}

/* The same client offering h2 to a server that chose HTTP/1.1 (nginx
 * without http2): its first answer is a page, not control frames. */
Test(conversation, an_http1_answer_to_a_client_offering_h2_is_read_as_http1)
{
	struct script s;
	struct conversation cv;
	char words[256];

	start(&s);
	offer_h2(&s);
	rec(&s, SIDE_SERVER, 74, 15355);
	rec(&s, SIDE_SERVER, 74, 15399);
	rec(&s, SIDE_CLIENT, 96, 15771);
	rec(&s, SIDE_SERVER, 177, 15947);
	rec(&s, SIDE_CLIENT, ALERT_LEN, 16172);
	fin(&s, SIDE_CLIENT, CLOSE_FIN, 16248);
	fin(&s, SIDE_SERVER, CLOSE_FIN, 16960);
	cr_assert_eq(read(&s, &cv, words, sizeof(words)), CONV_WENT_ON, "%s", words);
	cr_assert_not(cv.http2);
}
