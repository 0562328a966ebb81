/* conversation: the turns after a handshake (conversation.h). */
#include "config.h"

#include "analysis/conversation.h"
#include "analysis/evidence.h"

#include <stdio.h>
#include <string.h>

#include "wire/tls.h"

enum ev_kind { EV_DATA, EV_CLOSE };

struct conv_event {
	uint32_t seq;
	uint32_t t_us;
	enum side from;
	enum ev_kind kind;
	enum conv_close how;
	uint16_t len;
};

#define MAX_EVENTS (2 * FACTS_MAX_ENC_RECORDS + FACTS_MAX_ALERTS + 2)

static void add(struct conv_event *evs, size_t *n, const struct conv_event *e)
{
	size_t i = *n;

	if (*n >= MAX_EVENTS)
		return;
	/* insertion by event order: the lists are short and nearly sorted */
	while (i > 0 && evs[i - 1].seq > e->seq) {
		evs[i] = evs[i - 1];
		i--;
	}
	evs[i] = *e;
	(*n)++;
}

/* The events after `after`, in the order they happened. */
static size_t collect(const struct conn_facts *f, uint32_t after, size_t alert_len, struct conv_event *evs)
{
	size_t n = 0, i;
	int s;

	for (s = 0; s < 2; s++) {
		const struct direction_facts *d = &f->dir[s];

		for (i = 0; i < d->n_enc; i++) {
			const struct enc_record *r = &d->enc[i];
			struct conv_event e = { r->seq, r->t_us, (enum side)s, EV_DATA, CONV_OPEN, r->len };

			if (r->seq <= after)
				continue;
			if (r->content_type == TLS_CT_HANDSHAKE)
				continue;   /* below 1.3: a renegotiation, not a turn */
			if (alert_len && r->len == alert_len) {
				e.kind = EV_CLOSE;
				e.how = CONV_CLOSE_NOTIFY;
			} else if (r->content_type != TLS_CT_APPLICATION_DATA) {
				continue;
			}
			add(evs, &n, &e);
		}
		if ((d->closed == CLOSE_FIN || d->closed == CLOSE_RST) && d->close_seq > after) {
			struct conv_event e = { d->close_seq, facts_us_since_start(f, &d->close_ts), (enum side)s,
						EV_CLOSE, d->closed == CLOSE_RST ? CONV_RST : CONV_FIN, 0 };

			add(evs, &n, &e);
		}
	}
	for (i = 0; i < f->n_alerts; i++) {
		const struct alert *a = &f->alerts[i];
		struct conv_event e = { a->seq, a->t_us, a->from, EV_CLOSE, CONV_CLOSE_NOTIFY, 0 };

		if (a->seq > after)
			add(evs, &n, &e);
	}
	return n;
}

/* A server turn of records no larger than this holds HTTP/2 control frames
 * (SETTINGS, WINDOW_UPDATE, their acknowledgements: 9 to about 60 bytes);
 * no HTTP/1 answer, with its status line and headers, is that small. */
#define H2_CONTROL_MAX 64

static bool client_offered_h2(const struct client_hello *ch)
{
	size_t i;

	for (i = 0; i < ch->n_alpn; i++)
		if (strcmp(ch->alpn[i], "h2") == 0)
			return true;
	return false;
}

void conversation_read(const struct conn_facts *f, uint32_t after, size_t alert_len, size_t overhead,
		       struct conversation *out)
{
	struct conv_event evs[MAX_EVENTS];
	size_t n = collect(f, after, alert_len, evs), i;
	bool closed[2] = { false, false };
	int turn = -1;                  /* the side of the current turn */
	uint32_t last_us = 0, turn_largest = 0;
	struct timeval until = f->seen_until;
	bool h2_offered = client_offered_h2(&f->ch);

