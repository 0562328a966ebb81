/* cmd_capture: `mtlsdiag capture -i IFACE [FILTER]`, the live front end:
 * packets read from an interface (livecap.c) go through the same flow
 * table, observer and reporters as `mtlsdiag pcap` (watch.c), each verdict
 * written the moment its connection ends or goes idle. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/cmds.h"
#include "front/livecap.h"
#include "front/metrics_http.h"
#include "front/watch.h"
#include "out/metrics.h"
#include "wire/capture.h"

#define WHO "mtlsdiag capture"

/* A connection with no packet for this long is finished and gets its
 * record (the flow table's clock moves every second). */
#define IDLE_TIMEOUT_DEFAULT_S 60

enum {
	O_SNAPLEN = W_NEXT_ID, O_BUFFER_SIZE, O_IDLE_TIMEOUT, O_PROMISC, O_METRICS,
};

/* The options as given. */
struct capture_cmd_opts {
	struct watch_opts w;            /* the analysis and its outputs (watch.h) */
	struct livecap_config live;
	char *filter;                   /* the operands joined, or NULL (allocated) */
	const char *metrics_listen;     /* --metrics ADDR:PORT, or NULL */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag capture -i IFACE [OPTIONS] [FILTER]\n"
		"\n"
		"Captures live on an interface, as tcpdump does, and prints one verdict per TCP\n"
		"connection the moment it ends (or has been idle for --idle-timeout): did the\n"
		"client send its certificate, did the server refuse it, and who must act.\n"
		"FILTER is a BPF expression ('tcp port 443'), as tcpdump takes it. Stops on\n"
		"SIGINT or SIGTERM with the summary and the kernel's drop counts.\n"
		"\n"
		"Capturing needs CAP_NET_RAW: run as root, or once\n"
		"  sudo setcap cap_net_raw,cap_net_admin+eip $(command -v mtlsdiag)\n"
		"\n"
		"options:\n"
		"  -i, --interface IFACE  the interface to capture on (lo, eth0, any)\n"
		"  -w, --write FILE  also write the packets to FILE (pcap), as tcpdump -w does;\n"
		"                    created 0600\n"
		"  --snaplen BYTES   bytes kept of each packet (default 262144)\n"
		"  --buffer-size BYTES  the kernel's capture buffer (K and M suffixes; default\n"
		"                    16M): raise it when packets are dropped\n"
		"  --promisc         put the interface in promiscuous mode (to see a mirror\n"
		"                    port's traffic)\n"
		"  --idle-timeout SECONDS  a connection with no packet for this long gets its\n"
		"                    record then (default 60)\n"
		"  --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"                    (connections by verdict and fault, the kernel's packet\n"
		"                    and drop counts; doc/operations.md)\n");
	watch_usage_options(out);
	fprintf(out,
		"  -f, --filter EXPR the BPF expression, instead of the operands\n"
		"  -q, --quiet       print only the closing summary\n"
		"  -l, --line-buffered  accepted, as for pcap: each line is written as it is\n"
		"                    made anyway\n"
		"  -v, --verbose     under each line, the evidence and the remedies\n"
		"  --syslog[=SOCKET] also send each connection's line to the system log\n"
		"                    (facility daemon; SOCKET: /dev/log)\n"
		"  -h, --help        this help\n"
		"\n"
		"Exit status: 0 stopped by a signal, 2 usage error, no permission, no such\n"
		"interface, a bad filter, or reading failed.\n");
}

/* A whole number in [min, max], with K or M (1024, 1048576) when `sized`.
 * 0 after printing why. */
static int parse_count(const char *opt, const char *arg, long long min, long long max, bool sized, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (sized && (*end == 'K' || *end == 'k')) {
		v = v > max / 1024 ? max + 1 : v * 1024;
		end++;
	} else if (sized && (*end == 'M' || *end == 'm')) {
		v = v > max / 1048576 ? max + 1 : v * 1048576;
		end++;
	}
	if (errno || end == arg || *end || v < min || v > max) {
		fprintf(stderr, WHO ": %s '%s': use a whole number from %lld to %lld%s\n", opt, arg, min, max,
			sized ? " (K and M suffixes allowed)" : "");
		return 0;
	}
	*out = v;
	return 1;
}

