/* The pcapng block reader (wire/pcapng.c), used for the files libpcap
 * refuses. The real file (mergecap's linkmix.pcapng) is checked against
 * tshark in test_capture; here, the corners of the format mergecap does not
 * write: big-endian sections, timestamp resolutions and offsets, simple and
 * obsolete packet blocks, several sections, and every way a block can be
 * broken. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/pcapng.h"

/* A file built block by block, in either byte order. */
struct file {
	uint8_t b[4096];
	size_t n;
	bool be;
};

static void u8(struct file *f, uint8_t v)
{
	cr_assert(f->n < sizeof(f->b));
	f->b[f->n++] = v;
}

static void u16(struct file *f, uint16_t v)
{
	if (f->be) {
		u8(f, (uint8_t)(v >> 8));
		u8(f, (uint8_t)v);
	} else {
		u8(f, (uint8_t)v);
		u8(f, (uint8_t)(v >> 8));
	}
}

static void u32(struct file *f, uint32_t v)
{
	if (f->be) {
		u16(f, (uint16_t)(v >> 16));
		u16(f, (uint16_t)v);
	} else {
		u16(f, (uint16_t)v);
		u16(f, (uint16_t)(v >> 16));
	}
}

static void bytes(struct file *f, const void *p, size_t n)
{
	cr_assert(f->n + n <= sizeof(f->b));
	memcpy(f->b + f->n, p, n);
	f->n += n;
	while (f->n % 4)
		u8(f, 0);
}

/* A block: type, a body written by the caller between begin and end. */
static size_t begin(struct file *f, uint32_t type)
{
	size_t at = f->n;

	u32(f, type);
	u32(f, 0);   /* the length, set by end */
	return at;
}

static void end(struct file *f, size_t at)
{
	uint32_t total = (uint32_t)(f->n - at + 4);
	struct file len = { .be = f->be };

	u32(f, total);
	u32(&len, total);
	memcpy(f->b + at + 4, len.b, 4);
}

static void shb(struct file *f)
{
	size_t at = begin(f, 0x0A0D0D0A);

	u32(f, 0x1A2B3C4D);
	u16(f, 1);
	u16(f, 0);
	u32(f, 0xffffffff);   /* section length unknown */
	u32(f, 0xffffffff);
	end(f, at);
}

/* An interface; resol < 0 leaves the resolution option out. */
static void idb(struct file *f, uint16_t linktype, uint32_t snaplen, int resol, bool offset)
{
	size_t at = begin(f, 1);

	u16(f, linktype);
	u16(f, 0);
	u32(f, snaplen);
	if (resol >= 0) {
		uint8_t r = (uint8_t)resol;

		u16(f, 9);
		u16(f, 1);
		bytes(f, &r, 1);
	}
	if (offset) {
		u16(f, 14);
		u16(f, 8);
		u32(f, 0);
		u32(f, 1000);   /* seconds added to every timestamp */
	}
	u16(f, 0);
	u16(f, 0);
	end(f, at);
}

static void epb(struct file *f, uint32_t iface, uint64_t ts, const char *data, uint32_t len)
{
	size_t at = begin(f, 6);

	u32(f, iface);
	u32(f, (uint32_t)(ts >> 32));
	u32(f, (uint32_t)ts);
	u32(f, (uint32_t)strlen(data));
	u32(f, len);
	bytes(f, data, strlen(data));
	end(f, at);
}

struct seen {
	struct pcapng_packet p[16];
	char data[16][64];
	size_t n;
};

static void on_packet(void *ctx, const struct pcapng_packet *p)
{
	struct seen *s = ctx;

	cr_assert(s->n < 16);
	s->p[s->n] = *p;
	cr_assert(p->caplen < sizeof(s->data[0]));
	memcpy(s->data[s->n], p->data, p->caplen);
	s->data[s->n][p->caplen] = '\0';
	s->p[s->n].data = NULL;
	s->n++;
}

static enum pcapng_result read_file(const struct file *f, size_t n, struct seen *s, char *err, size_t errlen)
{
	FILE *in = fmemopen((void *)f->b, n, "rb");
	uint64_t packets = 0;
	enum pcapng_result r;

	cr_assert_not_null(in);
	memset(s, 0, sizeof(*s));
	err[0] = '\0';
	r = pcapng_read(in, on_packet, s, &packets, err, errlen);
	fclose(in);
	cr_assert_eq(packets, s->n);
	return r;
}

static void two_sections(struct file *f)
{
	shb(f);
	idb(f, 1, 262144, -1, false);      /* Ethernet, microseconds */
	idb(f, 113, 96, 9, false);         /* Linux cooked, nanoseconds, snap 96 */
	epb(f, 0, 1700000000ull * 1000000 + 250000, "first", 60);
	epb(f, 1, 1700000001ull * 1000000000 + 750000123, "second", 80);
	/* a block of a type nobody reads (a name resolution block) is skipped */
	{
		size_t at = begin(f, 4);

		u32(f, 0);
		end(f, at);
	}
	/* a second section renumbers the interfaces */
	shb(f);
	idb(f, 276, 65535, 0x80 | 20, true);   /* SLL2, 2^-20 s, +1000 s */
	epb(f, 0, (5ull << 20) | (1u << 19), "third", 5);
	{
		size_t at = begin(f, 3);   /* simple packet: interface 0, snap applies */

		u32(f, 9);
		bytes(f, "fourth!!!", 9);
		end(f, at);
	}
	{
		size_t at = begin(f, 2);   /* obsolete packet block */

		u16(f, 0);
		u16(f, 0);
		u32(f, 0);
		u32(f, 3u << 20);
		u32(f, 5);
		u32(f, 5);
		bytes(f, "fifth", 5);
		end(f, at);
	}
}

