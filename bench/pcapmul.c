/* pcapmul: multiplies one-connection captures into one big capture for
 * benchmarking (scripts/bench-pcap builds and runs it).
 *
 *   pcapmul [OPTIONS] -o OUT FILE...
 *
 * Each FILE holds one TCP connection (Ethernet, IPv4 or IPv6), such as the
 * lab captures in tests/data/lab/captures.  OUT gets copies of them: every
 * copy has its own client address and port (copy k: 127.1.0.0 + k for IPv4,
 * the low 32 bits of the client address for IPv6; port 10000 + k % 50000),
 * with the IP and TCP checksums updated incrementally (a checksum that was
 * right stays right; loopback captures carry offloaded, "incorrect" ones and
 * keep them).  Nothing else changes: sequence numbers, options and payloads
 * are the original bytes, so a copy gets the verdict its original gets.
 *
 * Timing: a window of W slots, like a busy server with W connections open.
 * Each slot plays one connection at a time with its original packet spacing;
 * when it ends, the slot starts the next copy after a short random gap
 * (0..--gap-us).  So at most W connections are open at once, and the copies
 * of all inputs (in a seeded random order) interleave packet by packet.  The
 * timeline starts at the earliest input timestamp, so certificate validity
 * judged by capture time is unchanged.
 *
 * Options:
 *   -n, --connections N  copies in all (default 100000), rounded up to a whole
 *                        number of copies of every input unless --exact
 *       --exact          exactly N (inputs then differ by one copy)
 *   -w, --window W       connections open at once (default 200)
 *       --gap-us G       largest idle gap in a slot, microseconds (default 1000)
 *   -s, --seed S         seed of the shuffle and the gaps (default 1)
 *   -o, --output FILE    the capture to write
 *       --slice N FILE   also write copies 0..N-1 (the first N started) to FILE
 *       --manifest FILE  write "name<TAB>copies" per input, and totals
 *       --repeat-data R  in a share of the copies, send each application-data
 *                        segment R times in all (TLS 1.2 only, where record
 *                        type 23 is application data; sequence and
 *                        acknowledgement numbers shift to match), making
 *                        longer flows with bytes past the handshake
 *       --repeat-share P percentage of copies that repeat (default 0)
 *
 * The statistics (connections, packets, bytes, window, largest and mean
 * number of connections open, timeline) go to standard error and, as
 * "# key value" lines, to the manifest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ETH_LEN 14

struct pkt {
	uint32_t caplen, len;
	int64_t rel_us;       /* from the connection's first packet */
	uint32_t ip_off;      /* offset of the IP header */
	uint32_t tcp_off;     /* offset of the TCP header */
	uint32_t pay_off;     /* offset of the TCP payload */
	uint32_t pay_len;     /* payload bytes present in the capture */
	uint8_t ipv;          /* 4 or 6 */
	bool c2s;             /* sent by the client */
	bool appdata;         /* TLS 1.2 application data, whole records */
	uint8_t *data;
};

struct flow {
	char *name;
	struct pkt *p;
	size_t n;
	int64_t first_us;
	int64_t dur_us;
	uint64_t bytes;       /* record bytes as pcap writes them */
	bool tls12;
	size_t copies;
	size_t repeated;
};

struct slot {
	int64_t next_us;      /* time of the next packet (or of the copy's start) */
	size_t flow;
	size_t copy;          /* copy index k */
	size_t idx;           /* next packet */
	int64_t start_us;
	bool active;          /* playing a copy */
	bool opened;          /* its first packet is out */
	bool repeat;
	uint32_t shift[2];    /* sequence shift so far: [0] client, [1] server */
};

static const char *prog = "pcapmul";

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

/* xorshift64*: small, seeded, the same on every machine. */
static uint64_t rng_state = 1;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* RFC 1624 incremental update of the 16-bit ones'-complement checksum at
 * sum (if non-NULL) for replacing the n bytes (n even, at an even offset)
 * old by repl. */
