/* keylog: NSS key log files, secrets by client random (see keylog.h). */
#include "config.h"

#include "wire/keylog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire/cursor.h"

/* The longest line taken: the longest label, two spaces, 64 hex digits of
 * client random and 128 of secret, with room to spare. */
#define LINE_MAX_LEN 512
/* Per file, warnings shown before the rest are only counted. */
#define WARN_MAX 10
#define READ_CHUNK 65536

struct secret {
	uint8_t len;                    /* 0: absent */
	uint8_t v[KEYLOG_MAX_SECRET];
};

struct entry {
	bool used;
	uint8_t random[32];
	struct secret master, client_hs, server_hs;
	struct secret client_app[KEYLOG_GENERATIONS], server_app[KEYLOG_GENERATIONS];
};

struct kl_file {
	char *path;
	int fd;                         /* followed files stay open; -1 otherwise */
	dev_t dev;
	ino_t ino;
	off_t offset;                   /* bytes consumed */
	unsigned long line;             /* lines seen */
	uint8_t partial[LINE_MAX_LEN];  /* an unfinished last line */
	size_t partial_len;
	bool overlong;                  /* dropping a line too long to keep, until its end */
	unsigned warnings;
};

struct keylog {
	pthread_mutex_t lock;
	keylog_warn_fn warn;
	void *warn_ctx;
	struct entry *slots;            /* open addressing, power-of-two size */
	size_t cap, n;
	struct kl_file *files;
	size_t n_files;
	size_t malformed;
};

struct keylog *keylog_new(keylog_warn_fn warn, void *warn_ctx)
{
	struct keylog *kl = calloc(1, sizeof(*kl));

	if (!kl)
		return NULL;
	if (pthread_mutex_init(&kl->lock, NULL) != 0) {
		free(kl);
		return NULL;
	}
	kl->warn = warn;
	kl->warn_ctx = warn_ctx;
	return kl;
}

void keylog_free(struct keylog *kl)
{
	size_t i;

	if (!kl)
		return;
	for (i = 0; i < kl->n_files; i++) {
		if (kl->files[i].fd >= 0)
			close(kl->files[i].fd);
		free(kl->files[i].path);
	}
	free(kl->files);
	/* the secrets are wiped before the memory goes back */
	if (kl->slots)
		memset(kl->slots, 0, kl->cap * sizeof(*kl->slots));
	free(kl->slots);
	pthread_mutex_destroy(&kl->lock);
	free(kl);
}

/* ---- the table ---- */

static size_t slot_of(const uint8_t random[32], size_t cap)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	size_t i;

	for (i = 0; i < 32; i++)
		h = (h ^ random[i]) * 1099511628211ull;
	return (size_t)h & (cap - 1);
}

static struct entry *find(const struct keylog *kl, const uint8_t random[32])
{
	size_t i;

	if (!kl->cap)
		return NULL;
	for (i = slot_of(random, kl->cap);; i = (i + 1) & (kl->cap - 1)) {
		if (!kl->slots[i].used)
			return NULL;
		if (memcmp(kl->slots[i].random, random, 32) == 0)
			return &kl->slots[i];
	}
}

/* The first table is small: a proxy's or probe's key log holds the one
 * connection it is made for (an entry is 750 bytes, and 256 of them were
 * 190 KB to clear and wipe per connection); a file's grows by doubling. */
#define FIRST_CAP 4

static int grow(struct keylog *kl)
{
	size_t cap = kl->cap ? kl->cap * 2 : FIRST_CAP, i;
	struct entry *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return 0;
	for (i = 0; i < kl->cap; i++) {
		size_t j;

		if (!kl->slots[i].used)
			continue;
		for (j = slot_of(kl->slots[i].random, cap); slots[j].used; j = (j + 1) & (cap - 1))
			;
		slots[j] = kl->slots[i];
	}
	if (kl->slots)
		memset(kl->slots, 0, kl->cap * sizeof(*kl->slots));
	free(kl->slots);
	kl->slots = slots;
	kl->cap = cap;
	return 1;
}

