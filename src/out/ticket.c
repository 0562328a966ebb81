/* ticket: the evidence folder (see ticket.h): which connections get a
 * folder, the files of each, and the index at the end. */
#include "config.h"

#include "out/ticket.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "out/json.h"
#include "out/report.h"
#include "out/ticket_int.h"
#include "wire/keylog.h"
#include "wire/x509info.h"

/* Folders get the search bits of the files' read bits (0600 -> 0700). */
static mode_t dir_mode(mode_t file_mode)
{
	return file_mode | ((file_mode & 0444) >> 2);
}

/* Whether path is a folder with nothing in it. */
static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

static char *join_argv(int argc, char *const *argv)
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	if (!m)
		return NULL;
	fputs("mtlsdiag", m);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		fputc(' ', m);
		/* quoted as a shell would need it, when it needs it */
		if (a[0] && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+%") == strlen(a)) {
			fputs(a, m);
			continue;
		}
		fputc('\'', m);
		for (; *a; a++)
			fputs(*a == '\'' ? "'\\''" : (char[]){ *a, 0 }, m);
		fputc('\'', m);
	}
	if (fclose(m) != 0)
		return NULL;
	return out;
}

struct ticket *ticket_open(const struct ticket_opts *o)
{
	struct ticket *t;
	struct stat st;

	if (stat(o->dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "%s: --evidence %s: not a folder\n", o->who, o->dir);
			return NULL;
		}
		if (!o->force && !dir_empty(o->dir)) {
			fprintf(stderr, "%s: --evidence %s: the folder is not empty (add --force to write into it)\n",
				o->who, o->dir);
			return NULL;
		}
	} else if (mkdir(o->dir, dir_mode(o->file_mode)) != 0) {
		fprintf(stderr, "%s: --evidence %s: %s\n", o->who, o->dir, strerror(errno));
		return NULL;
	}
	if (!(t = calloc(1, sizeof(*t))) || !(t->dir = strdup(o->dir)) ||
	    !(t->cmdline = join_argv(o->argc, o->argv))) {
		fprintf(stderr, "%s: out of memory\n", o->who);
		if (t)
			free(t->dir);
		free(t);
		return NULL;
	}
	t->o = *o;
	t->o.dir = t->dir;
	if (!t->o.max_per_verdict)
		t->o.max_per_verdict = TICKET_DEFAULT_MAX;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void tk_fail(struct ticket *t, const char *what, int error)
{
	if (t->failed)
		return;
	t->failed = true;
	fprintf(stderr, "%s: --evidence %s: cannot write %s: %s; no more evidence is written\n", t->o.who, t->dir,
		what, strerror(error));
}

int tk_write_bytes(struct ticket *t, const char *rel, const uint8_t *p, size_t len)
{
	char path[4096];
	int fd, error = 0;
	size_t done = 0;

	if (t->failed)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, t->o.file_mode)) < 0) {
		tk_fail(t, rel, errno);
		return -1;
	}
	while (done < len) {
		ssize_t k = write(fd, p + done, len - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			error = k < 0 ? errno : ENOSPC;
			break;
		}
		done += (size_t)k;
	}
	if (close(fd) != 0 && !error)
		error = errno;
	if (error) {
		(void)unlink(path);
		tk_fail(t, rel, error);
		return -1;
	}
	return 0;
}

int tk_write_text(struct ticket *t, const char *rel, const char *text, size_t len)
{
	char *red;
	size_t rlen;
	int ret;

	if (!t->o.redact)
		return tk_write_bytes(t, rel, (const uint8_t *)text, len);
	if (!(red = tk_redact_text(&t->redact, text, len, &rlen))) {
		tk_fail(t, rel, ENOMEM);
		return -1;
	}
	ret = tk_write_bytes(t, rel, (const uint8_t *)red, rlen);
	free(red);
	return ret;
}

/* Whether a connection gets a folder: it did not end well (no one at
 * fault, and TLS), or every one is wanted. */
static bool wanted(const struct ticket *t, const struct verdict *v)
{
	if (t->o.all)
		return true;
	return v->fault != F_NONE && v->code != V_NOT_TLS;
}

/* ---- the files of one connection ---- */

static void write_json(struct ticket *t, const char *folder, const struct ticket_conn *c)
{
	struct json j;
	char rel[128];
	char *text;
	size_t len;

	json_init(&j);
	if (!c->record) {
		json_object(&j, NULL);
		report_json_members(&j, c->f, c->v, c->line);
		json_end(&j);
	}
	len = strlen(c->record ? c->record : json_text(&j));
	snprintf(rel, sizeof(rel), "%s/connection.json", folder);
	if (j.failed || !(text = malloc(len + 2))) {
		tk_fail(t, rel, ENOMEM);
		json_free(&j);
		return;
	}
	memcpy(text, c->record ? c->record : json_text(&j), len);
	text[len++] = '\n';
	(void)tk_write_text(t, rel, text, len);
	free(text);
	json_free(&j);
}

