/* conffile: reads the configuration file's lines (conffile.h says the
 * syntax) into entries.  The bytes are read through the cursor; each line
 * is checked whole before anything is kept from it. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/conffile.h"
#include "wire/cursor.h"

static bool is_blank(uint8_t b)
{
	return b == ' ' || b == '\t';
}

/* A key or section name: lower-case letters, digits and '-', as the long
 * options are spelt. */
static bool is_name_char(uint8_t b)
{
	return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-';
}

static void trim(struct cursor *c)
{
	uint8_t b;

	while (cursor_peek_u8(c, 0, &b) && is_blank(b))
		if (!cursor_skip(c, 1))
			return;
	while (cursor_len(c) > 0 && cursor_peek_u8(c, cursor_len(c) - 1, &b) && is_blank(b))
		cursor_init(c, cursor_data(c), cursor_len(c) - 1);
}

/* The leading name of c, taken off it (possibly empty). */
static void take_name(struct cursor *c, struct cursor *name)
{
	size_t n = 0;
	uint8_t b;

	while (cursor_peek_u8(c, n, &b) && is_name_char(b))
		n++;
	if (!cursor_get_bytes(c, name, n))
		cursor_init(name, cursor_data(c), 0);
}

static char *dup_cursor(const struct cursor *c)
{
	char *s = malloc(cursor_len(c) + 1);

	if (s) {
		memcpy(s, cursor_data(c), cursor_len(c));
		s[cursor_len(c)] = '\0';
	}
	return s;
}

