/* ticket_tap: a connection's bytes kept for its evidence folder, and what
 * is made of them: the timeline of the handshake and handshake.pcap.
 *
 * What is application data is told record by record: below TLS 1.3 every
 * application_data record; in TLS 1.3 (where the handshake travels in
 * application_data records too) the client's protected records after its
 * Finished (told by size, as the verdict rules tell it) and the server's
 * after the client's flight began, except those of an alert's size.  Their
 * bodies become zeros; every record header and length stays, so the
 * sizes, order and times the verdict reads from are all still there. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/codes.h"
#include "out/pcapout.h"
#include "out/ticket_int.h"
#include "wire/tls.h"

/* ---- the tap ---- */

struct ticket_tap *ticket_tap_new(void)
{
	return calloc(1, sizeof(struct ticket_tap));
}

static struct tk_event *push(struct ticket_tap *t, enum tk_ev_kind kind, enum side from, const struct timeval *ts)
{
	struct tk_event *e;

	if (t->failed)
		return NULL;
	if (t->n_ev == t->cap_ev) {
		size_t cap = t->cap_ev ? t->cap_ev * 2 : 32;
		struct tk_event *grown = realloc(t->ev, cap * sizeof(*grown));

		if (!grown) {
			t->failed = true;
			return NULL;
		}
		t->ev = grown;
		t->cap_ev = cap;
	}
	e = &t->ev[t->n_ev++];
	memset(e, 0, sizeof(*e));
	e->kind = (uint8_t)kind;
	e->side = (uint8_t)from;
	if (ts)
		e->ts = *ts;
	return e;
}

void ticket_tap_data(struct ticket_tap *t, enum side from, const uint8_t *p, size_t n, const struct timeval *ts)
{
	struct tk_event *e;
	size_t keep;

	if (!t || n == 0 || (from != SIDE_CLIENT && from != SIDE_SERVER))
		return;
	keep = t->len[from] >= TK_TAP_MAX ? 0 : TK_TAP_MAX - t->len[from];
	if (keep > n)
		keep = n;
	if (keep < n)
		t->unkept[from] += n - keep;
	if (keep == 0)
		return;
	if (t->len[from] + keep > t->cap[from]) {
		size_t cap = t->cap[from] ? t->cap[from] : 4096;
		uint8_t *grown;

		while (cap < t->len[from] + keep)
			cap *= 2;
		if (!(grown = realloc(t->buf[from], cap))) {
			t->failed = true;
			return;
		}
		t->buf[from] = grown;
		t->cap[from] = cap;
	}
	if (!(e = push(t, TK_DATA, from, ts)))
		return;
	memcpy(t->buf[from] + t->len[from], p, keep);
	e->off = t->len[from];
	e->len = keep;
	t->len[from] += keep;
}

void ticket_tap_gap(struct ticket_tap *t, enum side from, size_t n, const struct timeval *ts)
{
	struct tk_event *e;

	if (t && n && (e = push(t, TK_GAP, from, ts)))
		e->len = n;
}

void ticket_tap_close(struct ticket_tap *t, enum side from, enum close_kind how, const struct timeval *ts)
{
	struct tk_event *e;

	if (t && (e = push(t, TK_CLOSE, from, ts)))
		e->how = (uint8_t)how;
}

void ticket_tap_free(struct ticket_tap *t)
{
	if (!t)
		return;
	free(t->ev);
	free(t->buf[0]);
	free(t->buf[1]);
	free(t);
}

/* ---- which records are application data ---- */

/* The tap event a stream offset of side `s` came in (its index). */
static size_t event_of(const struct ticket_tap *tap, int s, size_t off)
{
	for (size_t i = 0; i < tap->n_ev; i++) {
		const struct tk_event *e = &tap->ev[i];

		if (e->kind == TK_DATA && e->side == s && off >= e->off && off < e->off + e->len)
			return i;
	}
	return tap->n_ev;
}

