/* watch: a capture's connections through the observer to the reporters,
 * what `mtlsdiag pcap` (files) and `mtlsdiag capture` (an interface) share.
 *
 * Both take the same analysis options (--json, --ca-bundle, --keylog, ...,
 * parsed here), feed capture.c's reassembled streams to one observer sink,
 * and print each decided connection the same way: through the gateway-leg
 * pairing, the human line made once and given to the record as its
 * summary, both flushed at once when the input streams.  The front ends
 * differ only in where packets come from. */
#ifndef MTLSDIAG_WATCH_H
#define MTLSDIAG_WATCH_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#include "analysis/observer.h"
#include "front/cmds.h"
#include "front/term.h"
#include "out/json.h"
#include "out/report.h"
#include "out/ticket.h"
#include "wire/capture.h"

#define WATCH_MAX_CATALOGUES 16

/* The analysis options as given. */
struct watch_opts {
	const char *json_path;
	struct cmd_chain_opts chain;    /* --ca-bundle, --verify-depth, --crl, --purpose, --server-kind */
	mode_t file_mode;               /* of the output files: 0600, or by --umask */
	const char **keylogs;           /* --keylog FILE... (allocated: any number) */
	size_t n_keylogs;
	const char *cas[WATCH_MAX_CATALOGUES];
	size_t n_cas;
	struct server_expect *expect;   /* allocated at the first --expect-server-*, or NULL */
	bool at_set, quiet, keep_query;
	bool line_buffered;             /* -l */
	bool ecs;                       /* --json-format ecs */
	bool verbose;                   /* -v */
	const char *syslog_path;        /* --syslog[=SOCKET], or NULL */
	enum term_color color;          /* --color */
	time_t at;
	struct capture_opts capture;    /* --filter */
	/* --evidence DIR and its options; the command sets argc and argv
	 * (its command line, for the folder's index) */
	struct ticket_opts evidence;
};

/* Ids of the long-only options (the short ones are their letters). */
enum {
	W_JSON = 256, W_UMASK, W_AT, W_CA_BUNDLE, W_VERIFY_DEPTH, W_CRL, W_PURPOSE, W_SERVER_KIND,
	W_KEYLOG, W_INSPECTION_CAS, W_EXPECT_CA, W_EXPECT_SPKI, W_KEEP_QUERY, W_JSON_FORMAT, W_SYSLOG,
	W_COLOR,
	W_NEXT_ID       /* a command's own long-only options start here */
};

/* The entries of a command's getopt_long table for those options, with
 * -f/--filter, -q/--quiet, -l/--line-buffered and -v/--verbose (whose lines a command's --help
 * prints itself, with --syslog's, after its own). */
#define WATCH_LONG_OPTIONS \
	{ "json", required_argument, NULL, W_JSON }, \
	{ "json-format", required_argument, NULL, W_JSON_FORMAT }, \
	{ "umask", required_argument, NULL, W_UMASK }, \
	{ "at", required_argument, NULL, W_AT }, \
	{ "ca-bundle", required_argument, NULL, W_CA_BUNDLE }, \
	{ "verify-depth", required_argument, NULL, W_VERIFY_DEPTH }, \
	{ "crl", required_argument, NULL, W_CRL }, \
	{ "purpose", required_argument, NULL, W_PURPOSE }, \
	{ "server-kind", required_argument, NULL, W_SERVER_KIND }, \
	{ "keylog", required_argument, NULL, W_KEYLOG }, \
	{ "inspection-cas", required_argument, NULL, W_INSPECTION_CAS }, \
	{ "expect-server-ca", required_argument, NULL, W_EXPECT_CA }, \
	{ "expect-server-spki", required_argument, NULL, W_EXPECT_SPKI }, \
	{ "filter", required_argument, NULL, 'f' }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "line-buffered", no_argument, NULL, 'l' }, \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "syslog", optional_argument, NULL, W_SYSLOG }, \
	{ "keep-query", no_argument, NULL, W_KEEP_QUERY }, \
	CMD_EVIDENCE_LONGOPTS, \
	{ "color", required_argument, NULL, W_COLOR }

