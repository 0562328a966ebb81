/* outfile: the outputs of records (--json, --log) lose records only whole
 * and say so: a file that fills (a file size limit standing in for a full
 * disk), /dev/full, records longer than stdio's buffer, several threads,
 * and a reopen after rotation. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out/outfile.h"
#include "e2e.h"
#include "testutil.h"

static char dir[] = "/tmp/mtlsdiag-outfile-XXXXXX";
static char errpath[128];
static int saved_stderr = -1;

/* Standard error goes to a file of the test's, to read what was said. */
static void setup(void)
{
	int fd;

	cr_assert(mkdtemp(dir));
	test_fmt(errpath, "%s/stderr", dir);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(2);
	cr_assert(dup2(fd, 2) == 2);
	close(fd);
}

static void teardown(void)
{
	char cmd[160];

	if (saved_stderr >= 0)
		dup2(saved_stderr, 2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(outfile, .init = setup, .fini = teardown);

/* The file's text; its length, when asked. */
static char *slurp(const char *path, size_t *len)
{
	char *buf = e2e_slurp(path);

	cr_assert_not_null(buf, "%s", path);
	if (len)
		*len = strlen(buf);
	return buf;
}

/* Record i: "{"n":i,"pad":"xxx..."}" of `size` bytes with its newline. */
static void record(char *buf, size_t size, unsigned i)
{
	int head = snprintf(buf, size, "{\"n\":%u,\"pad\":\"", i);

	memset(buf + head, 'x', size - (size_t)head - 3);
	memcpy(buf + size - 3, "\"}\n", 3);
}

/* Every line of text is a whole record; their numbers, in order. */
static size_t check_whole(const char *text, size_t size, unsigned *numbers, size_t max)
{
	size_t n = 0;
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		unsigned i;

		cr_assert_not_null(nl, "the file ends inside a line");
		cr_assert_eq((size_t)(nl - p) + 1, size, "a line of %zu bytes, not %zu", (size_t)(nl - p) + 1, size);
		cr_assert_eq(sscanf(p, "{\"n\":%u,", &i), 1);
		cr_assert(memcmp(nl - 2, "\"}", 2) == 0);
		if (n < max)
			numbers[n] = i;
		n++;
		p = nl + 1;
	}
	return n;
}

Test(outfile, a_file_that_fills_loses_whole_records_and_says_so_once)
{
	struct rlimit lim;
	char path[128], err[256], line[300];
	struct outfile *o;
	unsigned numbers[2000];
	size_t kept, len;
	char *text, *said;
	int error;

	signal(SIGXFSZ, SIG_IGN);
	test_fmt(path, "%s/out.json", dir);
	o = outfile_open(path, false, 0600, "test: --json out.json", err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
	lim.rlim_cur = 100000;   /* the disk is full at 100,000 bytes */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (unsigned i = 0; i < 1000; i++) {
		record(line, sizeof(line), i);
		fwrite(line, 1, sizeof(line), outfile_stream(o));
		if (i % 7 == 0)
			fflush(outfile_stream(o));   /* flushes land mid-batch and between records */
	}
	fflush(outfile_stream(o));
	cr_assert_eq(outfile_lost(o, &error), 1000 - 100000 / sizeof(line));
	cr_assert_eq(error, EFBIG);
	lim.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(outfile_close(o), -1);

	text = slurp(path, &len);
	kept = check_whole(text, sizeof(line), numbers, 2000);
	cr_assert_eq(kept, 100000 / sizeof(line));
	for (size_t k = 0; k < kept; k++)
		cr_assert_eq(numbers[k], k, "records in order, none half-written");
	free(text);
	said = slurp(errpath, NULL);
	cr_assert(strstr(said, "test: --json out.json: File too large: records are being lost"), "%s", said);
	cr_assert(strstr(said, "test: --json out.json: 667 records lost (File too large)"), "%s", said);
	cr_assert_eq(strstr(strstr(said, "being lost") + 1, "being lost"), NULL, "said once: %s", said);
	free(said);
}

Test(outfile, room_again_after_a_failure_takes_the_next_records)
{
	struct rlimit lim;
	char path[128], err[256], line[300];
	struct outfile *o;
	unsigned numbers[64];
	char *text;

	signal(SIGXFSZ, SIG_IGN);
	test_fmt(path, "%s/out.json", dir);
	o = outfile_open(path, false, 0600, "test", err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
	lim.rlim_cur = 1000;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (unsigned i = 0; i < 5; i++) {
		record(line, sizeof(line), i);
		fwrite(line, 1, sizeof(line), outfile_stream(o));
		fflush(outfile_stream(o));
	}
	lim.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	record(line, sizeof(line), 5);
	fwrite(line, 1, sizeof(line), outfile_stream(o));
	cr_assert_eq(outfile_close(o), -1, "records were lost on the way");
	text = slurp(path, NULL);
	cr_assert_eq(check_whole(text, sizeof(line), numbers, 64), 4);
	cr_assert_eq(numbers[0], 0);
	cr_assert_eq(numbers[2], 2);
	cr_assert_eq(numbers[3], 5, "the record after the failure starts on a line of its own");
	free(text);
}

Test(outfile, dev_full_loses_everything_and_says_enospc)
{
	char err[256];
	struct outfile *o = outfile_open("/dev/full", true, 0600, "test: --json /dev/full", err, sizeof(err));
	int error;

	cr_assert_not_null(o, "%s", err);
	fputs("{\"a\":1}\n{\"b\":2}\n", outfile_stream(o));
	fflush(outfile_stream(o));
	cr_assert_eq(outfile_lost(o, &error), 2);
	cr_assert_eq(error, ENOSPC);
	cr_assert_eq(outfile_close(o), -1);
}

Test(outfile, records_longer_than_the_buffer_arrive_whole)
{
	char path[128], err[256];
	size_t big = 200000, len;
	char *line = malloc(big), *text;
	struct outfile *o;
	struct stat st;

	test_fmt(path, "%s/big.json", dir);
	umask(022);
	o = outfile_open(path, false, 0600, "test", err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "created for its owner only: %o", st.st_mode & 0777);
	for (unsigned i = 0; i < 3; i++) {
		record(line, big, i);
		fwrite(line, 1, big, outfile_stream(o));
	}
	cr_assert_eq(outfile_close(o), 0);
	text = slurp(path, &len);
	cr_assert_eq(len, 3 * big);
	{
		unsigned numbers[3];

		cr_assert_eq(check_whole(text, big, numbers, 3), 3);
	}
	free(text);
	free(line);
}

/* A file of its own takes stdio's buffer whole, a line's start before
 * its end; when the disk fills inside a record longer than the buffer,
 * the file goes back to the end of the record before, that record is lost
 * whole (its rest is dropped as it comes) and the records after it
 * arrive whole once there is room again. */
Test(outfile, a_record_cut_by_a_full_disk_across_buffers_is_lost_whole)
{
	struct rlimit lim;
	size_t sizes[] = { 100000, 200000, 1000, 70000, 300 }, len;
	char path[128], err[256], *text, *line = malloc(200000);
	struct outfile *o;
	unsigned numbers[8];
	int error;

	cr_assert_not_null(line);
	signal(SIGXFSZ, SIG_IGN);
	test_fmt(path, "%s/cut.json", dir);
	o = outfile_open(path, false, 0600, "test", err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
	lim.rlim_cur = 150000;   /* full inside the second record */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (unsigned i = 0; i < 5; i++) {
		record(line, sizes[i], i);
		fwrite(line, 1, sizes[i], outfile_stream(o));
		if (i == 1) {
			/* the disk has room again */
			lim.rlim_cur = RLIM_INFINITY;
			cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
		}
	}
	fflush(outfile_stream(o));
	cr_assert_eq(outfile_lost(o, &error), 1, "the record cut by the full disk, once");
	cr_assert_eq(error, EFBIG);
	cr_assert_eq(outfile_close(o), -1);
	text = slurp(path, &len);
	cr_assert_eq(len, sizes[0] + sizes[2] + sizes[3] + sizes[4]);
	{
		const char *p = text;

		for (unsigned k = 0, want[] = { 0, 2, 3, 4 }; k < 4; k++) {
			const char *nl = strchr(p, '\n');

			cr_assert_not_null(nl);
			cr_assert_eq((size_t)(nl - p) + 1, sizes[want[k]], "record %u whole", want[k]);
			cr_assert_eq(sscanf(p, "{\"n\":%u,", &numbers[k]), 1);
			cr_assert_eq(numbers[k], want[k]);
			p = nl + 1;
		}
	}
	free(text);
	free(line);
}

struct writer {
	struct outfile *o;
	unsigned id;
};

static void *write_many(void *arg)
{
	struct writer *w = arg;
	char line[300];

	for (unsigned i = 0; i < 2000; i++) {
		record(line, sizeof(line), w->id * 10000 + i);
		fwrite(line, 1, sizeof(line), outfile_stream(w->o));
		if (i % 3 == 0)
			fflush(outfile_stream(w->o));
	}
	return NULL;
}

Test(outfile, threads_never_interleave_inside_a_record)
{
	char path[128], err[256];
	struct writer w[4];
	pthread_t t[4];
	unsigned *numbers = malloc(8000 * sizeof(*numbers));
	char *text;

	test_fmt(path, "%s/threads.json", dir);
	for (unsigned k = 0; k < 4; k++)
		w[k].id = k;
	w[0].o = outfile_open(path, false, 0600, "test", err, sizeof(err));
	cr_assert_not_null(w[0].o, "%s", err);
	for (unsigned k = 0; k < 4; k++) {
		w[k].o = w[0].o;
		cr_assert_eq(pthread_create(&t[k], NULL, write_many, &w[k]), 0);
	}
	for (unsigned k = 0; k < 4; k++)
		pthread_join(t[k], NULL);
	cr_assert_eq(outfile_close(w[0].o), 0);
	text = slurp(path, NULL);
	cr_assert_eq(check_whole(text, 300, numbers, 8000), 8000);
	free(text);
	free(numbers);
}

Test(outfile, reopen_after_rotation_writes_to_the_new_file)
{
	char path[128], rotated[128], err[256];
	struct outfile *o;
	char *a, *b;

	test_fmt(path, "%s/log", dir);
	test_fmt(rotated, "%s/log.1", dir);
	o = outfile_open(path, true, 0600, "test", err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	fputs("before\n", outfile_stream(o));
	fflush(outfile_stream(o));
	cr_assert_eq(rename(path, rotated), 0);
	fputs("held\n", outfile_stream(o));
	cr_assert_eq(outfile_reopen(o, err, sizeof(err)), 0, "%s", err);
	fputs("after\n", outfile_stream(o));
	cr_assert_eq(outfile_close(o), 0);
	a = slurp(rotated, NULL);
	b = slurp(path, NULL);
	cr_assert_str_eq(a, "before\nheld\n", "what was buffered went to the old file");
	cr_assert_str_eq(b, "after\n");
	free(a);
	free(b);

	/* a path that cannot be opened again: the old file stays in use */
	o = outfile_open(path, true, 0600, "test", err, sizeof(err));
	cr_assert_not_null(o);
	cr_assert_eq(rename(path, rotated), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(outfile_reopen(o, err, sizeof(err)), -1);
	cr_assert(strstr(err, "cannot reopen") && strstr(err, "Is a directory"), "%s", err);
	fputs("still\n", outfile_stream(o));
	cr_assert_eq(outfile_close(o), 0);
	a = slurp(rotated, NULL);
	cr_assert_str_eq(a, "after\nstill\n");
	free(a);
}
