/* metrics: the counters and their exposition (metrics.h).  Only counters
 * and gauges that a scrape reads whole: a histogram's buckets are kept
 * apart and summed into cumulative ones as they are rendered. */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/codes.h"
#include "out/metrics.h"

/* Upper bounds of the handshake histogram, in microseconds: a handshake
 * on a LAN takes a few milliseconds, one across the world or waiting on a
 * smart card seconds. */
static const uint64_t hs_bounds_us[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
#define N_BOUNDS (sizeof(hs_bounds_us) / sizeof(hs_bounds_us[0]))

enum { F_KINDS = F_UNKNOWN + 1 };

/* The key log's part in a connection, as a lookup's result. */
enum keylog_result { KR_HIT, KR_MISS, KR_UNUSABLE, KR_COUNT };

struct metrics {
	atomic_ullong by_verdict[V_COUNT];
	atomic_ullong by_fault[F_KINDS];
	atomic_ullong hs_bucket[N_BOUNDS + 1];   /* the last: above every bound */
	atomic_ullong hs_count, hs_sum_us;
	atomic_ullong relayed[2];                /* by the side that sent them */
	atomic_ullong failures;
	atomic_ullong up_reused, up_resent;
	atomic_llong open;
	atomic_ullong keylog[KR_COUNT];
	enum metrics_front front;
	atomic_ullong received, drops_kernel, drops_interface;
	time_t started;
};

struct metrics *metrics_new(enum metrics_front front)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m) {
		m->started = time(NULL);
		m->front = front;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	free(m);
}

static const char *keylog_result_name(enum keylog_result r)
{
	switch (r) {
	case KR_HIT: return "hit";
	case KR_MISS: return "miss";
	default: break;
	}
	return "unusable";
}

void metrics_tally(const struct metrics *m, struct report_tally *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < V_COUNT; i++) {
		t->by_verdict[i] = atomic_load(&m->by_verdict[i]);
		t->connections += t->by_verdict[i];
	}
}

void metrics_connection(struct metrics *m, const struct conn_facts *f, const struct verdict *v)
{
	if ((unsigned)v->code < V_COUNT)
		atomic_fetch_add(&m->by_verdict[v->code], 1);
	if ((unsigned)v->fault < F_KINDS)
		atomic_fetch_add(&m->by_fault[v->fault], 1);
	switch (f->keylog) {
	case KEYLOG_DECRYPTED:
		atomic_fetch_add(&m->keylog[KR_HIT], 1);
		break;
	case KEYLOG_NO_ENTRY:
	case KEYLOG_MISSING_SECRET:
		atomic_fetch_add(&m->keylog[KR_MISS], 1);
		break;
	case KEYLOG_BAD_KEY:
	case KEYLOG_UNSUPPORTED:
		atomic_fetch_add(&m->keylog[KR_UNUSABLE], 1);
		break;
	case KEYLOG_UNUSED:
		break;
	}
}

void metrics_handshake(struct metrics *m, const struct timeval *start, const struct timeval *end)
{
	int64_t us = ((int64_t)end->tv_sec - start->tv_sec) * 1000000 + (end->tv_usec - start->tv_usec);
	size_t i;

	if (us < 0)
		us = 0;
	for (i = 0; i < N_BOUNDS && (uint64_t)us > hs_bounds_us[i]; i++)
		;
	atomic_fetch_add(&m->hs_bucket[i], 1);
	atomic_fetch_add(&m->hs_sum_us, (unsigned long long)us);
	atomic_fetch_add(&m->hs_count, 1);
}

void metrics_relayed(struct metrics *m, uint64_t from_client, uint64_t from_server)
{
	atomic_fetch_add(&m->relayed[SIDE_CLIENT], from_client);
	atomic_fetch_add(&m->relayed[SIDE_SERVER], from_server);
}

void metrics_failure(struct metrics *m)
{
	atomic_fetch_add(&m->failures, 1);
}

void metrics_upstream_kept(struct metrics *m, bool reused, bool resent)
{
	if (reused)
		atomic_fetch_add(&m->up_reused, 1);
	if (resent)
		atomic_fetch_add(&m->up_resent, 1);
}

void metrics_open(struct metrics *m, int delta)
{
	atomic_fetch_add(&m->open, delta);
}

void metrics_capture_counts(struct metrics *m, uint64_t received, uint64_t kernel_dropped, uint64_t if_dropped)
{
	atomic_store(&m->received, received);
	atomic_store(&m->drops_kernel, kernel_dropped);
	atomic_store(&m->drops_interface, if_dropped);
}

static void head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP mtlsdiag_%s %s\n# TYPE mtlsdiag_%s %s\n", name, help, name, type);
}

/* Seconds from microseconds, exactly and without trailing zeros:
 * "0.00425", "10". */
static void seconds(FILE *out, uint64_t us)
{
	char frac[8];
	int n;

	fprintf(out, "%llu", (unsigned long long)(us / 1000000));
	if (us % 1000000 == 0)
		return;
	n = snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	fprintf(out, ".%s", frac);
}

