/* flow: the TCP connection table and per-direction reassembly.
 *
 * capture.c decodes headers and hands each TCP segment here.  The table
 * finds the connection (both directions hash to one entry), puts each
 * side's payload back in sequence order and drives the consumer's
 * struct flow_sink: open once, in-order data without copying, gaps for
 * bytes that will never arrive, one close per side, and exactly one
 * finish.  A finished connection leaves a small tombstone so that the
 * stragglers behind it (the last ACK, a late RST, a retransmission) do not
 * open a bogus new flow. */
#ifndef MTLSDIAG_FLOW_H
#define MTLSDIAG_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "wire/capture.h"
#include "wire/cursor.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* One decoded TCP segment.  Addresses are 16 bytes; IPv4 ones sit in the
 * first four with is_v6 false. */
struct tcp_segment {
	uint8_t src[16], dst[16];
	bool is_v6;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;             /* TCP_* */
	struct cursor payload;     /* the captured payload bytes */
	uint32_t missing;          /* payload bytes on the wire past the capture (snap length) */
};

struct flow_table;

/* Limits as in struct capture_opts (0: defaults); opts may be NULL.
 * Returns NULL when out of memory. */
struct flow_table *flow_table_new(const struct capture_opts *opts, const struct flow_sink *sink,
				  struct capture_stats *stats)
	__attribute__((nonnull(2, 3), warn_unused_result));

/* One segment, seen at `ts`. */
void flow_table_segment(struct flow_table *t, const struct tcp_segment *seg,
			const struct timeval *ts) __attribute__((nonnull));

/* Capture time has reached `now` without a packet (live capture): finish
 * connections idle for longer than the timeout, and tell the consumer of
 * those quiet for a second (flow_sink.quiet). */
void flow_table_tick(struct flow_table *t, const struct timeval *now) __attribute__((nonnull));

/* End of input: every connection still open is finished (truncated unless
 * both sides had closed), in the order the connections were first seen. */
void flow_table_finish_all(struct flow_table *t) __attribute__((nonnull));

/* Frees the table.  Calls no sink callback: finish_all first. */
void flow_table_free(struct flow_table *t);

/* Connections currently open (not finished). */
size_t flow_table_live(const struct flow_table *t) __attribute__((nonnull));

#endif
