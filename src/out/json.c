#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "out/json.h"
#include "wire/fnv.h"

/* A value kept for reuse: its text as written, under its key. */
struct json_memo_slot {
	char key[JSON_MEMO_KEY + 1];
	char *text;
	size_t len;
};

struct json_memo {
	struct json_memo_slot slot[JSON_MEMO_SLOTS];
};

void json_init(struct json *j)
{
	memset(j, 0, sizeof(*j));
}

void json_reset(struct json *j)
{
	char *buf = j->buf;
	size_t cap = j->cap;
	struct json_memo *memo = j->memo;

	json_init(j);
	j->buf = buf;
	j->cap = cap;
	j->memo = memo;
}

void json_free(struct json *j)
{
	if (j->memo)
		for (size_t i = 0; i < JSON_MEMO_SLOTS; i++)
			free(j->memo->slot[i].text);
	free(j->memo);
	free(j->buf);
	json_init(j);
}

/* Room for n more bytes and the terminating NUL, growing the buffer. */
static bool grow(struct json *j, size_t n)
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

/* The common case, inline: the room is there.  (After a failure the
 * bytes still go where there is room; the record is refused anyway.) */
static inline bool reserve(struct json *j, size_t n)
{
	return j->len + n < j->cap || grow(j, n);
}

/* The text is NUL-terminated only where it is read (json_text,
 * json_write_line): reserve always leaves the room for it. */
static inline void put(struct json *j, const char *p, size_t n)
{
	if (!reserve(j, n))
		return;
	memcpy(j->buf + j->len, p, n);
	j->len += n;
}

static inline void putch(struct json *j, char c)
{
	if (!reserve(j, 1))
		return;
	j->buf[j->len++] = c;
}

/* n bytes from s to o, n at most 32: fixed-size moves that overlap
 * rather than a call or a loop (member names, short values). */
static inline void copy_short(char *o, const char *s, size_t n)
{
	if (n >= 16) {
		memcpy(o, s, 16);
		memcpy(o + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(o, s, 8);
		memcpy(o + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(o, s, 4);
		memcpy(o + n - 4, s + n - 4, 4);
	} else {
		for (size_t i = 0; i < n; i++)
			o[i] = s[i];
	}
}

/* Bytes that go into a JSON string as they are: printable ASCII but the
 * quote and the backslash.  (UTF-8 sequences are checked on their own.) */
static const unsigned char plain[256] = {
	[0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,   /* not '"' (0x22), '\\' (0x5c) */
};

/* Sixteen bytes at a time: a bit for each byte of the sixteen at p that
 * is not plain (below 0x20, above 0x7e, a quote or a backslash).  SSE2 on
 * x86-64 (every such CPU has it): the mask in one instruction, and the
 * first bad byte is its lowest bit; elsewhere GCC's vector extension. */
#if defined(__SSE2__)
#include <emmintrin.h>

static inline unsigned bad16(const unsigned char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	/* v - 0x20 above 0x5e: outside 0x20..0x7e (unsigned, wrapping) */
	__m128i t = _mm_sub_epi8(v, _mm_set1_epi8(0x20));
	__m128i out = _mm_cmpeq_epi8(_mm_max_epu8(t, _mm_set1_epi8(0x5f)), t);
	__m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
	__m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));

	return (unsigned)_mm_movemask_epi8(_mm_or_si128(out, _mm_or_si128(q, b)));
}
#else
typedef uint8_t bytes16 __attribute__((vector_size(16)));

static inline unsigned bad16(const unsigned char *p)
{
	bytes16 v, bad;
	unsigned m = 0;

	memcpy(&v, p, 16);
	bad = (bytes16)((v < 0x20) | (v >= 0x7f) | (v == '"') | (v == '\\'));
	for (unsigned i = 0; i < 16; i++)
		m |= (unsigned)(bad[i] & 1) << i;
	return m;
}
#endif

/* Whether the eight bytes in x are all plain, in a general register: a
 * byte below 0x20, a byte above 0x7e, a zero where x meets a quote or a
 * backslash (each test exact for "any byte", as borrows and carries only
 * reach bytes the same test flags already). */
static inline bool plain8(uint64_t x)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), high = ones * 0x80;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	uint64_t bad = ((x - ones * 0x20) & ~x) | ((x + ones) | x) |
		       ((q - ones) & ~q) | ((b - ones) & ~b);

	return !(bad & high);
}

