/* legpair: the two legs of a terminating gateway, matched (legpair.h).
 *
 * Held legs sit in a FIFO (offer order, which is end-of-connection order
 * in a capture) for expiry, and under each of their names with the
 * server's port (at most two: SNI and CONNECT host or server address) in
 * a small hash table of their role, so that an offer looks only at legs
 * of the other role that share a name and port with it: a capture full of
 * one kind (a busy server's refusals) costs a lookup in an empty bucket. */
#include "config.h"

#include "analysis/legpair.h"
#include "wire/fnv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#define LP_BUCKETS 1024
#define LP_SLACK_S 2

struct lp_entry;

struct lp_name {
	struct lp_name *next, **pprev;  /* in its bucket: removal without a walk */
	struct lp_entry *entry;
	unsigned bucket;
	unsigned port;                  /* the server's port the leg is for */
	const char *host;               /* in the leg's facts, not NUL-terminated */
	size_t host_len;
};

struct lp_entry {
	struct lp_entry *prev, *next;   /* FIFO */
	struct lp_name names[2];
	size_t n_names;
	enum leg_role role;
	void *conn;
	const struct conn_facts *f;
	struct verdict *v;
};

struct legpair {
	legpair_emit_fn emit;
	void *ctx;
	size_t max_held, n_held;
	unsigned hold_s;
	struct lp_entry *head, *tail;
	/* one table a role: an offer walks only legs it could pair with */
	struct lp_name *buckets[2][LP_BUCKETS];
};

struct legpair *legpair_new(size_t max_held, unsigned hold_s, legpair_emit_fn emit, void *ctx)
{
	struct legpair *lp = calloc(1, sizeof(*lp));

	if (!lp)
		return NULL;
	lp->emit = emit;
	lp->ctx = ctx;
	lp->max_held = max_held ? max_held : 1;
	lp->hold_s = hold_s;
	return lp;
}

static unsigned name_hash(const char *s, size_t len, unsigned port)
{
	uint32_t h = FNV32_BASIS ^ port;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = fnv32_step(h, c);
	}
	return h % LP_BUCKETS;
}

/* "host:port" or "[v6]:port": where the host is in it. */
static const char *target_host(const char *target, size_t *len)
{
	const char *end;

	if (target[0] == '[') {
		end = strchr(target, ']');
		target++;
	} else {
		end = strrchr(target, ':');
	}
	*len = end ? (size_t)(end - target) : strlen(target);
	return target;
}

