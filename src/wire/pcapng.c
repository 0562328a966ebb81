/* pcapng: block-by-block reading of pcapng files (see pcapng.h; the
 * format is draft-ietf-opsawg-pcapng). */
#include "config.h"

#include "wire/pcapng.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "wire/cursor.h"

#define BT_SHB 0x0A0D0D0Au   /* section header: a palindrome, the same in both byte orders */
#define BT_IDB 1u            /* interface description */
#define BT_PB 2u             /* packet (obsolete) */
#define BT_SPB 3u            /* simple packet */
#define BT_EPB 6u            /* enhanced packet */
#define BYTE_ORDER_MAGIC 0x1A2B3C4Du

#define OPT_END 0
#define OPT_IF_TSRESOL 9
#define OPT_IF_TSOFFSET 14

struct iface {
	int linktype;
	uint32_t snaplen;
	uint64_t units_per_s;   /* timestamp units in one second */
	int64_t offset_s;       /* if_tsoffset */
};

struct reader {
	FILE *f;
	uint64_t at;            /* file offset of the block being read */
	bool big_endian;        /* this section's byte order */
	struct iface *ifaces;
	unsigned n_ifaces;
	uint8_t *block;
	size_t block_cap;
	char *err;
	size_t errlen;
};

static void __attribute__((format(printf, 2, 3))) bad(struct reader *r, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "pcapng block at byte %llu: %s", (unsigned long long)r->at, what);
}

