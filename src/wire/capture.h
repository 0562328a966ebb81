/* capture: reads packets with libpcap and turns them into TCP byte streams.
 *
 * Link layers: Ethernet (with 802.1Q/802.1ad tags), Linux cooked (SLL and
 * SLL2), raw IP, BSD loopback (NULL/LOOP).  IPv4 and IPv6.  Each TCP
 * connection is tracked in a hashed flow table (flow.c), reassembled in
 * order (out-of-order, retransmitted and overlapping segments handled), and
 * handed to a consumer through struct flow_sink.  The capture layer knows
 * nothing of TLS. */
#ifndef MTLSDIAG_CAPTURE_H
#define MTLSDIAG_CAPTURE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#include "wire/facts.h"

struct capture_stats {
	uint64_t packets;        /* packet records read */
	uint64_t bytes;          /* their captured bytes */
	uint64_t truncated;      /* packets cut short by the snap length */
	uint64_t not_ip;         /* link-layer payloads that are not IPv4/IPv6 */
	uint64_t not_tcp;        /* IP packets that are not TCP */
	uint64_t bad_headers;    /* malformed link/IP/TCP headers */
	uint64_t ip_fragments;   /* IP fragments (not reassembled) */
	uint64_t flows;          /* TCP connections tracked */
	uint64_t midstream;      /* flows first seen without their SYN */
	uint64_t out_of_order;   /* segments that arrived ahead of a hole */
	uint64_t retransmitted;  /* segments (or parts) already delivered */
	uint64_t gaps;           /* holes given up on */
	uint64_t gap_bytes;
	bool stopped;            /* reading stopped before the end: err says why */
	bool file_truncated;     /* ... because the file ends inside a packet record */
	int linktype;            /* DLT_ of the last file read */
	uint64_t evicted;        /* flows finished early (as idle) to stay under max_flows */
	bool interrupted;        /* reading stopped at capture_opts.interrupt */
};

/* The consumer of reassembled streams (the observer, or a test). */
struct flow_sink {
	void *ctx;
	/* A new TCP connection; returns the consumer's per-flow state, or NULL
	 * to ignore the flow. `initiator` sent the SYN when saw_syn, else the
	 * first packet seen. */
	void *(*open)(void *ctx, const struct endpoint *initiator,
		      const struct endpoint *responder, const struct timeval *ts,
		      bool saw_syn);
	/* In-order payload from one side. */
	void (*data)(void *ctx, void *flow, enum side from, const uint8_t *p,
		     size_t n, const struct timeval *ts);
	/* n bytes of one side's stream will never arrive. */
	void (*gap)(void *ctx, void *flow, enum side from, size_t n,
		    const struct timeval *ts);
	/* One side sent FIN, or RST. */
	void (*close)(void *ctx, void *flow, enum side from, enum close_kind how,
		      const struct timeval *ts);
	/* False once the consumer needs no more payload for this flow (the
	 * capture layer then skips it without copying). May be NULL. */
	bool (*wants_bytes)(void *ctx, void *flow);
	/* Optional (live capture, capture_tick): the flow, still open, has had
	 * no packet for a second or more up to `now`.  Not called for a flow
	 * whose consumer wants no more bytes. */
	void (*quiet)(void *ctx, void *flow, const struct timeval *now);
	/* The one teardown, called exactly once per opened flow: after both
	 * sides closed or a reset, after the idle timeout, or at the end of
	 * the input (truncated: the connection had not ended). */
	void (*finish)(void *ctx, void *flow, bool truncated, const struct timeval *ts);
};

