/* watch: the analysis options, the observer sink and the printing of each
 * decided connection, shared by `mtlsdiag pcap` and `mtlsdiag capture`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "analysis/chain.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "analysis/legpair.h"
#include "front/watch.h"
#include "front/writer.h"
#include "out/detail.h"
#include "out/ecs.h"
#include "out/metrics.h"
#include "out/syslogout.h"
#include "wire/keylog.h"
#include "wire/x509info.h"

/* Legs are held at most this long (capture time) after they ended, and at
 * most this many at once.  Live, a verdict waits about a second: a
 * gateway's two legs end within a second of each other.  A stream
 * (tcpdump -w - | mtlsdiag pcap -) is live when its connections end
 * within LIVE_SKEW_S of the real time; an old capture piped in (zcat) is
 * not, and gets the verdicts it gets as a file. */
#define PAIR_HOLD_S 10
#define PAIR_HOLD_LIVE_S 1
#define PAIR_MAX_HELD 512
#define LIVE_SKEW_S 120

void watch_opts_init(struct watch_opts *o)
{
	memset(o, 0, sizeof(*o));
	cmd_chain_opts_init(&o->chain);
	o->file_mode = CMD_FILE_MODE;
}

void watch_opts_free(struct watch_opts *o)
{
	free(o->keylogs);
	free(o->expect);
	o->keylogs = NULL;
	o->expect = NULL;
}

int watch_option(const char *who, struct watch_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case W_JSON: o->json_path = arg; return 1;
	case W_JSON_FORMAT: return cmd_parse_json_format(who, arg, &o->ecs);
	case W_UMASK: return cmd_parse_umask(who, arg, &o->file_mode);
	case W_CA_BUNDLE: o->chain.bundle_path = arg; return 1;
	case W_CRL: o->chain.crl_path = arg; return 1;
	case W_VERIFY_DEPTH: return cmd_parse_verify_depth(who, arg, &o->chain.verify_depth);
	case W_PURPOSE: return cmd_parse_purpose(who, arg, &o->chain.purpose);
	case W_SERVER_KIND: return cmd_parse_server_kind(who, arg, &o->chain.server_kind);
	case 'f': o->capture.filter = arg; return 1;
	case 'q': o->quiet = true; return 1;
	case 'l': o->line_buffered = true; return 1;
	case 'v': o->verbose = true; return 1;
	case W_SYSLOG: o->syslog_path = arg ? arg : SYSLOG_DEFAULT_SOCKET; return 1;
	case W_KEEP_QUERY: o->keep_query = true; return 1;
	case W_COLOR: return cmd_parse_color(who, arg, &o->color);
	case W_AT:
		if (!cmd_parse_time(who, arg, &o->at))
			return 0;
		o->at_set = true;
		return 1;
	case W_KEYLOG: {
		const char **grown = realloc(o->keylogs, (o->n_keylogs + 1) * sizeof(*o->keylogs));

		if (!grown) {
			fprintf(stderr, "%s: out of memory\n", who);
			return 0;
		}
		o->keylogs = grown;
		o->keylogs[o->n_keylogs++] = arg;
		return 1;
	}
	case W_INSPECTION_CAS:
		return cmd_add_file(who, "--inspection-cas", o->cas, &o->n_cas, WATCH_MAX_CATALOGUES, arg);
	case W_EXPECT_CA:
	case W_EXPECT_SPKI:
		if (!o->expect && !(o->expect = calloc(1, sizeof(*o->expect)))) {
			fprintf(stderr, "%s: out of memory\n", who);
			return 0;
		}
		return cmd_add_expect(who, o->expect, opt == W_EXPECT_CA, arg);
	default:
		return cmd_evidence_option(who, &o->evidence, opt, arg);
	}
}

