/* observer: one connection's state machine, from stream bytes to facts,
 * and the single place its verdict is decided (obs_conn_finish). */
#include "config.h"

#include "analysis/observer.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "wire/capture.h"
#include "analysis/chain.h"
#include "wire/cursor.h"
#include "wire/decrypt.h"
#include "wire/http1.h"
#include "wire/http2.h"
#include "wire/keylog.h"
#include "wire/preamble.h"
#include "wire/slab.h"
#include "wire/tls.h"
#include "wire/tls_msgs.h"
#include "wire/x509info.h"

/* How far into a capture that started mid-connection we look for a record
 * boundary before giving up on a side. */
#define RESYNC_MAX 65536
/* With a key log: the first decrypted bytes each way that are read for
 * the HTTP request line and the answer's status and title. */
#define HTTP_HEAD_CLIENT 2048
#define HTTP_HEAD_SERVER 8192
/* Protected records held while a followed key log lacks their secret. */
#define PENDING_MAX (256 * 1024)
/* With a key log, records read at most (both ways) waiting for the answer. */
#define DECRYPT_RECORDS_MAX 128

/* A protected record held until its secret is in the key log. */
struct pending_rec {
	struct pending_rec *next;
	enum side tap;
	uint8_t type;
	uint16_t version;
	uint16_t len;
	uint8_t body[];
};

enum side_state {
	SS_PREAMBLE,   /* plaintext before TLS, or not yet known */
	SS_RESYNC,     /* joined mid-stream: looking for a record boundary */
	SS_TLS,        /* framing TLS records */
	SS_IDLE,       /* nothing more to learn from this side's bytes */
};

struct obs_conn {
	/* At creation: the facts made empty (facts_clear), cfg copied, what
	 * follows zero from st up to abandon_why, which is made empty. */
	struct conn_facts f;
	struct observer_config cfg;
	enum side_state st[2];      /* by tap side: SIDE_CLIENT is the initiator */
	uint8_t *held[2];           /* preamble or resync bytes, by tap side */
	size_t held_len[2];
	size_t resync_seen[2];      /* where the next resync scan starts */
	size_t resync_need[2];      /* held bytes needed to decide the candidate at resync_seen */
	bool swapped;               /* the initiator is the TLS server */
	bool roles_known;
	struct ca_list *ca;         /* the CertificateRequest's CA names, shared */
	struct chain_report *chain; /* the client chain's checks, when it sent one */
	struct decrypt *dec;        /* with a key log, from the ServerHello on */
	uint8_t client_random[32];  /* of the ClientHello the ServerHello answers (the
				     * second after a HelloRetryRequest): names the key log entry */
	struct pending_rec *pend, **pend_tail;
	size_t pend_bytes;
	uint8_t *http[2];           /* by role: the first decrypted bytes, until read */
	size_t http_len[2];
	bool http_done[2];
	bool finished;              /* obs_conn_end */
	bool decided;               /* obs_conn_decide */
	bool early_decided;         /* obs_conn_early_verdict has decided */
	bool settled_asked;         /* the sink's settled callback had the verdict */
	bool settled_told;          /* ... and the front end said it */
	bool over_budget;           /* a message needed more than cfg.max_buffered */
	size_t over_budget_need;    /* the bytes it would have held */
	bool abandoned;             /* the front end stopped the observing */
	/* The verdict: d's, or once shrunk one allocated at the finish (NULL
	 * until then). */
	struct verdict *v;
	struct obs_scratch *d;      /* NULL once shrunk (obs_conn_shrink) */
	char abandon_why[VERDICT_EVIDENCE_LEN];
	/* last: not zeroed at creation, chain_check fills it */
	struct chain_report chain_storage; /* `chain` points here once there is one */
};

/* What obs_conn_shrink gives back once the verdict is said and only the
 * finish is to come: the record layers' and the preamble's state (freed
 * by then) and the early verdict, which the finish decides again from the
 * facts.  About 4.5 KiB. */
struct obs_scratch {
	struct tls_dir tls[2];      /* by tap side */
	struct preamble pre;
	struct verdict verdict;     /* not zeroed at creation: decide fills it */
};

/* A shrunk connection's verdict when none could be allocated at its finish. */
static _Thread_local struct verdict oom_verdict;

/* Connection objects of several kilobytes come and go at the rate of the
 * capture's connections: a few are kept for the next ones. */
#define POOL_SPARES 64

/* With a pool, the connections and their scratch come from slabs (huge
 * pages where the system allows: slab.h), and go back to them. */
struct obs_pool {
	size_t n;
	struct obs_conn *spare[POOL_SPARES];
	struct slab *conns, *scratch;
};

struct obs_pool *obs_pool_new(void)
{
	struct obs_pool *p = calloc(1, sizeof(struct obs_pool));

	if (p && (!(p->conns = slab_new(sizeof(struct obs_conn))) ||
		  !(p->scratch = slab_new(sizeof(struct obs_scratch))))) {
		obs_pool_free(p);
		return NULL;
	}
	return p;
}

void obs_pool_free(struct obs_pool *p)
{
	if (!p)
		return;
	/* the spares, and every connection given back, go with the slabs */
	slab_free(p->scratch);
	slab_free(p->conns);
	free(p);
}

/* Memory of `size` bytes from the pool's slab, or malloc's without a pool. */
static void *pool_get(struct slab *slab, size_t size)
{
	return slab ? slab_get(slab) : malloc(size);
}

static void pool_put(struct slab *slab, void *p)
{
	if (slab)
		slab_put(slab, p);
	else
		free(p);
}

#define CONNS(pool) ((pool) ? (pool)->conns : NULL)
#define SCRATCH(pool) ((pool) ? (pool)->scratch : NULL)

struct tls_cb {
	struct obs_conn *c;
	enum side tap;
};

static enum side role_of(const struct obs_conn *c, enum side tap)
{
	return c->swapped ? (enum side)!tap : tap;
}

/* How the server verifies: the front end's policy, or one made of
 * --ca-bundle alone (in tmp). */
static const struct chain_policy *chain_policy_of(const struct obs_conn *c, struct chain_policy *tmp)
{
	if (c->cfg.chain_policy)
		return c->cfg.chain_policy;
	chain_policy_init(tmp);
	tmp->bundle = c->cfg.ca_bundle;
	return tmp;
}

/* The server kind --server-kind names, or SK_UNKNOWN. */
static enum server_kind kind_told(const struct obs_conn *c)
{
	return c->cfg.chain_policy ? c->cfg.chain_policy->server_kind : SK_UNKNOWN;
}

static time_t check_time(const struct obs_conn *c, const struct timeval *ts)
{
	return c->cfg.at_set ? c->cfg.at : ts->tv_sec;
}

static void __attribute__((format(printf, 2, 3)))
note_error(struct obs_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->f.decode_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->f.decode_error, sizeof(c->f.decode_error), fmt, ap);
	va_end(ap);
}