static void csum_adjust(uint8_t *sum, const uint8_t *old, const uint8_t *repl, size_t n)
{
	uint32_t acc;
	size_t i;

	if (!sum)
		return;
	acc = (uint16_t)~get16(sum);
	for (i = 0; i + 1 < n; i += 2) {
		acc += (uint16_t)~get16(old + i);
		acc += get16(repl + i);
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	put16(sum, (uint16_t)~acc);
}

/* Replaces the n bytes at field by repl, updating the checksum at sum. */
static void replace_field(uint8_t *sum, uint8_t *field, const uint8_t *repl, size_t n)
{
	csum_adjust(sum, field, repl, n);
	memcpy(field, repl, n);
}

/* True if the n bytes at p are whole TLS records, all of type 23
 * (application data). */
static bool whole_appdata_records(const uint8_t *p, size_t n)
{
	size_t off = 0, rl;

	if (n == 0)
		return false;
	while (off < n) {
		if (n - off < 5 || p[off] != 23 || p[off + 1] != 3)
			return false;
		rl = get16(p + off + 3);
		if (rl > n - off - 5)
			return false;
		off += 5 + rl;
	}
	return true;
}

/* TLS version of the connection from the server's ServerHello: true for
 * TLS 1.2 (no supported_versions extension), false for 1.3 or unknown. */
static bool server_hello_is_tls12(const struct flow *fl)
{
	size_t i;

	for (i = 0; i < fl->n; i++) {
		const struct pkt *p = &fl->p[i];
		const uint8_t *d = p->data + p->pay_off;
		size_t n = p->pay_len, off, el, end;

		if (p->c2s || n == 0)
			continue;
		/* record header 5, handshake header 4, version 2, random 32 */
		if (n < 5 + 4 + 2 + 32 + 1 || d[0] != 22 || d[5] != 2)
			return false;
		off = 5 + 4 + 2 + 32;
		off += 1 + d[off];                      /* session id */
		off += 2 + 1;                           /* cipher, compression */
		if (off + 2 > n)
			return false;
		el = get16(d + off);
		off += 2;
		end = off + el;
		if (end > n)
			return false;
		while (off + 4 <= end) {
			if (get16(d + off) == 0x002b)   /* supported_versions */
				return false;
			off += 4 + get16(d + off + 2);
		}
		return get16(d + 9) == 0x0303;
	}
	return false;
}

static void load(struct flow *fl, const char *path, int *linktype)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *pc = pcap_open_offline(path, err);
	struct pcap_pkthdr *h;
	const u_char *d;
	size_t cap = 0, i, ci = 0;
	int rc;
	const char *base;
	char *dot;
	const uint8_t *caddr, *cport;
	bool client_is_src = true;
	size_t alen;

	if (!pc)
		die("%s: %s", path, err);
	if (*linktype < 0)
		*linktype = pcap_datalink(pc);
	if (pcap_datalink(pc) != DLT_EN10MB || *linktype != DLT_EN10MB)
		die("%s: link type %d; only Ethernet captures are supported", path, pcap_datalink(pc));
	memset(fl, 0, sizeof(*fl));
	base = strrchr(path, '/');
	fl->name = strdup(base ? base + 1 : path);
	if (!fl->name)
		die("out of memory");
	dot = strrchr(fl->name, '.');
	if (dot && (strcmp(dot, ".pcap") == 0 || strcmp(dot, ".pcapng") == 0))
		*dot = '\0';

	while ((rc = pcap_next_ex(pc, &h, &d)) == 1) {
		struct pkt *p;
		int64_t ts = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
		uint32_t ip = ETH_LEN, tcp, doff, plen, end;
		uint16_t et;

		if (h->caplen < ETH_LEN)
			die("%s: a packet shorter than its Ethernet header", path);
		et = get16(d + 12);
		if (fl->n == cap) {
			cap = cap ? cap * 2 : 32;
			fl->p = xrealloc(fl->p, cap * sizeof(*fl->p));
		}
		p = &fl->p[fl->n];
		memset(p, 0, sizeof(*p));
		if (et == 0x0800) {
			if (h->caplen < ip + 20 || d[ip] >> 4 != 4)
				die("%s: packet %zu: short or bad IPv4 header", path, fl->n + 1);
			if (d[ip + 9] != 6)
				die("%s: packet %zu: not TCP", path, fl->n + 1);
			if (get16(d + ip + 6) & 0x3fff)
				die("%s: packet %zu: an IP fragment", path, fl->n + 1);
			tcp = ip + (d[ip] & 15) * 4u;
			end = ip + get16(d + ip + 2);
			p->ipv = 4;
		} else if (et == 0x86dd) {
			if (h->caplen < ip + 40 || d[ip + 6] != 6)
				die("%s: packet %zu: short IPv6 header or not TCP (no extension headers)",
				    path, fl->n + 1);
			tcp = ip + 40;
			end = tcp + get16(d + ip + 4);
			p->ipv = 6;
		} else {
			die("%s: packet %zu: ethertype 0x%04x, not IP", path, fl->n + 1, et);
		}
		if (h->caplen < tcp + 20)
			die("%s: packet %zu: short TCP header", path, fl->n + 1);
		doff = (d[tcp + 12] >> 4) * 4u;
		plen = end > tcp + doff ? end - (tcp + doff) : 0;
		if (tcp + doff > h->caplen)
			plen = 0;
		else if (plen > h->caplen - (tcp + doff))
			plen = h->caplen - (tcp + doff);
		p->ip_off = ip;
		p->tcp_off = tcp;
		p->pay_off = tcp + doff;
		p->pay_len = plen;
		p->caplen = h->caplen;
		p->len = h->len;
		p->data = xmalloc(h->caplen);
		memcpy(p->data, d, h->caplen);
		if (fl->n == 0)
			fl->first_us = ts;
		p->rel_us = ts - fl->first_us;
		if (p->rel_us < 0)
			die("%s: packet %zu: timestamps go backwards", path, fl->n + 1);
		fl->bytes += 16 + h->caplen;
		fl->n++;
	}
	if (rc == PCAP_ERROR)
		die("%s: %s", path, pcap_geterr(pc));
	pcap_close(pc);
	if (fl->n == 0)
		die("%s: no packets", path);
	fl->dur_us = fl->p[fl->n - 1].rel_us;

	/* the client: the sender of the SYN, the receiver of the SYN-ACK, or
	 * else the sender of the first packet */
	for (i = 0; i < fl->n; i++) {
		uint8_t fl_ = fl->p[i].data[fl->p[i].tcp_off + 13] & 0x12;

		if (fl_ == 0x02 || fl_ == 0x12) {
			ci = i;
			client_is_src = fl_ == 0x02;
			break;
		}
	}
	{
		const struct pkt *p = &fl->p[ci];

		alen = p->ipv == 4 ? 4 : 16;
		caddr = p->data + p->ip_off + (p->ipv == 4 ? 12 : 8) + (client_is_src ? 0 : alen);
		cport = p->data + p->tcp_off + (client_is_src ? 0 : 2);
	}
	for (i = 0; i < fl->n; i++) {
		struct pkt *p = &fl->p[i];
		const uint8_t *src = p->data + p->ip_off + (p->ipv == 4 ? 12 : 8);
		const uint8_t *dst = src + alen;
		const uint8_t *sp = p->data + p->tcp_off, *dp = sp + 2;

		if (p->ipv != fl->p[ci].ipv)
			die("%s: packet %zu: another connection; one connection per input", path, i + 1);
		p->c2s = memcmp(src, caddr, alen) == 0 && memcmp(sp, cport, 2) == 0;
		if (!p->c2s && (memcmp(dst, caddr, alen) != 0 || memcmp(dp, cport, 2) != 0))
			die("%s: packet %zu: another connection; one connection per input", path, i + 1);
	}
	fl->tls12 = server_hello_is_tls12(fl);
	if (fl->tls12)
		for (i = 0; i < fl->n; i++)
			fl->p[i].appdata = whole_appdata_records(fl->p[i].data + fl->p[i].pay_off, fl->p[i].pay_len);
}