void watch_usage_options(FILE *out)
{
	fputs("  --json FILE       also write JSON Lines to FILE (- for standard output; the\n"
	      "                    human lines then go to standard error); created 0600\n"
	      "  --json-format F   default, or ecs: the records with Elastic Common Schema\n"
	      "                    names (tls.*, source.*, ...; the rest under mtlsdiag.*)\n"
	      "  --umask MASK      create output files with 0666 less MASK (022) instead\n"
	      "  --at TIME         judge certificate validity at TIME (2026-11-23T12:00:00Z,\n"
	      "                    2026-11-23, or @EPOCH) instead of the capture's timestamps\n"
	      "  --ca-bundle FILE  the server's client-CA bundle (PEM, nginx's\n"
	      "                    ssl_client_certificate): verify client chains with OpenSSL\n"
	      "                    as the server does, and say the error as nginx logs it\n"
	      "  --verify-depth N  the server's verify depth (nginx's ssl_verify_depth)\n"
	      "  --crl FILE        the server's CRLs (PEM, nginx's ssl_crl): every certificate\n"
	      "                    of the chain is checked, as nginx does\n"
	      "  --purpose NAME    the purpose verified (default sslclient, as a TLS server)\n"
	      "  --server-kind KIND  nginx, apache, haproxy, envoy: the server's software, for\n"
	      "                    its log line and the remedies (default: told from the\n"
	      "                    connection)\n"
	      "  --keylog FILE     an NSS key log (what SSLKEYLOGFILE makes curl, browsers and\n"
	      "                    Python write): decrypt TLS 1.3 handshakes and the HTTP\n"
	      "                    answer; repeatable\n"
	      "  --keep-query      keep the query string of a decrypted request line (by\n"
	      "                    default it is written as '?\xe2\x80\xa6': it may hold tokens)\n"
	      "  --inspection-cas FILE  more inspection-CA rules, added to the bundled\n"
	      "                    catalogue (conf/inspection-cas.conf); repeatable\n"
	      "  --expect-server-ca FILE  the CA (PEM) the real server's chain comes from: a\n"
	      "                    server chain from another CA was made by a middlebox\n"
	      "  --expect-server-spki SHA256  the real server's key (SHA-256 of its\n"
	      "                    SubjectPublicKeyInfo, hex); repeatable\n"
	      CMD_EVIDENCE_USAGE
	      "  --color WHEN      colour the human lines by verdict: auto (when they go to a\n"
	      "                    terminal and NO_COLOR is not set), always or never; on a\n"
	      "                    terminal the summary is also a table\n", out);
}

/* With --evidence a flow is its connection and the tap that keeps its
 * bytes for handshake.pcap. */
struct tapped {
	struct obs_conn *conn;
	struct ticket_tap *tap;
};

/* Print and free one decided connection (through the leg pairing). */
/* A connection's human line (with -v its evidence under it), coloured
 * by verdict on a terminal. */
static void print_line(struct watch *w, const struct conn_facts *f, const struct verdict *v, const char *line)
{
	char detail[DETAIL_MAX];
	const char *shown = line;

	if (w->verbose) {
		snprintf(detail, sizeof(detail), "%s", line);
		detail_append(detail, sizeof(detail), f, v);
		shown = detail;
	}
	term_progress_hold(w->progress);
	if (w->color) {
		term_line(w->out.text, shown, term_verdict_sgr(v->code, v->fault));
	} else {
		flockfile(w->out.text);
		fputs_unlocked(shown, w->out.text);
		putc_unlocked('\n', w->out.text);
		funlockfile(w->out.text);
	}
	if (w->progress)
		fflush(w->out.text);
	term_progress_release(w->progress);
}

/* early_lines: a connection's line the moment its verdict is settled,
 * while it is still open (a client that keeps its connection for hours);
 * its record, the tally and the other outputs come at its end, with the
 * same verdict.  A verdict that could be a gateway's leg waits for the
 * pairing, as at the end. */
static bool settled(void *ctx, struct obs_conn *c, const struct verdict *v)
{
	struct watch *w = ctx;
	const struct conn_facts *f = obs_conn_facts(c);
	char line[2048];

	if (!w->out.text || w->quiet || verdict_leg_role(f, v) != LEG_NONE)
		return false;
	report_line(line, sizeof(line), f, v);
	print_line(w, f, v, line);
	fflush(w->out.text);
	return true;
}

/* One decided connection counted, printed and written: its line, its
 * record, its syslog message, its evidence folder.  Returns the observer's
 * connection, for the caller to free. */
static struct obs_conn *say(struct watch *w, void *flow, const struct conn_facts *f, const struct verdict *v)
{
	bool text = w->out.text && !w->quiet;
	char line[2048];

