#include "config.h"

#include "wire/slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define REGION ((size_t)2 << 20)   /* a huge page on x86-64 and arm64 (4 KiB base pages) */

/* Under AddressSanitizer every object is malloc's own, which it watches
 * (an object used after slab_put is then reported); the slab only keeps
 * the list of those out, for slab_free. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_PLAIN 1
#endif
#endif

struct free_obj {
	struct free_obj *next;
};

/* SLAB_PLAIN: before each object, its links in the list of those out. */
struct plain_head {
	struct plain_head *prev, *next;
	max_align_t align[];
};

struct slab {
	size_t size;                /* the object's, rounded up to a cache line */
	struct plain_head *out;     /* SLAB_PLAIN: the objects given out */
	struct free_obj *free;      /* given back, for the next slab_get */
	char *next, *end;           /* the current region's part not yet given out */
	void **regions;
	size_t n_regions, cap_regions;
};

struct slab *slab_new(size_t size)
{
	struct slab *s;

	if (size > REGION || !(s = calloc(1, sizeof(*s))))
		return NULL;
	size = size < sizeof(struct free_obj) ? sizeof(struct free_obj) : size;
	s->size = (size + 63) & ~(size_t)63;
	return s;
}

#ifdef SLAB_PLAIN
void *slab_get(struct slab *s)
{
	struct plain_head *h = malloc(sizeof(*h) + s->size);

	if (!h)
		return NULL;
	h->prev = NULL;
	h->next = s->out;
	if (s->out)
		s->out->prev = h;
	s->out = h;
	return h + 1;
}

void slab_put(struct slab *s, void *p)
{
	struct plain_head *h = p ? (struct plain_head *)p - 1 : NULL;

	if (!h)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		s->out = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h);
}

void slab_free(struct slab *s)
{
	if (!s)
		return;
	while (s->out)
		slab_put(s, s->out + 1);
	free(s);
}

void *huge_calloc(size_t size)
{
	return size ? calloc(1, size) : NULL;
}

void huge_free(void *p, size_t size)
{
	(void)size;
	free(p);
}
#else
/* Whole regions aligned to their size, as many as size takes (a huge
 * page can back a region only so): a region more is mapped, the ends
 * around the aligned middle unmapped.  mmap's pages are zero. */
void *huge_calloc(size_t size)
{
	size_t len = (size + REGION - 1) & ~(REGION - 1);
	char *p, *a;

	if (size == 0)
		return NULL;
	p = mmap(NULL, len + REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + REGION - 1) & ~(uintptr_t)(REGION - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + len < p + len + REGION)
		munmap(a + len, (size_t)(p + len + REGION - (a + len)));
#ifdef MADV_HUGEPAGE
	(void)madvise(a, len, MADV_HUGEPAGE);   /* a hint: refused, the pages are ordinary */
#endif
	return a;
}

void huge_free(void *p, size_t size)
{
	if (p)
		munmap(p, (size + REGION - 1) & ~(REGION - 1));
}

void *slab_get(struct slab *s)
{
	void *p;

	if (s->free) {
		p = s->free;
		s->free = s->free->next;
		return p;
	}
	if ((size_t)(s->end - s->next) < s->size) {
		char *r;

		if (s->n_regions == s->cap_regions) {
			size_t cap = s->cap_regions ? 2 * s->cap_regions : 8;
			void **grown = realloc(s->regions, cap * sizeof(*grown));

			if (!grown)
				return NULL;
			s->regions = grown;
			s->cap_regions = cap;
		}
		if (!(r = huge_calloc(REGION)))
			return NULL;
		s->regions[s->n_regions++] = r;
		s->next = r;
		s->end = r + REGION;
	}
	p = s->next;
	s->next += s->size;
	return p;
}

void slab_put(struct slab *s, void *p)
{
	struct free_obj *o = p;

	if (!p)
		return;
	o->next = s->free;
	s->free = o;
}

void slab_free(struct slab *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_regions; i++)
		huge_free(s->regions[i], REGION);
	free(s->regions);
	free(s);
}
#endif