/* Marks in zero[] the records of tap side s whose body is application data. */
static void mark_appdata(const struct tk_streams *st, const struct ticket_tap *tap, const struct conn_facts *f,
			 int s, bool *zero)
{
	const struct rec_index *ri = &st->ri[s];
	bool tls13 = f->sh.seen && f->sh.selected_version == TLS_V_1_3;
	size_t fin = 0, alert = 0, empty = 0, i;

	if (!tls13) {
		for (i = 0; i < ri->n; i++)
			zero[i] = ri->recs[i].type == TLS_CT_APPLICATION_DATA;
		return;
	}
	verdict_tls13_sizes(f->sh.cipher, &fin, &alert, &empty);
	if (st->role[s] == SIDE_CLIENT) {
		/* the flight ends with the Finished; without one of its size,
		 * the first three protected records (Certificate,
		 * CertificateVerify, Finished) are taken for the flight */
		size_t seen = 0, flight = 3;

		for (i = 0; i < ri->n; i++) {
			if (ri->recs[i].type != TLS_CT_APPLICATION_DATA)
				continue;
			if (ri->recs[i].len == fin) {
				flight = seen + 1;
				break;
			}
			seen++;
		}
		seen = 0;
		for (i = 0; i < ri->n; i++) {
			if (ri->recs[i].type != TLS_CT_APPLICATION_DATA)
				continue;
			zero[i] = ++seen > flight && ri->recs[i].len != alert;
		}
	} else {
		/* the server's flight: what it sent before the client's
		 * protected flight began */
		int c = 1 - s;
		size_t client_first = tap->n_ev;

		for (i = 0; i < st->ri[c].n; i++)
			if (st->ri[c].recs[i].type == TLS_CT_APPLICATION_DATA) {
				client_first = event_of(tap, c, st->ri[c].recs[i].offset);
				break;
			}
		for (i = 0; i < ri->n; i++) {
			if (ri->recs[i].type != TLS_CT_APPLICATION_DATA)
				continue;
			zero[i] = event_of(tap, s, ri->recs[i].offset) > client_first && ri->recs[i].len != alert;
		}
	}
}

int tk_streams_prepare(struct tk_streams *st, const struct ticket_tap *tap, const struct conn_facts *f,
		       bool keep_data, const struct tk_redact *r)
{
	bool tls13 = f->sh.seen && f->sh.selected_version == TLS_V_1_3;

	memset(st, 0, sizeof(*st));
	st->role[SIDE_CLIENT] = f->roles_swapped ? SIDE_SERVER : SIDE_CLIENT;
	st->role[SIDE_SERVER] = f->roles_swapped ? SIDE_CLIENT : SIDE_SERVER;
	for (int s = 0; s < 2; s++) {
		st->len[s] = tap->len[s];
		if (!(st->buf[s] = malloc(tap->len[s] ? tap->len[s] : 1)))
			return 0;
		if (tap->len[s])
			memcpy(st->buf[s], tap->buf[s], tap->len[s]);
		/* after a preamble (STARTTLS, CONNECT) the records start later;
		 * the preamble is kept, an HTTP head without its header lines */
		st->start[s] = f->preamble != PREAMBLE_NONE ? rec_find_start(st->buf[s], st->len[s]) : 0;
		if (f->preamble == PREAMBLE_HTTP_CONNECT && !keep_data)
			rec_blank_http_headers(st->buf[s], st->start[s]);
		if (!rec_index_build(&st->ri[s], st->buf[s] + st->start[s], st->len[s] - st->start[s], tls13, SIZE_MAX))
			return 0;
		for (size_t i = 0; i < st->ri[s].n; i++)
			st->ri[s].recs[i].offset += st->start[s];
		st->ri[s].framed_until += st->start[s];
		if (!(st->zeroed[s] = calloc(st->ri[s].n + 1, sizeof(bool))))
			return 0;
	}
	for (int s = 0; s < 2; s++) {
		const struct rec_index *ri = &st->ri[s];

		if (!keep_data) {
			mark_appdata(st, tap, f, s, st->zeroed[s]);
			for (size_t i = 0; i < ri->n; i++) {
				const struct rec_entry *e = &ri->recs[i];
				size_t body = e->offset + 5, n = e->len;

				if (!st->zeroed[s][i])
					continue;
				if (body > st->len[s])
					continue;
				if (n > st->len[s] - body)
					n = st->len[s] - body;
				memset(st->buf[s] + body, 0, n);
				st->n_zeroed++;
			}
			/* what is not TLS records (a preamble, a lost framing) may be anything */
			if (ri->lost)
				memset(st->buf[s] + ri->framed_until, 0, st->len[s] - ri->framed_until);
		}
		if (r)
			tk_redact_bytes(r, st->buf[s], st->len[s]);
	}
	return 1;
}

