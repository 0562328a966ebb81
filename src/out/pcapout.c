/* pcapout: relayed connections written as a pcap file (see pcapout.h). */
#include "config.h"

#include "out/pcapout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define TCP_LEN 20
#define SNAPLEN 65535

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

struct pcapout {
	pcap_t *pd;
	pcap_dumper_t *dumper;
	FILE *file;
	off_t good;                     /* the file's length at the last successful flush */
	uint64_t pending;               /* packets written since then */
	uint64_t lost;                  /* packets lost to a failed write */
	int error;                      /* the failed write's errno; 0 while all is well */
	uint32_t n_conns;               /* varies the initial sequence numbers */
	uint8_t pkt[ETH_LEN + IP6_LEN + TCP_LEN + PCAPOUT_MAX_SEG];
};

struct pcapout_conn {
	struct pcapout *po;
	bool v6;
	uint8_t addr[2][16];            /* by side; 4 bytes used for IPv4 */
	uint16_t port[2];
	uint32_t next_seq[2];           /* next sequence number each side sends */
	bool fin[2], rst[2];
	uint16_t ip_id[2];
};

_Static_assert(ETH_LEN + IP6_LEN + TCP_LEN + PCAPOUT_MAX_SEG <= SNAPLEN,
	       "a full segment must fit the snap length");

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

/* One's-complement sum of big-endian 16-bit words, not folded. */
static uint32_t sum16(uint32_t acc, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

struct pcapout *pcapout_open(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct pcapout *po = calloc(1, sizeof(*po));
	int fd;

	if (!po) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	po->pd = pcap_open_dead(DLT_EN10MB, SNAPLEN);
	if (!po->pd) {
		if (err && errlen)
			snprintf(err, errlen, "%s: pcap_open_dead failed", path);
		free(po);
		return NULL;
	}
	/* a relay's bytes may hold credentials: the file is the operator's alone */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || !(po->file = fdopen(fd, "wb"))) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		pcap_close(po->pd);
		free(po);
		return NULL;
	}
	po->dumper = pcap_dump_fopen(po->pd, po->file);
	if (!po->dumper) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, pcap_geterr(po->pd));
		fclose(po->file);
		pcap_close(po->pd);
		free(po);
		return NULL;
	}
	return po;
}

/* A write failed: what was not flushed is lost, the file is cut back to
 * the last whole packet, and nothing more is written. */
static void failed(struct pcapout *po)
{
	po->error = errno ? errno : EIO;
	po->lost += po->pending;
	po->pending = 0;
	__fpurge(po->file);
	if (ftruncate(fileno(po->file), po->good) == 0)
		(void)lseek(fileno(po->file), po->good, SEEK_SET);
}

/* Parses a textual address: 4 bytes (IPv4) or 16 (IPv6); 0 if neither. */
static int parse_addr(const char *s, uint8_t out[16])
{
	if (inet_pton(AF_INET, s, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, out) == 1)
		return 16;
	return 0;
}

static void map_v4(uint8_t a[16])
{
	uint8_t v4[4];

	memcpy(v4, a, 4);
	memset(a, 0, 10);
	a[10] = a[11] = 0xff;
	memcpy(a + 12, v4, 4);
}

static void stamp(struct pcap_pkthdr *h, const struct timeval *ts)
{
	if (ts)
		h->ts = *ts;
	else
		gettimeofday(&h->ts, NULL);
}

/* Writes one segment from `from`. */
static void emit(struct pcapout_conn *c, enum side from, uint8_t flags, uint32_t seq,
		 uint32_t ack, const uint8_t *data, size_t n, const struct timeval *ts)
{
	struct pcapout *po = c->po;
	enum side to = from == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;
	uint8_t *p = po->pkt, *ip = p + ETH_LEN, *tcp;
	size_t alen = c->v6 ? 16 : 4, iplen = c->v6 ? IP6_LEN : IP4_LEN;
	size_t l4len = TCP_LEN + n;
	struct pcap_pkthdr h;
	uint32_t acc;

	/* Ethernet: locally administered MACs, ...:01 the client, ...:02 the server. */
	memcpy(p, "\x02\x00\x00\x00\x00", 5);
	p[5] = (uint8_t)(to + 1);
	memcpy(p + 6, "\x02\x00\x00\x00\x00", 5);
	p[11] = (uint8_t)(from + 1);
	put16(p + 12, c->v6 ? 0x86dd : 0x0800);

	if (c->v6) {
		put32(ip, 0x60000000);
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = 6;      /* TCP */
		ip[7] = 64;     /* hop limit */
		memcpy(ip + 8, c->addr[from], 16);
		memcpy(ip + 24, c->addr[to], 16);
	} else {
		ip[0] = 0x45;
		ip[1] = 0;
		put16(ip + 2, (uint16_t)(IP4_LEN + l4len));
		put16(ip + 4, c->ip_id[from]++);
		put16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = 6;
		put16(ip + 10, 0);
		memcpy(ip + 12, c->addr[from], 4);
		memcpy(ip + 16, c->addr[to], 4);
		put16(ip + 10, fold(sum16(0, ip, IP4_LEN)));
	}

	tcp = ip + iplen;
	put16(tcp, c->port[from]);
	put16(tcp + 2, c->port[to]);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = (TCP_LEN / 4) << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	put16(tcp + 16, 0);
	put16(tcp + 18, 0);
	if (n)
		memcpy(tcp + TCP_LEN, data, n);

	/* Pseudo-header: addresses, protocol, TCP length. */
	acc = sum16(0, c->addr[from], alen);
	acc = sum16(acc, c->addr[to], alen);
	acc += 6;
	acc += (uint32_t)l4len & 0xffff;
	acc += (uint32_t)(l4len >> 16);
	acc = sum16(acc, tcp, l4len);
	put16(tcp + 16, fold(acc));

	stamp(&h, ts);
	h.caplen = h.len = (uint32_t)(ETH_LEN + iplen + l4len);
	if (po->error) {
		po->lost++;
		return;
	}
	errno = 0;
	pcap_dump((u_char *)po->dumper, &h, p);
	po->pending++;
	if (ferror(po->file))
		failed(po);
}