/* What only the proxy has: handshake times, bytes relayed, connections
 * open and those that never reached their server. */
static void render_proxy(const struct metrics *m, FILE *out)
{
	unsigned long long cumulative = 0, count;
	size_t i;

	head(out, "handshake_duration_seconds", "histogram",
	     "Time from a connection's start to the end of its TLS handshake, for handshakes that ended.");
	/* the count is read first: a handshake added meanwhile makes the
	 * buckets no smaller than it, never the reverse */
	count = atomic_load(&m->hs_count);
	for (i = 0; i <= N_BOUNDS; i++) {
		cumulative += atomic_load(&m->hs_bucket[i]);
		if (i == N_BOUNDS)
			break;
		fputs("mtlsdiag_handshake_duration_seconds_bucket{le=\"", out);
		seconds(out, hs_bounds_us[i]);
		fprintf(out, "\"} %llu\n", cumulative < count ? cumulative : count);
	}
	fprintf(out, "mtlsdiag_handshake_duration_seconds_bucket{le=\"+Inf\"} %llu\n", count);
	fputs("mtlsdiag_handshake_duration_seconds_sum ", out);
	seconds(out, atomic_load(&m->hs_sum_us));
	fprintf(out, "\nmtlsdiag_handshake_duration_seconds_count %llu\n", count);
	head(out, "relayed_bytes_total", "counter", "Bytes relayed, by the side that sent them, counted as each connection ends.");
	fprintf(out, "mtlsdiag_relayed_bytes_total{direction=\"client_to_server\"} %llu\n",
		atomic_load(&m->relayed[SIDE_CLIENT]));
	fprintf(out, "mtlsdiag_relayed_bytes_total{direction=\"server_to_client\"} %llu\n",
		atomic_load(&m->relayed[SIDE_SERVER]));
	head(out, "upstream_failures_total", "counter",
	     "Connections that never reached their server (unreachable, or a CONNECT refused).");
	fprintf(out, "mtlsdiag_upstream_failures_total %llu\n", atomic_load(&m->failures));
	head(out, "upstream_reused_total", "counter",
	     "Intercepted clients forwarded on a connection to the server kept from an earlier client.");
	fprintf(out, "mtlsdiag_upstream_reused_total %llu\n", atomic_load(&m->up_reused));
	head(out, "upstream_resent_total", "counter",
	     "Intercepted requests sent again on a new connection: the kept one was found closed by the server.");
	fprintf(out, "mtlsdiag_upstream_resent_total %llu\n", atomic_load(&m->up_resent));
	head(out, "open_connections", "gauge", "Connections open now.");
	fprintf(out, "mtlsdiag_open_connections %lld\n", atomic_load(&m->open));
}

/* What only a live capture has: the kernel's packet counts. */
static void render_capture(const struct metrics *m, FILE *out)
{
	head(out, "capture_received_packets_total", "counter", "Packets the live capture's filter passed (the kernel's count).");
	fprintf(out, "mtlsdiag_capture_received_packets_total %llu\n", atomic_load(&m->received));
	head(out, "capture_dropped_packets_total", "counter",
	     "Packets the live capture lost: dropped by the kernel (its buffer was full) or by the interface.");
	fprintf(out, "mtlsdiag_capture_dropped_packets_total{by=\"kernel\"} %llu\n", atomic_load(&m->drops_kernel));
	fprintf(out, "mtlsdiag_capture_dropped_packets_total{by=\"interface\"} %llu\n", atomic_load(&m->drops_interface));
}

int metrics_render(const struct metrics *m, FILE *out)
{
	size_t i;

	head(out, "connections_total", "counter", "Connections ended, by verdict.");
	for (i = 0; i < V_COUNT; i++)
		fprintf(out, "mtlsdiag_connections_total{verdict=\"%s\"} %llu\n", verdict_code_name((enum verdict_code)i),
			atomic_load(&m->by_verdict[i]));
	head(out, "connections_by_fault_total", "counter", "Connections ended, by who must act (the verdict's fault).");
	for (i = 0; i < F_KINDS; i++)
		fprintf(out, "mtlsdiag_connections_by_fault_total{fault=\"%s\"} %llu\n", fault_name((enum fault)i),
			atomic_load(&m->by_fault[i]));
	head(out, "keylog_lookups_total", "counter",
	     "Connections with protected records and a key log: its secrets found (hit), absent (miss), or unusable.");
	for (i = 0; i < KR_COUNT; i++)
		fprintf(out, "mtlsdiag_keylog_lookups_total{result=\"%s\"} %llu\n", keylog_result_name((enum keylog_result)i),
			atomic_load(&m->keylog[i]));
	if (m->front == METRICS_PROXY)
		render_proxy(m, out);
	else
		render_capture(m, out);
	head(out, "start_time_seconds", "gauge", "When the process started, in seconds since the epoch.");
	fprintf(out, "mtlsdiag_start_time_seconds %lld\n", (long long)m->started);
	fflush(out);
	return ferror(out) ? -1 : 0;
}