/* Rewrites buf (a copy of p->data) for copy k, with the sequence shifts. */
static void rewrite(uint8_t *buf, const struct pkt *p, size_t k, const uint32_t shift[2])
{
	uint8_t *ip = buf + p->ip_off, *tcp = buf + p->tcp_off;
	uint8_t *tsum = p->tcp_off + 18 <= p->caplen ? tcp + 16 : NULL;
	uint8_t addr[4], port[2], s[4];
	uint8_t *a;
	unsigned me = p->c2s ? 0 : 1;

	/* copy k: 127.1.0.0 + k (for IPv6, in the low 32 bits) */
	put32(addr, 0x7f010000u + (uint32_t)k);
	put16(port, (uint16_t)(10000 + k % 50000));
	if (p->ipv == 4) {
		a = ip + (p->c2s ? 12 : 16);
		csum_adjust(ip + 10, a, addr, 4);   /* the IP header checksum */
	} else {
		a = ip + (p->c2s ? 8 : 24) + 12;
	}
	replace_field(tsum, a, addr, 4);          /* the TCP pseudo-header */
	replace_field(tsum, tcp + (p->c2s ? 0 : 2), port, 2);

	/* the sequence number of this direction, the ACK of the other */
	if (shift[me]) {
		put32(s, get32(tcp + 4) + shift[me]);
		replace_field(tsum, tcp + 4, s, 4);
	}
	if (shift[!me] && (tcp[13] & 0x10)) {
		put32(s, get32(tcp + 8) + shift[!me]);
		replace_field(tsum, tcp + 8, s, 4);
	}
}