/* One certificate as PEM; under --redact-hosts its names are rewritten
 * as the capture's are (its signature then no longer verifies). */
static void write_cert(struct ticket *t, const char *folder, const char *role, size_t i,
		       const struct cert_info *ci, struct cert_cache *cache)
{
	const uint8_t *der;
	size_t len = 0;
	char rel[160];
	uint8_t *copy;
	BIO *b;
	char *pem;
	long n;

	if (!ci->sha256[0] || !cache || !(der = cert_cache_der(cache, ci->sha256, &len)))
		return;
	snprintf(rel, sizeof(rel), "%s/certs/%s-%zu-%.16s.pem", folder, role, i, ci->sha256);
	if (!(copy = malloc(len ? len : 1)) || !(b = BIO_new(BIO_s_mem()))) {
		free(copy);
		tk_fail(t, rel, ENOMEM);
		return;
	}
	memcpy(copy, der, len);
	if (t->o.redact)
		tk_redact_bytes(&t->redact, copy, len);
	if (PEM_write_bio(b, "CERTIFICATE", "", copy, (long)len) <= 0 || (n = BIO_get_mem_data(b, &pem)) <= 0)
		tk_fail(t, rel, ENOMEM);
	else
		(void)tk_write_bytes(t, rel, (const uint8_t *)pem, (size_t)n);
	BIO_free(b);
	free(copy);
}

static void write_certs(struct ticket *t, const char *folder, const struct ticket_conn *c)
{
	char rel[128], path[4200];

	if (!c->f->client_chain.n && !c->f->server_chain.n)
		return;
	snprintf(rel, sizeof(rel), "%s/certs", folder);
	snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
	if (mkdir(path, dir_mode(t->o.file_mode)) != 0 && errno != EEXIST) {
		tk_fail(t, rel, errno);
		return;
	}
	for (size_t i = 0; i < c->f->client_chain.n; i++)
		write_cert(t, folder, "client", i, &c->f->client_chain.certs[i], c->certs);
	for (size_t i = 0; i < c->f->server_chain.n; i++)
		write_cert(t, folder, "server", i, &c->f->server_chain.certs[i], c->certs);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* keys.log: the NSS key-log lines of this connection's client random,
 * and of nothing else.  0 when there are none. */
static int write_keys(struct ticket *t, const char *folder, const struct ticket_conn *c)
{
	static const struct {
		const char *label;
		enum keylog_kind kind;
		bool gens;
	} kinds[] = {
		{ "CLIENT_RANDOM", KEYLOG_MASTER_SECRET, false },
		{ "CLIENT_HANDSHAKE_TRAFFIC_SECRET", KEYLOG_CLIENT_HANDSHAKE, false },
		{ "SERVER_HANDSHAKE_TRAFFIC_SECRET", KEYLOG_SERVER_HANDSHAKE, false },
		{ "CLIENT_TRAFFIC_SECRET_", KEYLOG_CLIENT_TRAFFIC, true },
		{ "SERVER_TRAFFIC_SECRET_", KEYLOG_SERVER_TRAFFIC, true },
	};
	char random[65], secret[2 * KEYLOG_MAX_SECRET + 1], rel[128];
	uint8_t raw[KEYLOG_MAX_SECRET];
	char *out = NULL;
	size_t n = 0, len, lines = 0;
	FILE *m;

	if (!c->keylog || !c->f->ch.seen || !(m = open_memstream(&out, &n)))
		return 0;
	hex(c->f->ch.random, 32, random);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (unsigned gen = 0; gen < (kinds[k].gens ? KEYLOG_GENERATIONS : 1); gen++) {
			if (!keylog_secret(c->keylog, c->f->ch.random, kinds[k].kind, gen, raw, &len))
				continue;
			hex(raw, len, secret);
			if (kinds[k].gens)
				fprintf(m, "%s%u %s %s\n", kinds[k].label, gen, random, secret);
			else
				fprintf(m, "%s %s %s\n", kinds[k].label, random, secret);
			lines++;
		}
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (fclose(m) != 0) {
		free(out);
		return 0;
	}
	snprintf(rel, sizeof(rel), "%s/keys.log", folder);
	if (lines)
		(void)tk_write_bytes(t, rel, (const uint8_t *)out, n);
	OPENSSL_cleanse(out, n);
	free(out);
	return lines > 0;
}

static void write_report(struct ticket *t, const char *folder, const struct ticket_conn *c,
			 const struct tk_entry *e, const struct tk_streams *s, bool keys)
{
	char *out = NULL, rel[128];
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	snprintf(rel, sizeof(rel), "%s/report.md", folder);
	if (!m) {
		tk_fail(t, rel, ENOMEM);
		return;
	}
	tk_report_md(m, t, c, e, s, keys);
	if (fclose(m) != 0)
		tk_fail(t, rel, ENOMEM);
	else
		(void)tk_write_text(t, rel, out, n);
	free(out);
}

/* The entry the index lists, and the folder's files. */
static void write_connection(struct ticket *t, const struct ticket_conn *c)
{
	const struct conn_facts *f = c->f;
	struct tk_streams s;
	struct tk_entry *e;
	char path[4200], rel[128], err[512];
	bool have_streams = false, keys = false;
	size_t len;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct tk_entry *grown = realloc(t->e, cap * sizeof(*grown));

		if (!grown) {
			tk_fail(t, "the index", ENOMEM);
			return;
		}
		t->e = grown;
		t->cap = cap;
	}
	e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	e->code = c->v->code;
	e->fault = c->v->fault;
	e->basis = c->v->basis;
	e->ts = f->first_ts;
	e->cert_requested = c->v->cert_requested;
	e->client_cert_sent = c->v->client_cert_sent;
	snprintf(e->folder, sizeof(e->folder), "%04u-%s", ++t->next, verdict_code_name(c->v->code));
	report_endpoint(e->client, sizeof(e->client), f->client.ip, f->client.port);
	report_endpoint(e->server, sizeof(e->server), f->ch.sni[0] ? f->ch.sni : f->server.ip, f->server.port);
	if (t->o.redact) {
		char *red;

		report_endpoint(e->client, sizeof(e->client), tk_redact_one(&t->redact, f->client.ip), f->client.port);
		report_endpoint(e->server, sizeof(e->server),
				tk_redact_one(&t->redact, f->ch.sni[0] ? f->ch.sni : f->server.ip), f->server.port);
		e->line = (red = tk_redact_text(&t->redact, c->line, strlen(c->line), &len)) ? red : strdup("");
	} else {
		e->line = strdup(c->line);
	}
	if (!e->line) {
		tk_fail(t, "the index", ENOMEM);
		return;
	}
	t->n++;
	snprintf(path, sizeof(path), "%s/%s", t->dir, e->folder);
	if (mkdir(path, dir_mode(t->o.file_mode)) != 0 && errno != EEXIST) {
		tk_fail(t, e->folder, errno);
		return;
	}
	if (c->tap) {
		if (!tk_streams_prepare(&s, c->tap, f, t->o.keep_data, t->o.redact ? &t->redact : NULL) ||
		    !tk_timeline(&s, c->tap, f, &e->steps, &e->n_steps)) {
			tk_streams_free(&s);
			tk_fail(t, e->folder, ENOMEM);
			return;
		}
		have_streams = true;
		snprintf(rel, sizeof(rel), "%s/handshake.pcap", e->folder);
		snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
		if (tk_pcap_write(path, t->o.file_mode, c->tap, &s, f, t->o.redact ? &t->redact : NULL, err,
				  sizeof(err)) != 0) {
			int error = errno;

			(void)unlink(path);
			tk_fail(t, rel, error);
		}
	}
	write_json(t, e->folder, c);
	write_certs(t, e->folder, c);
	if (t->o.keys)
		keys = write_keys(t, e->folder, c);
	write_report(t, e->folder, c, e, have_streams ? &s : NULL, keys);
	if (have_streams)
		tk_streams_free(&s);
}

