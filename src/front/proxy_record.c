/* proxy_record: what the proxy writes, apart from its start-up and
 * shutdown notices: the human line and JSON record of a connection that
 * ended (emit_json), of one that never reached its server (emit_failure),
 * and the line and string helpers they use.  Lines are written whole,
 * under the stream's lock, so that the workers' lines do not mix. */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "front/proxy_int.h"
#include "front/sourcecap.h"
#include "out/ecs.h"
#include "out/json.h"
#include "out/metrics.h"
#include "out/report.h"
#include "out/detail.h"
#include "out/syslogout.h"
#include "front/term.h"

void emit_line(FILE *out, const char *line)
{
	flockfile(out);
	fputs(line, out);
	putc('\n', out);
	fflush(out);
	funlockfile(out);
}

/* A connection's line: whole, in its verdict's colour (v, or NULL: a
 * line that is not a verdict) when the proxy colours, and out with the
 * next batch. */
static void emit_record_line(const struct proxy *px, const char *line, const struct verdict *v)
{
	FILE *out = px->cfg->log;

	flockfile(out);
	if (px->color && v) {
		term_line(out, line, term_verdict_sgr(v->code, v->fault));
	} else {
		fputs_unlocked(line, out);
		putc_unlocked('\n', out);
	}
	funlockfile(out);
	proxy_record_written(px, out);
}

void emit_verdict(const struct proxy *px, const char *line, const struct conn_facts *f, const struct verdict *v,
		  bool final)
{
	const struct proxy_config *cfg = px->cfg;
	char text[DETAIL_MAX];

	if (cfg->syslog)
		(void)syslog_out_line(cfg->syslog, syslog_severity_of(v), line);   /* a loss is counted */
	if (cfg->quiet)
		return;
	if (!final || !cfg->verbose) {
		emit_record_line(px, line, v);
		return;
	}
	snprintf(text, sizeof(text), "%s", line);
	detail_append(text, sizeof(text), f, v);
	emit_record_line(px, text, v);
}

/* A connection's line that is not a verdict (a note, a failure): to
 * --log unless -q, and to --syslog as a warning. */
static void __attribute__((format(printf, 2, 3))) emit_conn_fmt(const struct proxy *px, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (px->cfg->syslog)
		(void)syslog_out_line(px->cfg->syslog, SYSLOG_WARNING, line);
	if (!px->cfg->quiet)
		emit_record_line(px, line, NULL);
}

void __attribute__((format(printf, 2, 3)))
emit_fmt(FILE *out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit_line(out, line);
}

const char *closer_name(enum closer c)
{
	switch (c) {
	case CLOSER_CLIENT: return "client";
	case CLOSER_SERVER: return "server";
	case CLOSER_PROXY: return "proxy";
	default: break;
	}
	return "none";
}

const char *end_name(enum end_kind e)
{
	switch (e) {
	case END_FIN: return "fin";
	case END_RST: return "rst";
	case END_TIMEOUT: return "timeout";
	case END_SHUTDOWN: return "shutdown";
	case END_UPSTREAM_ERROR: return "upstream_error";
	case END_REFUSED: return "refused";
	case END_OVER_BUDGET: return "over_budget";
	case END_HANDSHAKE_TIMEOUT: return "handshake_timeout";
	default: break;
	}
	return "none";
}

static const char *mode_name(enum proxy_mode m)
{
	switch (m) {
	case PROXY_CONNECT: return "connect";
	case PROXY_TRANSPARENT: return "transparent";
	default: break;
	}
	return "static";
}

uint64_t ms_between(const struct timeval *a, const struct timeval *b)
{
	struct timeval d;

	if (timercmp(b, a, <))
		return 0;
	timersub(b, a, &d);
	return (uint64_t)d.tv_sec * 1000 + (uint64_t)d.tv_usec / 1000;
}

/* One record to the JSON output, whole, out with the next batch: a
 * connection's record is written as the connection ends. */
void write_record(const struct proxy *px, struct json *j)
{
	(void)json_write_line(j, px->cfg->json);   /* one fwrite; a loss is counted by the output (outfile) */
	proxy_record_written(px, px->cfg->json);
}

void record_begin(const struct proxy *px, struct json *j, const char *type, const struct timeval *ts,
		  const struct conn_facts *f, const struct verdict *v, const char *summary)
{
	ecs_record_open(j, px->cfg->json_ecs, type, ts, f, v, summary);
}

void record_end(const struct proxy *px, struct json *j)
{
	ecs_record_close(j, px->cfg->json_ecs);
}

/* The final record: report.c's members, then the relay's own (mode,
 * upstream, closed_by, close, duration_ms, relayed bytes each way, and
 * whether the rest was spliced once the verdict settled). */
