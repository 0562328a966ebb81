/* flow: the TCP connection table and per-direction reassembly (see flow.h).
 *
 * Sequence numbers are compared in 32-bit serial arithmetic (RFC 1982), so
 * a stream may wrap past 2^32.  In-order payload goes to the sink straight
 * from the packet buffer; only segments that arrive ahead of a hole are
 * copied, and only up to a per-direction limit (plus a global one, so that
 * many lossy connections cannot add up to unbounded memory). */
#include "config.h"

#include "wire/flow.h"
#include "wire/slab.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_IDLE_S 300
#define DEFAULT_REASM_LIMIT (256 * 1024)
/* About 25 MiB of flow state: with the held bytes and the tombstones, a
 * run stays under 64 MiB whatever the capture. */
#define DEFAULT_MAX_FLOWS 131072
/* Out-of-order bytes held by all directions of all flows together. */
#define HELD_TOTAL_MAX ((size_t)16 << 20)
/* Charged per held segment on top of its bytes, so a flood of one-byte
 * segments cannot build a list long enough to make insertion quadratic. */
#define HELD_OVERHEAD 64
#define INITIAL_BUCKETS 1024
/* Tombstones of finished flows kept at most (the oldest go first). */
#define TOMB_MAX 65536
#define TOMB_BUCKETS 16384

/* Both endpoints in a canonical order (the smaller address/port first), so
 * both directions of a connection make the same key: a's address in w[0..1],
 * b's in w[2..3], and w[4] = a's port | b's port << 16 | is_v6 << 32.  Built
 * and read as whole words (narrow stores read back as a wide load stall
 * the pipeline on every packet). */
struct flow_key {
	uint64_t w[5];
};

/* A segment that arrived ahead of a hole, copied. */
struct held {
	struct held *next;
	uint32_t seq;
	uint32_t len;   /* bytes in data[] */
	uint32_t lost;  /* bytes right after data[] that the capture cut off */
	uint8_t data[];
};

enum {
	D_SEQ_KNOWN = 1 << 0, /* next_seq is meaningful */
	D_SYN = 1 << 1,       /* isn is this side's SYN */
	D_FIN = 1 << 2,       /* FIN seen at fin_seq (close pending until then) */
	D_CLOSED = 1 << 3,    /* close reported: this side's stream is over */
	D_RST = 1 << 4,       /* RST reported */
};

struct flow_dir {
	struct held *held;      /* sorted by sequence */
	struct held *held_tail;
	size_t held_cost;       /* charged against the limits */
	uint32_t next_seq;      /* next byte to deliver */
	uint32_t fin_seq;
	uint32_t isn;
	uint8_t flags;
};

enum {
	F_SKIP = 1 << 0,        /* the consumer wants no more payload */
	F_IGNORED = 1 << 1,     /* the consumer declined the flow: no callbacks */
	F_B_INITIATOR = 1 << 2, /* key.b/pb is the initiator (SIDE_CLIENT) */
};

struct flow {
	struct flow *hnext;       /* hash chain */
	struct flow *prev, *next; /* activity list, least recently active (to the second) first */
	struct flow_key key;
	uint32_t hash;
	uint8_t flags;
	uint64_t id;              /* creation order */
	time_t touched;           /* table clock at the last packet */
	struct timeval last_ts;   /* time of the last packet */
	void *user;
	struct flow_dir dir[2];   /* indexed by enum side */
};

/* What is left of a finished flow: enough to recognise its stragglers.
 * Tombstones are numbered as they are made and live in a ring, tombstone
 * n in slot n % TOMB_MAX, so the newest TOMB_MAX are kept and a slot
 * holding a newer number tells that an older one is gone.  A hash chain
 * links each to the next older one of its bucket by number: a finished
 * flow writes its slot and its bucket's head, and nothing else (expired
 * and overwritten tombstones end a chain where a lookup meets them). */
struct tomb {
	struct flow_key key;
	uint64_t seq;             /* its number, from 1 */
	uint64_t older;           /* the next older tombstone of the bucket, 0 for none */
	time_t died;              /* table clock when the flow finished */
	uint32_t hash;
};

