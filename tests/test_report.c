/* The one JSON string escaper of every record (report_json_string): the
 * pcap, proxy and probe records all write network strings through it. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out/report.h"

static char *escaped(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	cr_assert_not_null(out);
	report_json_string(out, s);
	cr_assert_eq(fclose(out), 0);
	return buf;
}

static void expect(const char *in, const char *want)
{
	char *got = escaped(in);

	cr_assert_str_eq(got, want, "in: %s", in ? in : "(null)");
	free(got);
}

Test(report, valid_utf8_passes_and_anything_else_is_escaped)
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
	/* four-byte UTF-8 passes whole */
	expect("\xf0\x9f\x94\x92", "\"\xf0\x9f\x94\x92\"");
}
