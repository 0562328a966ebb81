/* capture: packets in, TCP segments out (see capture.h).
 *
 * libpcap reads the file (pcap or pcapng) and applies the BPF filter, in a
 * reader thread that hands the records over in order; this file decodes
 * the link layer, IPv4/IPv6 and the TCP header through the cursor and
 * hands each segment to the flow table (flow.c).  Statistics
 * accumulate in the caller's struct capture_stats across files. */
#include "config.h"

#include "wire/capture.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire/cursor.h"
#include "wire/flow.h"
#include "wire/pcapng.h"
#include "wire/slab.h"

/* Link-layer type values as libpcap reports them.  LINKTYPE_RAW (101) in
 * a file becomes DLT_RAW, which is 12 on most systems and 14 on OpenBSD;
 * 12 is DLT_LOOP on OpenBSD, so a file written there with DLT 12 is told
 * apart by its first byte.  Files from old libpcaps may carry 14 or 101
 * as they are. */
#define LT_NULL 0
#define LT_EN10MB 1
#define LT_RAW_12 12
#define LT_RAW_14 14
#define LT_RAW_101 101
#define LT_LOOP 108
#define LT_LINUX_SLL 113
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_LINUX_SLL2 276

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_8021Q 0x8100
#define ETH_8021AD 0x88a8
#define ETH_QINQ_OLD1 0x9100 /* pre-802.1ad QinQ */
#define ETH_QINQ_OLD2 0x9200
#define ETH_CISCO_CMD 0x8909 /* Cisco MetaData: version, length, option, SGT, then a type */
#define MAX_VLAN_TAGS 8

#define IPPROTO_TCP_ 6
#define READ_BUFFER (1 << 20)

struct capture {
	struct flow_table *flows;
	struct capture_stats *stats;
};

/* Outcome of decoding one layer. */
enum dec {
	DEC_OK,
	DEC_NOT_IP,
	DEC_NOT_TCP,
	DEC_BAD,   /* malformed header */
	DEC_CUT,   /* header cut off by the snap length: counted as truncated */
	DEC_FRAG,  /* a non-first IP fragment: counted, skipped */
};

/* A read failed: malformed, unless the snap length cut the packet. */
static inline enum dec short_read(bool cut)
{
	return cut ? DEC_CUT : DEC_BAD;
}

/* ---- link layer ---- */

/* After an Ethernet type field: VLAN tags (802.1Q, 802.1ad and the older
 * QinQ values), then IPv4 or IPv6.  *ipver is 4 or 6. */
static inline enum dec ethertype_payload(struct cursor *c, uint16_t type, bool cut, int *ipver)
{
	int tags;

	for (tags = 0; type == ETH_8021Q || type == ETH_8021AD || type == ETH_QINQ_OLD1 ||
		       type == ETH_QINQ_OLD2 || type == ETH_CISCO_CMD; tags++) {
		/* a VLAN tag is a 2-byte TCI; Cisco MetaData (TrustSec SGT) is
		 * version, length, a 2-byte option header and the 2-byte SGT */
		size_t skip = type == ETH_CISCO_CMD ? 6 : 2;

		if (tags == MAX_VLAN_TAGS)
			return DEC_BAD;
		if (!cursor_skip(c, skip) || !cursor_get_u16(c, &type))
			return short_read(cut);
	}
	switch (type) {
	case ETH_IPV4:
		*ipver = 4;
		return DEC_OK;
	case ETH_IPV6:
		*ipver = 6;
		return DEC_OK;
	default:
		return DEC_NOT_IP;
	}
}

/* The IP version from the first nibble (raw IP link types). */
static enum dec raw_ip(const struct cursor *c, bool cut, int want, int *ipver)
{
	uint8_t b;

	if (!cursor_peek_u8(c, 0, &b))
		return short_read(cut);
	*ipver = b >> 4;
	if (*ipver != 4 && *ipver != 6)
		return DEC_NOT_IP;
	if (want && *ipver != want)
		return DEC_BAD;
	return DEC_OK;
}

/* BSD loopback: a 4-byte address family, in the capturing host's byte
 * order (DLT_NULL) or network order (DLT_LOOP); families are small, so the
 * order shows.  AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD,
 * BSD/OS), 28 (FreeBSD, DragonFly), 30 (macOS, iOS), 10 (Linux) or 23
 * (Windows). */
static enum dec bsd_loopback(struct cursor *c, bool cut, int *ipver)
{
	struct cursor probe = *c;
	uint32_t af;

	if (!cursor_get_u32(c, &af))
		return short_read(cut);
	if (af > 0xffff && !cursor_get_u32le(&probe, &af))
		return short_read(cut);
	switch (af) {
	case 2:
		*ipver = 4;
		return DEC_OK;
	case 10:
	case 23:
	case 24:
	case 28:
	case 30:
		*ipver = 6;
		return DEC_OK;
	default:
		return DEC_NOT_IP;
	}
}

static enum dec link_layer(struct cursor *c, int linktype, bool cut, int *ipver)
{
	uint16_t type;
	uint8_t first;

