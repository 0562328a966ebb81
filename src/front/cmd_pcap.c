/* cmd_pcap: `mtlsdiag pcap`, the capture-file front end: drives the
 * observer from capture.c's reassembled streams and prints one verdict per
 * connection. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front/cmds.h"
#include "front/watch.h"
#include "wire/capture.h"

#define WHO "mtlsdiag pcap"

/* The options as given. */
struct pcap_opts {
	struct watch_opts w;    /* the analysis and its outputs (watch.h) */
	char *const *files;
	size_t n_files;
};

/* Standard input or a path that is not a regular file (a pipe, a FIFO). */
static bool input_streams(const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0)
		return fstat(STDIN_FILENO, &st) != 0 || !S_ISREG(st.st_mode);
	return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag pcap [OPTIONS] FILE...\n"
		"\n"
		"Analyses capture files (pcap or pcapng; - reads standard input) and prints one\n"
		"verdict per TCP connection: did the client send its certificate, did the server\n"
		"refuse it, and who must act.\n"
		"\n"
		"options:\n");
	watch_usage_options(out);
	fprintf(out,
		"  -f, --filter EXPR only packets matching this BPF expression ('port 443')\n"
		"  -q, --quiet       print only the closing summary\n"
		"  -l, --line-buffered  write each line as soon as it is made (for a reader on\n"
		"                    a pipe); by default only a terminal, or a capture read\n"
		"                    from a pipe, gets that: other output leaves 64 KiB at a time\n"
		"  -v, --verbose     under each line, the evidence and the remedies\n"
		"  --syslog[=SOCKET] also send each connection's line to the system log\n"
		"                    (facility daemon; SOCKET: /dev/log)\n"
		"  -h, --help        this help\n"
		"\n"
		"A run that takes more than a second shows its progress on standard error when\n"
		"that is a terminal (percent, MB/s, connections).\n"
		"\n"
		"A capture with both legs of a TLS-terminating gateway (taken on the gateway,\n"
		"or two taps merged with mergecap) pairs them: a client leg never asked for a\n"
		"certificate and a server leg that answered the server's request empty, for the\n"
		"same name at the same time, both get fault middlebox and name each other.\n"
		"\n"
		"Exit status: 0 analysed, 2 usage or input error.\n");
}

/* One option into o.  0 after printing why it is unusable (or the usage,
 * for an unknown one). */
static int pcap_option(void *opts, int opt, const char *arg)
{
	struct pcap_opts *o = opts;
	int taken = watch_option(WHO, &o->w, opt, arg);

	if (taken >= 0)
		return taken;
	usage(stderr);
	return 0;
}

static enum cmd_parsed parse_pcap(int argc, char **argv, struct pcap_opts *o)
{
	static const struct option opts[] = {
		WATCH_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	watch_opts_init(&o->w);
	parsed = cmd_getopt(WHO, argc, argv, "+:f:qlvh", opts, usage, pcap_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	if (optind >= argc) {
		fprintf(stderr, WHO ": no capture file given (try 'mtlsdiag pcap --help')\n");
		return CMD_USAGE_ERROR;
	}
	o->files = argv + optind;
	o->n_files = (size_t)(argc - optind);
	o->w.evidence.argc = argc;
	o->w.evidence.argv = argv;
	return CMD_RUN;
}

/* SIGINT or SIGTERM: reading stops where it is, and what was read is
 * reported and written out as at the end of the input (the lines held for
 * a file among them); a second signal ends the process at once. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

static void catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sa.sa_flags = SA_RESTART | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
}

/* One capture file through the observer.  0 when it could not be read;
 * *truncated when it was cut inside a packet record. */
static int read_capture(struct watch *w, const struct pcap_opts *o, const char *path, uint64_t before,
			bool *truncated)
{
	struct capture_opts copts = o->w.capture;
	struct flow_sink sink;
	struct capture_stats stats = { 0 };
	char err[512] = "";
	int ok = 1;

	watch_sink(w, &sink);
	w->streaming = input_streams(path);
	w->source = path;
	/* read as it is written: the clock lets held legs go */
	copts.tick = watch_tick;
	copts.tick_ctx = w;
	copts.progress = term_progress_file(w->progress, before);
	copts.interrupt = &interrupted;
	copts.threads_beside = w->writer ? 1 : 0;
	ok = capture_read_file(path, &copts, &sink, &stats, err, sizeof(err)) == 0;
	/* the lines so far before what is said of the file (both may be on
	 * standard error) */
	watch_flush(w);
	if (!ok) {
		fprintf(stderr, "%s\n", err[0] ? err : WHO ": cannot read capture");
		return 0;
	}
	if (stats.file_truncated) {
		fprintf(stderr, WHO ": %s: warning: the file is truncated (cut inside a packet record); analysed the %llu packets before the cut\n",
			path, (unsigned long long)stats.packets);
		*truncated = true;
	} else if (stats.interrupted) {
		ok = 0;   /* said once, after the last file */
	} else if (stats.stopped) {
		/* not a cut: the reader met something it cannot go past */
		fprintf(stderr, "%s; analysed the %llu packets before it\n", err, (unsigned long long)stats.packets);
		ok = 0;
	}
	if (stats.truncated)
		fprintf(stderr, WHO ": %s: warning: %llu packet%s cut short by the capture's snap length\n",
			path, (unsigned long long)stats.truncated, stats.truncated == 1 ? " was" : "s were");
	return ok;
}

static void truncated_member(struct json *j, void *ctx)
{
	(void)ctx;
	json_bool(j, "file_truncated", true);
}

/* A regular file's size; 0 for anything else (standard input, a pipe). */
static uint64_t file_size(const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	return (uint64_t)st.st_size;
}

/* The bytes of every file to read, for the progress line's percent; 0
 * (unknown) when one of them is not a regular file. */
static uint64_t files_size(const struct pcap_opts *o)
{
	uint64_t total = 0, n;
	size_t i;

	for (i = 0; i < o->n_files; i++) {
		if (!(n = file_size(o->files[i])))
			return 0;
		total += n;
	}
	return total;
}

static int run_pcap(const struct pcap_opts *o)
{
	struct watch w;
	uint64_t before = 0;
	bool any_truncated = false, live = false;
	size_t i;
	int ret = 2;

	for (i = 0; i < o->n_files; i++)
		live = live || input_streams(o->files[i]);
	if (!watch_start(&w, WHO, &o->w, live))
		goto Exit;
	w.progress = term_progress_start(WHO, files_size(o));
	catch_interrupts();
	ret = 0;
	for (i = 0; i < o->n_files && !interrupted; i++) {
		if (!read_capture(&w, o, o->files[i], before, &any_truncated))
			ret = 2;
		before += file_size(o->files[i]);
	}
	if (interrupted) {
		fprintf(stderr, WHO ": %s: stopped reading; the lines and the summary cover what was read before it\n",
			interrupted == SIGINT ? "SIGINT" : "SIGTERM");
		ret = 2;
	}
	watch_summary(&w, any_truncated ? truncated_member : NULL, NULL);
	if (any_truncated)
		ret = 2;
Exit:
	if (!watch_end(&w))
		ret = 2;
	return ret;
}

int cmd_pcap(int argc, char **argv)
{
	struct pcap_opts o;
	enum cmd_parsed parsed = parse_pcap(argc, argv, &o);
	int ret = parsed == CMD_RUN ? run_pcap(&o) : parsed == CMD_HELP ? 0 : 2;

	watch_opts_free(&o.w);
	return ret;
}
