/* The output contract held still: every capture under tests/data (and, when
 * it sits beside the tree, the public corpus) is run through `mtlsdiag pcap`,
 * without keys and with its key log where there is one, and the SHA-256 of
 * its JSON Lines, of its human lines and its exit status are compared with
 * tests/data/golden.tsv. A change to what any record says shows up here as
 * the captures whose output moved.
 *
 * When a change to the output is meant, rewrite the table and review its
 * diff with the change:
 *     MTLSDIAG_GOLDEN_UPDATE=1 tests/test_golden -j1   (from a build tree)
 *
 * Paths are relative to a scratch folder whose links (tests, conf, corpus)
 * point at the sources, so the table does not depend on where the tree is. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "testutil.h"

#define GOLDEN_TABLE "tests/data/golden.tsv"

struct row {
	char capture[512];
	char keylog[512]; /* "-" for none */
	char result[160]; /* "exit json-sha256 human-sha256" */
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static void rows_add(struct rows *r, const struct row *row)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		cr_assert(r->v);
	}
	r->v[r->n++] = *row;
}

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->capture, y->capture);

	return c ? c : strcmp(x->keylog, y->keylog);
}

static bool is_capture(const char *name)
{
	size_t n = strlen(name);

	return (n > 5 && strcmp(name + n - 5, ".pcap") == 0) || (n > 7 && strcmp(name + n - 7, ".pcapng") == 0);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The key log that goes with a capture: NAME.keylog beside it, or
 * keylogs/NAME.keylog beside its folder (the lab's layout). */
static void keylog_for(const char *capture, char *out, size_t outlen)
{
	char base[512], dir[512];
	const char *slash = strrchr(capture, '/'), *name = slash ? slash + 1 : capture;
	size_t dlen = slash ? (size_t)(slash - capture) : 0;
	char *dot;

	snprintf(base, sizeof(base), "%s", name);
	dot = strrchr(base, '.');
	if (dot)
		*dot = '\0';
	snprintf(dir, sizeof(dir), "%.*s", (int)dlen, capture);
	test_fmtn(out, outlen, "%s/%s.keylog", dir, base);
	if (exists(out))
		return;
	slash = strrchr(dir, '/');
	if (slash) {
		test_fmtn(out, outlen, "%.*s/keylogs/%s.keylog", (int)(slash - dir), dir, base);
		if (exists(out))
			return;
	}
	snprintf(out, outlen, "-");
}

/* Every capture below dir, as (capture, -) and (capture, its key log). */
static void walk(const char *dir, struct rows *out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	struct stat st;
	struct row row;

	cr_assert(d, "cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(path, out);
			continue;
		}
		if (!is_capture(e->d_name))
			continue;
		memset(&row, 0, sizeof(row));
		snprintf(row.capture, sizeof(row.capture), "%s", path);
		snprintf(row.keylog, sizeof(row.keylog), "-");
		rows_add(out, &row);
		keylog_for(path, row.keylog, sizeof(row.keylog));
		if (strcmp(row.keylog, "-") != 0)
			rows_add(out, &row);
	}
	closedir(d);
}

static void sha256_file(const char *path, char hex[65])
{
	size_t len;
	uint8_t *data = test_try_load(path, &len), md[32];
	unsigned int mdlen = 0;

	cr_assert(data || len == 0, "cannot read %s", path);
	cr_assert(EVP_Digest(data ? data : (uint8_t *)"", len, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	free(data);
}

/* Runs the capture of one row, filling its result. */
static void run_row(struct row *row, const char *scratch)
{
	char out[600], err[600], json[65], human[65];
	char *argv[8];
	int n = 0, status;
	struct e2e_io io = { .in = NULL, .out = out, .err = err };

	test_fmt(out, "%s/out", scratch);
	test_fmt(err, "%s/err", scratch);
	argv[n++] = getenv("MTLSDIAG_BIN");
	argv[n++] = "pcap";
	if (strcmp(row->keylog, "-") != 0) {
		argv[n++] = "--keylog";
		argv[n++] = row->keylog;
	}
	argv[n++] = "--json";
	argv[n++] = "-";
	argv[n++] = row->capture;
	argv[n] = NULL;
	status = e2e_run(argv, &io, 60000);
	sha256_file(out, json);
	sha256_file(err, human);
	snprintf(row->result, sizeof(row->result), "%d %s %s", status, json, human);
}

/* The scratch folder the runs start in: links to the sources' tests and
 * conf, and to the public corpus when there is one. */
static char scratch[] = "/tmp/mtlsdiag-golden-XXXXXX";
static bool have_corpus;

static void enter_scratch(void)
{
	const char *corpus = getenv("MTLSDIAG_CORPUS");

	cr_assert(getenv("MTLSDIAG_BIN"), "MTLSDIAG_BIN is not set");
	cr_assert(mkdtemp(scratch), "mkdtemp: %s", strerror(errno));
	cr_assert(chdir(scratch) == 0);
	cr_assert(symlink(test_path("tests"), "tests") == 0, "symlink: %s", strerror(errno));
	cr_assert(symlink(test_path("conf"), "conf") == 0, "symlink: %s", strerror(errno));
	if (corpus && *corpus && access(corpus, R_OK) == 0) {
		cr_assert(symlink(corpus, "corpus") == 0);
		have_corpus = true;
	}
	cr_assert(mkdir("run", 0700) == 0);
	setenv("MTLSDIAG_INSPECTION_CAS", "conf/inspection-cas.conf", 1);
}

static void leave_scratch(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (chdir("/") == 0 && system(cmd) != 0)
		cr_log_warn("could not remove %s", scratch);
}

static void load_table(struct rows *out)
{
	FILE *f = fopen(test_path(GOLDEN_TABLE), "r");
	char line[1400];
	struct row row;

	if (f == NULL && errno == ENOENT && getenv("MTLSDIAG_GOLDEN_UPDATE"))
		return;
	cr_assert(f, "cannot read %s: %s", GOLDEN_TABLE, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *cap, *key, *res, *save = NULL;

		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = '\0';
		cap = strtok_r(line, "\t", &save);
		key = strtok_r(NULL, "\t", &save);
		res = strtok_r(NULL, "\t", &save);
		cr_assert(cap && key && res, "%s: malformed line", GOLDEN_TABLE);
		memset(&row, 0, sizeof(row));
		snprintf(row.capture, sizeof(row.capture), "%s", cap);
		snprintf(row.keylog, sizeof(row.keylog), "%s", key);
		snprintf(row.result, sizeof(row.result), "%s", res);
		rows_add(out, &row);
	}
	fclose(f);
}

static void write_table(const struct rows *r)
{
	FILE *f = fopen(test_path(GOLDEN_TABLE), "w");

	cr_assert(f);
	fprintf(f, "# capture\tkeylog\texit json-sha256 human-sha256 (tests/test_golden.c; "
		   "MTLSDIAG_GOLDEN_UPDATE=1 tests/test_golden -j1 rewrites it)\n");
	for (size_t i = 0; i < r->n; i++)
		fprintf(f, "%s\t%s\t%s\n", r->v[i].capture, r->v[i].keylog, r->v[i].result);
	cr_assert(fclose(f) == 0);
}

static const struct row *find(const struct rows *r, const struct row *key)
{
	return bsearch(key, r->v, r->n, sizeof(*r->v), row_cmp);
}

/* Runs the rows of `prefix` and compares them with the table; with
 * MTLSDIAG_GOLDEN_UPDATE set, rewrites the table's rows of that prefix. */
static void check(const char *prefix, struct rows *now)
{
	struct rows table = { 0 };
	size_t moved = 0, missing = 0, gone = 0;
	char run[600];

	snprintf(run, sizeof(run), "%s/run", scratch);
	for (size_t i = 0; i < now->n; i++)
		run_row(&now->v[i], run);
	qsort(now->v, now->n, sizeof(*now->v), row_cmp);
	load_table(&table);
	qsort(table.v, table.n, sizeof(*table.v), row_cmp);

	if (getenv("MTLSDIAG_GOLDEN_UPDATE")) {
		struct rows merged = { 0 };

		for (size_t i = 0; i < table.n; i++)
			if (strncmp(table.v[i].capture, prefix, strlen(prefix)) != 0)
				rows_add(&merged, &table.v[i]);
		for (size_t i = 0; i < now->n; i++)
			rows_add(&merged, &now->v[i]);
		qsort(merged.v, merged.n, sizeof(*merged.v), row_cmp);
		write_table(&merged);
		cr_log_warn("%s: rewrote the rows under %s (%zu)", GOLDEN_TABLE, prefix, now->n);
		free(merged.v);
		free(table.v);
		return;
	}

	for (size_t i = 0; i < now->n; i++) {
		const struct row *want = find(&table, &now->v[i]);

		if (want == NULL) {
			missing++;
			cr_log_error("%s (keylog %s): not in %s", now->v[i].capture, now->v[i].keylog, GOLDEN_TABLE);
		} else if (strcmp(want->result, now->v[i].result) != 0) {
			moved++;
			cr_log_error("%s (keylog %s): output changed: was %s, now %s", now->v[i].capture,
				     now->v[i].keylog, want->result, now->v[i].result);
		}
	}
	for (size_t i = 0; i < table.n; i++)
		if (strncmp(table.v[i].capture, prefix, strlen(prefix)) == 0 && find(now, &table.v[i]) == NULL) {
			gone++;
			cr_log_error("%s (keylog %s): in %s but no longer under %s", table.v[i].capture,
				     table.v[i].keylog, GOLDEN_TABLE, prefix);
		}
	free(table.v);
	cr_expect(now->n > 0, "no captures found under %s", prefix);
	cr_assert(moved == 0 && missing == 0 && gone == 0,
		  "%zu of %zu runs changed their output, %zu are new, %zu are gone (see the lines above; "
		  "if the change is meant, MTLSDIAG_GOLDEN_UPDATE=1 tests/test_golden -j1 and review the diff)",
		  moved, now->n, missing, gone);
}

TestSuite(golden, .init = enter_scratch, .fini = leave_scratch);

Test(golden, fixtures_give_the_recorded_output, .timeout = 600)
{
	struct rows now = { 0 };

	walk("tests/data", &now);
	check("tests/data/", &now);
	cr_expect(now.n > 300, "only %zu runs: the fixtures were not found", now.n);
	free(now.v);
}

Test(golden, public_corpus_gives_the_recorded_output, .timeout = 600)
{
	struct rows now = { 0 };

	if (!have_corpus)
		cr_skip_test("the public corpus is not beside the tree (MTLSDIAG_CORPUS)");
	walk("corpus", &now);
	check("corpus/", &now);
	free(now.v);
}