	switch (linktype) {
	case LT_EN10MB:
		/* destination and source MAC, then the type */
		if (!cursor_skip(c, 12) || !cursor_get_u16(c, &type))
			return short_read(cut);
		return ethertype_payload(c, type, cut, ipver);
	case LT_LINUX_SLL:
		/* packet type, ARPHRD type, address length, 8 address bytes, protocol */
		if (!cursor_skip(c, 14) || !cursor_get_u16(c, &type))
			return short_read(cut);
		return ethertype_payload(c, type, cut, ipver);
	case LT_LINUX_SLL2:
		/* protocol, reserved, interface index, ARPHRD type, packet
		 * type, address length, 8 address bytes */
		if (!cursor_get_u16(c, &type) || !cursor_skip(c, 18))
			return short_read(cut);
		return ethertype_payload(c, type, cut, ipver);
	case LT_NULL:
	case LT_LOOP:
		return bsd_loopback(c, cut, ipver);
	case LT_RAW_12:
		/* DLT_RAW here, DLT_LOOP on OpenBSD: a loopback header starts
		 * with a zero byte, an IP header never does. */
		if (cursor_peek_u8(c, 0, &first) && first == 0)
			return bsd_loopback(c, cut, ipver);
		return raw_ip(c, cut, 0, ipver);
	case LT_RAW_14:
	case LT_RAW_101:
		return raw_ip(c, cut, 0, ipver);
	case LT_IPV4:
		return raw_ip(c, cut, 4, ipver);
	case LT_IPV6:
		return raw_ip(c, cut, 6, ipver);
	default:
		return DEC_NOT_IP;
	}
}

int capture_linktype_supported(int linktype)
{
	switch (linktype) {
	case LT_EN10MB:
	case LT_LINUX_SLL:
	case LT_LINUX_SLL2:
	case LT_NULL:
	case LT_LOOP:
	case LT_RAW_12:
	case LT_RAW_14:
	case LT_RAW_101:
	case LT_IPV4:
	case LT_IPV6:
		return 1;
	default:
		return 0;
	}
}

/* ---- network layer ---- */

/* The IP payload: `l4len` bytes on the wire, of which the cursor holds
 * what was captured (Ethernet padding dropped); *missing gets the rest. */
static enum dec bound_payload(struct cursor *c, uint32_t l4len, bool cut, uint32_t *missing)
{
	struct cursor body;

	if (cursor_len(c) >= l4len) {
		if (!cursor_get_bytes(c, &body, l4len))
			return DEC_BAD;
		*c = body;
		*missing = 0;
		return DEC_OK;
	}
	if (!cut)
		return DEC_BAD; /* the IP length runs past a complete frame */
	*missing = l4len - (uint32_t)cursor_len(c);
	return DEC_OK;
}

/* IPv4 (RFC 791): options skipped by the header length; fragments other
 * than the first are counted and skipped, the first is used as far as it
 * goes.  Checksums are not checked (capture hosts offload them). */
static enum dec ipv4(struct capture_stats *st, struct cursor *c, bool cut, struct tcp_segment *s)
{
	struct cursor fixed;
	uint32_t w0, w1, w2, ihl, l4len;
	uint16_t total, frag;
	uint8_t proto;
	enum dec r;

	/* Read a word at a time: version/IHL, TOS, total length | ident,
	 * flags/fragment offset | TTL, protocol, checksum.  The fixed part is
	 * split off first, so the reads inside it need no checks of their own. */
	if (!cursor_get_u32(c, &w0))
		return short_read(cut);
	ihl = ((w0 >> 24) & 0x0f) * 4;
	if (w0 >> 28 != 4 || ihl < 20)
		return DEC_BAD;
	if (!cursor_get_bytes(c, &fixed, 16) || !cursor_skip(c, ihl - 20))
		return short_read(cut);
	if (!cursor_get_u32(&fixed, &w1) || !cursor_get_u32(&fixed, &w2) ||
	    !cursor_copy_bytes(&fixed, s->src, 4) || !cursor_copy_bytes(&fixed, s->dst, 4))
		return DEC_BAD;
	total = (uint16_t)w0;
	frag = (uint16_t)w1;
	proto = (uint8_t)(w2 >> 16);
	if (frag & 0x3fff) {
		st->ip_fragments++;
		if (frag & 0x1fff)
			return DEC_FRAG;
	}
	if (proto != IPPROTO_TCP_)
		return DEC_NOT_TCP;
	if (total == 0) {
		l4len = (uint32_t)cursor_len(c); /* segmentation offload: length left 0 */
	} else {
		if (total < ihl)
			return DEC_BAD;
		l4len = total - ihl;
	}
	if ((r = bound_payload(c, l4len, cut, &s->missing)) != DEC_OK)
		return r;
	s->is_v6 = false;
	return DEC_OK;
}

/* IPv6 (RFC 8200) with its extension headers (RFC 8200 section 4, RFC
 * 4302 for AH).  A fragment header with a non-zero offset ends the walk. */