struct capture_opts {
	const char *filter;        /* BPF expression, or NULL */
	unsigned idle_timeout_s;   /* capture-time idle timeout; 0: default (300 s) */
	size_t reasm_limit;        /* out-of-order bytes held per direction; 0: default (256 KiB) */
	size_t max_flows;          /* open flows at most; the least recently active (to the
				    * second) is finished as if idle to make room; 0: default (131072) */
	/* A stream written as it is read (a pipe, a FIFO: tcpdump -w - -U):
	 * while it waits for input, the capture's clock moves with the real
	 * one (from the last packet's time), so idle connections are finished;
	 * then, at most once a second, tick(tick_ctx, now) lets the consumer
	 * act on the time too.  tick may be NULL. */
	void (*tick)(void *ctx, const struct timeval *now);
	void *tick_ctx;
	uint64_t *progress;        /* if not NULL: how many bytes of the file have been read,
				    * stored now and then (every 1024 records, an atomic
				    * store) by the thread reading it, for a progress line */
	/* if not NULL: once it is non-zero (a signal handler sets it), reading
	 * stops before the next record, as at the end of the input (the open
	 * flows are finished, truncated), with stats->interrupted set */
	const volatile sig_atomic_t *interrupt;
	/* threads of the caller's that are busy beside the one calling
	 * (pcap's writer): the reader thread starts only when a CPU is left
	 * for it besides theirs */
	unsigned threads_beside;
};

/* The CPUs this process may run on (at least 1).  A second thread (the
 * reader's, pcap's writer) pays only with a CPU of its own: on two CPUs
 * three busy threads spend more on handing work over and on moving it
 * between the CPUs' caches than they gain. */
unsigned capture_cpus(void);

/* Reads one capture file, pcap or pcapng ("-" reads standard input).
 * Returns 0 when the file was read to its end, -1 when it could not be read
 * at all (err says why, one line naming the file).  A file cut inside a
 * packet record is not an error: everything before the cut is analysed and
 * stats->file_truncated is set.  Flows still open at the end are finished
 * with truncated = true. */
int capture_read_file(const char *path, const struct capture_opts *opts,
		      const struct flow_sink *sink, struct capture_stats *stats,
		      char *err, size_t errlen) __attribute__((nonnull(1, 3, 4)));

/* As capture_read_file, from a stream already open (standard input, or a
 * fmemopen buffer for the fuzzer).  The stream is taken over: it is closed
 * before returning, except stdin, and with a CPU to spare (capture_cpus,
 * opts->threads_beside) it is read (and the headers decoded) by a reader
 * thread while the calling thread runs the flow table and the sink, which
 * get the same calls in the same order either way.  `name` names it in
 * messages. */
int capture_read_stream(FILE *f, const char *name, const struct capture_opts *opts,
			const struct flow_sink *sink, struct capture_stats *stats,
			char *err, size_t errlen) __attribute__((nonnull(1, 2, 4, 5)));

/* Notes on the contract above, as implemented:
 * - A flow is opened by a SYN, a SYN-ACK or a segment with payload; bare
 *   ACKs, FINs and RSTs of unknown connections open nothing, and neither
 *   does anything but a new SYN on the port pair of a flow that finished
 *   less than idle_timeout_s ago (its tombstone).
 * - close(FIN) comes once per side, after all of that side's data; after
 *   a FIN a side may still be reported closed by RST.  An idle timeout
 *   reports close(CLOSE_TIMEOUT) for each side still open, then
 *   finish(truncated = false).
 * - When capture_read_file/_stream return 0 with stats->file_truncated
 *   set, err (if given) holds libpcap's reason, one line.
 * - At the end of the input the open flows are finished in the order they
 *   were first seen. */

/* Packet at a time, for a front end that runs libpcap itself (live
 * capture) or makes its own packets. */
struct capture;

struct capture *capture_new(const struct capture_opts *opts, const struct flow_sink *sink,
			    struct capture_stats *stats)
	__attribute__((nonnull(2, 3), warn_unused_result));

/* 1 if packets of this link-layer type (a DLT_ value, as pcap_datalink
 * returns) can be decoded. */
int capture_linktype_supported(int linktype);

/* One packet: caplen bytes captured of a packet len bytes long. */
void capture_packet(struct capture *c, int linktype, const struct timeval *ts,
		    const uint8_t *bytes, uint32_t caplen, uint32_t len)
	__attribute__((nonnull(1, 3)));

/* Capture time has reached `now` with no packet: idle flows are finished. */
void capture_tick(struct capture *c, const struct timeval *now) __attribute__((nonnull));

/* End of input: every flow still open is finished (truncated = true unless
 * both sides had closed). */
void capture_end(struct capture *c) __attribute__((nonnull));

void capture_free(struct capture *c);

#endif