/* Copies the plain bytes from p on into the builder, as put would, and
 * returns the first byte that is not plain (or end): one pass, sixteen
 * bytes stored and then checked (the room is taken first), the last few
 * as the sixteen that end at end when the text is that long; shorter
 * text as two words of eight that overlap. */
static const unsigned char *copy_plain(struct json *j, const unsigned char *p, const unsigned char *end)
{
	size_t n = (size_t)(end - p), left;
	unsigned bad;
	char *o;

	if (!reserve(j, n))
		return end;   /* the record is refused: nothing more to copy */
	o = j->buf + j->len;
	if (n >= 8 && n < 16) {
		uint64_t a, b;

		memcpy(&a, p, 8);
		memcpy(&b, end - 8, 8);
		if (plain8(a) && plain8(b)) {
			memcpy(o, &a, 8);
			memcpy(o + n - 8, &b, 8);
			j->len += n;
			return end;
		}
	}
	while (end - p >= 16) {
		memcpy(o, p, 16);
		if ((bad = bad16(p)) != 0) {
			left = (size_t)__builtin_ctz(bad);
			goto Stop;
		}
		p += 16;
		o += 16;
	}
	left = (size_t)(end - p);
	if (left && n >= 16) {
		/* the last sixteen, of which those before p are plain already */
		bad = bad16(end - 16) >> (16 - left);
		memcpy(o + left - 16, end - 16, 16);
		if (bad)
			left = (size_t)__builtin_ctz(bad);
	} else {
		size_t i = 0;

		while (i < left && plain[p[i]]) {
			o[i] = (char)p[i];
			i++;
		}
		left = i;
	}
Stop:
	p += left;
	o += left;
	j->len = (size_t)(o - j->buf);
	return p;
}

static size_t decimal(char out[20], unsigned long long v)
{
	char rev[20];
	size_t n = 0, i;

	do {
		rev[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = rev[n - 1 - i];
	return n;
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
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);

	putch(j, '"');
	for (;;) {
		char esc[6] = { '\\', 'u', '0', '0' };
		size_t u;

		/* printable ASCII needs no escape: copied a run at a time */
		p = copy_plain(j, p, end);
		if (p == end)
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
			esc[4] = "0123456789abcdef"[*p >> 4];
			esc[5] = "0123456789abcdef"[*p & 15];
			put(j, esc, 6);
		}
		p++;
	}
	putch(j, '"');
}

/* Room taken for a member's name in one go: the names are the program's
 * own, far shorter than this. */
#define LEAD_ROOM 64

/* The comma and the member's name before a value; known: the name's
 * length plus one when it is the program's own (json_known_name_). */
static void lead(struct json *j, const char *key, size_t known)
{
	bool comma = false;

	if (j->depth > 0) {
		comma = j->has_member[j->depth - 1];
		j->has_member[j->depth - 1] = true;
	}
	if (known && known <= 33 && reserve(j, known + 3)) {
		char *o = j->buf + j->len;

		*o = ',';
		o += comma;
		*o++ = '"';
		copy_short(o, key, known - 1);
		o += known - 1;
		o[0] = '"';
		o[1] = ':';
		j->len = (size_t)(o + 2 - j->buf);
		return;
	}
	/* the names are plain and short: checked while they are copied, in
	 * one pass, the comma and the quotes around them (nothing counts
	 * until the length is set) */
	if (key && reserve(j, LEAD_ROOM)) {
		char *o = j->buf + j->len;
		size_t i = 0, k;

		if (comma)
			*o++ = ',';
		*o++ = '"';
		/* eight bytes a round, the room checked once a round (the NUL
		 * is not plain: it ends the copy) */
		while (i + 8 <= LEAD_ROOM - 4) {
#pragma GCC unroll 8
			for (k = 0; k < 8; k++) {
				if (!plain[(unsigned char)key[i + k]])
					goto Stop;
				o[i + k] = key[i + k];
			}
			i += 8;
		}
		k = 0;
Stop:
		i += k;
		if (key[i] == '\0') {
			o += i;
			o[0] = '"';
			o[1] = ':';
			j->len = (size_t)(o + 2 - j->buf);
			return;
		}
	}
	if (comma)
		putch(j, ',');
	if (!key)
		return;
	quoted(j, key);
	putch(j, ':');
}

