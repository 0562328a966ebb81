/* Every output sample in README.md and the pages of doc/ is what the command it
 * names prints (scripts/check-doc-samples, which starts the servers a live
 * sample needs through scripts/doc-live); and the checker itself fails on
 * a sample that differs and on one that names no command. */
#include "config.h"

#include <criterion/criterion.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"
#include "proxyutil.h"
#include "testutil.h"

static char *out;

/* scripts/check-doc-samples ARGS: its exit status, its output in `out`. */
static int check(const char *args)
{
	char cmd[8192], outp[600];
	char *argv[] = { "sh", "-c", cmd, NULL };
	struct e2e_io io = { NULL, outp, outp };
	int status;

	test_fmt(outp, "%s", px_tmp("check.out"));
	test_fmt(cmd, "exec '%s' %s", test_path("scripts/check-doc-samples"), args);
	status = e2e_run(argv, &io, 240000);
	free(out);
	out = e2e_slurp(outp);
	cr_assert(out, "no output");
	return status;
}

static void teardown(void)
{
	free(out);
	out = NULL;
	px_teardown();
}

TestSuite(docs, .init = px_setup, .fini = teardown);

/* The pages, in groups run side by side (criterion runs tests in
 * parallel): the live ones start servers and take seconds each. */
static const char *const static_pages[] = {
	"README.md", "doc/pcap.md", "doc/remedies.md", "doc/operations.md", "doc/lab.md", "doc/visibility.md",
	"doc/building.md", "doc/benchmarks.md", "doc/capture.md", "doc/ecs.md", "doc/evidence.md", "doc/install.md",
	NULL,
};
static const char *const live_pages[] = {
	"doc/proxy.md", "doc/intercept.md", "doc/probe.md", "doc/playbook.md", "doc/verdicts.md", NULL,
};

static bool listed(const char *page)
{
	size_t i;

	for (i = 0; static_pages[i]; i++)
		if (strcmp(static_pages[i], page) == 0)
			return true;
	for (i = 0; live_pages[i]; i++)
		if (strcmp(live_pages[i], page) == 0)
			return true;
	return false;
}

/* scripts/check-doc-samples on these pages: every sample the real output,
 * at least `min` of them. */
static void check_pages(const char *const *pages, const char *part, unsigned min)
{
	char args[4096];
	size_t used = (size_t)snprintf(args, sizeof(args), "%s", part), i;
	unsigned checked = 0, failed = 1;
	const char *tail;

	for (i = 0; pages[i]; i++) {
		used += (size_t)snprintf(args + used, sizeof(args) - used, " '%s'", test_path(pages[i]));
		cr_assert_lt(used, sizeof(args));
	}
	cr_expect_eq(check(args), 0, "%s", out);
	tail = strstr(out, "samples checked");
	cr_assert(tail, "%s", out);
	while (tail > out && tail[-1] != '\n')
		tail--;
	cr_assert_eq(sscanf(tail, "%u samples checked, %u failed", &checked, &failed), 2, "%s", tail);
	cr_expect_eq(failed, 0, "%s", out);
	cr_expect_geq(checked, min, "only %u samples checked:\n%s", checked, out);
}

static void need_servers(void)
{
	if (!px_have("nginx") || !px_have("mitmdump") || !px_have("curl"))
		cr_skip_test("nginx, mitmdump or curl is missing (scripts/deps test installs them)");
}

/* A page added to doc/ is checked too: it must be in one of the lists. */
Test(docs, every_page_is_checked)
{
	glob_t g;
	size_t i, n = strlen(test_path(""));

	cr_assert_eq(glob(test_path("doc/*.md"), 0, NULL, &g), 0);
	cr_assert_geq(g.gl_pathc, 10, "doc/ has %zu pages", g.gl_pathc);
	for (i = 0; i < g.gl_pathc; i++)
		cr_expect(listed(g.gl_pathv[i] + n), "%s is not in tests/test_docs.c's lists", g.gl_pathv[i] + n);
	globfree(&g);
}

Test(docs, the_readme_and_the_pages_of_captures, .timeout = 120)
{
	check_pages(static_pages, "", 13);
}

#define LIVE_PAGE(name, page, part, min) \
	Test(docs, name, .timeout = 180) \
	{ \
		const char *const pages[] = { page, NULL }; \
		need_servers(); \
		check_pages(pages, part, min); \
	}

LIVE_PAGE(the_proxy_page, "doc/proxy.md", "", 3)
LIVE_PAGE(the_intercept_page, "doc/intercept.md", "", 2)
LIVE_PAGE(the_probe_page, "doc/probe.md", "", 3)
LIVE_PAGE(the_playbook, "doc/playbook.md", "", 6)
/* the longest page, in three runs side by side */
LIVE_PAGE(the_output_reference_1, "doc/verdicts.md", "--part=0/3", 7)
LIVE_PAGE(the_output_reference_2, "doc/verdicts.md", "--part=1/3", 7)
LIVE_PAGE(the_output_reference_3, "doc/verdicts.md", "--part=2/3", 7)

/* A page with one sample right, one wrong and one without its marker. */
Test(docs, a_wrong_or_unmarked_sample_fails)
{
	const char *page = px_tmp("page.md");
	FILE *f = fopen(page, "w");
	char args[1200];

	cr_assert(f);
	fprintf(f, "Right:\n\n"
		   "<!-- sample: tests/data/lab/captures: mtlsdiag pcap -q nginx-on_none_tls12.pcap -->\n"
		   "    1 connection: 1 client_sent_no_cert\n\n"
		   "Wrong:\n\n"
		   "<!-- samples: tests/data/lab/captures -->\n"
		   "    $ mtlsdiag pcap -q nginx-on_good_tls12.pcap\n"
		   "    1 connection: 1 client_sent_no_cert\n\n"
		   "Unmarked:\n\n"
		   "    2026-12-03T03:11:40.124Z 127.0.0.1:46482 -> localhost:18401 TLS1.2 client did not send cert\n");
	cr_assert_eq(fclose(f), 0);
	test_fmt(args, "'%s'", page);
	cr_assert_eq(check(args), 1, "%s", out);
	cr_expect(strstr(out, "page.md:8: the sample is not what 'mtlsdiag pcap -q nginx-on_good_tls12.pcap' prints; line 1:\n"
			      "  documented: 1 connection: 1 client_sent_no_cert\n"
			      "  real:       1 connection: 1 client_cert_accepted\n"), "%s", out);
	cr_expect(strstr(out, "page.md:14: an output sample without a '<!-- sample... -->' marker\n"), "%s", out);
	cr_expect(strstr(out, "2 samples checked, 2 failed\n"), "%s", out);
	/* '...' and '…' stand for what is left out, and nothing else */
	f = fopen(page, "w");
	cr_assert(f);
	fprintf(f, "<!-- sample: tests/data/lab/captures: mtlsdiag pcap nginx-on_none_tls12.pcap nginx-on_good_tls12.pcap -->\n"
		   "    ...\n"
		   "    2 connections: … client_cert_accepted\n");
	cr_assert_eq(fclose(f), 0);
	cr_expect_eq(check(args), 0, "%s", out);
	f = fopen(page, "w");
	cr_assert(f);
	fprintf(f, "<!-- sample: tests/data/lab/captures: mtlsdiag pcap nginx-on_none_tls12.pcap nginx-on_good_tls12.pcap -->\n"
		   "    ...\n"
		   "    2 connections: … undetermined\n");
	cr_assert_eq(fclose(f), 0);
	cr_expect_eq(check(args), 1, "%s", out);
}
