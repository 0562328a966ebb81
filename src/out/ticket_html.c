/* ticket_html: the folder's index.html.  One static file: no script, no
 * font, image or style from elsewhere (a Content-Security-Policy says so
 * to the browser), readable on a phone (the diagrams scale with their
 * viewBox) and printable.  Each connection has an inline SVG sequence
 * diagram: the client and the server as lifelines, an arrow per record,
 * refusals in red and a red box where the client's certificate is
 * missing. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "out/report.h"
#include "out/ticket_int.h"

/* Steps drawn at most per diagram; the rest are counted under it. */
#define SVG_MAX_STEPS 40
#define SVG_W 640
#define SVG_ROW 30
#define SVG_TOP 44
#define X_CLIENT 150
#define X_SERVER 560

static void esc(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fputc(*s, out); break;
		}
	}
}

static const char *step_class(const struct tk_step *st)
{
	if (st->no_cert || st->refusal)
		return "bad";
	switch (st->kind) {
	case ST_ALERT: return "alert";
	case ST_APPDATA: return "data";
	case ST_CLOSE: case ST_GAP: return "tcp";
	default: return "hs";
	}
}

/* Whether the diagram must say the certificate is missing although no
 * record showed it (TLS 1.3 decrypted, or the client sent nothing). */
static bool missing_unshown(const struct tk_entry *e)
{
	if (e->client_cert_sent != TRI_NO || e->cert_requested == TRI_NO)
		return false;
	for (size_t i = 0; i < e->n_steps; i++)
		if (e->steps[i].no_cert)
			return false;
	return true;
}

static void svg_diagram(FILE *out, const struct tk_entry *e)
{
	size_t shown = e->n_steps < SVG_MAX_STEPS ? e->n_steps : SVG_MAX_STEPS;
	bool note = missing_unshown(e);
	size_t rows = shown + (note ? 1 : 0) + (e->n_steps > shown ? 1 : 0);
	unsigned h = SVG_TOP + (unsigned)rows * SVG_ROW + 16;
	unsigned y;

	fprintf(out, "<svg class=\"seq\" viewBox=\"0 0 %d %u\" role=\"img\" aria-label=\"handshake sequence of %s\">\n",
		SVG_W, h, e->folder);
	fprintf(out, "<text x=\"%d\" y=\"18\" class=\"who\">client</text><text x=\"%d\" y=\"18\" class=\"who\">server</text>\n",
		X_CLIENT, X_SERVER);
	fprintf(out, "<line x1=\"%d\" y1=\"26\" x2=\"%d\" y2=\"%u\" class=\"life\"/>"
		"<line x1=\"%d\" y1=\"26\" x2=\"%d\" y2=\"%u\" class=\"life\"/>\n",
		X_CLIENT, X_CLIENT, h - 8, X_SERVER, X_SERVER, h - 8);
	for (size_t i = 0; i < shown; i++) {
		const struct tk_step *st = &e->steps[i];
		bool right = st->from == SIDE_CLIENT;
		int x1 = right ? X_CLIENT : X_SERVER, x2 = right ? X_SERVER : X_CLIENT;
		char label[160];

		y = SVG_TOP + (unsigned)i * SVG_ROW;
		if (st->bytes && st->kind != ST_CLOSE)
			snprintf(label, sizeof(label), "%s (%u B)", st->what, st->bytes);
		else
			snprintf(label, sizeof(label), "%s", st->what);
		fprintf(out, "<g class=\"%s\">", step_class(st));
		fprintf(out, "<text x=\"4\" y=\"%u\" class=\"t\">%.1f ms</text>", y + 4, st->t_us / 1000.0);
		if (st->no_cert)
			fprintf(out, "<rect x=\"%d\" y=\"%u\" width=\"%d\" height=\"%d\" class=\"miss\"/>", X_CLIENT + 4,
				y - 16, X_SERVER - X_CLIENT - 8, SVG_ROW - 4);
		fprintf(out, "<line x1=\"%d\" y1=\"%u\" x2=\"%d\" y2=\"%u\"/>", x1, y + 6, x2 + (right ? -6 : 6), y + 6);
		fprintf(out, "<path d=\"M%d %uL%d %uL%d %uz\"/>", x2, y + 6, x2 + (right ? -8 : 8), y + 2,
			x2 + (right ? -8 : 8), y + 10);
		fprintf(out, "<text x=\"%d\" y=\"%u\" class=\"l\">", (X_CLIENT + X_SERVER) / 2, y);
		esc(out, label);
		if (st->no_cert)
			fputs(" \xe2\x80\x94 no client certificate", out);
		fputs("</text></g>\n", out);
	}
	y = SVG_TOP + (unsigned)shown * SVG_ROW;
	if (e->n_steps > shown) {
		fprintf(out, "<text x=\"%d\" y=\"%u\" class=\"l more\">\xe2\x80\xa6 %zu more (report.md)</text>\n",
			(X_CLIENT + X_SERVER) / 2, y, e->n_steps - shown);
		y += SVG_ROW;
	}
	if (note)
		fprintf(out, "<g class=\"bad\"><rect x=\"%d\" y=\"%u\" width=\"%d\" height=\"%d\" class=\"miss\"/>"
			"<text x=\"%d\" y=\"%u\" class=\"l\">no client certificate was sent</text></g>\n",
			X_CLIENT + 4, y - 16, X_SERVER - X_CLIENT - 8, SVG_ROW - 4, (X_CLIENT + X_SERVER) / 2, y);
	fputs("</svg>\n", out);
}

