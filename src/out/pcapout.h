/* pcapout: writes relayed connections as a packet capture.
 *
 * The writer behind the proxy's --pcap-out FILE.  Each connection becomes a
 * synthetic TCP conversation between the real endpoints: Ethernet, then
 * IPv4 or IPv6 (a v4 endpoint facing a v6 one is written as ::ffff:a.b.c.d),
 * then TCP with correct IP and TCP checksums and per-direction sequence and
 * acknowledgement numbers.  A connection opens with SYN, SYN-ACK, ACK; its
 * bytes follow in segments of at most PCAPOUT_MAX_SEG bytes, each carrying
 * the given bytes exactly; a side closes with FIN or RST.  The file is
 * written with libpcap's dump API (link type Ethernet, snap length 65535),
 * so any pcap reader, this project's capture layer included, can read it.
 *
 * Not thread-safe: a struct pcapout and its connections must be used from
 * one thread at a time (the caller serialises). */
#ifndef MTLSDIAG_PCAPOUT_H
#define MTLSDIAG_PCAPOUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#include "wire/facts.h"

#define PCAPOUT_MAX_SEG 65000

struct pcapout;
struct pcapout_conn;

/* Creates (truncates) the capture file with `mode` (0600: readable by its
 * owner only).  NULL on failure, err says why (one line naming the file). */
struct pcapout *pcapout_open(const char *path, mode_t mode, char *err, size_t errlen)
	__attribute__((nonnull(1), warn_unused_result));

/* A new connection from client to server; writes the three-way handshake
 * stamped ts (NULL: now).  NULL if an address is not a textual IPv4/IPv6
 * address or memory runs out. */
struct pcapout_conn *pcapout_conn_new(struct pcapout *po, const struct endpoint *client,
				      const struct endpoint *server, const struct timeval *ts)
	__attribute__((nonnull(1, 2, 3), warn_unused_result));

/* The same for a connection whose start was not seen (a capture that
 * began after it): no three-way handshake is written, so a reader takes
 * its first segment for the middle of a stream, as the original showed. */
struct pcapout_conn *pcapout_conn_midstream(struct pcapout *po, const struct endpoint *client,
					    const struct endpoint *server)
	__attribute__((nonnull(1, 2, 3), warn_unused_result));

/* n bytes sent by one side, in order.  Ignored after that side closed. */
void pcapout_data(struct pcapout_conn *c, enum side from, const uint8_t *p, size_t n,
		  const struct timeval *ts);

/* n bytes sent by one side that are not written: the sequence numbers move
 * on, so a reader sees a hole ("previous segment not captured") where they
 * were.  Ignored after that side closed. */
void pcapout_skip(struct pcapout_conn *c, enum side from, uint64_t n);

/* One side closes: CLOSE_RST writes a reset, any other kind a FIN.  At most
 * one FIN per side; a reset may follow a FIN.  Nothing is written for a
 * side after its reset. */
void pcapout_close(struct pcapout_conn *c, enum side from, enum close_kind how,
		   const struct timeval *ts);

/* Forgets the connection (writes nothing).  NULL is allowed. */
void pcapout_conn_free(struct pcapout_conn *c);

/* Pushes buffered packets to the file.  0, or -1 on a write error.  After
 * a failed write (a full disk) the file is cut back to its last whole
 * packet and stays so: later packets are counted as lost, not written. */
int pcapout_flush(struct pcapout *po);

/* Packets lost to a failed write, and that write's errno (0: none). */
uint64_t pcapout_lost(const struct pcapout *po, int *error) __attribute__((nonnull(1)));

/* Flushes and closes the file.  Free the connections first.  NULL is allowed. */
void pcapout_close_file(struct pcapout *po);

#endif