static enum dec ipv6(struct capture_stats *st, struct cursor *c, bool cut, struct tcp_segment *s)
{
	uint32_t vtf, l4len;
	uint16_t plen;
	uint8_t next;
	enum dec r;
	int hops;

	if (!cursor_get_u32(c, &vtf))
		return short_read(cut);
	if (vtf >> 28 != 6)
		return DEC_BAD;
	if (!cursor_get_u16(c, &plen) || !cursor_get_u8(c, &next) || !cursor_skip(c, 1) ||
	    !cursor_copy_bytes(c, s->src, 16) || !cursor_copy_bytes(c, s->dst, 16))
		return short_read(cut);
	/* 0: a jumbogram or segmentation offload; take what is there */
	l4len = plen ? plen : (uint32_t)cursor_len(c);
	if ((r = bound_payload(c, l4len, cut, &s->missing)) != DEC_OK)
		return r;
	for (hops = 0; next != IPPROTO_TCP_; hops++) {
		uint8_t hlen;
		uint16_t off;

		if (hops == 16)
			return DEC_BAD;
		switch (next) {
		case 0:   /* hop-by-hop options */
		case 43:  /* routing */
		case 60:  /* destination options */
		case 135: /* mobility */
		case 139: /* HIP */
		case 140: /* shim6 */
			if (!cursor_get_u8(c, &next) || !cursor_get_u8(c, &hlen) ||
			    !cursor_skip(c, (size_t)hlen * 8 + 6))
				return short_read(cut);
			break;
		case 51: /* authentication header: length in 4-byte units, minus 2 */
			if (!cursor_get_u8(c, &next) || !cursor_get_u8(c, &hlen) ||
			    !cursor_skip(c, (size_t)hlen * 4 + 6))
				return short_read(cut);
			break;
		case 44: /* fragment */
			if (!cursor_get_u8(c, &next) || !cursor_skip(c, 1) ||
			    !cursor_get_u16(c, &off) || !cursor_skip(c, 4))
				return short_read(cut);
			if (off & 0xfff9) {
				st->ip_fragments++;
				if (off & 0xfff8)
					return DEC_FRAG;
			}
			break;
		default: /* 59 no next header, ESP, ICMPv6, UDP, ... */
			return DEC_NOT_TCP;
		}
	}
	s->is_v6 = true;
	return DEC_OK;
}

/* ---- transport layer ---- */

/* TCP (RFC 9293): options are skipped by the data offset. */
static enum dec tcp(struct cursor *c, bool cut, struct tcp_segment *s)
{
	uint32_t wire = (uint32_t)cursor_len(c) + s->missing;
	uint32_t ports, offflags, doff;
	struct cursor fixed;

	if (!cursor_get_bytes(c, &fixed, 16))
		return short_read(cut);
	if (!cursor_get_u32(&fixed, &ports) || !cursor_get_u32(&fixed, &s->seq) ||
	    !cursor_get_u32(&fixed, &s->ack) || !cursor_get_u32(&fixed, &offflags)) /* | window */
		return DEC_BAD;
	doff = (offflags >> 28) * 4;
	if (doff < 20 || doff > wire)
		return DEC_BAD;
	if (!cursor_skip(c, doff - 16)) /* checksum, urgent pointer, options */
		return short_read(cut);
	s->sport = (uint16_t)(ports >> 16);
	s->dport = (uint16_t)ports;
	s->flags = (uint8_t)(offflags >> 16);
	s->payload = *c;
	return DEC_OK;
}

/* ---- packets ---- */

/* One packet's link, IP and TCP headers into *seg, counted in st; DEC_OK
 * when it is a TCP segment for the flow table. */
static enum dec decode_packet(struct capture_stats *st, int linktype, const uint8_t *bytes,
			      uint32_t caplen, uint32_t len, struct tcp_segment *seg)
{
	bool cut = caplen < len;
	struct cursor c;
	int ipver = 0;
	enum dec r;

	st->packets++;
	st->bytes += caplen;
	if (cut)
		st->truncated++;
	cursor_init(&c, bytes, bytes ? caplen : 0);
	/* IPv4 addresses use 4 of the 16 bytes, and the key reads all 16 */
	memset(seg->src, 0, sizeof(seg->src));
	memset(seg->dst, 0, sizeof(seg->dst));
	seg->missing = 0;
	r = link_layer(&c, linktype, cut, &ipver);
	if (r == DEC_OK)
		r = ipver == 4 ? ipv4(st, &c, cut, seg) : ipv6(st, &c, cut, seg);
	if (r == DEC_OK)
		r = tcp(&c, cut, seg);
	switch (r) {
	case DEC_OK:
		break;
	case DEC_NOT_IP:
		st->not_ip++;
		break;
	case DEC_NOT_TCP:
		st->not_tcp++;
		break;
	case DEC_BAD:
		st->bad_headers++;
		break;
	case DEC_CUT:
	case DEC_FRAG:
		break;
	}
	return r;
}