struct flow_table {
	const struct flow_sink *sink;
	struct capture_stats *stats;
	time_t idle_s;
	size_t reasm_limit;
	size_t max_flows;
	size_t held_total;
	uint64_t seed;
	uint64_t next_id;

	struct slab *flows;       /* the flows' memory (huge pages where allowed), finished ones' kept */

	struct flow **buckets;
	size_t nbuckets;          /* a power of two */
	size_t nflows;
	struct flow *lru_head, *lru_tail;

	uint64_t *tbuckets;       /* TOMB_BUCKETS newest numbers, allocated on first use */
	struct tomb *tombs;       /* TOMB_MAX, the ring */
	uint64_t tomb_seq;        /* the newest tombstone's number */

	bool clock_set;
	time_t now;               /* latest capture second seen */
	struct timeval latest;    /* latest capture time seen: how long a flow was watched */
	time_t swept;             /* `now` at the last sweep */
};

/* ---- time ---- */

/* now - then > limit, for any two times (a hostile pcapng can carry
 * timestamps anywhere in time_t's range). */
static inline bool older_than(time_t now, time_t then, time_t limit)
{
	return now > then && (uint64_t)now - (uint64_t)then > (uint64_t)limit;
}

/* A live flow with no packet for this long is told to the consumer as
 * quiet at each tick (flow_sink.quiet). */
#define QUIET_S 1

/* ---- serial arithmetic ---- */

static inline int32_t seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline bool seq_before(uint32_t a, uint32_t b)
{
	return seq_diff(a, b) < 0;
}

/* ---- keys and hashing ---- */

/* Fills *k from a segment; returns true when the segment's source is key.a. */
static bool key_from_segment(struct flow_key *k, const struct tcp_segment *s)
{
	uint64_t src[2], dst[2], v6 = (uint64_t)s->is_v6 << 32;
	bool src_is_a;

	/* Any total order will do, so the words are compared as they lie. */
	memcpy(src, s->src, 16);
	memcpy(dst, s->dst, 16);
	if (src[0] != dst[0])
		src_is_a = src[0] < dst[0];
	else if (src[1] != dst[1])
		src_is_a = src[1] < dst[1];
	else
		src_is_a = s->sport <= s->dport;
	if (src_is_a) {
		k->w[0] = src[0];
		k->w[1] = src[1];
		k->w[2] = dst[0];
		k->w[3] = dst[1];
		k->w[4] = s->sport | (uint64_t)s->dport << 16 | v6;
	} else {
		k->w[0] = dst[0];
		k->w[1] = dst[1];
		k->w[2] = src[0];
		k->w[3] = src[1];
		k->w[4] = s->dport | (uint64_t)s->sport << 16 | v6;
	}
	return src_is_a;
}

static inline uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

/* Keyed by the table's random seed.  The five words are multiplied
 * independently (no chain of dependent multiplies per packet), then mixed. */
static uint32_t key_hash(const struct flow_table *t, const struct flow_key *k)
{
	uint64_t s = t->seed;
	uint64_t h = (k->w[0] ^ s) * UINT64_C(0x9e3779b97f4a7c15) +
		     (k->w[1] ^ (s >> 17)) * UINT64_C(0xc2b2ae3d27d4eb4f) +
		     (k->w[2] ^ (s << 13)) * UINT64_C(0x165667b19e3779f9) +
		     (k->w[3] ^ (s >> 29)) * UINT64_C(0x27d4eb2f165667c5) +
		     (k->w[4] ^ (s << 7)) * UINT64_C(0xff51afd7ed558ccd);

	return (uint32_t)mix64(h ^ s);
}

static inline bool key_eq(const struct flow_key *x, const struct flow_key *y)
{
	return ((x->w[0] ^ y->w[0]) | (x->w[1] ^ y->w[1]) | (x->w[2] ^ y->w[2]) |
		(x->w[3] ^ y->w[3]) | (x->w[4] ^ y->w[4])) == 0;
}

/* ---- the activity list ---- */

static void lru_unlink(struct flow_table *t, struct flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		t->lru_head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		t->lru_tail = f->prev;
	f->prev = f->next = NULL;
}

static void lru_append(struct flow_table *t, struct flow *f)
{
	f->prev = t->lru_tail;
	f->next = NULL;
	if (t->lru_tail)
		t->lru_tail->next = f;
	else
		t->lru_head = f;
	t->lru_tail = f;
}