static void open_container(struct json *j, const char *key, size_t known, char c)
{
	lead(j, key, known);
	if (j->depth == JSON_MAX_DEPTH) {
		j->failed = true;
		return;
	}
	putch(j, c);
	j->closer[j->depth] = c == '{' ? '}' : ']';
	j->has_member[j->depth++] = false;
}

void json_object_(struct json *j, const char *key, size_t known)
{
	open_container(j, key, known, '{');
}

void json_array_(struct json *j, const char *key, size_t known)
{
	open_container(j, key, known, '[');
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

void json_string_(struct json *j, const char *key, size_t known, const char *s)
{
	lead(j, key, known);
	if (s)
		quoted(j, s);
	else
		put(j, "null", 4);
}

void json_uint_(struct json *j, const char *key, size_t known, unsigned long long v)
{
	char num[20];

	lead(j, key, known);
	put(j, num, decimal(num, v));
}

void json_int_(struct json *j, const char *key, size_t known, long long v)
{
	char num[21];

	lead(j, key, known);
	if (v < 0) {
		num[0] = '-';
		put(j, num, 1 + decimal(num + 1, 0ULL - (unsigned long long)v));
	} else {
		put(j, num, decimal(num, (unsigned long long)v));
	}
}

void json_bool_(struct json *j, const char *key, size_t known, bool v)
{
	lead(j, key, known);
	if (v)
		put(j, "true", 4);
	else
		put(j, "false", 5);
}

void json_null_(struct json *j, const char *key, size_t known)
{
	lead(j, key, known);
	put(j, "null", 4);
}

bool json_recall(struct json *j, const char *key)
{
	const struct json_memo_slot *s;
	size_t n = strlen(key);

	if (!j->memo || n > JSON_MEMO_KEY)
		return false;
	s = &j->memo->slot[fnv32(key, n) % JSON_MEMO_SLOTS];
	if (!s->text || strcmp(s->key, key) != 0)
		return false;
	lead(j, NULL, 0);
	put(j, s->text, s->len);
	return true;
}

size_t json_mark(const struct json *j)
{
	return j->len;
}

void json_remember(struct json *j, const char *key, size_t mark)
{
	struct json_memo_slot *s;
	size_t n = strlen(key), len;
	const char *text;
	char *copy;

	if (j->failed || mark >= j->len || n > JSON_MEMO_KEY)
		return;
	text = j->buf + mark;
	len = j->len - mark;
	/* the value without the comma that separated it from the one before */
	if (text[0] == ',') {
		text++;
		len--;
	}
	if (!j->memo && !(j->memo = calloc(1, sizeof(*j->memo))))
		return;
	if (!(copy = malloc(len)))
		return;
	memcpy(copy, text, len);
	s = &j->memo->slot[fnv32(key, n) % JSON_MEMO_SLOTS];
	free(s->text);
	memcpy(s->key, key, n + 1);
	s->text = copy;
	s->len = len;
}

const char *json_text(const struct json *j)
{
	if (!j->buf || j->failed)
		return "";
	j->buf[j->len] = '\0';   /* the room is always there (reserve) */
	return j->buf;
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
	return 0;
}