static bool same_host(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

static unsigned target_port(const char *target)
{
	const char *colon = strrchr(target, ':');

	return colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

static void add_name(struct lp_entry *e, const char *host, size_t len, unsigned port)
{
	struct lp_name *n;
	size_t i;

	if (len == 0 || e->n_names >= 2)
		return;
	for (i = 0; i < e->n_names; i++)
		if (e->names[i].host_len == len && strncasecmp(e->names[i].host, host, len) == 0)
			return;
	n = &e->names[e->n_names++];
	n->host = host;
	n->host_len = len;
	n->port = port;
	n->entry = e;
	n->next = NULL;
	n->pprev = NULL;
}

/* The names (with the server's port) a leg is found by: what
 * legpair_match compares. */
static void leg_names(struct lp_entry *e)
{
	const struct conn_facts *f = e->f;

	if (e->role == LEG_CLIENT) {
		if (f->connect_target[0]) {
			unsigned port = target_port(f->connect_target);
			size_t len;
			const char *host = target_host(f->connect_target, &len);

			add_name(e, host, len, port);
			add_name(e, f->ch.sni, strlen(f->ch.sni), port);
		} else {
			add_name(e, f->ch.sni, strlen(f->ch.sni), f->server.port);
		}
	} else {
		add_name(e, f->ch.sni, strlen(f->ch.sni), f->server.port);
		add_name(e, f->server.ip, strlen(f->server.ip), f->server.port);
	}
}

static bool overlaps(const struct conn_facts *a, const struct conn_facts *b, unsigned slack_s)
{
	return a->first_ts.tv_sec <= b->last_ts.tv_sec + (time_t)slack_s &&
	       b->first_ts.tv_sec <= a->last_ts.tv_sec + (time_t)slack_s;
}

bool legpair_match(const struct conn_facts *c, const struct conn_facts *s, unsigned slack_s)
{
	bool named = false;

	if (c->connect_target[0]) {
		size_t len;
		const char *host = target_host(c->connect_target, &len);

		if (target_port(c->connect_target) != s->server.port)
			return false;
		named = same_host(host, len, s->ch.sni) || same_host(host, len, s->server.ip);
	}
	/* without a CONNECT (a transparent gateway) the client leg goes to the
	 * server's own port: the same name on another port is another service */
	if (!named && !c->connect_target[0] && c->ch.sni[0] && c->server.port == s->server.port &&
	    strcasecmp(c->ch.sni, s->ch.sni) == 0)
		named = true;
	if (!named)
		return false;
	/* the same TCP connection seen twice is not two legs */
	if (c->client.port == s->client.port && strcmp(c->client.ip, s->client.ip) == 0 &&
	    c->server.port == s->server.port && strcmp(c->server.ip, s->server.ip) == 0)
		return false;
	return overlaps(c, s, slack_s);
}

static void unlink_entry(struct legpair *lp, struct lp_entry *e)
{
	size_t i;

	for (i = 0; i < e->n_names; i++) {
		struct lp_name *n = &e->names[i];

		if (!n->pprev)
			continue;   /* never inserted */
		*n->pprev = n->next;
		if (n->next)
			n->next->pprev = n->pprev;
		n->pprev = NULL;
	}
	if (e->prev)
		e->prev->next = e->next;
	else
		lp->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		lp->tail = e->prev;
	lp->n_held--;
}

static void emit_entry(struct legpair *lp, struct lp_entry *e)
{
	unlink_entry(lp, e);
	lp->emit(lp->ctx, e->conn, e->f, e->v);
	free(e);
}

static double distance(const struct conn_facts *a, const struct conn_facts *b)
{
	double d = (double)(a->first_ts.tv_sec - b->first_ts.tv_sec) +
		   (double)(a->first_ts.tv_usec - b->first_ts.tv_usec) / 1e6;

	return d < 0 ? -d : d;
}

/* The held leg of the other role that pairs with e, nearest in time. */
static struct lp_entry *find_partner(struct legpair *lp, const struct lp_entry *e)
{
	struct lp_entry *best = NULL;
	double best_d = 0;
	size_t i;

	for (i = 0; i < e->n_names; i++) {
		const struct lp_name *n;

		const struct lp_name *want = &e->names[i];
		unsigned b = name_hash(want->host, want->host_len, want->port);

		for (n = lp->buckets[e->role != LEG_SERVER][b]; n; n = n->next) {
			const struct lp_entry *o = n->entry;
			const struct conn_facts *cf, *sf;
			double d;

			if (n->port != want->port || n->host_len != want->host_len ||
			    strncasecmp(n->host, want->host, want->host_len) != 0)
				continue;
			cf = e->role == LEG_CLIENT ? e->f : o->f;
			sf = e->role == LEG_CLIENT ? o->f : e->f;
			if (!legpair_match(cf, sf, LP_SLACK_S))
				continue;
			d = distance(cf, sf);
			if (!best || d < best_d) {
				best = n->entry;
				best_d = d;
			}
		}
	}
	return best;
}

static void expire(struct legpair *lp, const struct timeval *now)
{
	while (lp->head && (lp->n_held >= lp->max_held ||
			    lp->head->f->last_ts.tv_sec + (time_t)lp->hold_s < now->tv_sec))
		emit_entry(lp, lp->head);
}

void legpair_offer(struct legpair *lp, void *conn, const struct conn_facts *f, struct verdict *v)
{
	enum leg_role role = verdict_leg_role(f, v);
	struct lp_entry *e, *o;
	size_t i;

	if (lp->head)
		expire(lp, &f->last_ts);
	if (role == LEG_NONE) {
		lp->emit(lp->ctx, conn, f, v);
		return;
	}
	e = malloc(sizeof(*e));
	if (!e) {
		lp->emit(lp->ctx, conn, f, v);
		return;
	}
	e->prev = e->next = NULL;
	e->n_names = 0;
	e->role = role;
	e->conn = conn;
	e->f = f;
	e->v = v;
	leg_names(e);
	if (e->n_names == 0) {
		lp->emit(lp->ctx, conn, f, v);
		free(e);
		return;
	}
	o = find_partner(lp, e);
	if (o) {
		bool paired = role == LEG_CLIENT ? verdict_pair_legs(e->f, e->v, o->f, o->v)
						 : verdict_pair_legs(o->f, o->v, e->f, e->v);

		if (paired) {
			/* both now, the earlier first */
			unlink_entry(lp, o);
			if (timercmp(&o->f->first_ts, &e->f->first_ts, <=)) {
				lp->emit(lp->ctx, o->conn, o->f, o->v);
				lp->emit(lp->ctx, e->conn, e->f, e->v);
			} else {
				lp->emit(lp->ctx, e->conn, e->f, e->v);
				lp->emit(lp->ctx, o->conn, o->f, o->v);
			}
			free(o);
			free(e);
			return;
		}
	}
	for (i = 0; i < e->n_names; i++) {
		unsigned b = name_hash(e->names[i].host, e->names[i].host_len, e->names[i].port);

		struct lp_name **head = &lp->buckets[e->role == LEG_SERVER][b];

		e->names[i].bucket = b;
		e->names[i].next = *head;
		e->names[i].pprev = head;
		if (*head)
			(*head)->pprev = &e->names[i].next;
		*head = &e->names[i];
	}
	e->prev = lp->tail;
	if (lp->tail)
		lp->tail->next = e;
	else
		lp->head = e;
	lp->tail = e;
	lp->n_held++;
}

void legpair_set_hold(struct legpair *lp, unsigned hold_s)
{
	lp->hold_s = hold_s;
}

void legpair_tick(struct legpair *lp, const struct timeval *now)
{
	if (lp->head)
		expire(lp, now);
}

void legpair_flush(struct legpair *lp)
{
	while (lp->head)
		emit_entry(lp, lp->head);
}

void legpair_free(struct legpair *lp)
{
	if (!lp)
		return;
	legpair_flush(lp);
	free(lp);
}