	report_tally_add(&w->tally, v);
	if (w->metrics)
		metrics_connection(w->metrics, f, v);
	/* the human line is made once: printed, the record's summary, the
	 * evidence's; the remedies once for the line and the record */
	if (w->out.json && !w->ecs) {
		report_remedies(&w->remedies, f, v);
		report_line_remedied(line, sizeof(line), f, v, &w->remedies);
	} else if (text || w->syslog || w->ticket || w->out.json) {
		report_line(line, sizeof(line), f, v);
	}
	if (w->ticket) {
		struct tapped *t = flow;
		struct json rec;

		/* connection.json is the record as --json writes it: ECS's when asked */
		json_init(&rec);
		if (w->ecs) {
			ecs_connection_begin(&rec, f, v, line);
			ecs_end(&rec);
		}
		ticket_add(w->ticket, &(struct ticket_conn){ .f = f, .v = v, .line = line, .tap = t->tap,
							     .certs = w->cfg.certs, .keylog = w->cfg.keylog,
							     .record = w->ecs && !rec.failed ? json_text(&rec) : NULL });
		json_free(&rec);
		ticket_tap_free(t->tap);
		flow = t->conn;
		free(t);
	}
	/* a live capture may have said the line when the verdict settled */
	if (text && !obs_conn_settled_told(flow))
		print_line(w, f, v, line);
	if (w->syslog)
		(void)syslog_out_line(w->syslog, syslog_severity_of(v), line);   /* a loss is counted */
	if (w->out.json && w->ecs) {
		json_reset(&w->json);
		ecs_connection_begin(&w->json, f, v, line);
		ecs_end(&w->json);
		(void)json_write_line(&w->json, w->out.json);   /* a loss is counted by the output */
	} else if (w->out.json) {
		(void)report_json_remedied(&w->json, w->out.json, f, v, line, &w->remedies);
	}
	/* a capture being written as it is read: each verdict as it comes */
	if (w->streaming) {
		if (w->out.text)
			fflush(w->out.text);
		if (w->out.json)
			fflush(w->out.json);
	}
	return flow;
}

/* The writer thread's side (writer.h): the ended connection decided and
 * offered to the leg pairing, which says it (emit) now or with its
 * partner; the freeing stays on the reading thread. */
static void write_conn(void *ctx, void *conn)
{
	struct watch *w = ctx;

	(void)obs_conn_decide(conn);
	legpair_offer(w->pairs, conn, obs_conn_facts(conn), obs_conn_verdict_for_update(conn));
}

static void release_conn(void *ctx, void *conn)
{
	(void)ctx;
	obs_conn_free(conn);
}

/* The leg pairing's output: each connection once its pairing is known
 * (with a writer, on its thread, or on this one while it waits). */
static void emit(void *ctx, void *flow, const struct conn_facts *f, const struct verdict *v)
{
	struct watch *w = ctx;
	struct obs_conn *c = say(w, flow, f, v);

	if (w->writer)
		writer_release(w->writer, c);   /* freed on the reading thread */
	else
		obs_conn_free(c);
}

void watch_flush(struct watch *w)
{
	writer_flush(w->writer);
	if (w->out.text)
		fflush(w->out.text);
}

/* The one teardown of a capture flow: decide, then pair or print. */
static void finished(void *ctx, struct obs_conn *flow, bool truncated, const struct timeval *ts)
{
	struct watch *w = ctx;
	void *held = flow;

	if (w->streaming && !w->hold_decided) {
		struct timeval now;

		gettimeofday(&now, NULL);
		w->hold_decided = true;
		if (ts->tv_sec > now.tv_sec - LIVE_SKEW_S && ts->tv_sec < now.tv_sec + LIVE_SKEW_S)
			legpair_set_hold(w->pairs, PAIR_HOLD_LIVE_S);
	}
	obs_conn_set_source(flow, w->source);
	if (w->writer) {
		/* decided, paired and said on the writer thread (no --evidence tap) */
		obs_conn_end(flow, truncated, ts);
		term_progress_connection(w->progress);
		writer_put(w->writer, flow);
		return;
	}
	(void)obs_conn_finish(flow, truncated, ts);
	if (w->ticket) {
		struct tapped *t = malloc(sizeof(*t));

		if (!t) {
			/* no memory to keep the tap: the connection goes without evidence */
			fprintf(stderr, "%s: out of memory\n", w->who);
			ticket_tap_free(w->finishing);
			w->finishing = NULL;
			report_tally_add(&w->tally, obs_conn_verdict_for_update(flow));
			obs_conn_free(flow);
			return;
		}
		*t = (struct tapped){ .conn = flow, .tap = w->finishing };
		w->finishing = NULL;
		held = t;
	}
	term_progress_connection(w->progress);
	legpair_offer(w->pairs, held, obs_conn_facts(flow), obs_conn_verdict_for_update(flow));
}