void watch_opts_init(struct watch_opts *o) __attribute__((nonnull));
void watch_opts_free(struct watch_opts *o) __attribute__((nonnull));

/* One of those options into o: 1 taken, 0 after printing why it is
 * unusable, -1 not one of them. */
int watch_option(const char *who, struct watch_opts *o, int opt, const char *arg) __attribute__((nonnull(1, 2)));

/* Their lines of a command's --help, from --json to --expect-server-spki,
 * then the evidence folder's and --color's. */
void watch_usage_options(FILE *out) __attribute__((nonnull));

/* One run: the observer's inputs, the outputs, the tally. */
struct writer;

struct watch {
	const char *who;        /* "mtlsdiag pcap", in messages */
	struct observer_config cfg;
	struct chain_policy *policy;    /* cfg.chain_policy, owned */
	struct inspect_catalogue *cat;  /* cfg.inspection, owned */
	struct cmd_output out;
	bool streaming;         /* the input is being written as it is read: records flushed one by one */
	bool early_lines;       /* each line when its verdict settles (set before watch_sink) */
	bool hold_decided;      /* streaming: whether the capture is live was told (by its first connection) */
	struct json json;       /* the builder every record of the run is made in */
	struct report_remedies remedies;   /* the connection's, for its line and its record */
	const char *source;     /* the input, as named on the command line ("-": standard input) */
	struct report_tally tally;
	bool quiet;
	bool ecs;               /* --json-format ecs */
	bool verbose;           /* -v: the evidence and remedies under each line */
	const char *syslog_path;
	struct syslog_out *syslog;      /* --syslog, or NULL */
	struct metrics *metrics;        /* capture --metrics: each connection counted, or NULL */
	struct legpair *pairs;  /* holds possible gateway legs until paired */
	struct writer *writer;  /* a file's: the printing on a thread of its own, or NULL */
	struct obs_sink os;
	struct ticket *ticket;  /* --evidence DIR, or NULL */
	struct flow_sink inner; /* the observer's sink, under the evidence tap */
	struct ticket_tap *finishing;   /* the tap of the flow being finished */
	bool color;             /* the human lines are coloured by verdict */
	bool text_tty;          /* they go to a terminal: the summary is a table */
	struct term_progress *progress;   /* pcap's progress line on standard error, or NULL
					   * (the front end starts it; the summary stops it) */
};

/* Reads the inputs the options name and opens the outputs.  live: the
 * packets are being captured now, or may be written as they are read (the
 * key logs are followed as they grow, every record is flushed, and when
 * the first connection ended within two minutes of the real time, gateway
 * legs are held 1 s instead of 10 s for their partner).  0 after printing
 * one line; w can be ended either way. */
int watch_start(struct watch *w, const char *who, const struct watch_opts *o, bool live)
	__attribute__((nonnull, warn_unused_result));

/* The flow sink that drives the observer for this run (w must outlive
 * the reading). */
void watch_sink(struct watch *w, struct flow_sink *sink) __attribute__((nonnull));

/* Live: time has reached `now` (legs held for a partner are let go) and
 * the key logs are read again for what was appended.  w is the struct
 * watch: this is the tick of capture_opts and livecap_run. */
void watch_tick(void *w, const struct timeval *now) __attribute__((nonnull));

/* The connections decided so far printed and written: what is said next
 * (of the file just read, on standard error) comes after their lines. */
void watch_flush(struct watch *w) __attribute__((nonnull));

/* The end-of-run summary: the tally as text and as a summary record;
 * `more` adds the front end's members to the record (may be NULL). */
void watch_summary(struct watch *w, void (*more)(struct json *j, void *ctx), void *ctx)
	__attribute__((nonnull(1)));

/* Frees the run; 0 when records were lost on the way to the JSON file
 * (said already), 1 otherwise. */
int watch_end(struct watch *w) __attribute__((nonnull));

#endif