static void check_two_sections(struct file *f)
{
	struct seen s;
	char err[256];

	two_sections(f);
	cr_assert_eq(read_file(f, f->n, &s, err, sizeof(err)), PCAPNG_END, "%s", err);
	cr_assert_eq(s.n, 5);
	cr_assert_str_eq(s.data[0], "first");
	cr_assert_eq(s.p[0].linktype, 1);
	cr_assert_eq(s.p[0].ts.tv_sec, 1700000000);
	cr_assert_eq(s.p[0].ts.tv_usec, 250000);
	cr_assert_eq(s.p[0].len, 60);
	cr_assert_str_eq(s.data[1], "second");
	cr_assert_eq(s.p[1].linktype, 113);
	cr_assert_eq(s.p[1].iface, 1);
	cr_assert_eq(s.p[1].snaplen, 96);
	cr_assert_eq(s.p[1].ts.tv_sec, 1700000001);
	cr_assert_eq(s.p[1].ts.tv_usec, 750000, "nanoseconds to microseconds: %ld", (long)s.p[1].ts.tv_usec);
	cr_assert_str_eq(s.data[2], "third");
	cr_assert_eq(s.p[2].linktype, 276);
	cr_assert_eq(s.p[2].iface, 0);
	cr_assert_eq(s.p[2].ts.tv_sec, 1005, "binary fractions and the offset");
	cr_assert_eq(s.p[2].ts.tv_usec, 500000);
	cr_assert_str_eq(s.data[3], "fourth!!!");
	cr_assert_eq(s.p[3].caplen, 9);
	cr_assert_eq(s.p[3].linktype, 276);
	cr_assert_str_eq(s.data[4], "fifth");
	cr_assert_eq(s.p[4].ts.tv_sec, 1003);
}

Test(pcapng, interfaces_sections_and_packet_blocks_little_endian)
{
	struct file f = { .be = false };

	check_two_sections(&f);
}

Test(pcapng, the_same_file_big_endian)
{
	struct file f = { .be = true };

	check_two_sections(&f);
}

Test(pcapng, a_file_cut_inside_a_block_keeps_what_came_before)
{
	struct file f = { 0 };
	struct seen s;
	char err[256];

	two_sections(&f);
	for (size_t cut = 1; cut < f.n; cut++) {
		enum pcapng_result r = read_file(&f, cut, &s, err, sizeof(err));

		cr_assert(r == PCAPNG_CUT || (r == PCAPNG_END && cut % 4 == 0),
			  "cut at %zu: %d (%s)", cut, r, err);
	}
}

Test(pcapng, broken_blocks_are_one_line_naming_the_offset)
{
	struct file f = { 0 };
	struct seen s;
	char err[256];
	size_t first_epb;

	/* a trailing length that differs from the leading one */
	shb(&f);
	idb(&f, 1, 262144, -1, false);
	first_epb = f.n;
	epb(&f, 0, 0, "x", 1);
	f.b[f.n - 4] ^= 0x10;
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "trailing length"), "%s", err);
	{
		char at[64];

		snprintf(at, sizeof(at), "at byte %zu", first_epb);
		cr_assert(strstr(err, at), "%s", err);
	}

	/* a packet on an interface never described */
	memset(&f, 0, sizeof(f));
	shb(&f);
	idb(&f, 1, 262144, -1, false);
	epb(&f, 3, 0, "x", 1);
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "interface 3"), "%s", err);

	/* more captured bytes than the block holds */
	memset(&f, 0, sizeof(f));
	shb(&f);
	idb(&f, 1, 262144, -1, false);
	{
		size_t at = begin(&f, 6);

		u32(&f, 0);
		u32(&f, 0);
		u32(&f, 0);
		u32(&f, 500);
		u32(&f, 500);
		end(&f, at);
	}
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "500 captured bytes"), "%s", err);

	/* a length that is not a multiple of 4, or absurd */
	memset(&f, 0, sizeof(f));
	shb(&f);
	{
		size_t at = begin(&f, 1);

		end(&f, at);
		f.b[at + 4] = 13;
	}
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "claims 13 bytes"), "%s", err);

	/* not pcapng at all, and an empty file */
	memset(&f, 0, sizeof(f));
	{
		static const char classic[] = "\xd4\xc3\xb2\xa1 a classic pcap header";

		bytes(&f, classic, sizeof(classic) - 1);
	}
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "not a pcapng file"), "%s", err);
	cr_assert_eq(read_file(&f, 0, &s, err, sizeof(err)), PCAPNG_BAD);

	/* a section header with a wrong byte-order magic or version */
	memset(&f, 0, sizeof(f));
	shb(&f);
	f.b[8] = 0x99;
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "byte-order magic"), "%s", err);
	memset(&f, 0, sizeof(f));
	shb(&f);
	f.b[12] = 2;
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "version 2"), "%s", err);

	/* a timestamp resolution no clock has */
	memset(&f, 0, sizeof(f));
	shb(&f);
	idb(&f, 1, 262144, 40, false);
	cr_assert_eq(read_file(&f, f.n, &s, err, sizeof(err)), PCAPNG_BAD);
	cr_assert(strstr(err, "resolution"), "%s", err);
}