	memset(out, 0, sizeof(*out));
	out->http2 = strcmp(f->sh.alpn, "h2") == 0 || f->http2;
	for (i = 0; i < n; i++) {
		const struct conv_event *e = &evs[i];

		if (closed[e->from]) {
			/* after its own close a side says nothing new, but the
			 * server's FIN after its close_notify ends it */
			if (e->from == SIDE_SERVER && e->kind == EV_CLOSE && e->how != CONV_CLOSE_NOTIFY)
				out->server_ended = true;
			continue;
		}
		last_us = e->t_us;
		if (e->kind == EV_CLOSE) {
			if (e->from == SIDE_SERVER && e->how == CONV_CLOSE_NOTIFY)
				out->server_close_notify = true;
			if (e->from == SIDE_SERVER && e->how != CONV_CLOSE_NOTIFY)
				out->server_ended = true;
			closed[e->from] = true;
			if (!out->closed) {
				out->closed = true;
				out->first_closer = e->from;
				out->how = e->how;
				out->close_us = e->t_us;
			}
			continue;
		}
		if (e->from == SIDE_CLIENT) {
			if (e->len == overhead + 9)
				out->http2 = true;
			/* the client spoke again after a server turn of control
			 * frames only (HTTP/2's SETTINGS answer to its preface) */
			if (h2_offered && turn == SIDE_SERVER && turn_largest <= H2_CONTROL_MAX)
				out->http2 = true;
			if (turn != SIDE_CLIENT)
				out->requests++;
		} else if (out->requests == 0) {
			out->server_first++;
		} else {
			uint32_t size = e->len > overhead ? (uint32_t)(e->len - overhead) : 0;

			if (turn != SIDE_SERVER) {
				out->answers++;
				turn_largest = 0;
			}
			if (size > turn_largest)
				turn_largest = size;
			if (out->answers == 1) {
				uint32_t payload = e->len > overhead ? (uint32_t)(e->len - overhead) : 0;

				out->first_answer_records++;
				out->first_answer_bytes += payload;
				if (payload > out->first_answer_largest)
					out->first_answer_largest = payload;
				out->first_answer_end_us = e->t_us;
			}
		}
		if (e->from == SIDE_SERVER && out->requests == 0)
			continue;   /* before any request: not a turn of the exchange */
		turn = e->from;
	}
	out->more = f->dir[SIDE_CLIENT].n_enc_total > f->dir[SIDE_CLIENT].n_enc ||
		    f->dir[SIDE_SERVER].n_enc_total > f->dir[SIDE_SERVER].n_enc;
	if (timercmp(&f->last_ts, &until, >))
		until = f->last_ts;
	if (!out->closed) {
		uint32_t end = facts_us_since_start(f, &until);

		out->quiet_us = end > last_us ? end - last_us : 0;
	}
}

enum conv_outcome conversation_outcome(const struct conversation *c)
{
	bool server_closed_first = c->closed && c->first_closer == SIDE_SERVER;

	if (!c->http2 && (c->answers >= 2 || (c->more && c->answers >= 1 && !server_closed_first)))
		return CONV_WENT_ON;
	if (c->answers == 0)
		return CONV_UNKNOWN;
	/* a record larger than any error page: the request was served,
	 * whoever closes (tickets sent late share the turn, so the largest
	 * record counts, not the sum) */
	if (c->first_answer_largest > CONV_ANSWER_LARGE)
		return server_closed_first ? CONV_SERVED_CLOSE : CONV_WENT_ON;
	if (c->http2)
		return CONV_UNKNOWN;   /* streams and settings interleave, a refusal keeps the connection */
	if (!c->closed)
		return c->quiet_us >= CONV_QUIET_US ? CONV_WENT_ON : CONV_UNKNOWN;
	if (c->close_us >= c->first_answer_end_us && c->close_us - c->first_answer_end_us >= CONV_QUIET_US)
		return CONV_WENT_ON;   /* open that long after the answer: a refusal closes at once */
	if (!server_closed_first) {
		/* the client left first: a server that served it lets it go
		 * (nginx sends no close_notify then); one that answers the
		 * client's close with its own (Apache, HAProxy) cannot be told
		 * from nginx ending a refusal as the client's close crossed it */
		if (c->server_close_notify)
			return CONV_UNKNOWN;
		/* until the server's own end is seen, its close_notify may be
		 * on its way (a proxy reads the two sides apart) */
		return c->server_ended ? CONV_WENT_ON : CONV_UNKNOWN;
	}
	/* the server ended it, after one answer: it refused with an error
	 * page, or it closes after every answer (the client asked it to with
	 * HTTP/1.0 or Connection: close; gnutls-serv --http), which only the
	 * answer's size tells apart */
	if (conversation_error_page(c) && c->close_us - c->first_answer_end_us <= CONV_CLOSE_SOON_US)
		return CONV_REFUSED;
	return CONV_UNKNOWN;
}

bool conversation_error_page(const struct conversation *c)
{
	return c->answers >= 1 && c->first_answer_largest >= CONV_ERROR_PAGE_MIN &&
	       c->first_answer_largest <= CONV_ERROR_PAGE_MAX;
}