static void lru_touch(struct flow_table *t, struct flow *f)
{
	if (t->lru_tail != f) {
		lru_unlink(t, f);
		lru_append(t, f);
	}
}

/* ---- the hash table ---- */

static struct flow *flow_lookup(const struct flow_table *t, const struct flow_key *k, uint32_t h)
{
	struct flow *f;

	for (f = t->buckets[h & (t->nbuckets - 1)]; f; f = f->hnext)
		if (f->hash == h && key_eq(&f->key, k))
			return f;
	return NULL;
}

static void table_grow(struct flow_table *t)
{
	size_t n = t->nbuckets * 2, i;
	struct flow **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return; /* longer chains, still correct */
	for (i = 0; i < t->nbuckets; i++) {
		struct flow *f = t->buckets[i], *next;
		for (; f; f = next) {
			next = f->hnext;
			f->hnext = nb[f->hash & (n - 1)];
			nb[f->hash & (n - 1)] = f;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

static void table_unlink(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->buckets[f->hash & (t->nbuckets - 1)];

	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	t->nflows--;
}

/* ---- tombstones ---- */

static struct tomb *tomb_find(const struct flow_table *t, const struct flow_key *k, uint32_t h)
{
	struct tomb *tb;
	uint64_t seq;

	if (!t->tbuckets)
		return NULL;
	for (seq = t->tbuckets[h & (TOMB_BUCKETS - 1)]; seq; seq = tb->older) {
		tb = &t->tombs[seq % TOMB_MAX];
		/* overwritten by a newer one, or expired (the clock has been
		 * swept to `now`): so is every older one */
		if (tb->seq != seq || older_than(t->now, tb->died, t->idle_s))
			return NULL;
		if (tb->hash == h && key_eq(&tb->key, k))
			return tb;
	}
	return NULL;
}

static void tomb_add(struct flow_table *t, const struct flow_key *k, uint32_t h)
{
	uint64_t *head;
	struct tomb *tb;

	if (!t->tbuckets) {
		/* the ring, read and written at random (a tombstone a
		 * connection), on huge pages where allowed, as the flows are
		 * (slab.h); the bucket heads are too few to want a whole one */
		t->tbuckets = calloc(TOMB_BUCKETS, sizeof(*t->tbuckets));
		t->tombs = huge_calloc(TOMB_MAX * sizeof(*t->tombs));
		if (!t->tbuckets || !t->tombs) {
			free(t->tbuckets);
			huge_free(t->tombs, TOMB_MAX * sizeof(*t->tombs));
			t->tbuckets = NULL;
			t->tombs = NULL;
			return; /* no tombstones: stragglers may open flows */
		}
	}
	head = &t->tbuckets[h & (TOMB_BUCKETS - 1)];
	tb = &t->tombs[++t->tomb_seq % TOMB_MAX];
	tb->key = *k;
	tb->seq = t->tomb_seq;
	tb->older = *head;
	tb->died = t->now;
	tb->hash = h;
	*head = t->tomb_seq;
	/* the next finished flow writes the next slot: fetch it meanwhile */
	tb = &t->tombs[(t->tomb_seq + 1) % TOMB_MAX];
	__builtin_prefetch(tb, 1);
	__builtin_prefetch(&tb->hash, 1);
}

/* ---- sink calls ---- */

static void emit_data(struct flow_table *t, struct flow *f, int side,
		      const struct cursor *c, const struct timeval *ts)
{
	if (cursor_len(c) && !(f->flags & F_IGNORED) && t->sink->data)
		t->sink->data(t->sink->ctx, f->user, (enum side)side, cursor_data(c), cursor_len(c), ts);
}

static void emit_gap(struct flow_table *t, struct flow *f, int side, uint32_t n,
		     const struct timeval *ts)
{
	if (!n)
		return;
	t->stats->gaps++;
	t->stats->gap_bytes += n;
	if (!(f->flags & F_IGNORED) && t->sink->gap)
		t->sink->gap(t->sink->ctx, f->user, (enum side)side, n, ts);
}

static void free_held(struct flow_table *t, struct flow_dir *d)
{
	struct held *h, *next;

	for (h = d->held; h; h = next) {
		next = h->next;
		free(h);
	}
	t->held_total -= d->held_cost;
	d->held = d->held_tail = NULL;
	d->held_cost = 0;
}

static void close_side(struct flow_table *t, struct flow *f, int side,
		       enum close_kind how, const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];

	if (how == CLOSE_RST) {
		if (d->flags & D_RST)
			return;
		d->flags |= D_RST;
	} else if (d->flags & D_CLOSED) {
		return;
	}
	d->flags |= D_CLOSED;
	free_held(t, d); /* anything past the close is not part of the stream */
	if (!(f->flags & F_IGNORED) && t->sink->close)
		t->sink->close(t->sink->ctx, f->user, (enum side)side, how, ts);
}

static inline bool both_closed(const struct flow *f)
{
	return (f->dir[0].flags & D_CLOSED) && (f->dir[1].flags & D_CLOSED);
}

/* ---- reassembly ---- */

/* Hands over bytes at next_seq: `c` holds the captured bytes of a segment
 * starting at `seq` (not after next_seq), `lost` more bytes follow it that
 * the capture cut off.  Trims what was already delivered; returns false
 * when all of it had been. */
static bool deliver(struct flow_table *t, struct flow *f, int side, uint32_t seq,
		    struct cursor *c, uint32_t lost, const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];
	uint32_t old = d->next_seq - seq; /* seq is not after next_seq */
	uint32_t len = (uint32_t)cursor_len(c);

	if (old >= len + lost)
		return false;
	if (old > len) {
		lost -= old - len;
		old = len;
	}
	if (!cursor_skip(c, old))
		return false;
	emit_data(t, f, side, c, ts);
	d->next_seq += (uint32_t)cursor_len(c);
	emit_gap(t, f, side, lost, ts);
	d->next_seq += lost;
	return true;
}

/* Delivers held segments that the stream has reached, then the FIN. */
static void drain(struct flow_table *t, struct flow *f, int side, const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];
	struct held *h;

	while ((h = d->held) && seq_diff(h->seq, d->next_seq) <= 0) {
		struct cursor c;
		size_t cost = h->len + HELD_OVERHEAD;

		d->held = h->next;
		if (!d->held)
			d->held_tail = NULL;
		d->held_cost -= cost;
		t->held_total -= cost;
		cursor_init(&c, h->data, h->len);
		(void)deliver(t, f, side, h->seq, &c, h->lost, ts);
		free(h);
	}
	if ((d->flags & (D_FIN | D_CLOSED)) == D_FIN && seq_diff(d->fin_seq, d->next_seq) <= 0)
		close_side(t, f, side, CLOSE_FIN, ts);
}