void conn_record(struct json *j, const struct pconn *c, const struct conn_facts *f, const struct verdict *v,
		 const char *summary, uint64_t duration_ms)
{
	char up[300];

	report_endpoint(up, sizeof(up), c->up_host, c->up_port);
	record_begin(c->w->px, j, "connection", &c->start, f, v, summary);
	json_string(j, "mode", mode_name(c->wl->l->cfg->mode));
	json_string(j, "upstream", up);
	json_string(j, "closed_by", closer_name(c->closed_by));
	json_string(j, "close", end_name(c->end));
	json_uint(j, "duration_ms", duration_ms);
	json_object(j, "relayed");
	json_uint(j, "client", c->side[SIDE_CLIENT].bytes);
	json_uint(j, "server", c->side[SIDE_SERVER].bytes);
	json_end(j);
	json_bool(j, "spliced", c->spliced);
	json_bool(j, "observed", !c->unobserved);
	record_end(c->w->px, j);
}

void emit_json(FILE *out, const struct pconn *c, const struct conn_facts *f,
	       const struct verdict *v, const char *summary, uint64_t duration_ms)
{
	struct json *j = &c->w->record;   /* this worker's: certificates made once */

	json_reset(j);
	conn_record(j, c, f, v, summary, duration_ms);
	(void)out;   /* the proxy's --json: px->cfg->json */
	write_record(c->w->px, j);
}

/* What a connection's own lines start with: its time, client and
 * upstream ("?" when none was chosen). */
static void line_head(const struct pconn *c, char ts[40], char client[80], char up[300])
{
	report_time(ts, 40, &c->start, 3);
	report_endpoint(client, 80, c->client.ip, c->client.port);
	if (c->up_host[0])
		report_endpoint(up, 300, c->up_host, c->up_port);
	else
		snprintf(up, 300, "?");
}

void emit_note(const struct pconn *c, const char *what)
{
	char ts[40], client[80], up[300];

	line_head(c, ts, client, up);
	emit_conn_fmt(c->w->px, "%s %s -> %s %s", ts, client, up, what);
}

/* A connection that never reached its server: one human line, one JSON
 * record of type `type` ("upstream_error", "connect_refused"). */
void emit_failure(const struct pconn *c, const char *type, const char *what, const char *why)
{
	const struct proxy *px = c->w->px;
	char ts[40], client[80], up[300];
	struct json j;

	if (px->metrics)
		metrics_failure(px->metrics);
	line_head(c, ts, client, up);
	if (c->target[0] && strcmp(type, "connect_refused") == 0)
		emit_conn_fmt(px, "%s %s CONNECT %s %s: %s", ts, client, c->target, what, why);
	else if (c->target[0])
		emit_conn_fmt(px, "%s %s -> %s (CONNECT %s) %s: %s (client connection closed)",
			 ts, client, up, c->target, what, why);
	else
		emit_conn_fmt(px, "%s %s -> %s %s: %s (client connection closed)", ts, client, up, what, why);
	if (!px->cfg->json)
		return;
	report_time(ts, sizeof(ts), &c->start, 6);
	json_init(&j);
	record_begin(px, &j, type, &c->start, NULL, NULL, NULL);
	json_string(&j, "ts", ts);
	json_string(&j, "mode", mode_name(c->wl->l->cfg->mode));
	json_object(&j, "client");
	json_string(&j, "ip", c->client.ip);
	json_uint(&j, "port", c->client.port);
	json_end(&j);
	if (c->target[0])
		json_string(&j, "connect_target", c->target);
	if (c->up_host[0])
		json_string(&j, "upstream", up);
	json_string(&j, "error", why);
	record_end(px, &j);
	write_record(px, &j);
	json_free(&j);
}

void emit_refused(const struct proxy *px, const struct sourcecap_report *r)
{
	char first[40], last[40];
	struct json j;

	report_time(first, sizeof(first), &r->first, 3);
	emit_fmt(px->cfg->log, "mtlsdiag proxy: --max-conns-per-source %u: %llu connection%s from %s refused since %s (%u open)",
		 px->cfg->max_conns_per_source, (unsigned long long)r->refused, r->refused == 1 ? "" : "s", r->ip,
		 first, r->open);
	if (!px->cfg->json)
		return;
	report_time(first, sizeof(first), &r->first, 6);
	report_time(last, sizeof(last), &r->last, 6);
	json_init(&j);
	record_begin(px, &j, "refused", &r->first, NULL, NULL, NULL);
	json_string(&j, "ts", first);
	json_object(&j, "client");
	json_string(&j, "ip", r->ip);
	json_end(&j);
	json_string(&j, "reason", "per-source limit");
	json_uint(&j, "limit", px->cfg->max_conns_per_source);
	json_uint(&j, "open", r->open);
	json_uint(&j, "refused", r->refused);
	json_string(&j, "last_ts", last);
	record_end(px, &j);
	write_record(px, &j);
	json_free(&j);
}