static const char STYLE[] =
	"body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:60rem;"
	"padding:1rem;color:#222;background:#fff}"
	"h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ccc;margin-top:2rem}h3{font-size:1rem;margin:.2rem 0}"
	"code,.line{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;overflow-wrap:anywhere}"
	"table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
	"td.n{text-align:right}"
	"section.conn{border:1px solid #ddd;border-radius:6px;padding:.6rem;margin:1rem 0;break-inside:avoid}"
	".fault{font-weight:bold}.v-bad{color:#b00}"
	"svg.seq{width:100%;height:auto;max-width:640px;display:block;margin-top:.4rem}"
	"svg .who{font:bold 13px sans-serif;text-anchor:middle}"
	"svg .life{stroke:#999;stroke-width:1.5;stroke-dasharray:4 3}"
	"svg .t{font:10px monospace;fill:#666}"
	"svg .l{font:11px sans-serif;text-anchor:middle}"
	"svg g line{stroke:#333;stroke-width:1.5}svg g path{fill:#333}"
	"svg g.data line{stroke:#999}svg g.data path{fill:#999}svg g.data text.l{fill:#777}"
	"svg g.tcp line{stroke:#777;stroke-dasharray:2 2}"
	"svg g.alert line,svg g.bad line{stroke:#c00}svg g.alert path,svg g.bad path{fill:#c00}"
	"svg g.bad text.l{fill:#c00;font-weight:bold}"
	"svg .miss{fill:#fee;stroke:#c00;stroke-width:1.5;stroke-dasharray:5 3}"
	"@media print{body{max-width:none;font-size:11pt}a{color:inherit;text-decoration:none}"
	"section.conn{border-color:#999}}"
	"@media (max-width:30rem){body{padding:.5rem;font-size:14px}td,th{padding:.1rem .3rem}}";

void tk_index_html(FILE *out, const struct ticket *t)
{
	char span[160], ts[40];
	uint64_t kept = 0, over = 0;

	tk_span(t, span, sizeof(span));
	for (int i = 0; i < V_COUNT; i++) {
		kept += t->kept[i];
		over += t->over[i];
	}
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
		"<title>mTLS evidence</title>\n<style>%s</style>\n</head>\n<body>\n", STYLE);
	fputs("<h1>mTLS evidence</h1>\n<ul>\n", out);
	fprintf(out, "<li>written by mtlsdiag %s</li>\n<li>command: <code>", PACKAGE_VERSION);
	esc(out, t->cmdline);
	fprintf(out, "</code></li>\n<li>time span: %s</li>\n", span);
	fprintf(out, "<li>connections: %llu, with a folder here: %llu%s</li>\n", (unsigned long long)t->connections,
		(unsigned long long)kept, t->o.all ? " (all)" : " (those that did not end well)");
	if (over)
		fprintf(out, "<li>left out by --evidence-max %u: %llu</li>\n", t->o.max_per_verdict,
			(unsigned long long)over);
	fputs("</ul>\n<table>\n<tr><th>verdict</th><th>connections</th><th>folders</th></tr>\n", out);
	for (int i = 0; i < V_COUNT; i++)
		if (t->seen[i])
			fprintf(out, "<tr><td><code>%s</code></td><td class=\"n\">%llu</td><td class=\"n\">%llu</td></tr>\n",
				verdict_code_name((enum verdict_code)i), (unsigned long long)t->seen[i],
				(unsigned long long)t->kept[i]);
	fputs("</table>\n", out);
	for (int code = 0; code < V_COUNT; code++) {
		bool any = false;

		for (size_t i = 0; i < t->n; i++) {
			const struct tk_entry *e = &t->e[i];

			if ((int)e->code != code)
				continue;
			if (!any)
				fprintf(out, "<h2>%s (<code>%s</code>)</h2>\n", verdict_code_text((enum verdict_code)code),
					verdict_code_name((enum verdict_code)code));
			any = true;
			report_time(ts, sizeof(ts), &e->ts, 3);
			fprintf(out, "<section class=\"conn\" id=\"c%s\">\n<h3><a href=\"%s/report.md\">%s</a></h3>\n",
				e->folder, e->folder, e->folder);
			fprintf(out, "<div>%s ", ts);
			esc(out, e->client);
			fputs(" \xe2\x86\x92 ", out);
			esc(out, e->server);
			fprintf(out, " \xc2\xb7 <span class=\"fault%s\">fault: %s</span> \xc2\xb7 %s</div>\n",
				e->fault == F_NONE ? "" : " v-bad", fault_name(e->fault), basis_name(e->basis));
			fputs("<div class=\"line\">", out);
			esc(out, e->line);
			fputs("</div>\n", out);
			svg_diagram(out, e);
			fprintf(out, "<div><a href=\"%s/handshake.pcap\">handshake.pcap</a> \xc2\xb7 "
				"<a href=\"%s/connection.json\">connection.json</a></div>\n</section>\n", e->folder, e->folder);
		}
	}
	fputs("<p><small>Never in this folder: private keys, key-log secrets (but keys.log when asked), "
	      "application data (zeros of the same length, unless asked), HTTP bodies or headers beyond the "
	      "status line.</small></p>\n</body>\n</html>\n", out);
}