/* The first sequence number past the hole at next_seq that something is
 * waiting on (a held segment or the FIN); false if nothing waits. */
static bool first_waiting(const struct flow_dir *d, uint32_t *first)
{
	bool any = false;

	if (d->held) {
		*first = d->held->seq;
		any = true;
	}
	if ((d->flags & (D_FIN | D_CLOSED)) == D_FIN &&
	    (!any || seq_before(d->fin_seq, *first))) {
		*first = d->fin_seq;
		any = true;
	}
	return any;
}

/* Declares [next_seq, upto) lost: a gap, then whatever that releases. */
static void skip_to(struct flow_table *t, struct flow *f, int side, uint32_t upto,
		    const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];

	if (seq_diff(upto, d->next_seq) > 0) {
		emit_gap(t, f, side, upto - d->next_seq, ts);
		d->next_seq = upto;
	}
	drain(t, f, side, ts);
}

enum hold_result { HOLD_OK, HOLD_COVERED, HOLD_FULL };

/* Copies a segment that is ahead of next_seq into the direction's sorted
 * list, unless an earlier copy covers it or it would pass a limit. */
static enum hold_result hold(struct flow_table *t, struct flow_dir *d, uint32_t seq,
			     struct cursor *c, uint32_t lost)
{
	uint32_t len = (uint32_t)cursor_len(c);
	size_t cost = (size_t)len + HELD_OVERHEAD;
	struct held **pp = &d->held, *prev = NULL, *h;