void ticket_add(struct ticket *t, const struct ticket_conn *c)
{
	const struct conn_facts *f = c->f;
	unsigned code = (unsigned)c->v->code < V_COUNT ? (unsigned)c->v->code : V_UNDETERMINED;

	pthread_mutex_lock(&t->lock);
	t->connections++;
	t->seen[code]++;
	if (t->connections == 1 || timercmp(&f->first_ts, &t->first, <))
		t->first = f->first_ts;
	if (t->connections == 1 || timercmp(&f->last_ts, &t->last, >))
		t->last = f->last_ts;
	if (!t->failed && wanted(t, c->v)) {
		if (t->o.max_per_verdict && t->kept[code] >= t->o.max_per_verdict) {
			t->over[code]++;
		} else {
			t->kept[code]++;
			if (t->o.redact)
				tk_redact_learn(&t->redact, f, c->v);
			write_connection(t, c);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static void write_index(struct ticket *t, const char *rel, void (*fn)(FILE *, const struct ticket *))
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	if (!m) {
		tk_fail(t, rel, ENOMEM);
		return;
	}
	fn(m, t);
	if (fclose(m) != 0)
		tk_fail(t, rel, ENOMEM);
	else
		(void)tk_write_text(t, rel, out, n);
	free(out);
}

int ticket_close(struct ticket *t)
{
	int ret;

	if (!t)
		return 0;
	write_index(t, "index.md", tk_index_md);
	write_index(t, "index.html", tk_index_html);
	ret = t->failed ? -1 : 0;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].line);
		free(t->e[i].steps);
	}
	free(t->e);
	tk_redact_free(&t->redact);
	pthread_mutex_destroy(&t->lock);
	free(t->cmdline);
	free(t->dir);
	free(t);
	return ret;
}