void tk_streams_free(struct tk_streams *st)
{
	for (int s = 0; s < 2; s++) {
		free(st->buf[s]);
		free(st->zeroed[s]);
		rec_index_free(&st->ri[s]);
	}
	memset(st, 0, sizeof(*st));
}

/* ---- the timeline ---- */

/* A new step of the timeline, zeroed but for who and when; NULL when
 * memory ran out. */
static struct tk_step *new_step(struct tk_step **steps, size_t *n, size_t *cap, enum side from,
				const struct conn_facts *f, const struct timeval *ts)
{
	struct tk_step *step;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct tk_step *grown = realloc(*steps, ncap * sizeof(*grown));

		if (!grown)
			return NULL;
		*steps = grown;
		*cap = ncap;
	}
	step = &(*steps)[(*n)++];
	memset(step, 0, sizeof(*step));
	step->from = from;
	step->t_us = facts_us_since_start(f, ts);
	return step;
}

static void describe_record(const struct tk_streams *st, const struct conn_facts *f, int s, size_t i,
			    struct tk_step *step)
{
	const struct rec_entry *e = &st->ri[s].recs[i];
	bool tls13 = f->sh.seen && f->sh.selected_version == TLS_V_1_3;
	size_t fin = 0, alert = 0, empty = 0, used = 0;
	char buf[32];

	verdict_tls13_sizes(f->sh.cipher, &fin, &alert, &empty);
	step->bytes = 5u + e->len;
	switch (e->type) {
	case TLS_CT_HANDSHAKE:
		if (e->protected_) {
			step->kind = ST_PROTECTED;
			snprintf(step->what, sizeof(step->what), "encrypted handshake (Finished)");
			break;
		}
		step->kind = ST_HANDSHAKE;
		for (size_t k = 0; k < e->n_msgs && used < sizeof(step->what); k++) {
			const char *name = rec_hs_name(e->msgs[k], buf, sizeof(buf));

			used += (size_t)snprintf(step->what + used, sizeof(step->what) - used, "%s%s", k ? ", " : "", name);
			if (e->msgs[k] == TLS_HS_CERTIFICATE && st->role[s] == SIDE_CLIENT && e->msg_len[k] <= 4) {
				step->no_cert = true;
				if (used < sizeof(step->what))
					used += (size_t)snprintf(step->what + used, sizeof(step->what) - used, " (empty)");
			}
		}
		if (!e->n_msgs)
			snprintf(step->what, sizeof(step->what), "handshake (continued)");
		break;
	case TLS_CT_CHANGE_CIPHER_SPEC:
		step->kind = ST_CCS;
		snprintf(step->what, sizeof(step->what), "ChangeCipherSpec");
		break;
	case TLS_CT_ALERT:
		step->kind = ST_ALERT;
		if (e->alert_level > 0) {
			step->refusal = e->alert_level == 2;
			snprintf(step->what, sizeof(step->what), "alert %s %s", e->alert_level == 2 ? "fatal" : "warning",
				 tls_alert_name(e->alert_desc));
		} else {
			snprintf(step->what, sizeof(step->what), "alert (encrypted)");
		}
		break;
	case TLS_CT_APPLICATION_DATA:
		if (!tls13) {
			step->kind = ST_APPDATA;
			snprintf(step->what, sizeof(step->what), "application data%s", st->zeroed[s][i] ? " (zeroed)" : "");
		} else if (st->zeroed[s][i]) {
			step->kind = ST_APPDATA;
			snprintf(step->what, sizeof(step->what), "application data (zeroed)");
		} else if (e->len == alert) {
			step->kind = ST_ALERT;
			snprintf(step->what, sizeof(step->what), "encrypted alert (by its size)");
		} else if (st->role[s] == SIDE_CLIENT && e->len == empty) {
			step->kind = ST_PROTECTED;
			step->no_cert = true;
			snprintf(step->what, sizeof(step->what), "encrypted Certificate, empty (by its size)");
		} else if (st->role[s] == SIDE_CLIENT && e->len == fin) {
			step->kind = ST_PROTECTED;
			snprintf(step->what, sizeof(step->what), "encrypted Finished (by its size)");
		} else {
			step->kind = ST_PROTECTED;
			snprintf(step->what, sizeof(step->what), "encrypted handshake");
		}
		break;
	default:
		step->kind = ST_APPDATA;
		snprintf(step->what, sizeof(step->what), "record of type %u", e->type);
		break;
	}
}