	if (d->held_tail && seq_diff(seq, d->held_tail->seq) > 0) {
		prev = d->held_tail;
		pp = &prev->next;
	} else {
		while (*pp && seq_before((*pp)->seq, seq)) {
			prev = *pp;
			pp = &prev->next;
		}
		if (*pp && (*pp)->seq == seq && (*pp)->len + (*pp)->lost >= len + lost)
			return HOLD_COVERED;
	}
	if (prev && seq_diff(prev->seq + prev->len + prev->lost, seq + len + lost) >= 0)
		return HOLD_COVERED;
	if (d->held_cost + cost > t->reasm_limit || t->held_total + cost > HELD_TOTAL_MAX)
		return HOLD_FULL;
	h = malloc(sizeof(*h) + len);
	if (!h)
		return HOLD_FULL;
	if (!cursor_copy_bytes(c, h->data, len)) {
		free(h);
		return HOLD_FULL;
	}
	h->seq = seq;
	h->len = len;
	h->lost = lost;
	h->next = *pp;
	*pp = h;
	if (!h->next)
		d->held_tail = h;
	d->held_cost += cost;
	t->held_total += cost;
	return HOLD_OK;
}

/* One side's payload: `c` holds the captured bytes from `seq`, `lost`
 * bytes more were on the wire. */
static void dir_payload(struct flow_table *t, struct flow *f, int side, uint32_t seq,
			struct cursor *c, uint32_t lost, const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];
	unsigned guard;

	/* Each round either places the segment or releases at least one
	 * held segment (or the hole before it); the guard only bounds a
	 * logic error. */
	for (guard = 0; guard < 100000; guard++) {
		uint32_t first;

		if (d->flags & D_CLOSED)
			return;
		if (seq_diff(seq, d->next_seq) <= 0) {
			/* In order; a front already delivered is a retransmission. */
			if (seq != d->next_seq)
				t->stats->retransmitted++;
			if (deliver(t, f, side, seq, c, lost, ts))
				drain(t, f, side, ts);
			return;
		}
		switch (hold(t, d, seq, c, lost)) {
		case HOLD_OK:
			t->stats->out_of_order++;
			return;
		case HOLD_COVERED:
			t->stats->retransmitted++;
			return;
		case HOLD_FULL:
			break;
		}
		/* Over the limit: give up the first hole and try again. */
		if (!first_waiting(d, &first) || seq_before(seq, first))
			first = seq;
		skip_to(t, f, side, first, ts);
	}
}

/* Gives up every hole of one side and delivers all it holds, then its FIN. */
static void flush_dir(struct flow_table *t, struct flow *f, int side, const struct timeval *ts)
{
	struct flow_dir *d = &f->dir[side];
	uint32_t first;

	if (f->flags & F_SKIP) {
		free_held(t, d);
		if ((d->flags & (D_FIN | D_CLOSED)) == D_FIN)
			close_side(t, f, side, CLOSE_FIN, ts);
		return;
	}
	while (!(d->flags & D_CLOSED) && first_waiting(d, &first))
		skip_to(t, f, side, first, ts);
}

/* The consumer needs no more payload: drop what is held; FINs waiting
 * behind holes no longer wait for anything. */
static void enter_skip(struct flow_table *t, struct flow *f, const struct timeval *ts)
{
	f->flags |= F_SKIP;
	flush_dir(t, f, SIDE_CLIENT, ts);
	flush_dir(t, f, SIDE_SERVER, ts);
}

/* ---- flow lifetime ---- */

/* Dotted quad by hand: inet_ntop formats IPv4 with sprintf, which showed
 * as several percent of a whole capture run. */
static void ipv4_text(char *out, const uint8_t a[4])
{
	size_t n = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (i)
			out[n++] = '.';
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
	}
	out[n] = 0;
}

static void endpoint_fill(struct endpoint *e, const uint8_t *addr, bool is_v6, uint16_t port)
{
	if (!is_v6)
		ipv4_text(e->ip, addr);
	else if (!inet_ntop(AF_INET6, addr, e->ip, sizeof(e->ip)))
		strcpy(e->ip, "?");
	e->port = port;
}