struct obs_conn *obs_conn_new(const struct observer_config *cfg,
			      const struct endpoint *initiator,
			      const struct endpoint *responder,
			      const struct timeval *ts, bool saw_syn)
{
	struct obs_pool *pool = cfg->pool;
	bool spare = pool && pool->n;
	struct obs_conn *c = spare ? pool->spare[--pool->n] : pool_get(CONNS(pool), sizeof(*c));
	struct obs_scratch *d;

	if (!c)
		return NULL;
	d = spare ? c->d : NULL;   /* a spare keeps its own */
	if (!d && !(d = pool_get(SCRATCH(pool), sizeof(*d)))) {
		pool_put(CONNS(pool), c);
		return NULL;
	}
	facts_clear(&c->f);
	c->cfg = *cfg;
	memset(&c->st, 0, offsetof(struct obs_conn, abandon_why) - offsetof(struct obs_conn, st));
	c->abandon_why[0] = '\0';
	c->d = d;
	c->v = &d->verdict;
	c->v->code = V_INCOMPLETE;
	c->v->n_evidence = 0;
	c->f.client = *initiator;
	c->f.server = *responder;
	c->f.first_ts = c->f.last_ts = c->f.seen_until = *ts;
	c->f.saw_syn = saw_syn;
	c->f.endpoint = cfg->endpoint;
	tls_dir_init(&c->d->tls[0]);
	tls_dir_init(&c->d->tls[1]);
	preamble_init(&c->d->pre);
	c->st[0] = c->st[1] = saw_syn ? SS_PREAMBLE : SS_RESYNC;
	return c;
}

/* The side that sent the first ClientHello is the TLS client. */
static void set_roles(struct obs_conn *c, enum side tls_client_tap)
{
	if (c->roles_known)
		return;
	c->roles_known = true;
	if (tls_client_tap == SIDE_SERVER) {
		struct endpoint e = c->f.client;
		struct direction_facts d = c->f.dir[0];

		c->swapped = true;
		c->f.roles_swapped = true;
		c->f.client = c->f.server;
		c->f.server = e;
		c->f.dir[0] = c->f.dir[1];
		c->f.dir[1] = d;
	}
}

/* Summarizes the message's certificates into out->certs, one entry each,
 * up to FACTS_MAX_CHAIN_KEPT (beyond, out->n is less than out->n_on_wire).
 * keep[i] gets a reference to certificate i and ids[i] its cache id (NULL
 * and 0 when it could not be had); both may be NULL when not wanted.
 * Returns 0 when memory ran out: out->n is then less than out->n_on_wire,
 * a cut chain, which is never judged. */
static int summarize_chain(struct obs_conn *c, const struct cert_list *list,
			   struct cert_chain *out, X509 **keep, uint64_t *ids)
{
	struct cursor it = list->certs, der;
	size_t i, kept = list->n_total < FACTS_MAX_CHAIN_KEPT ? list->n_total : FACTS_MAX_CHAIN_KEPT;
	uint64_t local[CERT_CHAIN_SHARED];
	struct cert_info *made;

	out->n = 0;
	out->n_on_wire = list->n_total;
	out->wire_len = list->list_len;
	out->certs = NULL;
	if (!kept)
		return list->n_total == 0;
	if (!ids && kept <= CERT_CHAIN_SHARED)
		ids = local;
	/* the cache's entries first: their ids name the chain, whose
	 * summaries other connections may have made already */
	for (i = 0; i < kept && tls_cert_list_next(list, &it, &der); i++) {
		const struct cached_cert *cc = cert_cache_get(c->cfg.certs, cursor_data(&der), cursor_len(&der));

		if (ids)
			ids[i] = cc ? cc->id : 0;
		if (keep && cc && cc->x509) {
			keep[i] = cc->x509;
			X509_up_ref(keep[i]);
		}
	}
	if (i == kept && ids && (out->certs = cert_cache_chain_find(c->cfg.certs, ids, kept))) {
		out->n = kept;
		return out->n == out->n_on_wire;
	}
	if (!(made = cert_cache_chain_new(c->cfg.certs, i == kept ? ids : NULL, kept)))
		return 0;
	out->certs = made;
	it = list->certs;
	for (i = 0; i < kept && tls_cert_list_next(list, &it, &der); i++) {
		const struct cached_cert *cc = cert_cache_get(c->cfg.certs, cursor_data(&der), cursor_len(&der));

		if (!cc)
			made[out->n++].parse_failed = true;
		else
			made[out->n++] = cc->info;
	}
	return out->n == out->n_on_wire;
}

static void on_certificate(struct obs_conn *c, enum side role, const struct cursor *body,
			   bool decrypted, const struct timeval *ts)
{
	struct cert_list list;
	X509 **certs = NULL;
	uint64_t *ids = NULL;
	bool tls13 = c->f.sh.selected_version == TLS_V_1_3;
	size_t i;

	if (!tls_parse_certificate(body, tls13, &list)) {
		note_error(c, "malformed %s Certificate message", role == SIDE_CLIENT ? "client" : "server");
		return;
	}
	if (role == SIDE_SERVER) {
		if (c->f.server_cert_seen)
			return;
		c->f.server_cert_seen = true;
		if (!summarize_chain(c, &list, &c->f.server_chain, NULL, NULL))
			note_error(c, "out of memory for the server's %zu certificates", list.n_total);
		else if (list.n_total > FACTS_MAX_CHAIN_KEPT)
			note_error(c, "the server sent %zu certificates: the first %d are kept", list.n_total,
				   FACTS_MAX_CHAIN_KEPT);
		return;
	}
	if (c->f.client_cert_seen)
		return;   /* renegotiation: the first answer is the one that matters */
	c->f.client_cert_seen = true;
	c->f.client_cert_empty = list.n_total == 0;
	c->f.client_cert_decrypted = decrypted;
	c->f.client_cert_seq = c->f.seq;
	if (list.n_total == 0 || list.n_total > FACTS_MAX_CHAIN_KEPT) {
		/* nothing to judge, or more than any server verifies */
		(void)summarize_chain(c, &list, &c->f.client_chain, NULL, NULL);
		if (list.n_total)
			note_error(c, "the client sent %zu certificates: the first %d are kept and the chain is not judged (no server verifies that deep)",
				   list.n_total, FACTS_MAX_CHAIN_KEPT);
		return;
	}
	certs = calloc(list.n_total, sizeof(*certs));
	ids = calloc(list.n_total, sizeof(*ids));
	/* a chain with a certificate missing would be judged for what it
	 * lacks: only a whole one is */
	if (!summarize_chain(c, &list, &c->f.client_chain, certs, ids) || !certs || !ids) {
		note_error(c, "out of memory for the client's %zu certificates: the chain is not judged",
			   list.n_total);
		goto Exit;
	}
	{
		X509_NAME *names[FACTS_MAX_CA_NAMES];
		struct chain_policy pol;
		size_t n = 0;

		for (i = 0; c->ca && i < c->ca->n; i++)
			if (c->ca->names[i])
				names[n++] = c->ca->names[i];
		c->chain = &c->chain_storage;
		chain_check_memo(c->cfg.chains, ids, c->ca ? c->ca->id : 0, certs, list.n_total,
				 names, n, check_time(c, ts), chain_policy_of(c, &pol), !c->cfg.no_evidence, c->chain);
	}
Exit:
	for (i = 0; certs && i < list.n_total; i++)
		X509_free(certs[i]);
	free(certs);
	free(ids);
}