/* ---- the evidence tap: the observer's sink, each flow's bytes kept ---- */

static void *tap_open(void *ctx, const struct endpoint *initiator, const struct endpoint *responder,
		      const struct timeval *ts, bool saw_syn)
{
	struct watch *w = ctx;
	struct tapped *t = calloc(1, sizeof(*t));

	if (!t || !(t->conn = w->inner.open(w->inner.ctx, initiator, responder, ts, saw_syn))) {
		free(t);
		return NULL;
	}
	t->tap = ticket_tap_new();   /* NULL: the connection's folder goes without its capture */
	return t;
}

static void tap_data(void *ctx, void *flow, enum side from, const uint8_t *p, size_t n, const struct timeval *ts)
{
	struct watch *w = ctx;
	struct tapped *t = flow;

	ticket_tap_data(t->tap, from, p, n, ts);
	w->inner.data(w->inner.ctx, t->conn, from, p, n, ts);
}

static void tap_gap(void *ctx, void *flow, enum side from, size_t n, const struct timeval *ts)
{
	struct watch *w = ctx;
	struct tapped *t = flow;

	ticket_tap_gap(t->tap, from, n, ts);
	w->inner.gap(w->inner.ctx, t->conn, from, n, ts);
}

static void tap_close(void *ctx, void *flow, enum side from, enum close_kind how, const struct timeval *ts)
{
	struct watch *w = ctx;
	struct tapped *t = flow;

	ticket_tap_close(t->tap, from, how, ts);
	w->inner.close(w->inner.ctx, t->conn, from, how, ts);
}

static void tap_quiet(void *ctx, void *flow, const struct timeval *now)
{
	struct watch *w = ctx;

	w->inner.quiet(w->inner.ctx, ((struct tapped *)flow)->conn, now);
}

static bool tap_wants(void *ctx, void *flow)
{
	struct watch *w = ctx;

	return w->inner.wants_bytes(w->inner.ctx, ((struct tapped *)flow)->conn);
}

static void tap_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	struct watch *w = ctx;
	struct tapped *t = flow;

	/* finished() takes the tap over with the connection */
	w->finishing = t->tap;
	w->inner.finish(w->inner.ctx, t->conn, truncated, ts);
	free(t);
}

/* The observer's inputs: how the server verifies (--ca-bundle, ...), the
 * inspection catalogue, --keylog and the expectations.  0 after printing
 * why. */
static int load_inputs(struct watch *w, const struct watch_opts *o, bool live)
{
	struct observer_config *cfg = &w->cfg;
	time_t now = o->at_set ? o->at : time(NULL);

	cfg->at = o->at;
	cfg->at_set = o->at_set;
	cfg->expect = o->expect;
	if (!(w->policy = cmd_load_policy(w->who, &o->chain, &now)))
		return 0;
	cfg->chain_policy = w->policy;
	cfg->ca_bundle = w->policy->bundle;
	if (!(w->cat = cmd_load_inspection(w->who, o->cas, o->n_cas)))
		return 0;
	cfg->inspection = w->cat;
	if (!cmd_load_keylogs(w->who, o->keylogs, o->n_keylogs, live, &cfg->keylog))
		return 0;
	/* live, the client writes its secrets as its packets go by: records
	 * wait (within the observer's bound) for the next read of the log */
	cfg->keylog_wait = live && cfg->keylog;
	if (cfg->keylog && !live && keylog_entries(cfg->keylog) == 0)
		fprintf(stderr, "%s: warning: the key log has no usable secrets\n", w->who);
	return 1;
}