static struct flow *flow_create(struct flow_table *t, const struct flow_key *k, uint32_t h,
				const struct tcp_segment *s, bool src_is_a,
				const struct timeval *ts)
{
	bool saw_syn = (s->flags & TCP_SYN) != 0;
	/* The initiator sent the SYN; a SYN-ACK comes from the responder. */
	bool src_initiates = !(saw_syn && (s->flags & TCP_ACK));
	struct endpoint init, resp;
	struct flow *f = slab_get(t->flows);

	if (!f)
		return NULL;
	memset(f, 0, sizeof(*f));
	f->key = *k;
	f->hash = h;
	f->id = t->next_id++;
	if (src_initiates != src_is_a)
		f->flags |= F_B_INITIATOR;
	f->touched = t->now;
	f->last_ts = *ts;
	f->hnext = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = f;
	lru_append(t, f);
	t->nflows++;
	t->stats->flows++;
	if (!saw_syn)
		t->stats->midstream++;
	if (src_initiates) {
		endpoint_fill(&init, s->src, s->is_v6, s->sport);
		endpoint_fill(&resp, s->dst, s->is_v6, s->dport);
	} else {
		endpoint_fill(&init, s->dst, s->is_v6, s->dport);
		endpoint_fill(&resp, s->src, s->is_v6, s->sport);
	}
	f->user = t->sink->open(t->sink->ctx, &init, &resp, ts, saw_syn);
	if (!f->user)
		f->flags |= F_IGNORED | F_SKIP;
	if (t->nflows > t->nbuckets)
		table_grow(t);
	return f;
}

/* The one teardown: the sink's finish, then the flow's memory goes. */
static void flow_finish(struct flow_table *t, struct flow *f, bool truncated, bool keep_tomb)
{
	/* watched until the capture's latest time: an open, quiet session
	 * stayed open at least that long */
	if (!(f->flags & F_IGNORED) && t->sink->finish)
		t->sink->finish(t->sink->ctx, f->user, truncated,
				timercmp(&t->latest, &f->last_ts, >) ? &t->latest : &f->last_ts);
	table_unlink(t, f);
	lru_unlink(t, f);
	free_held(t, &f->dir[0]);
	free_held(t, &f->dir[1]);
	if (keep_tomb)
		tomb_add(t, &f->key, f->hash);
	slab_put(t->flows, f);
}

/* Quiet for longer than the timeout. */
static void flow_expire(struct flow_table *t, struct flow *f)
{
	int side;

	for (side = 0; side < 2; side++)
		flush_dir(t, f, side, &f->last_ts);
	for (side = 0; side < 2; side++)
		if (!(f->dir[side].flags & D_CLOSED))
			close_side(t, f, side, CLOSE_TIMEOUT, &f->last_ts);
	/* No tombstone: a packet after the silence means the connection is
	 * alive, and it opens a flow seen from the middle. */
	flow_finish(t, f, false, false);
}

static void sweep(struct flow_table *t)
{
	t->swept = t->now;
	while (t->lru_head && older_than(t->now, t->lru_head->touched, t->idle_s))
		flow_expire(t, t->lru_head);
}

/* The capture's clock moves to ts: the latest time seen (how long flows
 * were watched), and by the second, the sweep of quiet flows. */
static void clock_advance(struct flow_table *t, const struct timeval *ts)
{
	time_t sec = ts->tv_sec;

	if (timercmp(ts, &t->latest, >))
		t->latest = *ts;
	if (!t->clock_set) {
		t->clock_set = true;
		t->now = t->swept = sec;
		return;
	}
	if (sec > t->now)
		t->now = sec;
	if (t->now != t->swept)
		sweep(t);
}

static void flow_reset(struct flow_table *t, struct flow *f, int side, const struct timeval *ts)
{
	flush_dir(t, f, SIDE_CLIENT, ts);
	flush_dir(t, f, SIDE_SERVER, ts);
	close_side(t, f, side, CLOSE_RST, ts);
	flow_finish(t, f, false, true);
}

/* A SYN that is not the one this side already sent: a new connection on
 * the same port pair. */
static bool syn_is_new(const struct flow_dir *d, uint32_t seq)
{
	if ((d->flags & D_SYN) && seq == d->isn)
		return false;
	if ((d->flags & D_SEQ_KNOWN) && seq + 1 == d->next_seq)
		return false;
	return true;
}