static void on_cert_request(struct obs_conn *c, const struct cursor *body, bool decrypted)
{
	struct cert_request_wire wire;
	bool tls13 = c->f.sh.selected_version == TLS_V_1_3;

	if (c->f.cr.seen) {
		if (tls13 && c->f.dir[SIDE_CLIENT].finished_seen)
			c->f.cr.post_handshake = true;
		return;
	}
	/* 1.3 post-handshake authentication (RFC 8446 4.6.2): a request
	 * after the client's Finished, readable only with a key log */
	if (tls13 && c->f.dir[SIDE_CLIENT].finished_seen)
		c->f.cr.post_handshake = true;
	if (!tls_parse_cert_request(body, tls13 ? TLS_V_1_3 : c->f.sh.selected_version, &c->f.cr, &wire)) {
		note_error(c, "malformed %s", "CertificateRequest");
		return;
	}
	c->f.cr.seen = true;
	c->f.cr.seq = c->f.seq;
	c->f.cr.decrypted = decrypted;
	c->f.cr.n_ca_names_on_wire = wire.n_ca_total;
	if (wire.n_ca == 0)
		return;
	c->ca = cert_cache_ca_list(c->cfg.certs, cursor_data(&wire.ca_vector), cursor_len(&wire.ca_vector),
				   wire.ca_der, wire.n_ca);
	if (c->ca) {
		c->f.cr.ca_names = (const char (*)[256])c->ca->text;
		c->f.cr.n_ca_names = c->ca->n;
	}
}

/* ---- with a key log ---- */

static void set_keep_protected(struct obs_conn *c)
{
	enum side tap;

	for (tap = SIDE_CLIENT; tap <= SIDE_SERVER; tap++) {
		enum side role = role_of(c, tap);

		c->d->tls[tap].keep_protected = c->dec && decrypt_live(c->dec, role) &&
					     (!decrypt_waiting(c->dec, role) || c->cfg.keylog_wait);
	}
}

static void start_decrypt(struct obs_conn *c)
{
	if (!c->cfg.keylog || c->dec)
		return;
	c->dec = decrypt_new(c->cfg.keylog, c->client_random, &c->f.sh);
	set_keep_protected(c);
}

/* What the decoders hold besides side tap's handshake reassembly. */
static size_t held_besides(const struct obs_conn *c, enum side tap)
{
	return c->held_len[0] + c->held_len[1] + tls_dir_buffered(&c->d->tls[!tap]) +
	       (c->d->tls[tap].rec_protected ? c->d->tls[tap].rec_have : 0);
}

/* A message needed more than the budget: nothing more is decoded, and
 * the decoders' buffers are freed as the feed returns (not from inside
 * the record layer's callbacks, which may be reading them). */
static void went_over_budget(struct obs_conn *c, size_t need)
{
	if (c->over_budget)
		return;
	c->over_budget = true;
	c->over_budget_need = need;
}

/* Side tap's reassembly gets what the rest of the budget leaves.  False
 * when nothing is left. */
static bool budget_room(struct obs_conn *c, enum side tap)
{
	size_t others;

	if (c->over_budget)
		return false;
	if (!c->cfg.max_buffered)
		return true;
	others = held_besides(c, tap);
	if (others >= c->cfg.max_buffered) {
		went_over_budget(c, others + c->d->tls[tap].hs_len + 1);
		return false;
	}
	c->d->tls[tap].hs_max = c->cfg.max_buffered - others;
	return true;
}

static void on_tls_event(void *ctx, const struct tls_event *ev);

/* A protected record that will not be opened still counts as it would
 * without a key log: below 1.3 an alert record is an encrypted alert. */
static void not_opened(struct obs_conn *c, enum side tap, uint8_t type, uint16_t version, uint16_t len)
{
	struct tls_cb cb = { c, tap };
	struct tls_event ev = { .kind = TLS_EV_ALERT };

	if (type != TLS_CT_ALERT) {
		c->f.dir[role_of(c, tap)].undecrypted++;
		return;
	}
	ev.content_type = type;
	ev.record_version = version;
	ev.record_len = len;
	ev.encrypted = true;
	on_tls_event(&cb, &ev);
}

static void hold_protected(struct obs_conn *c, enum side tap, const struct tls_event *ev)
{
	struct pending_rec *p = malloc(sizeof(*p) + cursor_len(&ev->body));
	struct cursor body = ev->body;

	if (!p || !cursor_copy_bytes(&body, p->body, cursor_len(&ev->body))) {
		free(p);
		not_opened(c, tap, ev->content_type, ev->record_version, ev->record_len);
		return;
	}
	p->next = NULL;
	p->tap = tap;
	p->type = ev->content_type;
	p->version = ev->record_version;
	p->len = (uint16_t)cursor_len(&ev->body);
	if (!c->pend_tail)
		c->pend_tail = &c->pend;
	*c->pend_tail = p;
	c->pend_tail = &p->next;
	c->pend_bytes += p->len;
}

/* Opens one protected record and feeds its plaintext back to the record
 * layer.  Returns false when it must wait for its secret. */
static bool open_record(struct obs_conn *c, enum side tap, uint8_t type, uint16_t version,
			const struct cursor *body, bool may_wait)
{
	enum side role = role_of(c, tap);
	struct tls_cb cb = { c, tap };
	struct cursor plain;
	uint8_t inner = 0;

	switch (decrypt_open(c->dec, role, type, version, body, &plain, &inner)) {
	case DR_OK:
		c->f.dir[role].decrypted++;
		if (!budget_room(c, tap))
			return true;
		if (!tls_dir_plaintext(&c->d->tls[tap], inner, &plain, on_tls_event, &cb)) {
			if (c->d->tls[tap].over_budget)
				went_over_budget(c, held_besides(c, tap) + c->d->tls[tap].hs_refused);
			else
				note_error(c, "TLS framing lost: %s", c->d->tls[tap].error);
		}
		return true;
	case DR_NO_KEY:
		if (may_wait && c->cfg.keylog_wait && c->pend_bytes < PENDING_MAX)
			return false;
		break;
	case DR_BAD:
	case DR_OFF:
		break;
	}
	not_opened(c, tap, type, version, (uint16_t)cursor_len(body));
	set_keep_protected(c);
	return true;
}

/* Opens the held records, in the order they came, as far as the key log
 * now allows; `last`: no secret will come any more. */
