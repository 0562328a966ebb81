/* ticket_md: report.md of a connection and the folder's index.md.  A
 * reporter: it reads facts, verdicts and the timeline, and prints. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"
#include "analysis/remedy.h"
#include "out/report.h"
#include "out/ticket_int.h"
#include "wire/tls_msgs.h"

static const char *side_arrow(enum side from)
{
	return from == SIDE_CLIENT ? "client → server" : "server → client";
}

/* What each basis means, for the reader of a ticket. */
static const char *basis_words(enum basis b)
{
	switch (b) {
	case B_OBSERVED: return "observed: the handshake messages that decide it were read on the wire, in plaintext";
	case B_DECRYPTED: return "decrypted: the messages that decide it were encrypted and read with the key log";
	case B_INFERRED: return "inferred: the messages were encrypted and no key log opened them; the verdict is read from the records' sizes, order and times";
	}
	return "";
}

void tk_span(const struct ticket *t, char *buf, size_t len)
{
	char a[40], b[40];
	double secs;

	if (!t->connections) {
		snprintf(buf, len, "no connections");
		return;
	}
	report_time(a, sizeof(a), &t->first, 3);
	report_time(b, sizeof(b), &t->last, 3);
	secs = (double)(t->last.tv_sec - t->first.tv_sec) + (t->last.tv_usec - t->first.tv_usec) / 1e6;
	snprintf(buf, len, "%s to %s (%.3f s)", a, b, secs);
}

static void md_cert(FILE *out, size_t i, const struct cert_info *c)
{
	if (c->parse_failed) {
		fprintf(out, "%zu. (not a certificate that parses) SHA-256 `%s`\n", i, c->sha256);
		return;
	}
	fprintf(out, "%zu. **%s**\n", i, c->subject);
	fprintf(out, "   - issuer: %s\n", c->issuer);
	fprintf(out, "   - valid: %s to %s\n", c->not_before, c->not_after);
	fprintf(out, "   - serial: %s; key: %s; EKU: %s%s\n", c->serial, c->key, c->eku[0] ? c->eku : "(none)",
		c->is_ca ? "; a CA" : "");
	fprintf(out, "   - SHA-256: `%s`\n", c->sha256);
	fprintf(out, "   - file: `certs/%s-%zu-%.16s.pem`\n", "%ROLE%", i - 1, c->sha256);
}

static void md_chain(FILE *out, const char *title, const char *role, const struct cert_chain *ch, bool seen,
		     const char *unseen)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *m;

	fprintf(out, "\n## %s\n\n", title);
	if (!seen || !ch->n) {
		fprintf(out, "%s\n", unseen);
		return;
	}
	/* the file names carry the role: written once, then filled in */
	if (!(m = open_memstream(&buf, &n)))
		return;
	for (size_t i = 0; i < ch->n; i++)
		md_cert(m, i + 1, &ch->certs[i]);
	if (fclose(m) == 0) {
		for (char *p = buf, *hit; p && *p; p = hit ? hit + 6 : NULL) {
			hit = strstr(p, "%ROLE%");
			fwrite(p, 1, hit ? (size_t)(hit - p) : strlen(p), out);
			if (hit)
				fputs(role, out);
		}
	}
	free(buf);
	if (ch->n < ch->n_on_wire)
		fprintf(out, "\n(%zu certificates were sent; the first %zu are summarised.)\n", ch->n_on_wire, ch->n);
}

static void md_chain_check(FILE *out, const struct conn_facts *f, const struct verdict *v)
{
	const struct chain_verify *cv = v->check;
	const char *who;
	char line[160], name[256];

	fprintf(out, "\n## Chain check\n\n");
	if (!cv || cv->trust == CHAIN_TRUST_NONE) {
		fprintf(out, "No chain check ran (no client chain was read%s).\n",
			f->client_chain.n ? ", or nothing to check it against" : "");
		return;
	}
	fprintf(out, "- checked against: %s\n",
		cv->trust == CHAIN_TRUST_BUNDLE ? "the server's CA bundle (--ca-bundle)" :
		"the CA names the server sent (their stand-ins: no bundle was given)");
	if (cv->ok) {
		fprintf(out, "- result: the chain verifies\n");
	} else {
		chain_verify_log_line(cv, v->server_kind, line, sizeof(line), &who);
		fprintf(out, "- result: **%s** (error %d at depth %d)\n", X509_verify_cert_error_string(cv->error),
			cv->error, cv->error_depth);
		if (cv->first_error != cv->error)
			fprintf(out, "- first error: %s (depth %d)\n", X509_verify_cert_error_string(cv->first_error),
				cv->first_depth);
		fprintf(out, "- %s logs: `%s`\n", who ? who : "the server", line);
	}
	fprintf(out, "- chain as built:");
	for (unsigned i = 0; i < cv->n_built; i++) {
		chain_verify_subject(cv, &f->client_chain, i, name, sizeof(name));
		fprintf(out, "%s %s", i ? " →" : "", name);
	}
	fputc('\n', out);
	chain_verify_stop(cv, &f->client_chain, name, sizeof(name));
	if (name[0])
		fprintf(out, "- stops at: %s\n", name);
	if (cv->verify_depth >= 0 || cv->needed_depth >= 0)
		fprintf(out, "- verify depth: %d; depth needed: %d\n", cv->verify_depth, cv->needed_depth);
	fprintf(out, "- purpose: %s; CRLs: %s\n", chain_purpose_name(cv->purpose), cv->crl ? "checked" : "not given");
	for (unsigned bit = 1; bit < (1u << BUNDLE_PROBLEM_BITS); bit <<= 1)
		if (cv->bundle_problems & bit)
			fprintf(out, "- bundle problem: %s\n", bundle_problem_name(bit));
	if (cv->note[0])
		fprintf(out, "- note: %s\n", cv->note);
}

