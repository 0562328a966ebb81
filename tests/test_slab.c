/* slab: objects of one size from 2 MiB regions (huge pages where the
 * system allows): distinct, aligned, whole, reused once given back, and
 * all freed with the slab. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/slab.h"

#define REGION ((uintptr_t)2 << 20)

/* Built with AddressSanitizer the objects are malloc's (slab.h): where
 * they lie, and which comes again, is malloc's business. */
#if defined(__SANITIZE_ADDRESS__)
#define PLAIN 1
#else
#define PLAIN 0
#endif

/* Objects the size of an observer's connection, more than two regions'
 * worth: each distinct, on a cache line, its bytes its own. */
Test(slab, objects_are_distinct_aligned_and_whole)
{
	enum { N = 700, SIZE = 7300 };
	struct slab *s = slab_new(SIZE);
	unsigned char *obj[N];

	cr_assert_not_null(s);
	for (int i = 0; i < N; i++) {
		obj[i] = slab_get(s);
		cr_assert_not_null(obj[i]);
		cr_assert(PLAIN || (uintptr_t)obj[i] % 64 == 0, "object %d on a cache line", i);
		memset(obj[i], i & 0xff, SIZE);
	}
	/* the first object of a region starts it: regions are aligned to their size */
	cr_assert(PLAIN || (uintptr_t)obj[0] % REGION == 0);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < SIZE; k += 97)
			cr_assert_eq(obj[i][k], i & 0xff, "object %d overwritten at %d", i, k);
	slab_free(s);
}

Test(slab, an_object_given_back_is_given_again)
{
	struct slab *s = slab_new(100);
	void *a, *b, *c;

	cr_assert_not_null(s);
	a = slab_get(s);
	b = slab_get(s);
	cr_assert(a && b && a != b);
	cr_assert(PLAIN || (uintptr_t)b - (uintptr_t)a >= 128, "100 bytes take two cache lines");
	slab_put(s, a);
	slab_put(s, NULL);
	c = slab_get(s);
	cr_assert_not_null(c);
	cr_assert(PLAIN || c == a, "the one given back comes first");
	slab_free(s);
	slab_free(NULL);
}

/* A region holds one object at most that large. */
Test(slab, objects_larger_than_a_region_are_refused)
{
	struct slab *s = slab_new(2 << 20);
	unsigned char *p;

	cr_assert_null(slab_new((2 << 20) + 1));
	cr_assert_not_null(s);
	p = slab_get(s);
	cr_assert_not_null(p);
	memset(p, 0x5a, 2 << 20);
	cr_assert_eq(p[(2 << 20) - 1], 0x5a);
	slab_free(s);
}

/* A table of several regions' size comes zero, whole and aligned. */
Test(slab, a_large_table_comes_zero_and_whole)
{
	size_t size = (4u << 20) + 12345;
	unsigned char *p = huge_calloc(size);

	cr_assert_not_null(p);
	cr_assert(PLAIN || (uintptr_t)p % REGION == 0);
	for (size_t i = 0; i < size; i += 4096)
		cr_assert_eq(p[i], 0, "byte %zu", i);
	cr_assert_eq(p[size - 1], 0);
	memset(p, 0xa5, size);
	cr_assert_eq(p[size - 1], 0xa5);
	huge_free(p, size);
	huge_free(NULL, 0);
	cr_assert_null(huge_calloc(0));
}