/* ---- a binary heap of slots by (next_us, slot index) ---- */

static struct slot *slots;
static size_t *heap, heap_n;

static bool before(size_t a, size_t b)
{
	if (slots[a].next_us != slots[b].next_us)
		return slots[a].next_us < slots[b].next_us;
	return a < b;
}

static void heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i, t;

		if (l < heap_n && before(heap[l], heap[m]))
			m = l;
		if (r < heap_n && before(heap[r], heap[m]))
			m = r;
		if (m == i)
			return;
		t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-n N] [--exact] [-w W] [--gap-us G] [-s SEED] [--slice N FILE]\n"
		"       [--manifest FILE] [--repeat-data R --repeat-share PCT] -o OUT FILE...\n",
		prog);
	exit(2);
}

static unsigned long long num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		die("bad %s: %s", what, s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"connections", required_argument, 0, 'n'},
		{"exact", no_argument, 0, 'x'},
		{"window", required_argument, 0, 'w'},
		{"gap-us", required_argument, 0, 'g'},
		{"seed", required_argument, 0, 's'},
		{"output", required_argument, 0, 'o'},
		{"slice", required_argument, 0, 'S'},
		{"manifest", required_argument, 0, 'm'},
		{"repeat-data", required_argument, 0, 'R'},
		{"repeat-share", required_argument, 0, 'P'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	size_t want = 100000, window = 200, slice_n = 0, nflows, total, i, k_next = 0;
	int64_t gap_us = 1000;
	unsigned repeat = 1, repeat_share = 0;
	bool exact = false;
	const char *out = NULL, *slice_path = NULL, *manifest = NULL;
	struct flow *flows;
	size_t *order;
	int linktype = -1, c;
	int64_t t0 = INT64_MAX, t_end = 0, last_change = 0;
	pcap_t *dead;
	pcap_dumper_t *dump, *sdump = NULL;
	uint64_t packets = 0, bytes = 24, s_packets = 0, s_bytes = 24, s_conns = 0;
	size_t open_now = 0, open_max = 0;
	long double open_area = 0; /* connection-microseconds */
	uint8_t *buf = xmalloc(262144);
	size_t bufcap = 262144;
	size_t repeated_total = 0;
	unsigned short ports_seen[64];
	size_t nports = 0;

	while ((c = getopt_long(argc, argv, "n:w:s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': want = num(optarg, "connection count"); break;
		case 'x': exact = true; break;
		case 'w': window = num(optarg, "window"); break;
		case 'g': gap_us = (int64_t)num(optarg, "gap"); break;
		case 's': rng_state = num(optarg, "seed") * 2654435761ULL + 0x9E3779B97F4A7C15ULL; break;
		case 'o': out = optarg; break;
		case 'S':
			slice_n = num(optarg, "slice size");
			if (optind >= argc)
				usage();
			slice_path = argv[optind++];
			break;
		case 'm': manifest = optarg; break;
		case 'R': repeat = (unsigned)num(optarg, "repeat count"); break;
		case 'P': repeat_share = (unsigned)num(optarg, "repeat share"); break;
		default: usage();
		}
	}
	if (!out || optind >= argc || want == 0 || window == 0 || repeat == 0 || repeat_share > 100)
		usage();
	if (rng_state == 0)
		rng_state = 1;

	nflows = (size_t)(argc - optind);
	flows = xmalloc(nflows * sizeof(*flows));
	for (i = 0; i < nflows; i++) {
		struct flow *fl = &flows[i];
		const struct pkt *p0;
		unsigned short sp;
		size_t j;

		load(fl, argv[optind + i], &linktype);
		if (fl->first_us < t0)
			t0 = fl->first_us;
		p0 = &fl->p[0];
		sp = get16(p0->data + p0->tcp_off + (p0->c2s ? 2 : 0));
		for (j = 0; j < nports && ports_seen[j] != sp; j++)
			;
		if (j == nports && nports < 64)
			ports_seen[nports++] = sp;
	}

	/* copies per input, and the shuffled start order */
	total = exact ? want : ((want + nflows - 1) / nflows) * nflows;
	if (total > 0xfeffffffu - 0x7f010000u)
		die("too many connections for the 127.1.0.0/16.. address plan");
	order = xmalloc(total * sizeof(*order));
	for (i = 0; i < total; i++) {
		order[i] = i % nflows;
		flows[i % nflows].copies++;
	}
	for (i = total - 1; i > 0; i--) {
		size_t j = (size_t)rng_below(i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}

	dead = pcap_open_dead_with_tstamp_precision(linktype, 262144, PCAP_TSTAMP_PRECISION_MICRO);
	if (!dead)
		die("pcap_open_dead failed");
	dump = pcap_dump_open(dead, out);
	if (!dump)
		die("%s: %s", out, pcap_geterr(dead));
	if (slice_path) {
		sdump = pcap_dump_open(dead, slice_path);
		if (!sdump)
			die("%s: %s", slice_path, pcap_geterr(dead));
	}

	/* the slots: staggered over one mean connection time */
	{
		int64_t mean = 0;

		for (i = 0; i < nflows; i++)
			mean += flows[i].dur_us;
		mean = mean / (int64_t)nflows + gap_us / 2;
		if (window > total)
			window = total;
		slots = xmalloc(window * sizeof(*slots));
		heap = xmalloc(window * sizeof(*heap));
		for (i = 0; i < window; i++) {
			struct slot *s = &slots[i];

			memset(s, 0, sizeof(*s));
			s->start_us = t0 + (int64_t)rng_below((uint64_t)mean + 1);
			s->next_us = s->start_us;
			s->copy = k_next++;
			s->flow = order[s->copy];
			s->active = true;
			s->repeat = repeat > 1 && flows[s->flow].tls12 && rng_below(100) < repeat_share;
			heap[heap_n++] = i;
		}
		for (i = heap_n; i-- > 0;)
			heap_down(i);
	}

	while (heap_n) {
		size_t si = heap[0];
		struct slot *s = &slots[si];
		struct flow *fl = &flows[s->flow];
		const struct pkt *p = &fl->p[s->idx];
		unsigned times = (s->repeat && p->appdata) ? repeat : 1, r;
		int64_t now = s->next_us;

		if (!s->opened) {
			open_area += (long double)open_now * (long double)(now - last_change);
			last_change = now;
			open_now++;
			if (open_now > open_max)
				open_max = open_now;
			s->opened = true;
		}
		if (p->caplen > bufcap) {
			bufcap = p->caplen;
			buf = xrealloc(buf, bufcap);
		}
		for (r = 0; r < times; r++) {
			struct pcap_pkthdr h;

			memcpy(buf, p->data, p->caplen);
			rewrite(buf, p, s->copy, s->shift);
			h.ts.tv_sec = now / 1000000;
			h.ts.tv_usec = now % 1000000;
			h.caplen = p->caplen;
			h.len = p->len;
			pcap_dump((u_char *)dump, &h, buf);
			packets++;
			bytes += 16 + p->caplen;
			if (sdump && s->copy < slice_n) {
				pcap_dump((u_char *)sdump, &h, buf);
				s_packets++;
				s_bytes += 16 + p->caplen;
			}
			if (r + 1 < times)
				s->shift[p->c2s ? 0 : 1] += p->pay_len;
		}
		t_end = now;
		s->idx++;
		if (s->idx < fl->n) {
			s->next_us = s->start_us + fl->p[s->idx].rel_us;
			if (s->next_us < now)
				s->next_us = now;
			heap_down(0);
			continue;
		}
		/* the copy is over */
		if (s->repeat) {
			fl->repeated++;
			repeated_total++;
		}
		if (s->copy < slice_n)
			s_conns++;
		open_area += (long double)open_now * (long double)(now - last_change);
		last_change = now;
		open_now--;
		if (k_next < total) {
			memset(s->shift, 0, sizeof(s->shift));
			s->copy = k_next++;
			s->flow = order[s->copy];
			s->idx = 0;
			s->opened = false;
			s->repeat = repeat > 1 && flows[s->flow].tls12 && rng_below(100) < repeat_share;
			s->start_us = now + (int64_t)rng_below((uint64_t)gap_us + 1);
			s->next_us = s->start_us;
			heap_down(0);
		} else {
			heap[0] = heap[--heap_n];
			if (heap_n)
				heap_down(0);
		}
	}

	if (pcap_dump_flush(dump) != 0)
		die("%s: write error", out);
	pcap_dump_close(dump);
	if (sdump) {
		if (pcap_dump_flush(sdump) != 0)
			die("%s: write error", slice_path);
		pcap_dump_close(sdump);
	}

	{
		double span = (double)(t_end - t0) / 1e6;
		double mean_open = t_end > t0 ? (double)(open_area / (long double)(t_end - t0)) : 0;
		FILE *mf = NULL;
		size_t mult_min = SIZE_MAX, mult_max = 0;

		for (i = 0; i < nflows; i++) {
			if (flows[i].copies < mult_min)
				mult_min = flows[i].copies;
			if (flows[i].copies > mult_max)
				mult_max = flows[i].copies;
		}
		if (manifest) {
			mf = fopen(manifest, "w");
			if (!mf)
				die("%s: %s", manifest, strerror(errno));
			for (i = 0; i < nflows; i++)
				fprintf(mf, "%s\t%zu\t%zu\n", flows[i].name, flows[i].copies, flows[i].repeated);
			fprintf(mf, "# inputs %zu\n# connections %zu\n# multiplier %zu", nflows, total, mult_min);
			if (mult_max != mult_min)
				fprintf(mf, "-%zu", mult_max);
			fprintf(mf, "\n# packets %" PRIu64 "\n# bytes %" PRIu64 "\n# window %zu\n"
				    "# open_max %zu\n# open_mean %.1f\n# timeline_s %.3f\n# repeated %zu\n",
				packets, bytes, window, open_max, mean_open, span, repeated_total);
			fprintf(mf, "# server_ports");
			for (i = 0; i < nports; i++)
				fprintf(mf, " %u", ports_seen[i]);
			fputc('\n', mf);
			if (slice_path)
				fprintf(mf, "# slice_connections %" PRIu64 "\n# slice_packets %" PRIu64
					    "\n# slice_bytes %" PRIu64 "\n", s_conns, s_packets, s_bytes);
			if (fclose(mf) != 0)
				die("%s: write error", manifest);
		}
		fprintf(stderr,
			"%s: %zu connections (%zu inputs x %zu%s), %" PRIu64 " packets, %" PRIu64
			" bytes; window %zu, open at once max %zu mean %.1f; timeline %.3f s",
			prog, total, nflows, mult_min, mult_max != mult_min ? "+" : "", packets, bytes,
			window, open_max, mean_open, span);
		if (repeated_total)
			fprintf(stderr, "; %zu longer copies", repeated_total);
		fputc('\n', stderr);
		if (slice_path)
			fprintf(stderr, "%s: slice %s: %" PRIu64 " connections, %" PRIu64 " packets, %" PRIu64 " bytes\n",
				prog, slice_path, s_conns, s_packets, s_bytes);
	}
	/* everything given back: a leak checker (the tests' ASan build) has
	 * nothing to say */
	pcap_close(dead);
	for (i = 0; i < nflows; i++) {
		for (size_t k = 0; k < flows[i].n; k++)
			free(flows[i].p[k].data);
		free(flows[i].p);
		free(flows[i].name);
	}
	free(flows);
	free(order);
	free(slots);
	free(heap);
	free(buf);
	return 0;
}