void capture_packet(struct capture *cap, int linktype, const struct timeval *ts,
		    const uint8_t *bytes, uint32_t caplen, uint32_t len)
{
	struct tcp_segment seg;

	if (decode_packet(cap->stats, linktype, bytes, caplen, len, &seg) == DEC_OK)
		flow_table_segment(cap->flows, &seg, ts);
}

struct capture *capture_new(const struct capture_opts *opts, const struct flow_sink *sink,
			    struct capture_stats *stats)
{
	struct capture *cap = calloc(1, sizeof(*cap));

	if (!cap)
		return NULL;
	cap->stats = stats;
	cap->flows = flow_table_new(opts, sink, stats);
	if (!cap->flows) {
		free(cap);
		return NULL;
	}
	return cap;
}

void capture_tick(struct capture *cap, const struct timeval *now)
{
	flow_table_tick(cap->flows, now);
}

void capture_end(struct capture *cap)
{
	flow_table_finish_all(cap->flows);
}

void capture_free(struct capture *cap)
{
	if (!cap)
		return;
	flow_table_free(cap->flows);
	free(cap);
}

/* ---- files ---- */

/* One line into err: "mtlsdiag: <name>: <reason>", newlines flattened. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (p = err; (p = strpbrk(p, "\r\n")) != NULL;)
		*p = ' ';
}

static void close_stream(FILE *f)
{
	if (f != stdin)
		fclose(f);
}

/* ---- a stream written as it is read ---- */

/* libpcap blocks in fread until the next record arrives: a connection
 * that went quiet, or a gateway leg held for its partner, would wait for
 * the next packet however long it takes.  So such a stream is read
 * through a stdio cookie whose read waits in poll(2) for at most a second
 * at a time and, between waits, moves the capture's clock: the last
 * packet's time plus the real time since it was read.  It runs between
 * records (inside libpcap's fread), when the flow table is at rest. */
#define TICK_MS 1000

struct stream_clock {
	FILE *in;                  /* the stream given (closed with ours, except stdin) */
	int fd;
	struct capture *cap;       /* once made */
	const struct capture_opts *opts;
	bool seen;                 /* a packet was read */
	struct timeval last_ts;    /* its capture time */
	struct timespec last_at;   /* when it was read (monotonic) */
	struct timespec ticked;    /* the last tick */
};

static long long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static void clock_tick(struct stream_clock *sc, const struct timespec *mono)
{
	struct timeval now, since;
	long long ms;

	sc->ticked = *mono;
	if (!sc->cap || !sc->seen)
		return;
	ms = ms_between(&sc->last_at, mono);
	since.tv_sec = (time_t)(ms / 1000);
	since.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	timeradd(&sc->last_ts, &since, &now);
	capture_tick(sc->cap, &now);
	if (sc->opts && sc->opts->tick)
		sc->opts->tick(sc->opts->tick_ctx, &now);
}

static ssize_t clock_read(void *cookie, char *buf, size_t size)
{
	struct stream_clock *sc = cookie;

	for (;;) {
		struct pollfd pfd = { .fd = sc->fd, .events = POLLIN };
		struct timespec mono;
		long long since;
		int r;

		/* interrupted while waiting for input: the input ends here */
		if (sc->opts && sc->opts->interrupt && *sc->opts->interrupt)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		since = ms_between(&sc->ticked, &mono);
		if (since >= TICK_MS) {
			clock_tick(sc, &mono);
			since = 0;
		}
		r = poll(&pfd, 1, (int)(TICK_MS - since));
		if (r > 0) {
			ssize_t n = read(sc->fd, buf, size);

			if (n >= 0 || errno != EINTR)
				return n;
		} else if (r < 0 && errno != EINTR) {
			return -1;
		}
	}
}

static int clock_close(void *cookie)
{
	struct stream_clock *sc = cookie;
	int rc = sc->in == stdin ? 0 : fclose(sc->in);

	free(sc);
	return rc;
}

/* The stream in, as a stream whose reads keep the clock; NULL (and in
 * left as it was) when that cannot be had. */
static FILE *clocked_stream(FILE *in, const struct capture_opts *opts, struct stream_clock **out)
{
	static const cookie_io_functions_t io = { .read = clock_read, .close = clock_close };
	struct stream_clock *sc = calloc(1, sizeof(*sc));
	FILE *f;

	if (!sc)
		return NULL;
	sc->in = in;
	sc->fd = fileno(in);
	sc->opts = opts;
	clock_gettime(CLOCK_MONOTONIC, &sc->ticked);
	if (sc->fd < 0 || !(f = fopencookie(sc, "rb", io))) {
		free(sc);
		return NULL;
	}
	*out = sc;
	return f;
}

/* How far into its input the reading thread is, said every so many
 * records (capture_opts.progress). */
struct progress_note {
	uint64_t *where;    /* NULL: nobody asked */
	FILE *f;
	unsigned records;
	const volatile sig_atomic_t *interrupt;   /* capture_opts.interrupt */
};

/* One more record read; false when reading is to stop there (the
 * interrupt is set). */
