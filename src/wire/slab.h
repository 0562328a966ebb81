/* slab: objects of one size, for one thread, carved from 2 MiB regions
 * that the kernel is asked to back with huge pages.
 *
 * A busy capture keeps a few hundred connections open, each a flow and an
 * observer's connection of several kilobytes, touched packet by packet in
 * no order.  From malloc they lie on ordinary 4 KiB pages, and nearly
 * every packet costs misses in the TLB as well as in the caches (dearer
 * still in a virtual machine, where a miss walks two page tables).  A slab
 * puts them on huge pages where the system allows it
 * (madvise(MADV_HUGEPAGE): transparent huge pages set to "always" or
 * "madvise"); where it does not, they are ordinary pages, as from malloc.
 * Freed objects are kept for the next ones; the regions go back to the
 * system at slab_free only, so the memory held is the most ever in use at
 * once, rounded up to a region.  Built with AddressSanitizer, each object
 * is malloc's own instead, so that a use after slab_put is caught. */
#ifndef MTLSDIAG_SLAB_H
#define MTLSDIAG_SLAB_H

#include <stddef.h>

struct slab;

/* A slab of objects of `size` bytes (at most 2 MiB), or NULL when out of
 * memory or larger. */
struct slab *slab_new(size_t size) __attribute__((warn_unused_result));
/* An object (its contents undefined), or NULL when out of memory. */
void *slab_get(struct slab *s) __attribute__((nonnull));
/* Gives back an object slab_get gave; NULL is allowed. */
void slab_put(struct slab *s, void *p) __attribute__((nonnull(1)));
/* Frees every region; the objects must not be used after.  NULL is allowed. */
void slab_free(struct slab *s);

/* A block of `size` bytes, zero, on huge pages where the system allows
 * (a table touched at random, a buffer every byte of a file passes
 * through), or NULL; given back with huge_free and the same size.  Built
 * with AddressSanitizer, calloc's. */
void *huge_calloc(size_t size) __attribute__((warn_unused_result));
void huge_free(void *p, size_t size);

#endif