int watch_start(struct watch *w, const char *who, const struct watch_opts *o, bool live)
{
	memset(w, 0, sizeof(*w));
	w->who = who;
	w->quiet = o->quiet;
	w->ecs = o->ecs;
	w->streaming = live;
	w->verbose = o->verbose;
	if (!load_inputs(w, o, live) || !cmd_open_outputs(who, o->json_path, false, o->file_mode, &w->out))
		return 0;
	/* standard output or error, before it is wrapped in an outfile */
	w->text_tty = isatty(fileno(w->out.text)) == 1;
	w->color = term_colors(o->color, w->text_tty);
	if (!cmd_open_text(who, &w->out, o->line_buffered))
		return 0;
	if (o->syslog_path && !(w->syslog = cmd_open_syslog(who, o->syslog_path)))
		return 0;
	w->syslog_path = o->syslog_path;
	if (!cmd_evidence_check(who, &o->evidence, o->n_keylogs > 0))
		return 0;
	if (o->evidence.dir) {
		struct ticket_opts to = o->evidence;

		to.who = who;
		to.file_mode = o->file_mode;
		if (!(w->ticket = ticket_open(&to)))
			return 0;
	}
	/* -q without --json prints only the counts: nothing reads the evidence */
	w->cfg.no_evidence = w->quiet && !w->out.json && !w->syslog && !w->ticket;
	w->cfg.keep_query = o->keep_query;
	w->cfg.certs = cert_cache_new(4096);
	w->cfg.chains = chain_memo_new();
	w->cfg.pool = obs_pool_new();
	w->pairs = legpair_new(PAIR_MAX_HELD, PAIR_HOLD_S, emit, w);
	if (!w->cfg.certs || !w->cfg.chains || !w->cfg.pool || !w->pairs) {
		fprintf(stderr, "%s: out of memory\n", who);
		return 0;
	}
	/* a file's connections are decided, paired and said on a second CPU
	 * while the next are read; live, each is said at once, and the
	 * evidence folder keeps its taps on this thread */
	if (!live && !w->ticket && (w->out.json || (w->out.text && !w->quiet) || w->syslog))
		w->writer = writer_start(write_conn, release_conn, w);   /* NULL: said here */
	return 1;
}

void watch_sink(struct watch *w, struct flow_sink *sink)
{
	w->os.cfg = &w->cfg;
	w->os.finished = finished;
	w->os.settled = w->early_lines ? settled : NULL;
	w->os.ctx = w;
	obs_sink_init(&w->os, sink);
	if (w->ticket) {
		/* the evidence tap goes between the capture and the observer */
		w->inner = *sink;
		*sink = (struct flow_sink){
			.ctx = w, .open = tap_open, .data = tap_data, .gap = tap_gap,
			.close = tap_close, .wants_bytes = tap_wants, .finish = tap_finish,
			.quiet = w->inner.quiet ? tap_quiet : NULL,
		};
	}
}

void watch_tick(void *ctx, const struct timeval *now)
{
	struct watch *w = ctx;

	legpair_tick(w->pairs, now);
	if (w->cfg.keylog)
		(void)keylog_refresh(w->cfg.keylog);
}

void watch_summary(struct watch *w, void (*more)(struct json *j, void *ctx), void *ctx)
{
	struct json j;

	/* every connection offered to the pairing; the legs it still holds
	 * are said here, while the writer waits */
	writer_flush(w->writer);
	legpair_flush(w->pairs);
	writer_finish(w->writer);
	w->writer = NULL;
	term_progress_stop(w->progress);   /* erased before the summary */
	w->progress = NULL;
	if (w->out.text)
		term_summary(w->out.text, &w->tally, w->text_tty, w->color);
	if (!w->out.json)
		return;
	json_init(&j);
	if (w->ecs) {
		struct timeval now;

		gettimeofday(&now, NULL);
		ecs_record_begin(&j, "summary", &now);
	} else {
		json_object(&j, NULL);
	}
	report_summary_members(&j, &w->tally);
	if (more)
		more(&j, ctx);
	if (w->ecs)
		ecs_end(&j);
	else
		json_end(&j);
	(void)json_write_line(&j, w->out.json);
	json_free(&j);
}

int watch_end(struct watch *w)
{
	int ok = 1;

	writer_flush(w->writer);   /* the pairing is this thread's again */
	legpair_free(w->pairs);
	w->pairs = NULL;
	writer_finish(w->writer);
	w->writer = NULL;
	term_progress_stop(w->progress);
	w->progress = NULL;
	/* a failed write was said when it happened: the analysis stands */
	(void)ticket_close(w->ticket);
	w->ticket = NULL;
	json_free(&w->json);
	cmd_close_syslog(w->who, w->syslog_path, w->syslog);
	w->syslog = NULL;
	if (!cmd_close_outputs(w->who, &w->out))
		ok = 0;
	obs_pool_free(w->cfg.pool);
	chain_memo_free(w->cfg.chains);
	cert_cache_free(w->cfg.certs);
	cmd_policy_free(w->policy);
	keylog_free(w->cfg.keylog);
	inspect_free(w->cat);
	memset(&w->cfg, 0, sizeof(w->cfg));
	w->policy = NULL;
	w->cat = NULL;
	return ok;
}
