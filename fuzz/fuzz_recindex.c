/* fuzz_recindex: libFuzzer target for the record index the evidence
 * writer reads a side's stream with (recindex.c).  The input is one side's
 * bytes, read as TLS 1.2 and as 1.3: every record found lies inside the
 * input in order, a complete one ends inside it, framing stops inside it,
 * and the message and alert fields are within their bounds; the start
 * after a preamble is inside it, and blanking an HTTP head keeps its
 * CRLF line ends where they were. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/recindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void index_all(const uint8_t *data, size_t size, bool tls13)
{
	struct rec_index ri;
	size_t prev_end = 0;

	if (!rec_index_build(&ri, data, size, tls13, 4096))
		return;
	if (ri.framed_until > size)
		abort();
	for (size_t i = 0; i < ri.n; i++) {
		const struct rec_entry *e = &ri.recs[i];

		if (e->offset != prev_end || e->offset + 5 > size || e->n_msgs > RECINDEX_MAX_MSGS)
			abort();
		if (e->complete && e->offset + 5 + e->len > size)
			abort();
		if (!e->complete && i + 1 != ri.n)
			abort();
		if ((e->alert_level >= 0) != (e->alert_desc >= 0) || e->alert_level > 255 || e->alert_desc > 255)
			abort();
		prev_end = e->offset + 5 + e->len;
	}
	rec_index_free(&ri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	size_t start;

	index_all(data, size, false);
	index_all(data, size, true);
	/* a preamble before the records: where they begin, and an HTTP head
	 * blanked in place keeps its length and its line ends */
	start = rec_find_start(data, size);
	if (start > size || !copy)
		abort();
	memcpy(copy, data, size);
	rec_blank_http_headers(copy, size);
	for (size_t i = 0; i + 1 < size; i++)
		if (data[i] == '\r' && data[i + 1] == '\n' && (copy[i] != '\r' || copy[i + 1] != '\n'))
			abort();
	free(copy);
	return 0;
}
