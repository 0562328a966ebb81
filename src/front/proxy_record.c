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
#include "out/report.h"

void emit_line(FILE *out, const char *line)
{
	flockfile(out);
	fputs(line, out);
	putc('\n', out);
	fflush(out);
	funlockfile(out);
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

/* The final record: report.c's JSON object with the relay's own members
 * appended (mode, upstream, closed_by, close, duration_ms, relayed bytes
 * each way, and whether the rest was spliced once the verdict settled). */
void emit_json(FILE *out, const struct pconn *c, const struct conn_facts *f,
		      const struct verdict *v, uint64_t duration_ms)
{
	char *buf = NULL, up[300];
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	report_json(m, f, v);
	if (fclose(m) != 0 || len < 2 || buf[len - 2] != '}') {
		free(buf);
		return;
	}
	report_endpoint(up, sizeof(up), c->up_host, c->up_port);
	flockfile(out);
	fwrite(buf, 1, len - 2, out);
	/* up_host is a validated name or a numeric address: nothing to escape */
	fprintf(out, ",\"mode\":\"%s\",\"upstream\":\"%s\",\"closed_by\":\"%s\",\"close\":\"%s\","
		"\"duration_ms\":%llu,\"relayed\":{\"client\":%llu,\"server\":%llu},\"spliced\":%s}\n",
		mode_name(c->wl->l->cfg->mode), up, closer_name(c->closed_by), end_name(c->end),
		(unsigned long long)duration_ms,
		(unsigned long long)c->side[SIDE_CLIENT].bytes,
		(unsigned long long)c->side[SIDE_SERVER].bytes, c->spliced ? "true" : "false");
	fflush(out);
	funlockfile(out);
	free(buf);
}

/* A JSON string member whose value came from the network. */
static void json_escaped(FILE *out, const char *name, const char *s)
{
	fprintf(out, ",\"%s\":", name);
	report_json_string(out, s);
}

/* A connection that never reached its server: one human line, one JSON
 * record of type `type` ("upstream_error", "connect_refused"). */
void emit_failure(const struct pconn *c, const char *type, const char *what, const char *why)
{
	const struct proxy *px = c->w->px;
	char ts[40], client[80], up[300];
	FILE *j = px->cfg->json;

	report_time(ts, sizeof(ts), &c->start, 3);
	report_endpoint(client, sizeof(client), c->client.ip, c->client.port);
	if (c->up_host[0])
		report_endpoint(up, sizeof(up), c->up_host, c->up_port);
	else
		snprintf(up, sizeof(up), "?");
	if (c->target[0] && strcmp(type, "connect_refused") == 0)
		emit_fmt(px->cfg->log, "%s %s CONNECT %s %s: %s", ts, client, c->target, what, why);
	else if (c->target[0])
		emit_fmt(px->cfg->log, "%s %s -> %s (CONNECT %s) %s: %s (client connection closed)",
			 ts, client, up, c->target, what, why);
	else
		emit_fmt(px->cfg->log, "%s %s -> %s %s: %s (client connection closed)", ts, client, up, what, why);
	if (!j)
		return;
	flockfile(j);
	report_time(ts, sizeof(ts), &c->start, 6);
	fprintf(j, "{\"type\":\"%s\",\"schema\":" REPORT_SCHEMA ",\"ts\":\"%s\",\"mode\":\"%s\",\"client\":{\"ip\":\"%s\",\"port\":%u}",
		type, ts, mode_name(c->wl->l->cfg->mode), c->client.ip, c->client.port);
	if (c->target[0])
		json_escaped(j, "connect_target", c->target);
	if (c->up_host[0])
		json_escaped(j, "upstream", up);
	json_escaped(j, "error", why);
	fputs("}\n", j);
	fflush(j);
	funlockfile(j);
}