static inline bool progress_record(struct progress_note *pn)
{
	off_t at;

	if (pn->interrupt && *pn->interrupt)
		return false;
	if (pn->where && (++pn->records & 1023) == 0 && (at = ftello(pn->f)) >= 0)
		__atomic_store_n(pn->where, (uint64_t)at, __ATOMIC_RELAXED);
	return true;
}

/* What pcap_dispatch's callback needs. */
struct reader {
	struct capture *cap;
	pcap_t *p;
	int linktype;
	struct stream_clock *clock;     /* a stream written as it is read, or NULL */
	struct progress_note progress;
};

static void on_record(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct reader *rd = (struct reader *)user;

	if (rd->clock) {
		rd->clock->seen = true;
		rd->clock->last_ts = h->ts;
		clock_gettime(CLOCK_MONOTONIC, &rd->clock->last_at);
	}
	if (!progress_record(&rd->progress)) {
		pcap_breakloop(rd->p);
		return;
	}
	capture_packet(rd->cap, rd->linktype, &h->ts, bytes, h->caplen, h->len);
}

/* ---- reading in a second thread ---- */

/* libpcap's reading (the kernel's copy into the stdio buffer, then fread's
 * copy of every record) is about a third of a run on a large capture.  A
 * reader thread does it, and decodes the headers, while this thread runs
 * the flow table and everything after it: the reader hands the TCP
 * segments over in chunks, in file order, so the flow table sees the same
 * segments in the same order as if this thread had read the file itself.
 * Packets that are not TCP segments never reach the flow table, so they
 * stay with the reader, counted in its own statistics. */
#define CHUNK_BYTES ((size_t)1 << 18)
#define CHUNKS 4

/* Written before each segment's payload in a chunk (seg.payload is
 * rebuilt over the payload that follows). */
struct record_head {
	struct timeval ts;
	struct tcp_segment seg;
	uint32_t payload_len;
};

struct chunk {
	struct chunk *next;
	uint8_t *bytes;
	size_t used, cap;
};

struct handoff {
	pcap_t *p;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t filled;        /* a chunk was handed over, or the reader ended */
	pthread_cond_t emptied;       /* a chunk came back */
	struct chunk *spare;          /* free chunks */
	struct chunk *full, *full_tail; /* handed over, oldest first */
	struct chunk *filling;        /* the reader's current chunk */
	bool done;                    /* the reader has handed over everything */
	int rc;                       /* pcap_dispatch's last return */
	int linktype;
	struct progress_note progress;
	struct capture_stats decoded; /* the reader's counts: packets and headers */
	struct chunk chunks[CHUNKS];
};

/* Reader side: the current chunk goes to the analysis. */
static void hand_over(struct handoff *ho)
{
	struct chunk *c = ho->filling;

	ho->filling = NULL;
	if (!c)
		return;
	pthread_mutex_lock(&ho->lock);
	c->next = NULL;
	if (ho->full_tail)
		ho->full_tail->next = c;
	else
		ho->full = c;
	ho->full_tail = c;
	pthread_cond_signal(&ho->filled);
	pthread_mutex_unlock(&ho->lock);
}

/* Reader side: a chunk with room for `need` bytes, or NULL when out of
 * memory. */
static struct chunk *chunk_for(struct handoff *ho, size_t need)
{
	struct chunk *c = ho->filling;

	if (c && c->cap - c->used >= need)
		return c;
	hand_over(ho);
	pthread_mutex_lock(&ho->lock);
	while (!ho->spare)
		pthread_cond_wait(&ho->emptied, &ho->lock);
	c = ho->spare;
	ho->spare = c->next;
	pthread_mutex_unlock(&ho->lock);
	c->used = 0;
	if (c->cap < need) {
		/* a segment larger than a chunk (libpcap allows 256 KiB records) */
		uint8_t *grown = realloc(c->bytes, need);

		if (!grown) {
			pthread_mutex_lock(&ho->lock);
			c->next = ho->spare;
			ho->spare = c;
			pthread_mutex_unlock(&ho->lock);
			return NULL;
		}
		c->bytes = grown;
		c->cap = need;
	}
	ho->filling = c;
	return c;
}

static void on_record_decode(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct handoff *ho = (struct handoff *)user;
	struct record_head head;
	struct chunk *c;

	if (!progress_record(&ho->progress)) {
		pcap_breakloop(ho->p);
		return;
	}
	if (decode_packet(&ho->decoded, ho->linktype, bytes, h->caplen, h->len, &head.seg) != DEC_OK)
		return;
	head.ts = h->ts;
	head.payload_len = (uint32_t)cursor_len(&head.seg.payload);
	if (!(c = chunk_for(ho, sizeof(head) + head.payload_len))) {
		pcap_breakloop(ho->p);
		return;
	}
	memcpy(c->bytes + c->used, &head, sizeof(head));
	if (head.payload_len)
		memcpy(c->bytes + c->used + sizeof(head), cursor_data(&head.seg.payload), head.payload_len);
	c->used += sizeof(head) + head.payload_len;
}