static void drain_pending(struct obs_conn *c, bool last)
{
	if (!c->pend)
		return;
	decrypt_retry(c->dec);
	while (c->pend) {
		struct pending_rec *p = c->pend;
		struct cursor body;

		cursor_init(&body, p->body, p->len);
		if (!open_record(c, p->tap, p->type, p->version, &body, !last))
			return;
		c->pend = p->next;
		if (!c->pend)
			c->pend_tail = &c->pend;
		c->pend_bytes -= p->len;
		free(p);
	}
	set_keep_protected(c);
}

static void on_protected(struct obs_conn *c, enum side tap, const struct tls_event *ev)
{
	if (!c->dec) {
		not_opened(c, tap, ev->content_type, ev->record_version, ev->record_len);
		return;
	}
	/* behind records still waiting: keep the order */
	if (c->pend || !open_record(c, tap, ev->content_type, ev->record_version, &ev->body, true))
		hold_protected(c, tap, ev);
}

static void http_read(struct obs_conn *c, enum side role, bool complete)
{
	struct cursor head;
	enum http1_result r;

	cursor_init(&head, c->http[role], c->http_len[role]);
	if (role == SIDE_CLIENT) {
		r = http2_client_preface(&head);
		if (r == HTTP1_DONE)
			c->f.http2 = true;
		else if (r == HTTP1_NOT_HTTP)
			r = http1_request_line(&head, c->f.http_request, sizeof(c->f.http_request));
		if (r == HTTP1_DONE && !c->cfg.keep_query)
			http1_redact_query(c->f.http_request, sizeof(c->f.http_request));
		if (r == HTTP1_NOT_HTTP)
			c->f.http_request[0] = '\0';
	} else {
		struct http1_response resp;

		if (c->f.http2 || strcmp(c->f.sh.alpn, "h2") == 0 || http2_server_preface(&head)) {
			c->f.http2 = true;
			r = http2_response(&head, complete, &resp);
		} else {
			r = http1_response(&head, complete, &resp);
		}
		if (r == HTTP1_DONE) {
			c->f.http_status = resp.status;
			snprintf(c->f.http_reason, sizeof(c->f.http_reason), "%s", resp.reason);
			snprintf(c->f.http_title, sizeof(c->f.http_title), "%s", resp.title);
			snprintf(c->f.http_server, sizeof(c->f.http_server), "%s", resp.server);
		}
	}
	if (r == HTTP1_MORE && !complete)
		return;
	/* read: only the fields above are kept, never the bytes */
	c->http_done[role] = true;
	free(c->http[role]);
	c->http[role] = NULL;
	c->http_len[role] = 0;
}

/* Decrypted application data: its first bytes are read for HTTP. */
static void on_appdata(struct obs_conn *c, enum side role, const struct cursor *data)
{
	size_t cap = role == SIDE_CLIENT ? HTTP_HEAD_CLIENT : HTTP_HEAD_SERVER, take;
	struct cursor src = *data;

	if (!c->f.dir[role].first_app_seq)
		c->f.dir[role].first_app_seq = c->f.seq;
	if (c->http_done[role] || cursor_len(data) == 0)
		return;
	if (!c->http[role] && !(c->http[role] = malloc(cap))) {
		c->http_done[role] = true;
		return;
	}
	take = cap - c->http_len[role] < cursor_len(data) ? cap - c->http_len[role] : cursor_len(data);
	if (!cursor_copy_bytes(&src, &c->http[role][c->http_len[role]], take))
		return;
	c->http_len[role] += take;
	http_read(c, role, c->http_len[role] == cap);
}

static bool http_settled(const struct obs_conn *c)
{
	return c->http_done[SIDE_SERVER] || !decrypt_live(c->dec, SIDE_SERVER);
}

static void free_keylog_state(struct obs_conn *c)
{
	int i;

	while (c->pend) {
		struct pending_rec *p = c->pend;

		c->pend = p->next;
		free(p);
	}
	c->pend_tail = NULL;
	c->pend_bytes = 0;
	for (i = 0; i < 2; i++) {
		free(c->http[i]);
		c->http[i] = NULL;
		c->http_len[i] = 0;
	}
	decrypt_free(c->dec);
	c->dec = NULL;
}

/* The key log's outcome for the facts, before a verdict is decided. */
static void settle_keylog(struct obs_conn *c)
{
	if (c->dec)
		c->f.keylog = decrypt_outcome(c->dec, c->f.keylog_note, sizeof(c->f.keylog_note));
}

/* A ClientHello after the first: the answer to a HelloRetryRequest, or
 * below 1.3 a renegotiation read with the key log.  The facts keep the
 * first ClientHello (the JA4 fingerprint is the first one's). */
static void on_later_client_hello(struct obs_conn *c, const struct tls_event *ev)
{
	struct client_hello *ch;
	bool retry = c->f.sh.seen && c->f.sh.hello_retry;
	bool reneg = c->dec && ev->decrypted && c->f.sh.seen && !c->f.sh.hello_retry &&
		     c->f.sh.selected_version != TLS_V_1_3;

	if (!retry && !reneg)
		return;
	ch = malloc(sizeof(*ch));
	if (!ch)
		return;
	if (!tls_parse_client_hello(&ev->body, ch)) {
		note_error(c, "malformed %s", retry ? "second ClientHello" : "renegotiation ClientHello");
	} else if (retry) {
		/* RFC 8446 4.1.2 keeps the random; the key log names whichever
		 * the ServerHello answers */
		memcpy(c->client_random, ch->random, sizeof(c->client_random));
	} else {
		c->f.renegotiations++;
		decrypt_renegotiation_hello(c->dec, ch);
	}
	free(ch);
}

/* Below 1.3, the ServerHello of a renegotiation read with the key log: it
 * names the keys of the new epoch. */
static void on_renegotiation_server_hello(struct obs_conn *c, const struct tls_event *ev)
{
	struct server_hello sh;

	if (!c->dec || !ev->decrypted || !c->f.renegotiations)
		return;
	memset(&sh, 0, sizeof(sh));
	if (!tls_parse_server_hello(&ev->body, NULL, &sh)) {
		note_error(c, "malformed %s", "renegotiation ServerHello");
		return;
	}
	decrypt_renegotiation_server_hello(c->dec, &sh);
}