int tk_timeline(const struct tk_streams *st, const struct ticket_tap *tap, const struct conn_facts *f,
		struct tk_step **steps, size_t *n)
{
	size_t cap = 0, next[2] = { 0, 0 };

	*steps = NULL;
	*n = 0;
	for (size_t i = 0; i < tap->n_ev; i++) {
		const struct tk_event *ev = &tap->ev[i];
		int s = ev->side;
		struct tk_step *step;

		if (ev->kind == TK_DATA) {
			const struct rec_index *ri = &st->ri[s];

			/* the records that begin in this segment */
			for (; next[s] < ri->n && ri->recs[next[s]].offset < ev->off + ev->len; next[s]++) {
				if (!(step = new_step(steps, n, &cap, st->role[s], f, &ev->ts)))
					return 0;
				describe_record(st, f, s, next[s], step);
			}
			if (ri->lost && ri->framed_until >= ev->off && ri->framed_until < ev->off + ev->len) {
				if (!(step = new_step(steps, n, &cap, st->role[s], f, &ev->ts)))
					return 0;
				step->kind = ST_APPDATA;
				step->bytes = (uint32_t)(st->len[s] - ri->framed_until);
				snprintf(step->what, sizeof(step->what), "bytes that are not TLS records (zeroed)");
			}
			continue;
		}
		if (!(step = new_step(steps, n, &cap, st->role[s], f, &ev->ts)))
			return 0;
		if (ev->kind == TK_GAP) {
			step->kind = ST_GAP;
			step->bytes = (uint32_t)ev->len;
			snprintf(step->what, sizeof(step->what), "%zu bytes not captured", ev->len);
		} else {
			step->kind = ST_CLOSE;
			step->refusal = ev->how == CLOSE_RST;
			snprintf(step->what, sizeof(step->what), "%s",
				 ev->how == CLOSE_RST ? "TCP reset (RST)" : ev->how == CLOSE_FIN ? "TCP close (FIN)" :
				 ev->how == CLOSE_TIMEOUT ? "went idle" : "end of input");
		}
	}
	return 1;
}

/* ---- handshake.pcap ---- */

int tk_pcap_write(const char *path, mode_t mode, const struct ticket_tap *tap, const struct tk_streams *st,
		  const struct conn_facts *f, const struct tk_redact *r, char *err, size_t errlen)
{
	struct endpoint ep[2];
	struct pcapout *po;
	struct pcapout_conn *c;
	uint64_t lost;
	int error = 0;
	bool closed[2] = { false, false };

	/* the tap's sides: the one that opened the connection first */
	ep[SIDE_CLIENT] = f->roles_swapped ? f->server : f->client;
	ep[SIDE_SERVER] = f->roles_swapped ? f->client : f->server;
	if (r) {
		for (int s = 0; s < 2; s++)
			snprintf(ep[s].ip, sizeof(ep[s].ip), "%s", tk_redact_one(r, ep[s].ip));
	}
	if (!(po = pcapout_open(path, mode, err, errlen)))
		return -1;
	c = f->saw_syn ? pcapout_conn_new(po, &ep[SIDE_CLIENT], &ep[SIDE_SERVER], &f->first_ts) :
			 pcapout_conn_midstream(po, &ep[SIDE_CLIENT], &ep[SIDE_SERVER]);
	if (!c) {
		pcapout_close_file(po);
		snprintf(err, errlen, "%s: the addresses cannot be written as a capture", path);
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < tap->n_ev; i++) {
		const struct tk_event *ev = &tap->ev[i];

		switch (ev->kind) {
		case TK_DATA:
			pcapout_data(c, ev->side, st->buf[ev->side] + ev->off, ev->len, &ev->ts);
			break;
		case TK_GAP:
			pcapout_skip(c, ev->side, ev->len);
			break;
		case TK_CLOSE:
			/* what was not kept goes before the close, as a hole */
			if (!closed[ev->side] && tap->unkept[ev->side])
				pcapout_skip(c, ev->side, tap->unkept[ev->side]);
			closed[ev->side] = true;
			pcapout_close(c, ev->side, ev->how, &ev->ts);
			break;
		}
	}
	pcapout_conn_free(c);
	(void)pcapout_flush(po);
	lost = pcapout_lost(po, &error);
	pcapout_close_file(po);
	if (lost) {
		snprintf(err, errlen, "%s: %s", path, strerror(error ? error : EIO));
		errno = error ? error : EIO;
		return -1;
	}
	return 0;
}