static void *reader_main(void *arg)
{
	struct handoff *ho = arg;
	int rc;

	while ((rc = pcap_dispatch(ho->p, -1, on_record_decode, (u_char *)ho)) > 0)
		;
	hand_over(ho);
	pthread_mutex_lock(&ho->lock);
	ho->rc = rc;
	ho->done = true;
	pthread_cond_signal(&ho->filled);
	pthread_mutex_unlock(&ho->lock);
	return NULL;
}

/* Analysis side: the next chunk in file order, or NULL at the end. */
static struct chunk *next_chunk(struct handoff *ho)
{
	struct chunk *c;

	pthread_mutex_lock(&ho->lock);
	while (!ho->full && !ho->done)
		pthread_cond_wait(&ho->filled, &ho->lock);
	c = ho->full;
	if (c) {
		ho->full = c->next;
		if (!ho->full)
			ho->full_tail = NULL;
	}
	pthread_mutex_unlock(&ho->lock);
	return c;
}

static void give_back(struct handoff *ho, struct chunk *c)
{
	pthread_mutex_lock(&ho->lock);
	c->next = ho->spare;
	ho->spare = c;
	pthread_cond_signal(&ho->emptied);
	pthread_mutex_unlock(&ho->lock);
}

static void handoff_free(struct handoff *ho)
{
	size_t i;

	for (i = 0; i < CHUNKS; i++)
		free(ho->chunks[i].bytes);
	pthread_cond_destroy(&ho->emptied);
	pthread_cond_destroy(&ho->filled);
	pthread_mutex_destroy(&ho->lock);
	free(ho);
}

unsigned capture_cpus(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;

	return n > 1 ? (unsigned)n : 1;
}

/* Starts the reader thread; NULL when it cannot be had or would not help:
 * no CPU left for it beside this thread and the caller's others (then
 * this thread reads). */
static struct handoff *handoff_start(pcap_t *p, int linktype, const struct progress_note *progress,
				     unsigned threads_beside)
{
	struct handoff *ho;
	size_t i;

	if (capture_cpus() < 2 + threads_beside || !(ho = calloc(1, sizeof(*ho))))
		return NULL;
	ho->p = p;
	ho->linktype = linktype;
	ho->progress = *progress;
	pthread_mutex_init(&ho->lock, NULL);
	pthread_cond_init(&ho->filled, NULL);
	pthread_cond_init(&ho->emptied, NULL);
	for (i = 0; i < CHUNKS; i++) {
		struct chunk *c = &ho->chunks[i];

		if (!(c->bytes = malloc(CHUNK_BYTES)))
			goto Fail;
		c->cap = CHUNK_BYTES;
		c->next = ho->spare;
		ho->spare = c;
	}
	if (pthread_create(&ho->thread, NULL, reader_main, ho) != 0)
		goto Fail;
	pthread_setname_np(ho->thread, "mtlsdiag-read");
	return ho;
Fail:
	handoff_free(ho);
	return NULL;
}

/* Runs the flow table on the segments the reader hands over and adds the
 * reader's counts to cap's; returns pcap_dispatch's last return, as the
 * reader saw it. */
static int handoff_consume(struct handoff *ho, struct capture *cap)
{
	struct capture_stats *st = cap->stats;
	struct chunk *c;
	int rc;

	while ((c = next_chunk(ho)) != NULL) {
		struct cursor in;
		struct record_head head;

		cursor_init(&in, c->bytes, c->used);
		while (cursor_copy_bytes(&in, (uint8_t *)&head, sizeof(head)) &&
		       cursor_get_bytes(&in, &head.seg.payload, head.payload_len))
			flow_table_segment(cap->flows, &head.seg, &head.ts);
		give_back(ho, c);
	}
	pthread_join(ho->thread, NULL);
	rc = ho->rc;
	st->packets += ho->decoded.packets;
	st->bytes += ho->decoded.bytes;
	st->truncated += ho->decoded.truncated;
	st->not_ip += ho->decoded.not_ip;
	st->not_tcp += ho->decoded.not_tcp;
	st->bad_headers += ho->decoded.bad_headers;
	st->ip_fragments += ho->decoded.ip_fragments;
	handoff_free(ho);
	return rc;
}

/* ---- pcapng files libpcap refuses ---- */

/* libpcap reads a pcapng file only when all its interfaces share one link
 * type and snapshot length; its error then says the interface's type or
 * snapshot length is "different from" the first one's. */
static bool mixed_interfaces(const char *pcap_error)
{
	return strstr(pcap_error, "different from") != NULL;
}

/* The --filter program for each link type met, compiled the first time. */
struct mixed_reader {
	struct capture *cap;
	const char *filter;
	struct {
		int linktype;
		struct bpf_program prog;
	} progs[8];
	size_t n_progs;
	bool filter_failed;
	char err[PCAP_ERRBUF_SIZE + 128];
};