static struct entry *find_or_add(struct keylog *kl, const uint8_t random[32])
{
	struct entry *e = find(kl, random);
	size_t i;

	if (e)
		return e;
	if ((kl->n + 1) * 2 > kl->cap && !grow(kl))
		return NULL;
	for (i = slot_of(random, kl->cap); kl->slots[i].used; i = (i + 1) & (kl->cap - 1))
		;
	e = &kl->slots[i];
	e->used = true;
	memcpy(e->random, random, 32);
	kl->n++;
	return e;
}

/* ---- parsing ---- */

static void __attribute__((format(printf, 4, 5)))
warn(struct keylog *kl, const char *name, unsigned long line, const char *fmt, ...)
{
	char msg[300];
	size_t n;
	va_list ap;

	if (!kl->warn)
		return;
	n = (size_t)snprintf(msg, sizeof(msg), "%s:%lu: ", name, line);
	if (n >= sizeof(msg))
		n = sizeof(msg) - 1;
	va_start(ap, fmt);
	vsnprintf(&msg[n], sizeof(msg) - n, fmt, ap);
	va_end(ap);
	kl->warn(kl->warn_ctx, msg);
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a whole field of hex digits into out (at most max bytes). */
static int unhex(const struct cursor *field, uint8_t *out, size_t max, size_t *n)
{
	struct cursor c = *field;
	uint8_t hi, lo;

	*n = 0;
	if (cursor_len(&c) == 0 || cursor_len(&c) % 2 || cursor_len(&c) / 2 > max)
		return 0;
	while (cursor_get_u8(&c, &hi) && cursor_get_u8(&c, &lo)) {
		int h = hex_value(hi), l = hex_value(lo);

		if (h < 0 || l < 0)
			return 0;
		out[(*n)++] = (uint8_t)(h << 4 | l);
	}
	return 1;
}

static bool is_blank(uint8_t b)
{
	return b == ' ' || b == '\t';
}

/* Splits the next blank-separated field off the line. */
static int next_field(struct cursor *line, struct cursor *field)
{
	struct cursor c = *line;
	size_t n = 0;
	uint8_t b;

	while (cursor_peek_u8(&c, 0, &b) && is_blank(b))
		if (!cursor_skip(&c, 1))
			return 0;
	while (cursor_peek_u8(&c, n, &b) && !is_blank(b))
		n++;
	if (n == 0 || !cursor_get_bytes(&c, field, n))
		return 0;
	*line = c;
	return 1;
}

static bool label_is(const struct cursor *label, const char *name)
{
	size_t n = strlen(name);

	return cursor_len(label) == n && cursor_starts_with(label, name, n, 0);
}

/* "CLIENT_TRAFFIC_SECRET_12" -> 12 after the prefix; 0 if not that label. */
static int label_generation(const struct cursor *label, const char *prefix, unsigned *gen)
{
	struct cursor c = *label;
	size_t n = strlen(prefix);
	unsigned v = 0;
	uint8_t b;

	if (!cursor_starts_with(&c, prefix, n, 0) || !cursor_skip(&c, n) || cursor_len(&c) == 0 ||
	    cursor_len(&c) > 6)
		return 0;
	while (cursor_get_u8(&c, &b)) {
		if (b < '0' || b > '9')
			return 0;
		v = v * 10 + (unsigned)(b - '0');
	}
	*gen = v;
	return 1;
}

/* Which slot of an entry a label fills; NULL for labels not used here. */
static struct secret *slot_for(struct entry *e, const struct cursor *label)
{
	unsigned gen;

	if (label_is(label, "CLIENT_RANDOM"))
		return &e->master;
	if (label_is(label, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"))
		return &e->client_hs;
	if (label_is(label, "SERVER_HANDSHAKE_TRAFFIC_SECRET"))
		return &e->server_hs;
	if (label_generation(label, "CLIENT_TRAFFIC_SECRET_", &gen))
		return gen < KEYLOG_GENERATIONS ? &e->client_app[gen] : NULL;
	if (label_generation(label, "SERVER_TRAFFIC_SECRET_", &gen))
		return gen < KEYLOG_GENERATIONS ? &e->server_app[gen] : NULL;
	return NULL;
}

static bool label_known(const struct cursor *label)
{
	unsigned gen;

	return label_is(label, "CLIENT_RANDOM") || label_is(label, "CLIENT_HANDSHAKE_TRAFFIC_SECRET") ||
	       label_is(label, "SERVER_HANDSHAKE_TRAFFIC_SECRET") ||
	       label_generation(label, "CLIENT_TRAFFIC_SECRET_", &gen) ||
	       label_generation(label, "SERVER_TRAFFIC_SECRET_", &gen);
}

/* Labels of the format that carry nothing needed here: early data and
 * exporter secrets, ECH, and the old "RSA <encrypted pre-master prefix>
 * <pre-master secret>" form. */
static bool label_ignored(const struct cursor *label)
{
	static const char *const ignored[] = {
		"CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET",
		"ECH_SECRET", "ECH_CONFIG", "RSA",
	};
	size_t i;

	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (label_is(label, ignored[i]))
			return true;
	return false;
}

static void malformed(struct keylog *kl, struct kl_file *f, const char *name, unsigned long line,
		      const char *why)
{
	unsigned *count = f ? &f->warnings : NULL;

	kl->malformed++;
	if (count && *count > WARN_MAX)
		return;
	if (count && *count == WARN_MAX)
		warn(kl, name, line, "further malformed key log lines in this file are skipped silently");
	else
		warn(kl, name, line, "malformed key log line skipped: %s", why);
	if (count)
		(*count)++;
}

/* One line, without its end.  Returns 1 if a secret was stored. */
static int parse_line(struct keylog *kl, struct kl_file *f, const char *name, unsigned long lineno,
		      struct cursor line)
{
	struct cursor label, random_hex, secret_hex, rest;
	uint8_t random[32], secret[KEYLOG_MAX_SECRET], b;
	size_t n_random, n_secret;
	struct entry *e;
	struct secret *s;
	bool known;

	/* a Windows line end */
	if (cursor_len(&line) && cursor_peek_u8(&line, cursor_len(&line) - 1, &b) && b == '\r')
		cursor_init(&line, cursor_data(&line), cursor_len(&line) - 1);
	rest = line;
	if (!next_field(&rest, &label))
		return 0;                       /* blank */
	if (cursor_peek_u8(&label, 0, &b) && b == '#')
		return 0;                       /* comment */
	if (!next_field(&rest, &random_hex) || !next_field(&rest, &secret_hex)) {
		malformed(kl, f, name, lineno, "expected LABEL CLIENT_RANDOM SECRET");
		return 0;
	}
	if (next_field(&rest, &label)) {
		malformed(kl, f, name, lineno, "more than three fields");
		return 0;
	}
	known = label_known(&label);
	if (!known) {
		if (label_ignored(&label))
			return 0;
		malformed(kl, f, name, lineno, "unknown label");
		return 0;
	}
	if (!unhex(&random_hex, random, sizeof(random), &n_random) || n_random != 32) {
		malformed(kl, f, name, lineno, "the client random is not 64 hex digits");
		return 0;
	}
	if (!unhex(&secret_hex, secret, sizeof(secret), &n_secret)) {
		malformed(kl, f, name, lineno, "the secret is not hex");
		return 0;
	}
	if (label_is(&label, "CLIENT_RANDOM") ? n_secret != 48 : (n_secret != 32 && n_secret != 48)) {
		/* RFC 5246 8.1: the master secret is 48 bytes; TLS 1.3 secrets
		 * are as long as the suite's hash (SHA-256 or SHA-384) */
		malformed(kl, f, name, lineno, "the secret has the wrong length for its label");
		return 0;
	}
	e = find_or_add(kl, random);
	if (!e)
		return 0;
	s = slot_for(e, &label);
	if (!s)
		return 0;                       /* a generation beyond those kept: derived instead */
	s->len = (uint8_t)n_secret;
	memcpy(s->v, secret, n_secret);
	return 1;
}

/* Parses the complete lines of `text`; what follows the last line end is
 * returned in *rest. */
static size_t parse_lines(struct keylog *kl, struct kl_file *f, const char *name, unsigned long *lineno,
			  struct cursor text, struct cursor *rest)
{
	size_t added = 0, at;
	struct cursor line;

	while (cursor_find(&text, "\n", 1, &at)) {
		if (!cursor_get_bytes(&text, &line, at) || !cursor_skip(&text, 1))
			break;
		(*lineno)++;
		if (f && f->overlong) {
			f->overlong = false;
			malformed(kl, f, name, *lineno, "line too long");
			continue;
		}
		added += (size_t)parse_line(kl, f, name, *lineno, line);
	}
	*rest = text;
	return added;
}

size_t keylog_add_text(struct keylog *kl, const char *name, const uint8_t *text, size_t len)
{
	struct cursor all, rest;
	unsigned long lineno = 0;
	size_t added;

	cursor_init(&all, text, len);
	pthread_mutex_lock(&kl->lock);
	added = parse_lines(kl, NULL, name, &lineno, all, &rest);
	if (cursor_len(&rest))
		added += (size_t)parse_line(kl, NULL, name, lineno + 1, rest);
	pthread_mutex_unlock(&kl->lock);
	return added;
}

/* Feeds newly read bytes of a file: joined to the unfinished line kept from
 * before, complete lines parsed, a new unfinished one kept. */
static size_t file_take(struct keylog *kl, struct kl_file *f, const uint8_t *data, size_t len)
{
	struct cursor in, rest, line;
	size_t added = 0, at;

	cursor_init(&in, data, len);
	if (f->partial_len || f->overlong) {
		/* finish the kept line first */
		size_t take = cursor_find(&in, "\n", 1, &at) ? at : cursor_len(&in);
		bool ended = take < cursor_len(&in);

		if (!f->overlong && f->partial_len + take <= sizeof(f->partial)) {
			if (!cursor_copy_bytes(&in, &f->partial[f->partial_len], take))
				return 0;
			f->partial_len += take;
		} else {
			f->overlong = true;
			f->partial_len = 0;
			if (!cursor_skip(&in, take))
				return 0;
		}
		if (!ended)
			return 0;
		if (!cursor_skip(&in, 1))
			return 0;
		f->line++;
		if (f->overlong) {
			f->overlong = false;
			malformed(kl, f, f->path, f->line, "line too long");
		} else {
			cursor_init(&line, f->partial, f->partial_len);
			added += (size_t)parse_line(kl, f, f->path, f->line, line);
		}
		f->partial_len = 0;
	}
	added += parse_lines(kl, f, f->path, &f->line, in, &rest);
	if (cursor_len(&rest) <= sizeof(f->partial)) {
		f->partial_len = cursor_len(&rest);
		if (!cursor_copy_bytes(&rest, f->partial, f->partial_len))
			f->partial_len = 0;
	} else {
		f->overlong = true;
	}
	return added;
}

/* Reads the file from its offset to its end.  0 on a read error. */
static int file_read(struct keylog *kl, struct kl_file *f, int fd, size_t *added)
{
	uint8_t *buf = malloc(READ_CHUNK);
	int ret = 0;

	if (!buf)
		return 0;
	for (;;) {
		ssize_t n = pread(fd, buf, READ_CHUNK, f->offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto Exit;
		if (n == 0)
			break;
		f->offset += n;
		*added += file_take(kl, f, buf, (size_t)n);
	}
	ret = 1;
Exit:
	free(buf);
	return ret;
}

int keylog_add_file(struct keylog *kl, const char *path, bool follow, char *err, size_t errlen)
{
	struct kl_file *files, *f = NULL;
	struct stat st;
	size_t added = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return 0;
	}
	if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" : strerror(errno));
		close(fd);
		return 0;
	}
	pthread_mutex_lock(&kl->lock);
	files = realloc(kl->files, (kl->n_files + 1) * sizeof(*files));
	if (!files) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto Exit;
	}
	kl->files = files;
	f = &files[kl->n_files];
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->path = strdup(path);
	if (!f->path) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto Exit;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if (!file_read(kl, f, fd, &added)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(f->path);
		goto Exit;
	}
	if (!follow && (f->partial_len || f->overlong)) {
		/* a complete file: its last line needs no line end */
		struct cursor line;

		f->line++;
		cursor_init(&line, f->partial, f->partial_len);
		if (f->overlong)
			malformed(kl, f, f->path, f->line, "line too long");
		else
			parse_line(kl, f, f->path, f->line, line);
		f->partial_len = 0;
		f->overlong = false;
	}
	if (follow) {
		f->fd = fd;
		fd = -1;
	}
	kl->n_files++;
	ret = 1;
Exit:
	pthread_mutex_unlock(&kl->lock);
	if (fd >= 0)
		close(fd);
	return ret;
}

size_t keylog_refresh(struct keylog *kl)
{
	size_t i, added = 0;

	pthread_mutex_lock(&kl->lock);
	for (i = 0; i < kl->n_files; i++) {
		struct kl_file *f = &kl->files[i];
		struct stat st, now;

		if (f->fd < 0)
			continue;
		if (stat(f->path, &now) == 0 && (now.st_dev != f->dev || now.st_ino != f->ino)) {
			/* replaced (rotated, or written anew by rename): read the new one */
			int fd = open(f->path, O_RDONLY | O_CLOEXEC);

			if (fd >= 0) {
				/* what the old file still had is read first */
				file_read(kl, f, f->fd, &added);
				close(f->fd);
				f->fd = fd;
				f->dev = now.st_dev;
				f->ino = now.st_ino;
				f->offset = 0;
				f->line = 0;
				f->partial_len = 0;
				f->overlong = false;
			}
		}
		if (fstat(f->fd, &st) != 0)
			continue;
		if (st.st_size < f->offset) {
			/* truncated: written again from the start */
			f->offset = 0;
			f->line = 0;
			f->partial_len = 0;
			f->overlong = false;
		}
		if (st.st_size > f->offset)
			file_read(kl, f, f->fd, &added);
	}
	pthread_mutex_unlock(&kl->lock);
	return added;
}

bool keylog_following(const struct keylog *kl)
{
	size_t i;

	for (i = 0; i < kl->n_files; i++)
		if (kl->files[i].fd >= 0)
			return true;
	return false;
}

int keylog_secret(struct keylog *kl, const uint8_t client_random[32], enum keylog_kind kind,
		  unsigned gen, uint8_t *out, size_t *len)
{
	const struct secret *s = NULL;
	const struct entry *e;
	int ret = 0;

	pthread_mutex_lock(&kl->lock);
	e = find(kl, client_random);
	if (!e)
		goto Exit;
	switch (kind) {
	case KEYLOG_MASTER_SECRET: s = &e->master; break;
	case KEYLOG_CLIENT_HANDSHAKE: s = &e->client_hs; break;
	case KEYLOG_SERVER_HANDSHAKE: s = &e->server_hs; break;
	case KEYLOG_CLIENT_TRAFFIC: s = gen < KEYLOG_GENERATIONS ? &e->client_app[gen] : NULL; break;
	case KEYLOG_SERVER_TRAFFIC: s = gen < KEYLOG_GENERATIONS ? &e->server_app[gen] : NULL; break;
	}
	if (!s || !s->len)
		goto Exit;
	memcpy(out, s->v, s->len);
	*len = s->len;
	ret = 1;
Exit:
	pthread_mutex_unlock(&kl->lock);
	return ret;
}

bool keylog_knows(struct keylog *kl, const uint8_t client_random[32])
{
	bool known;

	pthread_mutex_lock(&kl->lock);
	known = find(kl, client_random) != NULL;
	pthread_mutex_unlock(&kl->lock);
	return known;
}

size_t keylog_entries(struct keylog *kl)
{
	size_t n;

	pthread_mutex_lock(&kl->lock);
	n = kl->n;
	pthread_mutex_unlock(&kl->lock);
	return n;
}

size_t keylog_malformed(struct keylog *kl)
{
	size_t n;

	pthread_mutex_lock(&kl->lock);
	n = kl->malformed;
	pthread_mutex_unlock(&kl->lock);
	return n;
}