static void on_handshake(struct obs_conn *c, enum side tap, const struct tls_event *ev,
			 const struct timeval *ts)
{
	enum side role;

	if (ev->hs_type == TLS_HS_CLIENT_HELLO) {
		set_roles(c, tap);
		c->f.n_client_hellos++;
		if (role_of(c, tap) != SIDE_CLIENT)
			return;
		if (c->f.ch.seen) {
			on_later_client_hello(c, ev);
			return;
		}
		if (!tls_parse_client_hello(&ev->body, &c->f.ch))
			note_error(c, "malformed %s", "ClientHello");
		memcpy(c->client_random, c->f.ch.random, sizeof(c->client_random));
		return;
	}
	if (!c->roles_known)
		set_roles(c, ev->hs_type == TLS_HS_SERVER_HELLO ? (enum side)!tap : tap);
	role = role_of(c, tap);
	switch (ev->hs_type) {
	case TLS_HS_SERVER_HELLO:
		if (role != SIDE_SERVER)
			break;
		if (c->f.sh.seen && !c->f.sh.hello_retry) {
			on_renegotiation_server_hello(c, ev);
			break;
		}
		if (!tls_parse_server_hello(&ev->body, &c->f.ch, &c->f.sh)) {
			note_error(c, "malformed %s", "ServerHello");
			break;
		}
		c->f.sh.seq = c->f.seq;
		/* a HelloRetryRequest is TLS 1.3 too (RFC 8446 4.1.4): the
		 * ChangeCipherSpec each side may send next is the middlebox
		 * dummy (D.4), and the second hellos follow in plaintext */
		if (c->f.sh.selected_version == TLS_V_1_3)
			c->d->tls[0].tls13 = c->d->tls[1].tls13 = true;
		if (!c->f.sh.hello_retry)
			start_decrypt(c);
		break;
	case TLS_HS_ENCRYPTED_EXTENSIONS:
		if (role == SIDE_SERVER && !tls_parse_encrypted_extensions(&ev->body, &c->f.sh))
			note_error(c, "malformed %s", "EncryptedExtensions");
		break;
	case TLS_HS_CERTIFICATE:
		on_certificate(c, role, &ev->body, ev->decrypted, ts);
		break;
	case TLS_HS_CERTIFICATE_REQUEST:
		if (role == SIDE_SERVER)
			on_cert_request(c, &ev->body, ev->decrypted);
		break;
	case TLS_HS_SERVER_HELLO_DONE:
		if (role == SIDE_SERVER)
			c->f.server_hello_done = true;
		break;
	case TLS_HS_CERTIFICATE_VERIFY:
		if (role == SIDE_CLIENT)
			c->f.client_cert_verify_seen = true;
		break;
	case TLS_HS_NEW_SESSION_TICKET:
		if (role == SIDE_SERVER) {
			c->f.new_session_ticket_seen = true;
			if (!c->f.dir[role].nst_seq)
				c->f.dir[role].nst_seq = c->f.seq;
		}
		break;
	case TLS_HS_FINISHED:
		c->f.dir[role].finished_seen = true;
		c->f.dir[role].finished_seq = c->f.seq;
		break;
	case TLS_HS_KEY_UPDATE:
		c->f.dir[role].key_updates++;
		break;
	default:
		break;
	}
	/* TLS 1.3 key changes follow the sender's Finished and KeyUpdate */
	if (c->dec && ev->decrypted)
		decrypt_handshake(c->dec, role, ev->hs_type);
}

static void on_tls_event(void *ctx, const struct tls_event *ev)
{
	struct tls_cb *cb = ctx;
	struct obs_conn *c = cb->c;
	const struct timeval *ts = &c->f.last_ts;
	struct direction_facts *d;
	enum side role;

	c->f.seq++;
	c->f.is_tls = true;
	switch (ev->kind) {
	case TLS_EV_HANDSHAKE:
		on_handshake(c, cb->tap, ev, ts);
		return;
	case TLS_EV_SSL2_CLIENT_HELLO:
		set_roles(c, cb->tap);
		c->f.n_client_hellos++;
		if (!c->f.ch.seen && !tls_parse_sslv2_client_hello(&ev->body, &c->f.ch))
			note_error(c, "malformed %s", "SSLv2 ClientHello");
		return;
	case TLS_EV_SKIPPED:
		note_error(c, "handshake message type %u of %u bytes skipped: too large to analyse", ev->hs_type, ev->hs_len);
		return;
	case TLS_EV_PROTECTED:
		c->f.seq--;   /* not an event of its own: its content is */
		on_protected(c, cb->tap, ev);
		return;
	default:
		break;
	}
	role = role_of(c, cb->tap);
	d = &c->f.dir[role];
	switch (ev->kind) {
	case TLS_EV_ALERT:
		if (c->dec && ev->encrypted && !ev->decrypted)
			d->undecrypted++;
		if (c->f.n_alerts < FACTS_MAX_ALERTS) {
			struct alert *a = &c->f.alerts[c->f.n_alerts++];

			a->from = role;
			a->encrypted = ev->encrypted;
			a->decrypted = ev->decrypted;
			a->level = ev->encrypted && !ev->decrypted ? -1 : ev->alert_level;
			a->description = ev->encrypted && !ev->decrypted ? -1 : ev->alert_desc;
			a->seq = c->f.seq;
			a->t_us = facts_us_since_start(&c->f, ts);
		}
		break;
	case TLS_EV_CCS:
		d->ccs_seen = true;
		d->ccs_seq = c->f.seq;
		if (c->dec) {
			decrypt_ccs(c->dec, role);
			set_keep_protected(c);
		}
		break;
	case TLS_EV_APPDATA:
		on_appdata(c, role, &ev->body);
		break;
	case TLS_EV_ENCRYPTED:
		/* with a key log: a record the record layer will not hand over */
		if (c->dec && !c->d->tls[cb->tap].rec_protected)
			d->undecrypted++;
		if (d->n_enc < FACTS_MAX_ENC_RECORDS) {
			struct enc_record *r = &d->enc[d->n_enc++];

			r->content_type = ev->content_type;
			r->len = ev->record_len;
			r->seq = c->f.seq;
			r->t_us = facts_us_since_start(&c->f, ts);
		}
		d->n_enc_total++;
		if (ev->content_type == TLS_CT_APPLICATION_DATA)
			d->app_records++;
		else if (ev->content_type == TLS_CT_HANDSHAKE && d->n_enc_total > 1)
			d->enc_handshake_after_done++;   /* below 1.3: the first is Finished */
		break;
	default:
		break;
	}
}

static bool enough_seen(const struct obs_conn *c)
{
	if (c->f.dir[0].n_enc < FACTS_MAX_ENC_RECORDS || c->f.dir[1].n_enc < FACTS_MAX_ENC_RECORDS)
		return false;
	/* decrypting: on until the server's answer has been read */
	return !c->dec || (!c->pend && http_settled(c)) ||
	       c->f.dir[0].n_enc_total + c->f.dir[1].n_enc_total >= DECRYPT_RECORDS_MAX;
}

static void idle_side(struct obs_conn *c, enum side tap)
{
	c->st[tap] = SS_IDLE;
	free(c->held[tap]);
	c->held[tap] = NULL;
	c->held_len[tap] = 0;
	if (c->d)
		tls_dir_free(&c->d->tls[tap]);
}

/* The record layer stopped on side tap. */
static void framing_stopped(struct obs_conn *c, enum side tap)
{
	if (c->d->tls[tap].over_budget) {
		went_over_budget(c, held_besides(c, tap) + c->d->tls[tap].hs_refused);
		return;
	}
	c->f.dir[role_of(c, tap)].desync = true;
	if (!c->f.is_tls)
		c->f.not_tls = true;
	else
		note_error(c, "TLS framing lost: %s", c->d->tls[tap].error);
	idle_side(c, tap);
}

