/* livecap: a network interface read live with libpcap (`mtlsdiag capture`).
 *
 * The interface is opened with pcap_create and activated with the snap
 * length, kernel buffer and immediate mode asked for, its filter set, and
 * read on a libevent loop: each packet goes to capture.c's flow table (the
 * path `mtlsdiag pcap` takes) and, with -w, to a capture file; a timer
 * every second moves the flow table's clock (idle connections are
 * finished and get their record), reads the kernel's counts and flushes
 * the file; SIGINT and SIGTERM stop the loop.  Other front-end parts (the
 * metrics) attach to the same event base and read the same counts. */
#ifndef MTLSDIAG_LIVECAP_H
#define MTLSDIAG_LIVECAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

struct capture;
struct event_base;

struct livecap_config {
	const char *iface;         /* -i IFACE */
	const char *filter;        /* BPF expression, or NULL */
	int snaplen;               /* bytes kept of each packet */
	int buffer_size;           /* the kernel's buffer in bytes; 0: libpcap's default */
	bool promisc;              /* --promisc */
	const char *write_path;    /* -w FILE, or NULL */
	mode_t file_mode;          /* of that file */
};

#define LIVECAP_SNAPLEN_DEFAULT 262144
/* Packets are read the moment they arrive (immediate mode), and libpcap
 * then gives each packet in the buffer a slot as large as the interface's
 * largest packet (64 KiB on lo, about 1.5 KiB on Ethernet): libpcap's
 * 2 MiB default holds 32 packets on lo, enough for a handful of
 * connections at once. */
#define LIVECAP_BUFFER_DEFAULT (16 << 20)
#define LIVECAP_SNAPLEN_MAX 262144

/* The counts since the start.  received, dropped and if_dropped are the
 * kernel's (pcap_stats: ps_recv, ps_drop, ps_ifdrop), read every second
 * and at the end, kept in 64 bits across the kernel's 32-bit wrap. */
struct livecap_counters {
	uint64_t received;         /* packets that passed the filter */
	uint64_t dropped;          /* dropped for want of room in the buffer */
	uint64_t if_dropped;       /* dropped by the interface or its driver */
	uint64_t read;             /* packets mtlsdiag read */
	uint64_t written;          /* packets written to -w FILE */
};

struct livecap;

/* Opens and activates the interface, sets the filter, opens -w FILE.
 * NULL after printing one line prefixed with `who` that says what and,
 * for a missing capability or interface, what to do. */
struct livecap *livecap_open(const char *who, const struct livecap_config *cfg)
	__attribute__((nonnull, warn_unused_result));

/* The link-layer type's name (EN10MB, LINUX_SLL2), for messages. */
const char *livecap_linktype_name(const struct livecap *lc) __attribute__((nonnull));

/* The event loop the capture runs on, for other parts to attach to. */
struct event_base *livecap_base(struct livecap *lc) __attribute__((nonnull));

/* The counts so far (as of the last second's reading). */
void livecap_counters(const struct livecap *lc, struct livecap_counters *out) __attribute__((nonnull));

/* Runs until SIGINT or SIGTERM, or until reading fails: every packet into
 * cap, tick(ctx, now) each second after the flow table's clock has moved
 * (tick may be NULL).  The packets the kernel still holds are read before
 * returning and the counts read one last time.  1 when stopped by a
 * signal; 0 after printing why reading stopped. */
int livecap_run(struct livecap *lc, struct capture *cap,
		void (*tick)(void *ctx, const struct timeval *now), void *ctx)
	__attribute__((nonnull(1, 2)));

/* The signal that stopped the run (SIGINT, SIGTERM), or 0. */
int livecap_stop_signal(const struct livecap *lc) __attribute__((nonnull));

/* Closes the interface and the file (0 when the file could not be
 * written whole: said already).  NULL is fine. */
int livecap_close(struct livecap *lc);

#endif
