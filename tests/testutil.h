/* testutil: helpers shared by the criterion suites: locating and loading
 * fixture files, and hex decoding. */
#ifndef MTLSDIAG_TESTUTIL_H
#define MTLSDIAG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Path of a file under the source tree (MTLSDIAG_SRCDIR, or "."); static buffer. */
const char *test_path(const char *rel);
/* Reads a whole file; aborts the test on failure. Caller frees. */
uint8_t *test_load(const char *rel, size_t *len);
/* Reads a file if it exists; returns NULL otherwise. */
uint8_t *test_try_load(const char *path, size_t *len);
/* The value of one hex digit, or -1. */
int test_hexval(int ch);
/* Decodes hex (whitespace ignored); aborts on bad input. Caller frees. */
uint8_t *test_unhex(const char *hex, size_t *len);

/* Appends n bytes to a growing buffer (a recording sink's stream). */
void test_append(uint8_t **data, size_t *len, size_t *cap, const uint8_t *p, size_t n);

/* snprintf into an array, failing the test when the text does not fit
 * (a path cut short would test the wrong file). Needs criterion. */
#define test_fmt(buf, ...) \
	cr_assert(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf), "%s: text does not fit", #buf)
/* The same into a pointer with its size. */
#define test_fmtn(buf, size, ...) \
	cr_assert(snprintf((buf), (size), __VA_ARGS__) < (int)(size), "%s: text does not fit", #buf)

#endif