static void say(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void say(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = line ? snprintf(err, errlen, "%s:%u: ", path, line) : snprintf(err, errlen, "%s: ", path);

	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* A line's bytes, shown in a message: printable, cut to 40. */
static void shown(const struct cursor *c, char *out, size_t outlen)
{
	struct cursor cut;

	cursor_init(&cut, cursor_data(c), cursor_len(c) > 40 ? 40 : cursor_len(c));
	cursor_copy_printable(&cut, out, outlen);
}

static int grow(void **v, size_t n, size_t size)
{
	void *p;

	if (n & (n - 1))   /* room doubles at each power of two */
		return 1;
	if (!(p = realloc(*v, (n ? 2 * n : 8) * size)))
		return 0;
	*v = p;
	return 1;
}

static int add_section(struct conf_file *cf, const struct cursor *name, unsigned line)
{
	char *s;

	if (!grow((void **)&cf->sections, cf->n_sections, sizeof(*cf->sections)) ||
	    !grow((void **)&cf->section_lines, cf->n_sections, sizeof(*cf->section_lines)) || !(s = dup_cursor(name)))
		return 0;
	cf->sections[cf->n_sections] = s;
	cf->section_lines[cf->n_sections++] = line;
	return 1;
}

static int add_entry(struct conf_file *cf, const struct cursor *key, const struct cursor *value, unsigned line)
{
	struct conf_entry *e;

	if (!grow((void **)&cf->entries, cf->n, sizeof(*cf->entries)))
		return 0;
	e = &cf->entries[cf->n];
	e->section = cf->sections[cf->n_sections - 1];
	e->line = line;
	e->value = NULL;
	if (!(e->key = dup_cursor(key)))
		return 0;
	if (value && !(e->value = dup_cursor(value))) {
		free(e->key);
		return 0;
	}
	cf->n++;
	return 1;
}

enum line_result { LINE_OK, LINE_BAD, LINE_NOMEM };

/* "[name]" (the '[' taken already). */
static enum line_result section_line(struct conf_file *cf, struct cursor *rest, unsigned line, char *err,
				     size_t errlen)
{
	struct cursor name;
	uint8_t b;

	trim(rest);
	take_name(rest, &name);
	trim(rest);
	if (cursor_len(&name) == 0 || !cursor_get_u8(rest, &b) || b != ']' || cursor_len(rest) != 0) {
		say(err, errlen, cf->path, line, "expected a section such as [proxy]: a command's name in brackets");
		return LINE_BAD;
	}
	return add_section(cf, &name, line) ? LINE_OK : LINE_NOMEM;
}

/* "key", "key = value" or "key = \"value\"". */
static enum line_result key_line(struct conf_file *cf, struct cursor *rest, unsigned line, char *err,
				 size_t errlen)
{
	struct cursor key, value;
	uint8_t b, last;
	bool has_value = false;
	char text[64];

	take_name(rest, &key);
	if (cursor_len(&key) == 0) {
		shown(rest, text, sizeof(text));
		say(err, errlen, cf->path, line, "expected 'key = value' or a [section], not '%s'", text);
		return LINE_BAD;
	}
	trim(rest);
	if (cursor_len(rest) == 0) {
		cursor_init(&value, NULL, 0);
	} else if (!cursor_get_u8(rest, &b) || b != '=') {
		shown(&key, text, sizeof(text));
		say(err, errlen, cf->path, line, "expected '=' after the key '%s' (keys are long option names: "
		    "lower-case letters, digits and '-')", text);
		return LINE_BAD;
	} else {
		trim(rest);
		value = *rest;
		has_value = true;
		if (cursor_peek_u8(&value, 0, &b) && b == '"') {
			if (cursor_len(&value) < 2 || !cursor_peek_u8(&value, cursor_len(&value) - 1, &last) ||
			    last != '"') {
				say(err, errlen, cf->path, line, "expected a closing '\"' at the end of the line");
				return LINE_BAD;
			}
			cursor_init(&value, cursor_data(&value) + 1, cursor_len(&value) - 2);
		}
	}
	if (cf->n_sections == 0) {
		shown(&key, text, sizeof(text));
		say(err, errlen, cf->path, line, "'%s' before any section: expected a [command] line first, such as [proxy]",
		    text);
		return LINE_BAD;
	}
	return add_entry(cf, &key, has_value ? &value : NULL, line) ? LINE_OK : LINE_NOMEM;
}

/* One line (without its newline): blank, a comment, a section or a key. */
static enum line_result one_line(struct conf_file *cf, struct cursor *text, unsigned line, char *err,
				 size_t errlen)
{
	uint8_t b;
	size_t i;

	if (cursor_len(text) > 0 && cursor_peek_u8(text, cursor_len(text) - 1, &b) && b == '\r')
		cursor_init(text, cursor_data(text), cursor_len(text) - 1);
	for (i = 0; cursor_peek_u8(text, i, &b); i++)
		if ((b < 0x20 && b != '\t') || b == 0x7f) {
			say(err, errlen, cf->path, line, "control character 0x%02x at column %zu: expected text", b, i + 1);
			return LINE_BAD;
		}
	trim(text);
	if (!cursor_peek_u8(text, 0, &b) || b == '#' || b == ';')
		return LINE_OK;
	if (b == '[')
		return cursor_skip(text, 1) ? section_line(cf, text, line, err, errlen) : LINE_BAD;
	return key_line(cf, text, line, err, errlen);
}

int conffile_parse(struct conf_file *cf, const char *path, const uint8_t *data, size_t len, char *err, size_t errlen)
{
	struct cursor all, text;
	unsigned line = 0;
	size_t at;
	enum line_result r = LINE_OK;

	if (!(cf->path = strdup(path))) {
		snprintf(err, errlen, "%s: out of memory", path);
		return 0;
	}
	cursor_init(&all, data, data ? len : 0);
	/* a UTF-8 byte order mark, as some editors write one */
	if (cursor_starts_with(&all, "\xef\xbb\xbf", 3, 0) && !cursor_skip(&all, 3))
		return 0;
	while (r == LINE_OK && cursor_len(&all) > 0) {
		line++;
		if (!cursor_find(&all, "\n", 1, &at))
			at = cursor_len(&all);
		if (!cursor_get_bytes(&all, &text, at))
			break;
		if (cursor_len(&all) > 0 && !cursor_skip(&all, 1))
			break;
		r = one_line(cf, &text, line, err, errlen);
	}
	if (r == LINE_NOMEM)
		say(err, errlen, cf->path, line, "out of memory");
	if (r != LINE_OK) {
		conffile_clear(cf);
		return 0;
	}
	return 1;
}

int conffile_read(struct conf_file *cf, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0;
	int ok = 0;

	if (!f) {
		say(err, errlen, path, 0, "cannot open the configuration file: %s", strerror(errno));
		return 0;
	}
	if (!(buf = malloc(CONFFILE_MAX_BYTES + 1))) {
		say(err, errlen, path, 0, "out of memory");
		goto Exit;
	}
	len = fread(buf, 1, CONFFILE_MAX_BYTES + 1, f);
	if (ferror(f)) {
		say(err, errlen, path, 0, "cannot read the configuration file: %s", strerror(errno));
		goto Exit;
	}
	if (len > CONFFILE_MAX_BYTES) {
		say(err, errlen, path, 0, "larger than %u bytes: expected a configuration file", CONFFILE_MAX_BYTES);
		goto Exit;
	}
	ok = conffile_parse(cf, path, buf, len, err, errlen);
Exit:
	free(buf);
	fclose(f);
	return ok;
}

void conffile_clear(struct conf_file *cf)
{
	size_t i;

	for (i = 0; i < cf->n; i++) {
		free(cf->entries[i].key);
		free(cf->entries[i].value);
	}
	for (i = 0; i < cf->n_sections; i++)
		free(cf->sections[i]);
	free(cf->entries);
	free(cf->sections);
	free(cf->section_lines);
	free(cf->path);
	memset(cf, 0, sizeof(*cf));
}

/* Edits (insertions, deletions, substitutions) from a to b, counted up to
 * 3: enough to tell "near" from "not near". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64], i, j;

	if (la >= 63 || lb >= 63)
		return 3;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]), del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(*prev));
	}
	return prev[lb] > 3 ? 3 : prev[lb];
}

const char *conffile_nearest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_d = 3, i, d;

	for (i = 0; i < n; i++) {
		d = distance(word, candidates[i]);
		if (d < best_d && 2 * d < strlen(word)) {
			best = candidates[i];
			best_d = d;
		}
	}
	return best;
}
