/* fuzz_capture: libFuzzer target for the capture layer.
 *
 * The input is a whole capture file (pcap or pcapng), read through
 * fmemopen and capture_read_stream as a file on disk would be.  The sink
 * does nothing with the bytes but holds the layer to its contract: each
 * opened flow gets a heap object that finish frees, so a second finish is
 * a double free, a call after finish a use after free, and a flow never
 * finished a leak, all of which the sanitizers report. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_flow {
	uint64_t bytes[2];
	int closed[2];
	int finished;
};

static void *f_open(void *ctx, const struct endpoint *init, const struct endpoint *resp,
		    const struct timeval *ts, bool saw_syn)
{
	(void)ctx;
	(void)ts;
	(void)saw_syn;
	if (!init->ip[0] || !resp->ip[0])
		abort();
	return calloc(1, sizeof(struct fuzz_flow));
}

static void f_data(void *ctx, void *flow, enum side from, const uint8_t *p, size_t n,
		   const struct timeval *ts)
{
	struct fuzz_flow *f = flow;
	volatile uint8_t sink = 0;
	size_t i;

	(void)ctx;
	(void)ts;
	if (from != SIDE_CLIENT && from != SIDE_SERVER)
		abort();
	if (n == 0 || f->closed[from] == CLOSE_FIN)
		abort(); /* no empty deliveries, no data after this side's FIN */
	for (i = 0; i < n; i++) /* every delivered byte must be readable */
		sink ^= p[i];
	(void)sink;
	f->bytes[from] += n;
}

static void f_gap(void *ctx, void *flow, enum side from, size_t n, const struct timeval *ts)
{
	struct fuzz_flow *f = flow;

	(void)ctx;
	(void)ts;
	if (n == 0 || f->closed[from] == CLOSE_FIN)
		abort();
}

static void f_close(void *ctx, void *flow, enum side from, enum close_kind how,
		    const struct timeval *ts)
{
	struct fuzz_flow *f = flow;

	(void)ctx;
	(void)ts;
	if (how != CLOSE_FIN && how != CLOSE_RST && how != CLOSE_TIMEOUT)
		abort();
	if (how == CLOSE_FIN && f->closed[from])
		abort(); /* one FIN per side */
	f->closed[from] = how;
}

static bool f_wants(void *ctx, void *flow)
{
	struct fuzz_flow *f = flow;

	(void)ctx;
	/* Let some flows go to the skipping path. */
	return f->bytes[0] + f->bytes[1] < 3000;
}

static void f_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	(void)ctx;
	(void)truncated;
	(void)ts;
	free(flow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct flow_sink sink = {
		.open = f_open,
		.data = f_data,
		.gap = f_gap,
		.close = f_close,
		.wants_bytes = f_wants,
		.finish = f_finish,
	};
	/* Small limits, so that holes are given up and flows time out. */
	struct capture_opts opts = { .idle_timeout_s = 30, .reasm_limit = 4096 };
	struct capture_stats stats;
	char err[256];
	FILE *f;

	if (size == 0)
		return 0;
	f = fmemopen((void *)(uintptr_t)data, size, "rb");
	if (!f)
		return 0;
	memset(&stats, 0, sizeof(stats));
	(void)capture_read_stream(f, "fuzz", &opts, &sink, &stats, err, sizeof(err));
	if (stats.gap_bytes && !stats.gaps)
		abort();
	return 0;
}