static void feed_tls(struct obs_conn *c, enum side tap, const uint8_t *data, size_t len)
{
	struct tls_cb cb = { c, tap };

	if (budget_room(c, tap) && !tls_dir_feed(&c->d->tls[tap], data, len, on_tls_event, &cb))
		framing_stopped(c, tap);
}

/* Appends what fits below `max` of a segment to the side's held bytes;
 * *taken says how much of it that was. */
static int hold(struct obs_conn *c, enum side tap, size_t *taken, const uint8_t *data, size_t len,
		size_t max)
{
	uint8_t *grown;
	struct cursor src;

	*taken = 0;
	if (c->held_len[tap] + len > max)
		len = max - c->held_len[tap];
	grown = realloc(c->held[tap], c->held_len[tap] + len + 1);
	if (!grown)
		return 0;
	c->held[tap] = grown;
	cursor_init(&src, data, len);
	if (!cursor_copy_bytes(&src, &grown[c->held_len[tap]], len))
		return 0;
	c->held_len[tap] += len;
	*taken = len;
	return 1;
}

/* Feeds what follows offset `start` of `bytes` to the TLS decoder. */
static void start_tls_at(struct obs_conn *c, enum side tap, const struct cursor *bytes, size_t start)
{
	struct cursor rest = *bytes;

	c->st[tap] = SS_TLS;
	if (cursor_skip(&rest, start) && cursor_len(&rest))
		feed_tls(c, tap, cursor_data(&rest), cursor_len(&rest));
}

/* TLS starts at offset `start` of `view` (the held bytes, or the segment
 * itself): the decoder gets what follows, then the part of the segment
 * (data, len) that did not fit in the hold (its first `taken` bytes did);
 * the hold is released. */
static void start_tls_in(struct obs_conn *c, enum side tap, const struct cursor *view, size_t start,
			 const uint8_t *data, size_t len, size_t taken)
{
	uint8_t *held = c->held[tap];   /* the view may point into it */
	struct cursor rest;

	c->held[tap] = NULL;
	c->held_len[tap] = 0;
	start_tls_at(c, tap, view, start);
	cursor_init(&rest, data, len);
	if (c->st[tap] == SS_TLS && cursor_skip(&rest, taken) && cursor_len(&rest))
		feed_tls(c, tap, cursor_data(&rest), cursor_len(&rest));
	free(held);
}

static void feed_preamble(struct obs_conn *c, enum side tap, const uint8_t *data, size_t len)
{
	struct cursor view;
	enum preamble_status st;
	size_t start = 0, taken = len;
	bool direct = c->held_len[tap] == 0;

	/* The preamble looks at no more than PREAMBLE_MAX bytes, so no more
	 * are held; a segment seen whole (direct) may be longer. */
	if (direct) {
		cursor_init(&view, data, len);
	} else {
		if (!hold(c, tap, &taken, data, len, PREAMBLE_MAX))
			goto not_tls;
		cursor_init(&view, c->held[tap], c->held_len[tap]);
	}
	st = preamble_scan(&c->d->pre, tap, &view, &start);
	if (st == PREAMBLE_TLS) {
		c->f.preamble = c->d->pre.kind;
		if (c->d->pre.target[0])
			snprintf(c->f.connect_target, sizeof(c->f.connect_target), "%s", c->d->pre.target);
		start_tls_in(c, tap, &view, start, data, len, taken);
		return;
	}
	if (st == PREAMBLE_MORE && cursor_len(&view) < PREAMBLE_MAX) {
		if (direct && !hold(c, tap, &taken, data, len, PREAMBLE_MAX))
			goto not_tls;
		return;
	}
not_tls:
	c->f.not_tls = true;
	c->f.preamble = c->d->pre.kind;
	idle_side(c, SIDE_CLIENT);
	idle_side(c, SIDE_SERVER);
}

/* Joined mid-stream: find an offset where one record header follows
 * another.  Each offset is examined once: a candidate whose successor has
 * not arrived yet is remembered with the length that decides it, and the
 * scan resumes there only when that much has been held. */
static void feed_resync(struct obs_conn *c, enum side tap, const uint8_t *data, size_t len)
{
	struct cursor view;
	size_t off, taken;

	if (!hold(c, tap, &taken, data, len, RESYNC_MAX)) {
		idle_side(c, tap);
		return;
	}
	if (c->held_len[tap] < c->resync_need[tap]) {
		if (c->held_len[tap] >= RESYNC_MAX)
			idle_side(c, tap);
		return;
	}
	cursor_init(&view, c->held[tap], c->held_len[tap]);
	for (off = c->resync_seen[tap]; off + 5 <= cursor_len(&view); off++) {
		struct cursor at = view, next;
		uint16_t rlen;

		if (!cursor_skip(&at, off) || !tls_looks_like_record(&at) || !cursor_peek_u16(&at, 3, &rlen))
			continue;
		next = at;
		/* the very first byte of the capture needs no second header */
		if (off > 0 && (!cursor_skip(&next, 5 + (size_t)rlen) || cursor_len(&next) < 5)) {
			c->resync_seen[tap] = off;
			c->resync_need[tap] = off + 5 + (size_t)rlen + 5;
			if (c->resync_need[tap] > RESYNC_MAX)
				c->resync_need[tap] = RESYNC_MAX;
			if (c->held_len[tap] >= RESYNC_MAX)
				idle_side(c, tap);
			return;
		}
		if (off > 0 && !tls_looks_like_record(&next))
			continue;
		start_tls_in(c, tap, &view, off, data, len, taken);
		return;
	}
	c->resync_seen[tap] = off;
	c->resync_need[tap] = 0;
	if (c->held_len[tap] >= RESYNC_MAX)
		idle_side(c, tap);
}

static void free_decoding_state(struct obs_conn *c);

void obs_conn_feed(struct obs_conn *c, enum side tap, const uint8_t *data, size_t len,
		   const struct timeval *ts)
{
	if (c->finished || c->over_budget || c->abandoned || len == 0)
		return;
	c->f.last_ts = *ts;
	c->f.dir[role_of(c, tap)].bytes += len;
	if (c->pend)
		drain_pending(c, false);
	switch (c->st[tap]) {
	case SS_PREAMBLE:
		feed_preamble(c, tap, data, len);
		break;
	case SS_RESYNC:
		feed_resync(c, tap, data, len);
		break;
	case SS_TLS:
		feed_tls(c, tap, data, len);
		break;
	case SS_IDLE:
		break;
	}
	if (c->over_budget)
		free_decoding_state(c);
	else if (c->f.is_tls && enough_seen(c)) {
		idle_side(c, SIDE_CLIENT);
		idle_side(c, SIDE_SERVER);
	}
}

