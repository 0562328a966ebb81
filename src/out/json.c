#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "out/json.h"

void json_init(struct json *j)
{
	memset(j, 0, sizeof(*j));
}

void json_reset(struct json *j)
{
	char *buf = j->buf;
	size_t cap = j->cap;

	json_init(j);
	j->buf = buf;
	j->cap = cap;
}

void json_free(struct json *j)
{
	free(j->buf);
	json_init(j);
}

/* Room for n more bytes and the terminating NUL. */
static bool reserve(struct json *j, size_t n)
{
	size_t want = j->len + n + 1, cap = j->cap ? j->cap : 1024;
	char *p;

	if (j->failed)
		return false;
	if (want <= j->cap)
		return true;
	while (cap < want)
		cap *= 2;
	p = realloc(j->buf, cap);
	if (!p) {
		j->failed = true;
		return false;
	}
	j->buf = p;
	j->cap = cap;
	return true;
}

static void put(struct json *j, const char *p, size_t n)
{
	if (!reserve(j, n))
		return;
	memcpy(j->buf + j->len, p, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void putch(struct json *j, char c)
{
	put(j, &c, 1);
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0: no overlong forms,
 * no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

/* The one escaper: a quoted JSON string. */
static void quoted(struct json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putch(j, '"');
	while (*p) {
		const unsigned char *run = p;
		char esc[8];
		size_t u;

		/* printable ASCII needs no escape: copied a run at a time */
		while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			put(j, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		u = *p >= 0x80 ? utf8_len(p) : 0;
		if (u) {
			put(j, (const char *)p, u);
			p += u;
			continue;
		}
		switch (*p) {
		case '"': put(j, "\\\"", 2); break;
		case '\\': put(j, "\\\\", 2); break;
		case '\n': put(j, "\\n", 2); break;
		case '\r': put(j, "\\r", 2); break;
		case '\t': put(j, "\\t", 2); break;
		default:   /* a control byte, DEL, or a byte that is not UTF-8 */
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(j, esc, 6);
		}
		p++;
	}
	putch(j, '"');
}

/* The comma and the member's name before a value. */
static void lead(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (j->has_member[j->depth - 1])
			putch(j, ',');
		j->has_member[j->depth - 1] = true;
	}
	if (key) {
		quoted(j, key);
		putch(j, ':');
	}
}

static void open_container(struct json *j, const char *key, char c)
{
	lead(j, key);
	if (j->depth == JSON_MAX_DEPTH) {
		j->failed = true;
		return;
	}
	putch(j, c);
	j->closer[j->depth] = c == '{' ? '}' : ']';
	j->has_member[j->depth++] = false;
}

void json_object(struct json *j, const char *key)
{
	open_container(j, key, '{');
}

void json_array(struct json *j, const char *key)
{
	open_container(j, key, '[');
}

void json_end(struct json *j)
{
	if (j->depth == 0) {
		j->failed = true;
		return;
	}
	j->depth--;
	putch(j, j->closer[j->depth]);
}

void json_string(struct json *j, const char *key, const char *s)
{
	lead(j, key);
	if (s)
		quoted(j, s);
	else
		put(j, "null", 4);
}

void json_uint(struct json *j, const char *key, unsigned long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", v);

	lead(j, key);
	put(j, num, (size_t)n);
}

void json_int(struct json *j, const char *key, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", v);

	lead(j, key);
	put(j, num, (size_t)n);
}

void json_bool(struct json *j, const char *key, bool v)
{
	lead(j, key);
	if (v)
		put(j, "true", 4);
	else
		put(j, "false", 5);
}

void json_null(struct json *j, const char *key)
{
	lead(j, key);
	put(j, "null", 4);
}

const char *json_text(const struct json *j)
{
	return j->buf && !j->failed ? j->buf : "";
}

int json_write_line(struct json *j, FILE *out)
{
	if (j->failed) {
		errno = ENOMEM;
		return -1;
	}
	if (j->depth != 0 || j->len == 0) {
		errno = EINVAL;
		return -1;
	}
	putch(j, '\n');
	if (j->failed) {
		errno = ENOMEM;
		return -1;
	}
	/* fwrite holds the stream's lock for the whole record */
	if (fwrite(j->buf, 1, j->len, out) != j->len)
		return -1;
	j->len--;
	j->buf[j->len] = '\0';
	return 0;
}
