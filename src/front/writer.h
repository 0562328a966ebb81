/* writer: a decided connection's printing on a thread of its own, in the
 * order the connections were decided.
 *
 * `mtlsdiag pcap` decides a file's connections on one thread; making each
 * one's human line and JSON record and writing them takes about as long
 * again.  With a writer the two go side by side on a second CPU (the
 * reader thread, capture.c, runs only when a third is left for it): the
 * deciding thread puts each connection (writer_put) and goes on; the
 * writer thread says them (say, in put order, one at a time); each said
 * connection comes back to the deciding thread, which frees it (release)
 * at a later put or at writer_finish.  So
 * everything a connection shares with the ones still being decided (the
 * certificate cache's counts, the spare pool) is touched by the deciding
 * thread alone; say reads the connection and writes the outputs, nothing
 * else.  At most WRITER_BATCHES x WRITER_BATCH connections wait or are
 * being said: a put waits for the writer beyond that, so memory stays
 * bounded however far the writer falls behind. */
#ifndef MTLSDIAG_WRITER_H
#define MTLSDIAG_WRITER_H
#include <stdbool.h>

#define WRITER_BATCH 16
#define WRITER_BATCHES 8

struct writer;

/* The writer thread, or NULL: one CPU only (the printing then stays on
 * the caller's thread), or no thread or memory to be had. */
struct writer *writer_start(void (*say)(void *ctx, void *item), void (*release)(void *ctx, void *item),
			    void *ctx) __attribute__((warn_unused_result));
/* Hands item over; it is said on the writer thread and released on this
 * one, later. */
void writer_put(struct writer *wr, void *item) __attribute__((nonnull));
/* Waits until every item put so far is said and releases them: what is
 * said next comes after their lines.  NULL: nothing. */
void writer_flush(struct writer *wr);
/* Waits until every item put is said, releases them all, stops the
 * thread and frees wr.  NULL: nothing. */
void writer_finish(struct writer *wr);

#endif