void obs_conn_gap(struct obs_conn *c, enum side tap, size_t n, const struct timeval *ts)
{
	if (c->finished)
		return;
	c->f.last_ts = *ts;
	c->f.dir[role_of(c, tap)].gap_bytes += n;
	if (c->st[tap] == SS_TLS) {
		/* record framing cannot survive a hole; rejoin at the next record */
		tls_dir_free(&c->d->tls[tap]);
		tls_dir_init(&c->d->tls[tap]);
		c->d->tls[tap].tls13 = c->f.sh.selected_version == TLS_V_1_3;
		c->d->tls[tap].encrypted = c->f.dir[role_of(c, tap)].ccs_seen && !c->d->tls[tap].tls13;
		c->d->tls[tap].started = true;
		if (c->dec) {
			decrypt_stop(c->dec, role_of(c, tap));
			set_keep_protected(c);
		}
		c->st[tap] = SS_RESYNC;
		c->resync_seen[tap] = c->resync_need[tap] = 0;
	} else if (c->st[tap] == SS_PREAMBLE) {
		idle_side(c, tap);
	}
}

void obs_conn_close(struct obs_conn *c, enum side tap, enum close_kind how,
		    const struct timeval *ts)
{
	struct direction_facts *d;

	if (c->finished)
		return;
	c->f.last_ts = *ts;
	c->f.seq++;
	d = &c->f.dir[role_of(c, tap)];
	if (d->closed == CLOSE_NONE || how == CLOSE_RST) {
		if (d->closed == CLOSE_NONE)
			d->close_seq = c->f.seq;
		d->closed = how;
		d->close_ts = *ts;
	}
}

void obs_conn_quiet_until(struct obs_conn *c, const struct timeval *now)
{
	if (!c->finished && timercmp(now, &c->f.seen_until, >))
		c->f.seen_until = *now;
}

bool obs_conn_awaiting_keys(const struct obs_conn *c)
{
	return !c->finished && c->dec && c->cfg.keylog_wait &&
	       (c->pend || decrypt_waiting(c->dec, SIDE_CLIENT) || decrypt_waiting(c->dec, SIDE_SERVER));
}

void obs_conn_retry_keys(struct obs_conn *c)
{
	if (c->finished || !c->dec)
		return;
	if (c->pend)
		drain_pending(c, false);
	else if (decrypt_retry(c->dec))
		set_keep_protected(c);
	if (c->over_budget)
		free_decoding_state(c);
}

bool obs_conn_wants_bytes(const struct obs_conn *c)
{
	return !c->finished && (c->st[0] != SS_IDLE || c->st[1] != SS_IDLE);
}

size_t obs_conn_buffered(const struct obs_conn *c)
{
	if (!c->d)
		return 0;   /* shrunk: its decoding state is gone */
	return held_besides(c, SIDE_SERVER) + c->d->tls[SIDE_SERVER].hs_len + c->pend_bytes;
}

bool obs_conn_over_budget(const struct obs_conn *c, size_t *need)
{
	*need = c->over_budget_need;
	return c->over_budget;
}

void obs_conn_abandon(struct obs_conn *c, const char *why)
{
	if (c->finished)
		return;
	c->abandoned = true;
	snprintf(c->abandon_why, sizeof(c->abandon_why), "%s", why);
	free_decoding_state(c);
}

bool obs_conn_handshake_over(const struct obs_conn *c)
{
	const struct direction_facts *cl = &c->f.dir[SIDE_CLIENT], *sv = &c->f.dir[SIDE_SERVER];

	if (c->finished || c->early_decided || c->abandoned || c->f.not_tls || !obs_conn_wants_bytes(c))
		return true;
	if (!c->f.sh.seen || c->f.sh.hello_retry)
		return false;
	/* the Finished of each side, plaintext or read with a key log */
	if (cl->finished_seen && sv->finished_seen)
		return true;
	/* or each side's first protected record: below 1.3 the Finished after
	 * its ChangeCipherSpec, in 1.3 the server's flight and the client's
	 * answer to it */
	if (cl->n_enc_total == 0 || sv->n_enc_total == 0)
		return false;
	return c->f.sh.selected_version == TLS_V_1_3 || (cl->ccs_seen && sv->ccs_seen);
}

/* Final before the close when nothing later can change the outcome: the
 * bytes are not TLS, or a plaintext fatal alert ended the handshake (a
 * fatal alert closes the connection, RFC 8446 6.2 / RFC 5246 7.2.2), or
 * the decoder has seen all it keeps of both sides.  A successful handshake
 * is final once the session went on (verdict.settled): nginx refuses at the
 * HTTP level and closes after its first answer, so until then the outcome
 * shows only in how the session goes on. */
static void free_decoding_state(struct obs_conn *c);

static bool outcome_settled(const struct obs_conn *c)
{
	size_t i;

	if (c->f.not_tls)
		return true;
	for (i = 0; i < c->f.n_alerts; i++)
		if ((!c->f.alerts[i].encrypted || c->f.alerts[i].decrypted) && c->f.alerts[i].level == 2)
			return true;
	return c->f.is_tls && c->st[0] == SS_IDLE && c->st[1] == SS_IDLE && enough_seen(c);
}

/* Cheap test before the rules run: both sides sent records after the
 * handshake, the least a session that went on shows. */
static bool may_have_gone_on(const struct obs_conn *c)
{
	const struct direction_facts *cl = &c->f.dir[SIDE_CLIENT];
	const struct direction_facts *sv = &c->f.dir[SIDE_SERVER];

	if (!c->f.sh.seen || c->f.dir[0].desync || c->f.dir[1].desync)
		return false;
	if (c->f.sh.selected_version == TLS_V_1_3)
		return cl->n_enc_total >= 2 && sv->n_enc_total >= 1;
	return cl->app_records >= 1 && sv->app_records >= 1;
}

/* The rules, then the middlebox attribution over what they decided. */
static void decide(struct obs_conn *c)
{
	if (c->cfg.no_evidence)
		verdict_decide_quiet(&c->f, c->chain, kind_told(c), c->v);
	else
		verdict_decide(&c->f, c->chain, kind_told(c), c->v);
	verdict_attribute(&c->f, c->cfg.inspection, c->cfg.expect, c->v);
}

const struct verdict *obs_conn_early_verdict(struct obs_conn *c)
{
	if (c->finished)
		return c->v;
	if (c->abandoned || c->over_budget)
		return NULL;   /* said at the end, with why */
	if (!c->early_decided) {
		if (outcome_settled(c)) {
			settle_keylog(c);
			decide(c);
		} else {
			/* with a key log, the server's HTTP answer is waited for */
			if (!may_have_gone_on(c) || (c->dec && !http_settled(c)))
				return NULL;
			settle_keylog(c);
			/* asked on every read until the session settles: the test
			 * is made without writing evidence lines */
			verdict_decide_quiet(&c->f, c->chain, kind_told(c), c->v);
			if (!c->v->settled)
				return NULL;
			decide(c);
			/* what follows cannot change it: stop decoding */
			free_decoding_state(c);
		}
		c->early_decided = true;
	}
	return c->v;
}