static void md_middlebox(FILE *out, const struct conn_facts *f, const struct verdict *v)
{
	char ts[40], a[80], b[80];

	fprintf(out, "\n## Middlebox\n\n");
	if (!v->middlebox_named && !v->partner.set && v->fault != F_MIDDLEBOX) {
		fprintf(out, "Nothing points at a middlebox: no inspection CA in the server chain%s, and no "
			"gateway's other leg in the input.\n", f->server_chain.n ? "" : " (no server chain was read)");
		return;
	}
	if (v->middlebox_named && v->middlebox_line < v->n_evidence)
		fprintf(out, "- %s\n", v->evidence[v->middlebox_line]);
	if (v->partner.set) {
		report_time(ts, sizeof(ts), &v->partner.ts, 3);
		report_endpoint(a, sizeof(a), v->partner.client.ip, v->partner.client.port);
		report_endpoint(b, sizeof(b), v->partner.server.ip, v->partner.server.port);
		fprintf(out, "- the gateway's %s leg: %s → %s%s%s at %s, verdict `%s`\n",
			v->partner.server_leg ? "server" : "client", a, b, v->partner.sni[0] ? ", SNI " : "",
			v->partner.sni, ts, verdict_code_name(v->partner.code));
	}
}

static void md_timeline(FILE *out, const struct tk_entry *e, const struct tk_streams *s)
{
	fprintf(out, "\n## Timeline of the handshake\n\n");
	if (!e->n_steps) {
		fprintf(out, "No bytes of this connection were kept.\n");
		return;
	}
	fprintf(out, "| time (ms) | direction | what | bytes |\n|---:|---|---|---:|\n");
	for (size_t i = 0; i < e->n_steps; i++) {
		const struct tk_step *st = &e->steps[i];
		const char *mark = st->no_cert ? " ⚠ **no client certificate**" : st->refusal ? " ⚠" : "";

		fprintf(out, "| %.3f | %s | %s%s | %u |\n", st->t_us / 1000.0, side_arrow(st->from), st->what, mark,
			st->bytes);
	}
	if (s && s->n_zeroed)
		fprintf(out, "\nApplication data: the bodies of %zu records are written as zeros of the same length "
			"(their headers, sizes and times are kept).\n", s->n_zeroed);
}