/* The connection's addresses, ports and sequence numbers; nothing written. */
static struct pcapout_conn *conn_make(struct pcapout *po, const struct endpoint *client,
				      const struct endpoint *server)
{
	struct pcapout_conn *c;
	int la, lb;
	uint32_t mix;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->po = po;
	la = parse_addr(client->ip, c->addr[SIDE_CLIENT]);
	lb = parse_addr(server->ip, c->addr[SIDE_SERVER]);
	if (!la || !lb) {
		free(c);
		return NULL;
	}
	c->v6 = la == 16 || lb == 16;
	if (c->v6 && la == 4)
		map_v4(c->addr[SIDE_CLIENT]);
	if (c->v6 && lb == 4)
		map_v4(c->addr[SIDE_SERVER]);
	c->port[SIDE_CLIENT] = client->port;
	c->port[SIDE_SERVER] = server->port;

	/* Deterministic, distinct per connection: a file written twice from the
	 * same calls is the same file. */
	mix = ++po->n_conns * 0x9e3779b9u;
	c->next_seq[SIDE_CLIENT] = mix ^ ((uint32_t)client->port << 16 | server->port);
	c->next_seq[SIDE_SERVER] = (mix * 0x85ebca6bu) ^ 0x5bd1e995u;
	c->ip_id[SIDE_CLIENT] = (uint16_t)mix;
	c->ip_id[SIDE_SERVER] = (uint16_t)(mix >> 16);
	return c;
}

struct pcapout_conn *pcapout_conn_new(struct pcapout *po, const struct endpoint *client,
				      const struct endpoint *server, const struct timeval *ts)
{
	struct pcapout_conn *c = conn_make(po, client, server);

	if (!c)
		return NULL;
	emit(c, SIDE_CLIENT, TH_SYN, c->next_seq[SIDE_CLIENT], 0, NULL, 0, ts);
	c->next_seq[SIDE_CLIENT]++;
	emit(c, SIDE_SERVER, TH_SYN | TH_ACK, c->next_seq[SIDE_SERVER],
	     c->next_seq[SIDE_CLIENT], NULL, 0, ts);
	c->next_seq[SIDE_SERVER]++;
	emit(c, SIDE_CLIENT, TH_ACK, c->next_seq[SIDE_CLIENT], c->next_seq[SIDE_SERVER],
	     NULL, 0, ts);
	return c;
}

struct pcapout_conn *pcapout_conn_midstream(struct pcapout *po, const struct endpoint *client,
					    const struct endpoint *server)
{
	return conn_make(po, client, server);
}

void pcapout_data(struct pcapout_conn *c, enum side from, const uint8_t *p, size_t n,
		  const struct timeval *ts)
{
	enum side to = from == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;

	if (!c || c->fin[from] || c->rst[from])
		return;
	while (n) {
		size_t k = n > PCAPOUT_MAX_SEG ? PCAPOUT_MAX_SEG : n;

		emit(c, from, TH_PSH | TH_ACK, c->next_seq[from], c->next_seq[to], p, k, ts);
		c->next_seq[from] += (uint32_t)k;
		p += k;
		n -= k;
	}
}

void pcapout_skip(struct pcapout_conn *c, enum side from, uint64_t n)
{
	if (c && !c->fin[from] && !c->rst[from])
		c->next_seq[from] += (uint32_t)n;   /* sequence space wraps mod 2^32 */
}

void pcapout_close(struct pcapout_conn *c, enum side from, enum close_kind how,
		   const struct timeval *ts)
{
	enum side to = from == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;

	if (!c || c->rst[from])
		return;
	if (how == CLOSE_RST) {
		emit(c, from, TH_RST | TH_ACK, c->next_seq[from], c->next_seq[to], NULL, 0, ts);
		c->rst[from] = true;
		return;
	}
	if (c->fin[from])
		return;
	emit(c, from, TH_FIN | TH_ACK, c->next_seq[from], c->next_seq[to], NULL, 0, ts);
	c->next_seq[from]++;
	c->fin[from] = true;
	/* The peer acknowledges the FIN once it has closed too, so a capture of
	 * a clean close ends with the usual final ACK. */
	if (c->fin[to] && !c->rst[to])
		emit(c, to, TH_ACK, c->next_seq[to], c->next_seq[from], NULL, 0, ts);
}

void pcapout_conn_free(struct pcapout_conn *c)
{
	free(c);
}

int pcapout_flush(struct pcapout *po)
{
	off_t at;

	if (po->error)
		return -1;
	errno = 0;
	if (pcap_dump_flush(po->dumper) != 0 || ferror(po->file) || (at = ftello(po->file)) < 0) {
		failed(po);
		return -1;
	}
	po->good = at;
	po->pending = 0;
	return 0;
}

uint64_t pcapout_lost(const struct pcapout *po, int *error)
{
	if (error)
		*error = po->error;
	return po->lost;
}

void pcapout_close_file(struct pcapout *po)
{
	if (!po)
		return;
	pcap_dump_close(po->dumper);
	pcap_close(po->pd);
	free(po);
}