static uint32_t get32(const struct reader *r, const uint8_t *p)
{
	if (r->big_endian)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int cur32(const struct reader *r, struct cursor *c, uint32_t *out)
{
	if (r->big_endian)
		return cursor_get_u32(c, out);
	return cursor_get_u32le(c, out);
}

static int cur16(const struct reader *r, struct cursor *c, uint16_t *out)
{
	if (r->big_endian)
		return cursor_get_u16(c, out);
	return cursor_get_u16le(c, out);
}

bool pcapng_magic(const uint8_t b[4])
{
	return b[0] == 0x0A && b[1] == 0x0D && b[2] == 0x0D && b[3] == 0x0A;
}

/* The interface options that change how its timestamps read. */
static bool iface_options(struct reader *r, struct cursor *opts, struct iface *ifc)
{
	uint16_t code, len;
	struct cursor val;
	uint8_t b;

	while (cursor_len(opts) >= 4) {
		if (!cur16(r, opts, &code) || !cur16(r, opts, &len) || !cursor_get_bytes(opts, &val, len) ||
		    !cursor_skip(opts, (4u - len % 4u) % 4u)) {
			bad(r, "interface option %u runs past its block", code);
			return false;
		}
		if (code == OPT_END)
			break;
		if (code == OPT_IF_TSRESOL && len == 1 && cursor_get_u8(&val, &b)) {
			/* 10^-n, or 2^-n when the top bit is set */
			unsigned n = b & 0x7f;
			uint64_t units = 1;

			if ((b & 0x80) ? n > 63 : n > 19) {
				bad(r, "timestamp resolution %#x is out of range", b);
				return false;
			}
			for (unsigned i = 0; i < n; i++)
				units = (b & 0x80) ? units * 2 : units * 10;
			ifc->units_per_s = units;
		} else if (code == OPT_IF_TSOFFSET && len == 8) {
			uint32_t hi, lo;

			if (!cur32(r, &val, &hi) || !cur32(r, &val, &lo))
				return false;
			/* the first word is the high one in the section's order */
			ifc->offset_s = (int64_t)((uint64_t)hi << 32 | lo);
		}
	}
	return true;
}

static bool section_header(struct reader *r, struct cursor *body)
{
	uint32_t magic;
	uint16_t major;

	if (cursor_len(body) < 16) {
		bad(r, "section header of %zu bytes", cursor_len(body));
		return false;
	}
	/* the byte-order magic decides how everything after it reads */
	r->big_endian = false;
	if (!cursor_get_u32le(body, &magic))
		return false;
	if (magic != BYTE_ORDER_MAGIC) {
		if (magic != 0x4D3C2B1Au) {
			bad(r, "section header with byte-order magic %#x", magic);
			return false;
		}
		r->big_endian = true;
	}
	if (!cur16(r, body, &major))
		return false;
	if (major != 1) {
		bad(r, "pcapng version %u (only version 1 exists)", major);
		return false;
	}
	r->n_ifaces = 0;   /* interfaces are numbered per section */
	return true;
}

static bool interface(struct reader *r, struct cursor *body)
{
	uint16_t linktype, reserved;
	uint32_t snaplen;
	struct iface ifc = { .units_per_s = 1000000 };

	if (!cur16(r, body, &linktype) || !cur16(r, body, &reserved) || !cur32(r, body, &snaplen)) {
		bad(r, "interface description too short");
		return false;
	}
	ifc.linktype = linktype;
	ifc.snaplen = snaplen;
	if (!iface_options(r, body, &ifc))
		return false;
	if (r->n_ifaces == PCAPNG_MAX_IFACES) {
		bad(r, "more than %u interfaces in one section", PCAPNG_MAX_IFACES);
		return false;
	}
	if (!r->ifaces && !(r->ifaces = calloc(PCAPNG_MAX_IFACES, sizeof(*r->ifaces)))) {
		bad(r, "out of memory");
		return false;
	}
	r->ifaces[r->n_ifaces++] = ifc;
	return true;
}

/* Units since the epoch to a timeval, on the interface's clock. */
static void stamp(const struct iface *ifc, uint64_t units, struct timeval *tv)
{
	uint64_t s = units / ifc->units_per_s, rest = units % ifc->units_per_s;

	tv->tv_sec = (time_t)((int64_t)s + ifc->offset_s);
	/* rest < units_per_s <= 2^63: the product needs more than 64 bits */
	tv->tv_usec = (suseconds_t)((unsigned __int128)rest * 1000000u / ifc->units_per_s);
}

static bool packet(struct reader *r, uint32_t type, struct cursor *body, pcapng_packet_fn fn, void *ctx,
		   uint64_t *packets)
{
	struct pcapng_packet p = { 0 };
	uint32_t iface = 0, hi = 0, lo = 0, caplen, len;
	uint16_t iface16, drops;
	struct cursor data;
	const struct iface *ifc;
	bool ok;

	if (type == BT_EPB)
		ok = cur32(r, body, &iface) && cur32(r, body, &hi) && cur32(r, body, &lo) &&
		     cur32(r, body, &caplen) && cur32(r, body, &len);
	else if (type == BT_PB)
		ok = cur16(r, body, &iface16) && cur16(r, body, &drops) && cur32(r, body, &hi) &&
		     cur32(r, body, &lo) && cur32(r, body, &caplen) && cur32(r, body, &len) &&
		     ((iface = iface16), true);
	else   /* simple packet: interface 0, no time, as much as the block holds */
		ok = cur32(r, body, &len) && ((caplen = (uint32_t)cursor_len(body)), true);
	if (!ok) {
		bad(r, "packet block too short");
		return false;
	}
	if (iface >= r->n_ifaces) {
		bad(r, "packet on interface %u, but the section describes %u", iface, r->n_ifaces);
		return false;
	}
	ifc = &r->ifaces[iface];
	if (type == BT_SPB) {
		if (ifc->snaplen && caplen > ifc->snaplen)
			caplen = ifc->snaplen;
		if (caplen > len)
			caplen = len;
	}
	if (!cursor_get_bytes(body, &data, caplen)) {
		bad(r, "packet of %u captured bytes in a block with %zu", caplen, cursor_len(body));
		return false;
	}
	p.iface = iface;
	p.linktype = ifc->linktype;
	p.snaplen = ifc->snaplen;
	stamp(ifc, (uint64_t)hi << 32 | lo, &p.ts);
	p.data = cursor_data(&data);
	p.caplen = caplen;
	p.len = len < caplen ? caplen : len;
	++*packets;
	fn(ctx, &p);
	return true;
}

/* Reads n bytes; false at the end of the file (cut says whether part of
 * them was there). */
static bool read_exact(struct reader *r, uint8_t *buf, size_t n, bool *cut)
{
	size_t got = fread(buf, 1, n, r->f);

	*cut = got > 0 && got < n;
	return got == n;
}

enum pcapng_result pcapng_read(FILE *f, pcapng_packet_fn fn, void *ctx, uint64_t *packets, char *err,
			       size_t errlen)
{
	struct reader r = { .f = f, .err = err, .errlen = errlen };
	enum pcapng_result ret = PCAPNG_BAD;
	uint8_t head[12];
	bool cut, first = true;

	*packets = 0;
	for (;;) {
		uint32_t type, total;
		struct cursor body;

		if (!read_exact(&r, head, 8, &cut)) {
			if (ferror(f)) {
				bad(&r, "%s", strerror(errno));
				break;
			}
			if (first)
				bad(&r, "empty file");
			ret = cut ? PCAPNG_CUT : first ? PCAPNG_BAD : PCAPNG_END;
			break;
		}
		if (first && !pcapng_magic(head)) {
			bad(&r, "not a pcapng file");
			break;
		}
		first = false;
		if (pcapng_magic(head)) {
			/* the byte order of the length is the new section's */
			if (!read_exact(&r, head + 8, 4, &cut)) {
				ret = PCAPNG_CUT;
				break;
			}
			if (memcmp(head + 8, "\x4D\x3C\x2B\x1A", 4) == 0) {
				r.big_endian = false;
			} else if (memcmp(head + 8, "\x1A\x2B\x3C\x4D", 4) == 0) {
				r.big_endian = true;
			} else {
				bad(&r, "section header with byte-order magic %02x%02x%02x%02x", head[8], head[9],
				    head[10], head[11]);
				break;
			}
		}
		type = get32(&r, head);
		total = get32(&r, head + 4);
		if (total < 12 || total % 4 != 0 || total > PCAPNG_MAX_BLOCK) {
			bad(&r, "block of type %#x claims %u bytes", type, total);
			break;
		}
		if (total > r.block_cap) {
			uint8_t *nb = realloc(r.block, total);

			if (!nb) {
				bad(&r, "out of memory for a block of %u bytes", total);
				break;
			}
			r.block = nb;
			r.block_cap = total;
		}
		/* the rest of the block after the 8 bytes read (12 for a section header) */
		{
			size_t have = type == BT_SHB ? 4 : 0;

			memcpy(r.block, head + 8, have);
			if (!read_exact(&r, r.block + have, total - 8 - have, &cut)) {
				ret = ferror(f) ? PCAPNG_BAD : PCAPNG_CUT;
				if (ferror(f))
					bad(&r, "%s", strerror(errno));
				break;
			}
		}
		if (get32(&r, r.block + total - 12) != total) {
			bad(&r, "block of type %#x: its trailing length differs from its leading one", type);
			break;
		}
		cursor_init(&body, r.block, total - 12);
		if (type == BT_SHB && !section_header(&r, &body))
			break;
		if (type == BT_IDB && !interface(&r, &body))
			break;
		if ((type == BT_EPB || type == BT_PB || type == BT_SPB) && !packet(&r, type, &body, fn, ctx, packets))
			break;
		r.at += total;
	}
	free(r.block);
	free(r.ifaces);
	return ret;
}