void tk_report_md(FILE *out, const struct ticket *t, const struct ticket_conn *c, const struct tk_entry *e,
		  const struct tk_streams *s, bool keys_written)
{
	const struct conn_facts *f = c->f;
	const struct verdict *v = c->v;
	const char *reason = reason_code_name(v->reason);
	char remedies[REMEDY_MAX][REMEDY_LEN], ts[40], client[80], server[300];
	size_t n;

	fprintf(out, "# Verdict: %s%s%s (fault: %s; %s)\n\n", verdict_code_text(v->code), reason ? ": " : "",
		reason ? reason : "", fault_name(v->fault), basis_name(v->basis));
	fprintf(out, "%s\n\n", c->line);
	report_time(ts, sizeof(ts), &f->first_ts, 6);
	report_endpoint(client, sizeof(client), f->client.ip, f->client.port);
	report_endpoint(server, sizeof(server), f->server.ip, f->server.port);
	fprintf(out, "- connection: %s → %s%s%s, %s, first byte at %s\n", client, server, f->ch.sni[0] ? ", SNI " : "",
		f->ch.sni, verdict_tls_label(f), ts);
	fprintf(out, "- verdict: `%s`, reason `%s`, fault `%s`, basis `%s`\n", verdict_code_name(v->code),
		reason ? reason : "none", fault_name(v->fault), basis_name(v->basis));
	fprintf(out, "- bytes: %llu from the client, %llu from the server%s\n",
		(unsigned long long)f->dir[SIDE_CLIENT].bytes, (unsigned long long)f->dir[SIDE_SERVER].bytes,
		f->truncated ? "; the input ended before the connection did" : "");
	if (f->http_status)
		fprintf(out, "- HTTP answer: %d %s\n", f->http_status, f->http_reason);
	if (f->source)
		fprintf(out, "- from: %s\n", f->source);
	fprintf(out, "- files: `connection.json` (the JSON record)%s%s%s\n", c->tap ? ", `handshake.pcap`" : "",
		f->client_chain.n || f->server_chain.n ? ", `certs/`" : "", keys_written ? ", `keys.log`" : "");
	if (keys_written)
		fprintf(out, "\n> **Warning:** `keys.log` holds this connection's TLS secrets: with it, anyone who has "
			"`handshake.pcap` (or any other capture of this connection) can decrypt the session. Share it "
			"only with those who must read the encrypted handshake.\n");

	md_timeline(out, e, s);

	fprintf(out, "\n## CA names the server asked for\n\n");
	if (f->cr.seen && f->cr.n_ca_names) {
		for (size_t i = 0; i < f->cr.n_ca_names; i++)
			fprintf(out, "- %s\n", f->cr.ca_names[i]);
		if (f->cr.n_ca_names_on_wire > f->cr.n_ca_names)
			fprintf(out, "- (and %zu more)\n", f->cr.n_ca_names_on_wire - f->cr.n_ca_names);
	} else if (f->cr.seen) {
		fprintf(out, "The server asked for a certificate without naming CAs (any issuer it trusts).\n");
	} else if (v->cert_requested == TRI_NO) {
		fprintf(out, "The server did not ask for a client certificate.\n");
	} else {
		fprintf(out, "Not readable: the CertificateRequest was encrypted (TLS 1.3) and no key log opened it.\n");
	}

	md_chain(out, "Client certificate chain", "client", &f->client_chain, f->client_cert_seen,
		 v->client_cert_sent == TRI_NO ? "**The client sent no certificate.**" :
		 "Not read (encrypted, or not in the capture).");
	md_chain(out, "Server certificate chain", "server", &f->server_chain, f->server_cert_seen,
		 "Not read (encrypted, or not in the capture).");
	md_chain_check(out, f, v);
	md_middlebox(out, f, v);

	fprintf(out, "\n## Remedy\n\n");
	n = v->evidence_omitted ? 0 : remedy_lines(f, v, remedies, REMEDY_MAX);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "- %s\n", remedies[i]);
	if (!n)
		fprintf(out, "Nothing to change.\n");

	fprintf(out, "\n## How the verdict was reached\n\n%s.\n\n", basis_words(v->basis));
	for (size_t i = 0; i < v->n_evidence; i++)
		fprintf(out, "%zu. %s\n", i + 1, v->evidence[i]);

	fprintf(out, "\n---\nWritten by mtlsdiag %s (%s). Never in this folder: private keys, key-log secrets%s, "
		"application data%s, HTTP bodies or headers beyond the status line.\n", PACKAGE_VERSION,
		t->o.who, keys_written ? " (except keys.log, asked for)" : "",
		t->o.keep_data ? " (kept as captured: --evidence-keep-data)" : " (zeros of the same length)");
}

void tk_index_md(FILE *out, const struct ticket *t)
{
	char span[160];
	uint64_t kept = 0, over = 0;

	tk_span(t, span, sizeof(span));
	for (int i = 0; i < V_COUNT; i++) {
		kept += t->kept[i];
		over += t->over[i];
	}
	fprintf(out, "# mTLS evidence\n\n");
	fprintf(out, "- written by: mtlsdiag %s\n- command: `%s`\n- time span: %s\n", PACKAGE_VERSION, t->cmdline, span);
	fprintf(out, "- connections: %llu, with a folder here: %llu%s\n", (unsigned long long)t->connections,
		(unsigned long long)kept, t->o.all ? " (--evidence-all)" : " (those that did not end well)");
	if (over)
		fprintf(out, "- left out by --evidence-max %u: %llu\n", t->o.max_per_verdict, (unsigned long long)over);
	if (t->failed)
		fprintf(out, "- **incomplete:** a write failed; the evidence stops there\n");
	fprintf(out, "\n## Counts\n\n| verdict | connections | folders |\n|---|---:|---:|\n");
	for (int i = 0; i < V_COUNT; i++)
		if (t->seen[i])
			fprintf(out, "| `%s` | %llu | %llu |\n", verdict_code_name((enum verdict_code)i),
				(unsigned long long)t->seen[i], (unsigned long long)t->kept[i]);
	for (int code = 0; code < V_COUNT; code++) {
		bool any = false;

		for (size_t i = 0; i < t->n; i++) {
			const struct tk_entry *e = &t->e[i];
			char ts[40];

			if ((int)e->code != code)
				continue;
			if (!any)
				fprintf(out, "\n## %s (`%s`)\n\n", verdict_code_text((enum verdict_code)code),
					verdict_code_name((enum verdict_code)code));
			any = true;
			report_time(ts, sizeof(ts), &e->ts, 3);
			fprintf(out, "- [%s](%s/report.md) %s %s → %s, fault %s (%s)\n", e->folder, e->folder, ts, e->client,
				e->server, fault_name(e->fault), basis_name(e->basis));
		}
	}
}
