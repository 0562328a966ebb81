/* The one JSON writer (out/json): every record mtlsdiag writes is built
 * here, so its escaping, its commas and its failures are tested once. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out/json.h"

/* One string through the escaper, as a bare value. */
static void expect(const char *in, const char *want)
{
	struct json j;

	json_init(&j);
	json_string(&j, NULL, in);
	cr_assert_str_eq(json_text(&j), want, "in: %s", in ? in : "(null)");
	json_free(&j);
}

Test(json, valid_utf8_passes_and_anything_else_is_escaped)
{
	expect(NULL, "null");
	expect("", "\"\"");
	expect("CN=Zürich Ø, O=\"x\\y\"", "\"CN=Zürich Ø, O=\\\"x\\\\y\\\"\"");
	expect("a\nb\tc\rd", "\"a\\nb\\tc\\rd\"");
	expect("bell\x07 del\x7f", "\"bell\\u0007 del\\u007f\"");
	/* a lone continuation byte, a cut sequence, an overlong lead */
	expect("x\x80y", "\"x\\u0080y\"");
	expect("\xc3", "\"\\u00c3\"");
	expect("\xc0\xaf", "\"\\u00c0\\u00af\"");
	/* overlong three- and four-byte forms, a UTF-16 surrogate, past U+10FFFF */
	expect("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"");
	expect("\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\"");
	expect("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");
	expect("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"");
	/* the largest code points that are allowed pass whole */
	expect("\xed\x9f\xbf \xf4\x8f\xbf\xbf", "\"\xed\x9f\xbf \xf4\x8f\xbf\xbf\"");
	expect("\xf0\x9f\x94\x92", "\"\xf0\x9f\x94\x92\"");
	/* Latin-1 text is not UTF-8: each byte escaped, nothing garbled */
	expect("Z\xfcrich", "\"Z\\u00fcrich\"");
}

Test(json, members_nest_with_commas_where_they_belong)
{
	struct json j;

	json_init(&j);
	json_object(&j, NULL);
	json_string(&j, "type", "connection");
	json_uint(&j, "schema", 1);
	json_object(&j, "client");
	json_string(&j, "ip", "10.0.0.1");
	json_uint(&j, "port", 65535);
	json_end(&j);
	json_array(&j, "empty");
	json_end(&j);
	json_array(&j, "list");
	json_string(&j, NULL, "a");
	json_null(&j, NULL);
	json_object(&j, NULL);
	json_end(&j);
	json_end(&j);
	json_int(&j, "neg", -42);
	json_bool(&j, "t", true);
	json_bool(&j, "f", false);
	json_null(&j, "n");
	json_uint(&j, "max", 18446744073709551615ULL);
	json_end(&j);
	cr_assert_str_eq(json_text(&j),
			 "{\"type\":\"connection\",\"schema\":1,\"client\":{\"ip\":\"10.0.0.1\",\"port\":65535},"
			 "\"empty\":[],\"list\":[\"a\",null,{}],\"neg\":-42,\"t\":true,\"f\":false,\"n\":null,"
			 "\"max\":18446744073709551615}");
	json_free(&j);
}

static char *written(struct json *j, int *rc, int *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	cr_assert_not_null(out);
	errno = 0;
	*rc = json_write_line(j, out);
	*err = errno;
	cr_assert_eq(fclose(out), 0);
	return buf;
}

Test(json, a_record_is_written_as_one_line_and_the_builder_is_reused)
{
	struct json j;
	int rc, err;
	char *out;

	json_init(&j);
	json_object(&j, NULL);
	json_string(&j, "k", "v");
	json_end(&j);
	out = written(&j, &rc, &err);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(out, "{\"k\":\"v\"}\n");
	free(out);
	/* the builder keeps its text after a write, and starts afresh on reset */
	cr_assert_str_eq(json_text(&j), "{\"k\":\"v\"}");
	json_reset(&j);
	json_object(&j, NULL);
	json_end(&j);
	out = written(&j, &rc, &err);
	cr_assert_str_eq(out, "{}\n");
	free(out);
	json_free(&j);
}

Test(json, an_unfinished_or_overdeep_record_is_refused_not_written)
{
	struct json j;
	int rc, err;
	char *out;

	json_init(&j);
	json_object(&j, NULL);
	json_string(&j, "k", "v");
	out = written(&j, &rc, &err);
	cr_assert_eq(rc, -1);
	cr_assert_eq(err, EINVAL);
	cr_assert_str_eq(out, "");
	free(out);
	json_free(&j);

	json_init(&j);
	for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
		json_array(&j, NULL);
	for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
		json_end(&j);
	out = written(&j, &rc, &err);
	cr_assert_eq(rc, -1);
	cr_assert_eq(err, ENOMEM);
	cr_assert_str_eq(out, "");
	cr_assert_str_eq(json_text(&j), "");
	free(out);
	json_free(&j);

	/* a close with nothing open */
	json_init(&j);
	json_end(&j);
	out = written(&j, &rc, &err);
	cr_assert_eq(rc, -1);
	free(out);
	json_free(&j);
}

Test(json, a_stream_that_fails_is_reported)
{
	struct json j;
	FILE *full = fopen("/dev/full", "w");

	cr_assert_not_null(full);
	setvbuf(full, NULL, _IONBF, 0);
	json_init(&j);
	json_object(&j, NULL);
	json_string(&j, "k", "v");
	json_end(&j);
	errno = 0;
	cr_assert_eq(json_write_line(&j, full), -1);
	cr_assert_eq(errno, ENOSPC);
	fclose(full);
	json_free(&j);
}

Test(json, a_long_record_grows_its_buffer)
{
	struct json j;
	char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_init(&j);
	json_array(&j, NULL);
	for (int i = 0; i < 100; i++)
		json_string(&j, NULL, big);
	json_end(&j);
	cr_assert_eq(strlen(json_text(&j)), 2 + 100 * (sizeof(big) - 1 + 2) + 99);
	json_free(&j);
}

Test(json, a_remembered_value_is_written_again_as_it_was_built)
{
	struct json j;
	size_t mark;
	char longkey[JSON_MEMO_KEY + 2];

	json_init(&j);
	cr_assert_not(json_recall(&j, "k1"), "nothing kept yet");
	json_array(&j, NULL);
	json_string(&j, NULL, "first");
	/* built after a comma: the comma is not part of what is kept */
	mark = json_mark(&j);
	json_object(&j, NULL);
	json_string(&j, "s", "a\"b");
	json_uint(&j, "n", 7);
	json_end(&j);
	json_remember(&j, "k1", mark);
	cr_assert(json_recall(&j, "k1"));
	cr_assert_not(json_recall(&j, "k2"));
	json_end(&j);
	cr_assert_str_eq(json_text(&j), "[\"first\",{\"s\":\"a\\\"b\",\"n\":7},{\"s\":\"a\\\"b\",\"n\":7}]");

	/* kept across records: the first element of the next one, no comma */
	json_reset(&j);
	json_array(&j, NULL);
	cr_assert(json_recall(&j, "k1"));
	json_null(&j, NULL);
	json_end(&j);
	cr_assert_str_eq(json_text(&j), "[{\"s\":\"a\\\"b\",\"n\":7},null]");

	/* a key longer than JSON_MEMO_KEY is never kept */
	memset(longkey, 'x', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	json_reset(&j);
	json_array(&j, NULL);
	mark = json_mark(&j);
	json_bool(&j, NULL, true);
	json_remember(&j, longkey, mark);
	cr_assert_not(json_recall(&j, longkey));
	json_end(&j);
	cr_assert_str_eq(json_text(&j), "[true]");

	/* many more keys than slots: each recalled one is still its own */
	json_reset(&j);
	json_array(&j, NULL);
	for (unsigned i = 0; i < 4 * JSON_MEMO_SLOTS; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%u", i);
		mark = json_mark(&j);
		json_uint(&j, NULL, i);
		json_remember(&j, key, mark);
	}
	json_end(&j);
	for (unsigned i = 0, found = 0; i < 4 * JSON_MEMO_SLOTS; i++) {
		char key[16], want[16];

		snprintf(key, sizeof(key), "%u", i);
		snprintf(want, sizeof(want), "[%u]", i);
		json_reset(&j);
		json_array(&j, NULL);
		if (json_recall(&j, key)) {
			found++;
			json_end(&j);
			cr_assert_str_eq(json_text(&j), want);
		}
		if (i + 1 == 4 * JSON_MEMO_SLOTS)
			cr_assert(found > 0 && found <= JSON_MEMO_SLOTS, "%u kept", found);
	}
	json_free(&j);
}

Test(json, numbers_and_escapes_are_written_by_hand_as_printf_would)
{
	struct json j;
	char want[64];
	static const long long ints[] = { 0, 1, -1, 9, 10, -10, 1234567890123LL, -9223372036854775807LL - 1,
					   9223372036854775807LL };

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		json_init(&j);
		json_int(&j, NULL, ints[i]);
		snprintf(want, sizeof(want), "%lld", ints[i]);
		cr_assert_str_eq(json_text(&j), want);
		json_free(&j);
	}
	/* every control byte, and runs longer than a word on either side */
	for (unsigned c = 1; c < 0x20; c++) {
		char in[40], out[64];

		snprintf(in, sizeof(in), "abcdefghij%cklmnopqrstu", (char)c);
		if (c == '\n' || c == '\r' || c == '\t')
			snprintf(out, sizeof(out), "\"abcdefghij\\%cklmnopqrstu\"", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		else
			snprintf(out, sizeof(out), "\"abcdefghij\\u%04xklmnopqrstu\"", c);
		expect(in, out);
	}
	expect("0123456789abcdef\"", "\"0123456789abcdef\\\"\"");
	expect("01234567\\89abcdef", "\"01234567\\\\89abcdef\"");
	expect("01234567~\x7f", "\"01234567~\\u007f\"");
}

/* Member names are copied eight bytes a round while checked: every length
 * around the rounds and the room taken for a name, and a name that needs
 * an escape at each place, come out as the escaper writes them. */
Test(json, member_names_of_every_length_and_with_escapes)
{
	struct json j, ref;
	char name[100];

	for (size_t n = 0; n < sizeof(name) - 1; n++) {
		for (size_t bad = 0; bad <= n; bad++) {
			memset(name, 'k', n);
			name[n] = '\0';
			if (bad < n)
				name[bad] = bad % 2 ? '"' : '\n';
			json_init(&j);
			json_object(&j, NULL);
			json_uint(&j, "first", 1);
			json_bool(&j, name, true);
			json_end(&j);
			/* the name as a string value, through the escaper */
			json_init(&ref);
			json_string(&ref, NULL, name);
			{
				char want[300];

				snprintf(want, sizeof(want), "{\"first\":1,%s:true}", json_text(&ref));
				cr_assert_str_eq(json_text(&j), want, "name of %zu bytes, escape at %zu", n, bad);
			}
			json_free(&ref);
			json_free(&j);
		}
	}
}

/* A byte at a time, for the test alone: what the escaper must write for
 * text that is ASCII (plain, or one of the escapes). */
static void escape_slowly(const char *in, char *out, size_t len)
{
	size_t o = 0;

	out[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 8 < len; p++) {
		if (*p == '"' || *p == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%c", *p);
		else if (*p == '\n')
			o += (size_t)snprintf(out + o, len - o, "\\n");
		else if (*p < 0x20 || *p >= 0x7f)
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* Values are scanned sixteen bytes at a time, the last sixteen read again
 * from the end, and those of eight to fifteen bytes as two words of eight:
 * every length around those blocks, with a byte to escape at every place
 * (or none), among plain bytes from both ends of the plain range, comes
 * out as a byte-at-a-time escaper writes it. */
Test(json, string_values_of_every_length_with_an_escape_at_every_place)
{
	static const char bad[] = { '"', '\\', '\n', 0x01, 0x1f, 0x7f, (char)0x80, (char)0xff };
	char in[80], want[600];

	for (size_t n = 0; n < sizeof(in) - 1; n++) {
		for (size_t at = 0; at <= n; at++) {
			for (size_t b = 0; b < sizeof(bad); b++) {
				for (size_t i = 0; i < n; i++)
					in[i] = i % 7 == 3 ? ' ' : i % 7 == 5 ? '~' : (char)('a' + i % 26);
				in[n] = '\0';
				if (at < n)
					in[at] = bad[b];
				escape_slowly(in, want, sizeof(want));
				expect(in, want);
				if (at == n)
					break;   /* nothing to escape: once is enough */
			}
		}
	}
}