static const struct bpf_program *mixed_filter(struct mixed_reader *mr, int linktype, uint32_t snaplen)
{
	pcap_t *dead;
	size_t i;

	for (i = 0; i < mr->n_progs; i++)
		if (mr->progs[i].linktype == linktype)
			return &mr->progs[i].prog;
	if (mr->n_progs == sizeof(mr->progs) / sizeof(mr->progs[0]) || mr->filter_failed)
		return NULL;
	dead = pcap_open_dead(linktype, snaplen ? (int)(snaplen > 262144 ? 262144 : snaplen) : 262144);
	if (!dead)
		return NULL;
	if (pcap_compile(dead, &mr->progs[mr->n_progs].prog, mr->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		snprintf(mr->err, sizeof(mr->err), "bad filter expression \"%s\" for link type %d: %s",
			 mr->filter, linktype, pcap_geterr(dead));
		mr->filter_failed = true;
		pcap_close(dead);
		return NULL;
	}
	pcap_close(dead);
	mr->progs[mr->n_progs].linktype = linktype;
	return &mr->progs[mr->n_progs++].prog;
}

static void on_mixed_packet(void *ctx, const struct pcapng_packet *p)
{
	struct mixed_reader *mr = ctx;

	if (mr->filter) {
		const struct bpf_program *prog = mixed_filter(mr, p->linktype, p->snaplen);
		struct pcap_pkthdr h = { .ts = p->ts, .caplen = p->caplen, .len = p->len };

		if (!prog || pcap_offline_filter(prog, &h, p->data) == 0)
			return;
	}
	capture_packet(mr->cap, p->linktype, &p->ts, p->data, p->caplen, p->len);
}

/* Reads f again from its start with the block reader (pcapng.c). */
static int read_mixed(FILE *f, const char *name, const struct capture_opts *opts, struct capture *cap,
		      struct capture_stats *stats, char *err, size_t errlen)
{
	struct mixed_reader mr = { .cap = cap, .filter = opts && opts->filter && *opts->filter ? opts->filter : NULL };
	enum pcapng_result r;
	uint64_t packets = 0;
	char why[256];
	int ret = 0;

	if (fseek(f, 0, SEEK_SET) != 0) {
		set_err(err, errlen, "mtlsdiag: %s: a pcapng file whose interfaces differ in link type or "
			"snapshot length, which libpcap cannot read; mtlsdiag reads such files itself, but "
			"only from a file it can read twice (not a pipe)", name);
		return -1;
	}
	r = pcapng_read(f, on_mixed_packet, &mr, &packets, why, sizeof(why));
	/* capture_packet counted the packets as it decoded them */
	(void)packets;
	if (mr.filter_failed) {
		set_err(err, errlen, "mtlsdiag: %s", mr.err);
		ret = -1;
	} else if (r == PCAPNG_CUT) {
		stats->stopped = stats->file_truncated = true;
		set_err(err, errlen, "mtlsdiag: %s: the file ends inside a pcapng block", name);
	} else if (r == PCAPNG_BAD) {
		stats->stopped = true;
		set_err(err, errlen, "mtlsdiag: %s: %s", name, why);
	}
	for (size_t i = 0; i < mr.n_progs; i++)
		pcap_freecode(&mr.progs[i].prog);
	return ret;
}

int capture_read_stream(FILE *f, const char *name, const struct capture_opts *opts,
			const struct flow_sink *sink, struct capture_stats *stats,
			char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct bpf_program prog;
	struct capture *cap = NULL;
	struct handoff *ho = NULL;
	struct reader rd = { .clock = NULL };
	struct progress_note progress = { 0 };
	struct stat st;
	pcap_t *p = NULL;
	bool streams;
	int ch, rc, dlt, ret = -1;

	streams = fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode);
	if (streams) {
		/* nothing was read from f yet: from here on ours reads it */
		FILE *clocked = clocked_stream(f, opts, &rd.clock);

		if (clocked)
			f = clocked;
	}
	/* An empty input gets its own word: libpcap's would be "truncated". */
	ch = getc(f);
	if (ch == EOF) {
		if (ferror(f))
			set_err(err, errlen, "mtlsdiag: %s: %s", name, strerror(errno));
		else
			set_err(err, errlen, "mtlsdiag: %s: empty file, not a pcap or pcapng file", name);
		close_stream(f);
		goto Exit;
	}
	if (ungetc(ch, f) == EOF) {
		set_err(err, errlen, "mtlsdiag: %s: cannot read", name);
		close_stream(f);
		goto Exit;
	}
	/* One thread at a time reads the stream (the reader thread, once it
	 * runs): stdio need not lock it on each of libpcap's two freads a
	 * record. */
	__fsetlocking(f, FSETLOCKING_BYCALLER);
	p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
	if (!p) {
		/* libpcap leaves the stream to us when it fails */
		if (strstr(ebuf, "unknown file format"))
			set_err(err, errlen, "mtlsdiag: %s: not a pcap or pcapng file", name);
		else
			set_err(err, errlen, "mtlsdiag: %s: not a readable pcap or pcapng file (%s)",
				name, ebuf);
		close_stream(f);
		goto Exit;
	}
	dlt = pcap_datalink(p);
	stats->linktype = dlt;
	if (!capture_linktype_supported(dlt)) {
		const char *dname = pcap_datalink_val_to_name(dlt);
		set_err(err, errlen, "mtlsdiag: %s: unsupported link-layer type %s (%d)", name,
			dname ? dname : "unknown", dlt);
		goto Exit;
	}
	if (opts && opts->filter && *opts->filter) {
		if (pcap_compile(p, &prog, opts->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
			set_err(err, errlen, "mtlsdiag: bad filter expression \"%s\": %s",
				opts->filter, pcap_geterr(p));
			goto Exit;
		}
		rc = pcap_setfilter(p, &prog);
		pcap_freecode(&prog);
		if (rc != 0) {
			set_err(err, errlen, "mtlsdiag: %s: cannot apply filter: %s", name,
				pcap_geterr(p));
			goto Exit;
		}
	}
	cap = capture_new(opts, sink, stats);
	if (!cap) {
		set_err(err, errlen, "mtlsdiag: %s: out of memory", name);
		goto Exit;
	}
	if (rd.clock)
		rd.clock->cap = cap;
	/* The reader thread hands packets over a chunk at a time: right for a
	 * file, wrong for a pipe or a FIFO being written as it is read (a
	 * connection's verdict would wait for the chunk to fill). */
	progress.where = opts ? opts->progress : NULL;
	progress.interrupt = opts ? opts->interrupt : NULL;
	progress.f = f;
	if (!streams && (ho = handoff_start(p, dlt, &progress, opts ? opts->threads_beside : 0)) != NULL) {
		rc = handoff_consume(ho, cap);
	} else {
		/* One pcap_dispatch reads a savefile to its end, handing each
		 * record to the callback straight from libpcap's buffer; 0 then
		 * means the end. */
		rd.cap = cap;
		rd.p = p;
		rd.linktype = dlt;
		rd.progress = progress;
		while ((rc = pcap_dispatch(p, -1, on_record, (u_char *)&rd)) > 0)
			;
	}
	if (progress.interrupt && *progress.interrupt) {
		/* however the reading ended: at a record, or inside one when a
		 * pipe's input ended with the interrupt */
		stats->stopped = stats->interrupted = true;
		set_err(err, errlen, "mtlsdiag: %s: reading interrupted", name);
	} else if (rc == PCAP_ERROR && stats->packets == 0 && mixed_interfaces(pcap_geterr(p))) {
		/* nothing was read yet: the whole file goes through our reader */
		if (read_mixed(f, name, opts, cap, stats, err, errlen) != 0)
			goto Exit;
	} else if (rc == PCAP_ERROR && mixed_interfaces(pcap_geterr(p))) {
		stats->stopped = true;
		set_err(err, errlen, "mtlsdiag: %s: an interface described after %llu packets has another link "
			"type or snapshot length, which libpcap cannot read", name,
			(unsigned long long)stats->packets);
	} else if (rc == PCAP_ERROR) {
		/* Cut inside a record, or corrupt from there on: keep what was
		 * read, say why it stopped. */
		stats->stopped = true;
		stats->file_truncated = strstr(pcap_geterr(p), "truncated") != NULL;
		set_err(err, errlen, "mtlsdiag: %s: %s", name, pcap_geterr(p));
	} else if (rc == PCAP_ERROR_BREAK) {
		/* the reader ran out of memory for a record: it stopped there */
		stats->stopped = true;
		set_err(err, errlen, "mtlsdiag: %s: out of memory reading a record", name);
	}
	capture_end(cap);
	ret = 0;
Exit:
	capture_free(cap);
	if (p)
		pcap_close(p); /* closes the stream, except stdin */
	return ret;
}

int capture_read_file(const char *path, const struct capture_opts *opts,
		      const struct flow_sink *sink, struct capture_stats *stats,
		      char *err, size_t errlen)
{
	bool use_stdin = strcmp(path, "-") == 0;
	const char *name = use_stdin ? "standard input" : path;
	FILE *f = use_stdin ? stdin : fopen(path, "rb");
	char *buf = NULL;
	int ret;

	if (!f) {
		set_err(err, errlen, "mtlsdiag: %s: %s", name, strerror(errno));
		return -1;
	}
	/* Records are small: a large stdio buffer turns a read() every few
	 * packets into one every few hundred.  Every byte of the file passes
	 * through it twice (the kernel's copy in, libpcap's out): it is on a
	 * huge page where the system allows, so those copies do not miss in
	 * the TLB every 4 KiB.  It must outlive the stream, which
	 * capture_read_stream closes. */
	if (!use_stdin && (buf = huge_calloc(READ_BUFFER)) != NULL)
		(void)setvbuf(f, buf, _IOFBF, READ_BUFFER);   /* refused: stdio's own buffer */
	ret = capture_read_stream(f, name, opts, sink, stats, err, errlen);
	huge_free(buf, READ_BUFFER);
	return ret;
}
