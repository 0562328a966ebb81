/* pcapng: reads a pcapng file block by block, for the files libpcap's own
 * reader refuses: interfaces whose link types or snapshot lengths differ
 * (what mergecap makes of an Ethernet and a Linux-cooked capture). Each
 * packet comes with its own interface's link type. Section headers in
 * either byte order, interface descriptions with their timestamp
 * resolution and offset, enhanced, simple and obsolete packet blocks;
 * every other block is skipped. */
#ifndef MTLSDIAG_PCAPNG_H
#define MTLSDIAG_PCAPNG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

/* a block longer than this is taken as corruption (libpcap's own bound) */
#define PCAPNG_MAX_BLOCK (16u * 1024 * 1024)
/* interfaces in one section */
#define PCAPNG_MAX_IFACES 1024

struct pcapng_packet {
	unsigned iface;         /* the interface's index in its section */
	int linktype;           /* its LINKTYPE_ (the DLT_ value for those mtlsdiag reads) */
	uint32_t snaplen;
	struct timeval ts;
	const uint8_t *data;
	uint32_t caplen, len;   /* bytes captured, bytes on the wire */
};

typedef void (*pcapng_packet_fn)(void *ctx, const struct pcapng_packet *p);

enum pcapng_result {
	PCAPNG_END,             /* read to the end */
	PCAPNG_CUT,             /* the file ends inside a block: everything before it was read */
	PCAPNG_BAD,             /* not pcapng, or a malformed block: err says what and where */
};

/* Reads f from its current position (the start of a section header) to
 * its end, calling fn for each packet; *packets counts them. */
enum pcapng_result pcapng_read(FILE *f, pcapng_packet_fn fn, void *ctx, uint64_t *packets,
			       char *err, size_t errlen) __attribute__((nonnull(1, 2, 4, 5)));

/* The first four bytes of a pcapng file (a section header block). */
bool pcapng_magic(const uint8_t b[4]) __attribute__((nonnull));

#endif