void flow_table_segment(struct flow_table *t, const struct tcp_segment *s, const struct timeval *ts)
{
	struct flow_key k;
	bool src_is_a = key_from_segment(&k, s);
	uint32_t h = key_hash(t, &k);
	uint8_t fl = s->flags;
	bool syn_only = (fl & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN;
	uint32_t plen = (uint32_t)cursor_len(&s->payload) + s->missing;
	struct cursor payload = s->payload;
	struct flow *f;
	struct flow_dir *d, *o;
	uint32_t data_seq;
	int side;

	clock_advance(t, ts);
	f = flow_lookup(t, &k, h);
	if (f && syn_only) {
		side = ((f->flags & F_B_INITIATOR) != 0) == src_is_a ? SIDE_SERVER : SIDE_CLIENT;
		if (syn_is_new(&f->dir[side], s->seq)) {
			/* Port reuse while the old connection never visibly ended. */
			int i;
			for (i = 0; i < 2; i++)
				flush_dir(t, f, i, &f->last_ts);
			flow_finish(t, f, true, false);
			f = NULL;
		}
	}
	if (!f) {
		bool opens = !(fl & TCP_RST) && ((fl & TCP_SYN) || plen > 0);

		/* Stragglers (pure ACKs, FINs, RSTs) never open a flow; only a
		 * SYN opens one where a finished flow left its tombstone.  A
		 * SYN does not even look: a tombstone under a live flow is
		 * never consulted (the live flow is found first) and expires
		 * in its turn. */
		if (!opens)
			return;
		if (!syn_only && tomb_find(t, &k, h))
			return;
		if (t->nflows >= t->max_flows) {
			/* Full: the least recently active flow goes, as if idle
			 * (of those last active in the same second, the one that
			 * was active in it first). */
			t->stats->evicted++;
			flow_expire(t, t->lru_head);
		}
		f = flow_create(t, &k, h, s, src_is_a, ts);
		if (!f)
			return;
	} else {
		/* the activity list is kept to the second (the clock's unit):
		 * a flow moves to its end at its first packet of a second, not
		 * at every packet, which would write its neighbours' links */
		if (f->touched != t->now) {
			f->touched = t->now;
			lru_touch(t, f);
		}
		f->last_ts = *ts;
	}

	side = ((f->flags & F_B_INITIATOR) != 0) == src_is_a ? SIDE_SERVER : SIDE_CLIENT;
	d = &f->dir[side];
	o = &f->dir[!side];

	if (fl & TCP_RST) {
		flow_reset(t, f, side, ts);
		return;
	}
	data_seq = s->seq;
	if (fl & TCP_SYN) {
		if (!(d->flags & D_SYN) && !(d->flags & D_SEQ_KNOWN)) {
			d->isn = s->seq;
			d->next_seq = s->seq + 1;
			d->flags |= D_SYN | D_SEQ_KNOWN;
		}
		data_seq++; /* the SYN takes one sequence number */
	}
	if (fl & TCP_ACK) {
		uint32_t first;
		if (!(o->flags & D_SEQ_KNOWN)) {
			/* The peer's next byte, as this side expects it. */
			o->next_seq = s->ack;
			o->flags |= D_SEQ_KNOWN;
		} else if (!(f->flags & F_SKIP) && !(o->flags & D_CLOSED) &&
			   first_waiting(o, &first) && seq_diff(s->ack, first) > 0) {
			/* This side acknowledged bytes past a hole in the
			 * peer's stream and into what is held after it: the
			 * hole reached it and the capture missed it.  An ACK
			 * that ends at or inside the hole proves nothing: a
			 * capture can hold an ACK before the segment it
			 * acknowledges (merged or multi-queue captures). */
			skip_to(t, f, !side, first, ts);
			if (both_closed(f)) {
				flow_finish(t, f, false, true);
				return;
			}
		}
	}
	if (plen) {
		if (!(f->flags & F_SKIP) && t->sink->wants_bytes &&
		    !t->sink->wants_bytes(t->sink->ctx, f->user))
			enter_skip(t, f, ts);
		if (!(d->flags & D_SEQ_KNOWN)) {
			d->next_seq = data_seq;
			d->flags |= D_SEQ_KNOWN;
		}
		if (!(f->flags & F_SKIP))
			dir_payload(t, f, side, data_seq, &payload, s->missing, ts);
	}
	if ((fl & TCP_FIN) && !(d->flags & (D_FIN | D_CLOSED))) {
		d->flags |= D_FIN;
		d->fin_seq = data_seq + plen;
		if (!(d->flags & D_SEQ_KNOWN)) {
			d->next_seq = d->fin_seq;
			d->flags |= D_SEQ_KNOWN;
		}
		if ((f->flags & F_SKIP) || seq_diff(d->fin_seq, d->next_seq) <= 0)
			close_side(t, f, side, CLOSE_FIN, ts);
	}
	if (both_closed(f))
		flow_finish(t, f, false, true);
}

/* ---- table ---- */

struct flow_table *flow_table_new(const struct capture_opts *opts, const struct flow_sink *sink,
				  struct capture_stats *stats)
{
	struct flow_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->sink = sink;
	t->stats = stats;
	t->idle_s = opts && opts->idle_timeout_s ? (time_t)opts->idle_timeout_s : DEFAULT_IDLE_S;
	t->reasm_limit = opts && opts->reasm_limit ? opts->reasm_limit : DEFAULT_REASM_LIMIT;
	t->max_flows = opts && opts->max_flows ? opts->max_flows : DEFAULT_MAX_FLOWS;
	t->nbuckets = INITIAL_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	t->flows = slab_new(sizeof(struct flow));
	if (!t->buckets || !t->flows) {
		slab_free(t->flows);
		free(t->buckets);
		free(t);
		return NULL;
	}
	/* A keyed hash: a hostile capture cannot aim every flow at one chain. */
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
		t->seed = UINT64_C(0x6a09e667f3bcc908) ^ (uint64_t)(uintptr_t)t;
	return t;
}

void flow_table_tick(struct flow_table *t, const struct timeval *now)
{
	struct flow *f, *next;

	clock_advance(t, now);
	if (!t->sink->quiet)
		return;
	/* least recently active first: the quiet ones are at the head */
	for (f = t->lru_head; f && t->now - f->touched >= QUIET_S; f = next) {
		next = f->next;
		if (f->flags & F_SKIP)
			continue;
		t->sink->quiet(t->sink->ctx, f->user, now);
		if (t->sink->wants_bytes && !t->sink->wants_bytes(t->sink->ctx, f->user))
			enter_skip(t, f, now);
	}
}

static int by_id(const void *x, const void *y)
{
	const struct flow *a = *(const struct flow *const *)x;
	const struct flow *b = *(const struct flow *const *)y;

	return a->id < b->id ? -1 : a->id > b->id;
}

static void finish_at_end(struct flow_table *t, struct flow *f)
{
	flush_dir(t, f, SIDE_CLIENT, &f->last_ts);
	flush_dir(t, f, SIDE_SERVER, &f->last_ts);
	flow_finish(t, f, !both_closed(f), false);
}

void flow_table_finish_all(struct flow_table *t)
{
	size_t n = t->nflows, i = 0;
	struct flow **all = n ? malloc(n * sizeof(*all)) : NULL;
	struct flow *f;

	if (!all) {
		/* Out of memory: finish in activity order instead. */
		while (t->lru_head)
			finish_at_end(t, t->lru_head);
		return;
	}
	for (f = t->lru_head; f && i < n; f = f->next)
		all[i++] = f;
	qsort(all, i, sizeof(*all), by_id);
	n = i;
	for (i = 0; i < n; i++)
		finish_at_end(t, all[i]);
	free(all);
}

size_t flow_table_live(const struct flow_table *t)
{
	return t->nflows;
}

void flow_table_free(struct flow_table *t)
{
	struct flow *f, *next;

	if (!t)
		return;
	for (f = t->lru_head; f; f = next) {
		next = f->next;
		free_held(t, &f->dir[0]);
		free_held(t, &f->dir[1]);
	}
	slab_free(t->flows);   /* every flow, live or finished */
	huge_free(t->tombs, TOMB_MAX * sizeof(*t->tombs));
	free(t->tbuckets);
	free(t->buckets);
	free(t);
}