static const char *how_label(enum conv_close how)
{
	switch (how) {
	case CONV_CLOSE_NOTIFY: return "close_notify";
	case CONV_FIN: return "FIN";
	case CONV_RST: return "RST";
	case CONV_OPEN: break;
	}
	return "open";
}

static void delay_label(uint32_t us, char *buf, size_t len)
{
	if (us < 1000)
		evidence_snprintf(buf, len, "%u us", us);
	else if (us < 10000000)
		evidence_snprintf(buf, len, "%u ms", us / 1000);
	else
		evidence_snprintf(buf, len, "%u s", us / 1000000);
}

void conversation_describe(const struct conversation *c, char *buf, size_t len)
{
	char d[32];

	if (c->http2 && c->first_answer_largest <= CONV_ANSWER_LARGE && c->answers) {
		evidence_snprintf(buf, len, "HTTP/2: the server answered (%llu bytes first) and %s; over HTTP/2 nginx answers a refused certificate with 400 and keeps the connection, so the close order tells nothing",
			          (unsigned long long)c->first_answer_bytes,
			          !c->closed ? "the connection stayed open" : c->first_closer == SIDE_CLIENT ? "the client closed first" : "the server closed first");
		return;
	}

	if (c->answers == 0) {
		if (c->requests == 0)
			evidence_snprintf(buf, len, "the client sent no request after the handshake%s",
				          c->closed ? (c->first_closer == SIDE_CLIENT ? " and closed" : "; the server closed")
					            : "");
		else
			evidence_snprintf(buf, len, "the client sent %u request%s and the server did not answer%s", c->requests,
				          c->requests == 1 ? "" : "s",
				          c->closed && c->first_closer == SIDE_SERVER ? " before it closed" : "");
		return;
	}
	if (c->answers >= 2) {
		evidence_snprintf(buf, len, "the client sent %s request and got %s answer (%u exchanges): the server served the first",
			          c->answers == 2 ? "a second" : "further", c->answers == 2 ? "a second" : "further", c->answers);
		return;
	}
	if (!c->closed) {
		delay_label(c->quiet_us, d, sizeof(d));
		evidence_snprintf(buf, len, "the server answered once (%llu bytes) and the connection stayed open %s after it%s",
			          (unsigned long long)c->first_answer_bytes, d,
			          c->more ? ", with more records after" : "");
		return;
	}
	delay_label(c->close_us > c->first_answer_end_us ? c->close_us - c->first_answer_end_us : 0, d, sizeof(d));
	if (c->close_us >= c->first_answer_end_us && c->close_us - c->first_answer_end_us >= CONV_QUIET_US)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes) and the connection stayed open %s after it, until %s closed it (%s)",
			          (unsigned long long)c->first_answer_bytes, d, c->first_closer == SIDE_CLIENT ? "the client" : "the server",
			          how_label(c->how));
	else if (c->first_answer_largest > CONV_ANSWER_LARGE)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes, more than an error page); %s closed first, %s later (%s)",
			          (unsigned long long)c->first_answer_bytes, c->first_closer == SIDE_CLIENT ? "the client" : "the server",
			          d, how_label(c->how));
	else if (c->first_closer == SIDE_CLIENT && c->server_close_notify)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes); the client closed first, %s later (%s), and the server sent its own close_notify: a reply to that close, or a refusal's close crossing it",
			          (unsigned long long)c->first_answer_bytes, d, how_label(c->how));
	else if (c->first_closer == SIDE_CLIENT && c->server_ended)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes) and kept the connection open; the client closed first, %s later (%s), and the server only let it go",
			          (unsigned long long)c->first_answer_bytes, d, how_label(c->how));
	else if (c->first_closer == SIDE_CLIENT)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes); the client closed first, %s later (%s), and the server's own end is not seen",
			          (unsigned long long)c->first_answer_bytes, d, how_label(c->how));
	else if (c->first_answer_largest < CONV_ERROR_PAGE_MIN || c->first_answer_largest > CONV_ERROR_PAGE_MAX)
		evidence_snprintf(buf, len, "the server answered once (%llu bytes, not an error page's size) and closed first, %s later (%s): a server that closes after each answer looks the same",
			          (unsigned long long)c->first_answer_bytes, d, how_label(c->how));
	else
		evidence_snprintf(buf, len, "the server answered once (%llu bytes) and closed first, %s later (%s), before the client",
			          (unsigned long long)c->first_answer_bytes, d, how_label(c->how));
}