static int capture_option(void *opts, int opt, const char *arg)
{
	struct capture_cmd_opts *o = opts;
	int taken = watch_option(WHO, &o->w, opt, arg);
	long long v;

	if (taken >= 0)
		return taken;
	switch (opt) {
	case 'i': o->live.iface = arg; return 1;
	case 'w': o->live.write_path = arg; return 1;
	case O_PROMISC: o->live.promisc = true; return 1;
	case O_METRICS: o->metrics_listen = arg; return 1;
	case O_SNAPLEN:
		if (!parse_count("--snaplen", arg, 64, LIVECAP_SNAPLEN_MAX, false, &v))
			return 0;
		o->live.snaplen = (int)v;
		return 1;
	case O_BUFFER_SIZE:
		if (!parse_count("--buffer-size", arg, 65536, 1LL << 30, true, &v))
			return 0;
		o->live.buffer_size = (int)v;
		return 1;
	case O_IDLE_TIMEOUT:
		if (!parse_count("--idle-timeout", arg, 1, 86400, false, &v))
			return 0;
		o->w.capture.idle_timeout_s = (unsigned)v;
		return 1;
	default:
		usage(stderr);
		return 0;
	}
}

/* The operands, joined with spaces as tcpdump joins them. */
static char *join_operands(int argc, char **argv)
{
	size_t len = 1;
	char *s;
	int i;

	for (i = optind; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (!(s = calloc(1, len)))
		return NULL;
	for (i = optind; i < argc; i++) {
		if (i > optind)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

static enum cmd_parsed parse_capture(int argc, char **argv, struct capture_cmd_opts *o)
{
	static const struct option opts[] = {
		WATCH_LONG_OPTIONS,
		{ "interface", required_argument, NULL, 'i' },
		{ "write", required_argument, NULL, 'w' },
		{ "snaplen", required_argument, NULL, O_SNAPLEN },
		{ "buffer-size", required_argument, NULL, O_BUFFER_SIZE },
		{ "idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT },
		{ "promisc", no_argument, NULL, O_PROMISC },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	watch_opts_init(&o->w);
	o->w.capture.idle_timeout_s = IDLE_TIMEOUT_DEFAULT_S;
	o->live.snaplen = LIVECAP_SNAPLEN_DEFAULT;
	o->live.buffer_size = LIVECAP_BUFFER_DEFAULT;
	parsed = cmd_getopt(WHO, argc, argv, "+:i:w:f:qlvh", opts, usage, capture_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	if (!o->live.iface) {
		fprintf(stderr, WHO ": no interface given: -i IFACE (try 'mtlsdiag capture --help')\n");
		return CMD_USAGE_ERROR;
	}
	if (optind < argc) {
		if (o->w.capture.filter) {
			fprintf(stderr, WHO ": a filter given twice, with -f and as operands: use one\n");
			return CMD_USAGE_ERROR;
		}
		if (!(o->filter = join_operands(argc, argv))) {
			fprintf(stderr, WHO ": out of memory\n");
			return CMD_USAGE_ERROR;
		}
		o->w.capture.filter = o->filter;
	}
	o->live.filter = o->w.capture.filter;
	o->live.file_mode = o->w.file_mode;
	o->w.evidence.argc = argc;
	o->w.evidence.argv = argv;
	return CMD_RUN;
}

/* The summary record's capture members. */
static void capture_members(struct json *j, void *ctx)
{
	const struct livecap_counters *n = ctx;

	json_uint(j, "capture_read", n->read);
	json_uint(j, "capture_received", n->received);
	json_uint(j, "capture_dropped", n->dropped);
	json_uint(j, "capture_if_dropped", n->if_dropped);
}

/* What the run's one-second tick reaches: the analysis, and the metrics
 * with the kernel's counts. */
struct capture_tick {
	struct watch *w;
	struct livecap *lc;
	struct metrics *metrics;        /* or NULL */
};

static void tick(void *ctx, const struct timeval *now)
{
	struct capture_tick *t = ctx;
	struct livecap_counters n;

	watch_tick(t->w, now);
	if (!t->metrics)
		return;
	livecap_counters(t->lc, &n);
	metrics_capture_counts(t->metrics, n.received, n.dropped, n.if_dropped);
}

/* --metrics: the counters, served on the capture's loop.  0 after one
 * line. */
static int start_metrics(const struct capture_cmd_opts *o, struct livecap *lc, struct metrics **m,
			 struct metrics_http **http)
{
	char err[300];

	if (!o->metrics_listen)
		return 1;
	if (!(*m = metrics_new(METRICS_CAPTURE))) {
		fprintf(stderr, WHO ": out of memory\n");
		return 0;
	}
	if (!(*http = metrics_http_start(livecap_base(lc), o->metrics_listen, *m, err, sizeof(err)))) {
		fprintf(stderr, WHO ": --metrics %s: %s\n", o->metrics_listen, err);
		return 0;
	}
	return 1;
}

static int run_capture(const struct capture_cmd_opts *o)
{
	struct metrics *metrics = NULL;
	struct metrics_http *http = NULL;
	struct capture_tick t;
	struct livecap_counters n;
	struct livecap *lc = NULL;
	struct capture *cap = NULL;
	struct capture_stats stats = { 0 };
	struct flow_sink sink;
	struct watch w;
	int ret = 2;

	if (!watch_start(&w, WHO, &o->w, true))
		goto Exit;
	if (!(lc = livecap_open(WHO, &o->live)) || !start_metrics(o, lc, &metrics, &http))
		goto Exit;
	w.metrics = metrics;
	t = (struct capture_tick){ .w = &w, .lc = lc, .metrics = metrics };
	w.source = o->live.iface;
	w.early_lines = true;
	watch_sink(&w, &sink);
	if (!(cap = capture_new(&o->w.capture, &sink, &stats))) {
		fprintf(stderr, WHO ": out of memory\n");
		goto Exit;
	}
	/* before "listening", the line that ends the start */
	if (o->metrics_listen)
		fprintf(stderr, WHO ": metrics on http://%s/metrics\n", o->metrics_listen);
	fprintf(stderr, WHO ": listening on %s, link type %s, snapshot length %d bytes%s%s\n", o->live.iface,
		livecap_linktype_name(lc), o->live.snaplen, o->live.write_path ? ", writing " : "",
		o->live.write_path ? o->live.write_path : "");
	ret = livecap_run(lc, cap, tick, &t) ? 0 : 2;
	/* the connections still open end with the run */
	capture_end(cap);
	livecap_counters(lc, &n);
	watch_summary(&w, capture_members, &n);
	if (w.out.text)
		fprintf(w.out.text, "capture: %" PRIu64 " packets read, %" PRIu64 " received by the filter, %"
			PRIu64 " dropped by the kernel, %" PRIu64 " dropped by the interface\n",
			n.read, n.received, n.dropped, n.if_dropped);
	if (n.dropped || n.if_dropped)
		fprintf(stderr, WHO ": warning: %" PRIu64 " packets were dropped: the connections they belonged to "
			"may be judged on part of their bytes; raise --buffer-size or narrow the filter\n",
			n.dropped + n.if_dropped);
Exit:
	capture_free(cap);
	metrics_http_free(http);   /* before the loop it is served on */
	if (!livecap_close(lc))
		ret = 2;
	if (!watch_end(&w))
		ret = 2;
	metrics_free(metrics);
	return ret;
}

int cmd_capture(int argc, char **argv)
{
	struct capture_cmd_opts o;
	enum cmd_parsed parsed = parse_capture(argc, argv, &o);
	int ret = parsed == CMD_RUN ? run_capture(&o) : parsed == CMD_HELP ? 0 : 2;

	watch_opts_free(&o.w);
	free(o.filter);
	return ret;
}