static void free_decoding_state(struct obs_conn *c)
{
	idle_side(c, SIDE_CLIENT);
	idle_side(c, SIDE_SERVER);
	free_keylog_state(c);
}

void obs_conn_end(struct obs_conn *c, bool truncated, const struct timeval *ts)
{
	if (c->finished)
		return;
	c->finished = true;
	if (!c->d && !(c->v = malloc(sizeof(*c->v))))
		c->v = &oom_verdict;   /* out of memory: one thread's finishes share it */
	if (ts && timercmp(ts, &c->f.seen_until, >))
		c->f.seen_until = *ts;
	if (timercmp(&c->f.last_ts, &c->f.seen_until, >))
		c->f.seen_until = c->f.last_ts;
	c->f.truncated = truncated;
	if (!c->roles_known && !c->f.saw_syn && c->f.client.port < c->f.server.port)
		set_roles(c, SIDE_SERVER);   /* no handshake seen: the lower port is likely the server */
	if (c->dec) {
		drain_pending(c, true);
		if (!c->http_done[SIDE_CLIENT] && c->http[SIDE_CLIENT])
			http_read(c, SIDE_CLIENT, true);
		if (!c->http_done[SIDE_SERVER] && c->http[SIDE_SERVER])
			http_read(c, SIDE_SERVER, true);
		settle_keylog(c);
	}
	free_decoding_state(c);
}

const struct verdict *obs_conn_decide(struct obs_conn *c)
{
	if (c->decided)
		return c->v;
	c->decided = true;
	decide(c);
	if (c->abandoned || c->over_budget) {
		/* what was seen is kept in the facts, but no rule may judge a
		 * handshake watched only in part, nor explain it */
		c->v->n_evidence = 0;
		c->v->keylog_evidence = -1;
		c->v->middlebox_named = false;
		if (!c->abandon_why[0])
			snprintf(c->abandon_why, sizeof(c->abandon_why),
				 "handshake over budget: %zu bytes to hold for this connection, more than %zu; not observed further",
				 c->over_budget_need, c->cfg.max_buffered);
		verdict_overrule(c->v, V_INCOMPLETE, F_UNKNOWN, B_OBSERVED, c->abandon_why);
	}
	return c->v;
}

const struct verdict *obs_conn_finish(struct obs_conn *c, bool truncated, const struct timeval *ts)
{
	obs_conn_end(c, truncated, ts);
	return obs_conn_decide(c);
}

void obs_conn_set_source(struct obs_conn *c, const char *source)
{
	c->f.source = source;
}

const struct conn_facts *obs_conn_facts(const struct obs_conn *c)
{
	return &c->f;
}

struct verdict *obs_conn_verdict_for_update(struct obs_conn *c)
{
	return c->v;
}

void obs_conn_shrink(struct obs_conn *c)
{
	if (!c->d || c->finished || !c->early_decided || c->abandoned || c->over_budget || c->dec || c->pend ||
	    c->http[0] || c->http[1] || obs_conn_wants_bytes(c))
		return;
	/* both sides idle: their record layers were freed then */
	pool_put(SCRATCH(c->cfg.pool), c->d);
	c->d = NULL;
	c->v = NULL;
}

void obs_conn_free(struct obs_conn *c)
{
	if (!c)
		return;
	free_decoding_state(c);
	ca_list_release(c->ca);
	cert_chain_release(c->f.client_chain.certs);
	cert_chain_release(c->f.server_chain.certs);
	if (!c->d) {   /* shrunk: its verdict was its own */
		if (c->v != &oom_verdict)
			free(c->v);
		pool_put(CONNS(c->cfg.pool), c);
		return;
	}
	if (c->cfg.pool && c->cfg.pool->n < POOL_SPARES) {
		c->cfg.pool->spare[c->cfg.pool->n++] = c;
		return;
	}
	pool_put(SCRATCH(c->cfg.pool), c->d);
	pool_put(CONNS(c->cfg.pool), c);
}

/* ---- the capture front end's flow sink ---- */

static void *sink_open(void *ctx, const struct endpoint *initiator, const struct endpoint *responder,
		       const struct timeval *ts, bool saw_syn)
{
	return obs_conn_new(((struct obs_sink *)ctx)->cfg, initiator, responder, ts, saw_syn);
}

/* A capture read as it is made (keylog_wait): the client writes its
 * secrets as its packets go, so records held for one are retried after the
 * key log is read again (one fstat when it has not grown), as the proxy
 * does on each read. */
static void sink_keys(struct obs_conn *c)
{
	if (c->cfg.keylog && obs_conn_awaiting_keys(c)) {
		(void)keylog_refresh(c->cfg.keylog);
		obs_conn_retry_keys(c);
	}
}

/* With a settled callback: the verdict the moment no later event can
 * change it, once. */
static void sink_settled(const struct obs_sink *os, struct obs_conn *c)
{
	const struct verdict *v;

	if (!os->settled || c->settled_asked || !(v = obs_conn_early_verdict(c)))
		return;
	c->settled_asked = true;
	c->settled_told = os->settled(os->ctx, c, v);
}

bool obs_conn_settled_told(const struct obs_conn *c)
{
	return c->settled_told;
}

static void sink_data(void *ctx, void *flow, enum side from, const uint8_t *p, size_t n,
		      const struct timeval *ts)
{
	sink_keys(flow);
	obs_conn_feed(flow, from, p, n, ts);
	sink_settled(ctx, flow);
}

static void sink_gap(void *ctx, void *flow, enum side from, size_t n, const struct timeval *ts)
{
	(void)ctx;
	obs_conn_gap(flow, from, n, ts);
}

static void sink_close(void *ctx, void *flow, enum side from, enum close_kind how,
		       const struct timeval *ts)
{
	sink_keys(flow);
	obs_conn_close(flow, from, how, ts);
	sink_settled(ctx, flow);
}

static void sink_quiet(void *ctx, void *flow, const struct timeval *now)
{
	const struct obs_sink *os = ctx;

	if (!os->settled)
		return;
	/* a session that stays open and quiet after the server's answer has
	 * gone on, as the proxy's timer says */
	obs_conn_quiet_until(flow, now);
	sink_settled(os, flow);
}

static bool sink_wants(void *ctx, void *flow)
{
	(void)ctx;
	return obs_conn_wants_bytes(flow);
}

static void sink_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	struct obs_sink *os = ctx;

	sink_keys(flow);
	os->finished(os->ctx, flow, truncated, ts);
}

void obs_sink_init(struct obs_sink *os, struct flow_sink *sink)
{
	*sink = (struct flow_sink){
		.ctx = os, .open = sink_open, .data = sink_data, .gap = sink_gap,
		.close = sink_close, .wants_bytes = sink_wants, .finish = sink_finish,
		.quiet = os->settled ? sink_quiet : NULL,
	};
}
