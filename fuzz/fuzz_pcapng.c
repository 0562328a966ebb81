/* fuzz_pcapng: libFuzzer target for the pcapng block reader (pcapng.c),
 * which reads the files libpcap refuses.  The input is a whole file, read
 * through fmemopen; every packet handed over must lie inside the block it
 * came from (the sanitizers see a read past it) and claim no more captured
 * bytes than its length on the wire. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wire/pcapng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_packet(void *ctx, const struct pcapng_packet *p)
{
	uint64_t *sum = ctx;

	if (p->caplen > p->len || p->ts.tv_usec < 0 || p->ts.tv_usec >= 1000000)
		abort();
	for (uint32_t i = 0; i < p->caplen; i++)
		*sum += p->data[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "rb");
	uint64_t packets = 0, sum = 0;
	char err[256];

	if (!f)
		return 0;
	(void)pcapng_read(f, on_packet, &sum, &packets, err, sizeof(err));
	fclose(f);
	return 0;
}
