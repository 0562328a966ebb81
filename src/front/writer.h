/* writer: decided connections said on a thread of their own, in the order
 * they were put.
 *
 * `mtlsdiag pcap` reads a file's packets and follows its connections on
 * one thread; deciding each connection, pairing a gateway's legs, making
 * the human line and the JSON record and writing them take about as long
 * again.  With a writer the two go side by side on a second CPU (the
 * reader thread, capture.c, runs only when a third is left for it): the
 * reading thread puts each ended connection (writer_put) and goes on; the
 * writer thread hands them to say, in put order, one at a time.  say may
 * keep an item (the leg pairing holds one until its partner comes) and
 * gives each back with writer_release once it is done with it; the item
 * is then released (release) on the reading thread, at a later put or
 * flush.  So everything an item shares with those still being read (the
 * certificate cache's counts, the spare pool) is touched by the reading
 * thread alone; say reads the item, decides and writes, nothing else.  At
 * most WRITER_BATCHES x WRITER_BATCH items wait to be said: a put waits
 * for the writer beyond that, so memory stays bounded however far the
 * writer falls behind. */
#ifndef MTLSDIAG_WRITER_H
#define MTLSDIAG_WRITER_H
#include <stdbool.h>

#define WRITER_BATCH 8
#define WRITER_BATCHES 8

struct writer;

/* The writer thread, or NULL: one CPU only (the saying then stays on the
 * caller's thread), or no thread or memory to be had. */
struct writer *writer_start(void (*say)(void *ctx, void *item), void (*release)(void *ctx, void *item),
			    void *ctx) __attribute__((warn_unused_result));
/* Hands item over; say gets it on the writer thread. */
void writer_put(struct writer *wr, void *item) __attribute__((nonnull));
/* From say (or while the writer waits, after writer_flush): item is done
 * with, and goes back to the putting thread to be released. */
void writer_release(struct writer *wr, void *item) __attribute__((nonnull));
/* Waits until say has had every item put so far, and releases those given
 * back: what is written next comes after what they wrote, and until the
 * next put the writer thread touches nothing.  NULL: nothing. */
void writer_flush(struct writer *wr);
/* writer_flush, then stops the thread and frees wr.  NULL: nothing. */
void writer_finish(struct writer *wr);

#endif
