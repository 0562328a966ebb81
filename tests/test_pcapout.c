/* Tests for the capture writer (pcapout.c).
 *
 * The TLS message streams in tests/data/msgs/streams/ are written as a
 * capture, one record at a time alternating client and server, and read
 * back two ways: by the project's own capture layer (a recording flow_sink
 * checks one flow, its handshake, its endpoints, both byte streams and both
 * FINs) and, when it is installed, by tshark, an independent reader (the
 * followed TCP stream and the IP/TCP checksums). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire/capture.h"
#include "out/pcapout.h"
#include "testutil.h"

/* ---- a recording sink ---- */

struct rec_side {
	uint8_t *data;
	size_t len, cap;
	uint64_t gap_bytes;
	int fin, rst, other_close;
};

struct recorder {
	int opened, finished;
	bool saw_syn, truncated;
	struct endpoint init, resp;
	struct rec_side side[2];
};

static void *rec_open(void *ctx, const struct endpoint *init, const struct endpoint *resp,
		      const struct timeval *ts, bool saw_syn)
{
	struct recorder *r = ctx;

	(void)ts;
	r->opened++;
	if (r->opened > 1)
		return NULL;
	r->init = *init;
	r->resp = *resp;
	r->saw_syn = saw_syn;
	return r;
}

static void rec_data(void *ctx, void *flow, enum side from, const uint8_t *p, size_t n,
		     const struct timeval *ts)
{
	struct rec_side *s = &((struct recorder *)flow)->side[from];

	(void)ctx;
	(void)ts;
	test_append(&s->data, &s->len, &s->cap, p, n);
}

static void rec_gap(void *ctx, void *flow, enum side from, size_t n, const struct timeval *ts)
{
	(void)ctx;
	(void)ts;
	((struct recorder *)flow)->side[from].gap_bytes += n;
}

static void rec_close(void *ctx, void *flow, enum side from, enum close_kind how,
		      const struct timeval *ts)
{
	struct rec_side *s = &((struct recorder *)flow)->side[from];

	(void)ctx;
	(void)ts;
	if (how == CLOSE_FIN)
		s->fin++;
	else if (how == CLOSE_RST)
		s->rst++;
	else
		s->other_close++;
}

static void rec_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	struct recorder *r = flow;

	(void)ctx;
	(void)ts;
	r->finished++;
	r->truncated = truncated;
}

static void read_back(const char *path, struct recorder *r, struct capture_stats *st)
{
	struct flow_sink sink = {
		.ctx = r,
		.open = rec_open,
		.data = rec_data,
		.gap = rec_gap,
		.close = rec_close,
		.finish = rec_finish,
	};
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	memset(st, 0, sizeof(*st));
	cr_assert_eq(capture_read_file(path, NULL, &sink, st, err, sizeof(err)), 0,
		     "%s: %s", path, err);
}

static void rec_free(struct recorder *r)
{
	free(r->side[0].data);
	free(r->side[1].data);
}

/* ---- writing ---- */

static struct endpoint ep(const char *ip, uint16_t port)
{
	struct endpoint e;

	memset(&e, 0, sizeof(e));
	snprintf(e.ip, sizeof(e.ip), "%s", ip);
	e.port = port;
	return e;
}

static void tick(struct timeval *tv)
{
	tv->tv_usec += 1000;
	if (tv->tv_usec >= 1000000) {
		tv->tv_usec -= 1000000;
		tv->tv_sec++;
	}
}

/* Length of the TLS record at p (header included), or what is left. */
static size_t record_len(const uint8_t *p, size_t left)
{
	size_t n;

	if (left < 5)
		return left;
	n = 5 + ((size_t)p[3] << 8 | p[4]);
	return n > left ? left : n;
}

static void tmp_name(char *buf, size_t len)
{
	int fd;

	snprintf(buf, len, "/tmp/test_pcapout.XXXXXX");
	fd = mkstemp(buf);
	cr_assert_geq(fd, 0);
	close(fd);
}

/* Writes one connection: records alternating client, server; FIN client,
 * then FIN server. */
static void write_stream(const char *path, const struct endpoint *cli, const struct endpoint *srv,
			 const uint8_t *cb, size_t cn, const uint8_t *sb, size_t sn)
{
	char err[256] = "";
	struct pcapout *po = pcapout_open(path, 0600, err, sizeof(err));
	struct pcapout_conn *c;
	struct timeval tv = { 1700000000, 0 };
	size_t ci = 0, si = 0;

	cr_assert_not_null(po, "%s", err);
	c = pcapout_conn_new(po, cli, srv, &tv);
	cr_assert_not_null(c);
	while (ci < cn || si < sn) {
		if (ci < cn) {
			size_t k = record_len(cb + ci, cn - ci);

			tick(&tv);
			pcapout_data(c, SIDE_CLIENT, cb + ci, k, &tv);
			ci += k;
		}
		if (si < sn) {
			size_t k = record_len(sb + si, sn - si);

			tick(&tv);
			pcapout_data(c, SIDE_SERVER, sb + si, k, &tv);
			si += k;
		}
	}
	tick(&tv);
	pcapout_close(c, SIDE_CLIENT, CLOSE_FIN, &tv);
	tick(&tv);
	pcapout_close(c, SIDE_SERVER, CLOSE_FIN, &tv);
	pcapout_conn_free(c);
	cr_assert_eq(pcapout_flush(po), 0);
	pcapout_close_file(po);
}

static void check_read_back(const char *path, const struct endpoint *cli,
			    const struct endpoint *srv, const uint8_t *cb, size_t cn,
			    const uint8_t *sb, size_t sn)
{
	struct recorder r;
	struct capture_stats st;
	int s;

	read_back(path, &r, &st);
	cr_assert_eq(r.opened, 1, "%s: %d flows", path, r.opened);
	cr_assert_eq(r.finished, 1);
	cr_assert(r.saw_syn);
	cr_assert_not(r.truncated);
	cr_assert_str_eq(r.init.ip, cli->ip);
	cr_assert_eq(r.init.port, cli->port);
	cr_assert_str_eq(r.resp.ip, srv->ip);
	cr_assert_eq(r.resp.port, srv->port);
	cr_assert_eq(st.bad_headers, 0);
	cr_assert_eq(st.truncated, 0);
	cr_assert_eq(st.gaps, 0);
	cr_assert_not(st.file_truncated);
	cr_assert_eq(r.side[0].len, cn, "client: %zu bytes, want %zu", r.side[0].len, cn);
	cr_assert_eq(r.side[1].len, sn, "server: %zu bytes, want %zu", r.side[1].len, sn);
	cr_assert(cn == 0 || memcmp(r.side[0].data, cb, cn) == 0);
	cr_assert(sn == 0 || memcmp(r.side[1].data, sb, sn) == 0);
	for (s = 0; s < 2; s++) {
		cr_assert_eq(r.side[s].fin, 1, "side %d: %d FINs", s, r.side[s].fin);
		cr_assert_eq(r.side[s].rst, 0);
		cr_assert_eq(r.side[s].other_close, 0);
		cr_assert_eq(r.side[s].gap_bytes, 0);
	}
	rec_free(&r);
}

/* ---- tshark ---- */

static bool have_tshark(void)
{
	return system("tshark -v >/dev/null 2>&1") == 0;
}

/* Both directions of TCP stream 0 as tshark follows them: node 0's lines
 * are flush left, node 1's start with a tab. */
static void tshark_follow(const char *path, uint8_t **out, size_t *outlen)
{
	char cmd[512], *line = NULL;
	size_t lcap = 0;
	ssize_t got;
	FILE *p;
	int d;

	for (d = 0; d < 2; d++) {
		out[d] = NULL;
		outlen[d] = 0;
	}
	snprintf(cmd, sizeof(cmd), "tshark -r '%s' -q -z follow,tcp,raw,0 2>/dev/null", path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while ((got = getline(&line, &lcap, p)) > 0) {
		const char *s = line;
		size_t i, n;

		d = 0;
		if (*s == '\t') {
			d = 1;
			s++;
		}
		n = strcspn(s, "\r\n");
		if (n == 0 || n % 2)
			continue;
		for (i = 0; i < n; i++)
			if (test_hexval(s[i]) < 0)
				break;
		if (i < n)
			continue; /* a header line */
		out[d] = realloc(out[d], outlen[d] + n / 2);
		cr_assert_not_null(out[d]);
		for (i = 0; i < n; i += 2)
			out[d][outlen[d]++] = (uint8_t)(test_hexval(s[i]) << 4 | test_hexval(s[i + 1]));
	}
	free(line);
	cr_assert_eq(pclose(p), 0, "tshark failed on %s", path);
}

/* Counts checksum statuses over every packet's TCP and IPv4 checksums.
 * Wireshark's values: 0 bad, 1 good, 2 unverified, 3 not present, 4
 * illegal; with checking on, anything but 1 is a failure. */
static void tshark_checksums(const char *path, int *good, int *bad)
{
	char cmd[640], line[256];
	FILE *p;

	*good = *bad = 0;
	snprintf(cmd, sizeof(cmd),
		 "tshark -r '%s' -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
		 "-T fields -e tcp.checksum.status -e ip.checksum.status 2>/dev/null",
		 path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p)) {
		char *tok, *save = NULL;

		for (tok = strtok_r(line, "\t\r\n", &save); tok; tok = strtok_r(NULL, "\t\r\n", &save)) {
			if (strcmp(tok, "1") == 0)
				(*good)++;
			else
				(*bad)++;
		}
	}
	cr_assert_eq(pclose(p), 0, "tshark failed on %s", path);
}

static void check_tshark(const char *path, const uint8_t *cb, size_t cn, const uint8_t *sb,
			 size_t sn)
{
	uint8_t *dir[2];
	size_t len[2];
	int good, bad;

	tshark_follow(path, dir, len);
	cr_assert_eq(len[0], cn, "tshark client bytes %zu, want %zu", len[0], cn);
	cr_assert_eq(len[1], sn, "tshark server bytes %zu, want %zu", len[1], sn);
	cr_assert(cn == 0 || memcmp(dir[0], cb, cn) == 0);
	cr_assert(sn == 0 || memcmp(dir[1], sb, sn) == 0);
	free(dir[0]);
	free(dir[1]);
	tshark_checksums(path, &good, &bad);
	cr_assert_eq(bad, 0, "%s: %d bad checksums", path, bad);
	cr_assert_gt(good, 0, "%s: no checksum verified", path);
}

/* ---- the stream fixtures ---- */

enum which { READ_BACK, TSHARK };

static int each_stream(const struct endpoint *cli, const struct endpoint *srv, enum which w)
{
	DIR *d = opendir(test_path("tests/data/msgs/streams"));
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d, "no tests/data/msgs/streams");
	while ((de = readdir(d))) {
		char rel[512], path[64];
		uint8_t *cb, *sb;
		size_t cn, sn;

		if (de->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "tests/data/msgs/streams/%s/client.bin", de->d_name);
		cb = test_load(rel, &cn);
		snprintf(rel, sizeof(rel), "tests/data/msgs/streams/%s/server.bin", de->d_name);
		sb = test_load(rel, &sn);
		tmp_name(path, sizeof(path));
		write_stream(path, cli, srv, cb, cn, sb, sn);
		if (w == READ_BACK)
			check_read_back(path, cli, srv, cb, cn, sb, sn);
		else
			check_tshark(path, cb, cn, sb, sn);
		unlink(path);
		free(cb);
		free(sb);
		n++;
	}
	closedir(d);
	return n;
}

Test(pcapout, round_trip_ipv4)
{
	struct endpoint cli = ep("192.0.2.10", 51515), srv = ep("198.51.100.7", 443);

	cr_assert_gt(each_stream(&cli, &srv, READ_BACK), 0);
}

Test(pcapout, round_trip_ipv6)
{
	struct endpoint cli = ep("::1", 40001), srv = ep("2001:db8::7", 8443);

	cr_assert_gt(each_stream(&cli, &srv, READ_BACK), 0);
}

Test(pcapout, tshark_agrees)
{
	struct endpoint cli = ep("192.0.2.10", 51515), srv = ep("198.51.100.7", 443);
	struct endpoint cli6 = ep("::1", 40001), srv6 = ep("::1", 8443);

	if (!have_tshark()) {
		cr_skip_test("tshark is not installed");
		return;
	}
	cr_assert_gt(each_stream(&cli, &srv, TSHARK), 0);
	cr_assert_gt(each_stream(&cli6, &srv6, TSHARK), 0);
}

/* A write larger than one segment is split, and the pieces still read back
 * as the same bytes. */
Test(pcapout, large_write_split)
{
	struct endpoint cli = ep("10.1.2.3", 1234), srv = ep("10.3.2.1", 443);
	size_t n = 3 * PCAPOUT_MAX_SEG + 17, i;
	uint8_t *big = malloc(n), one = 0x42;
	char path[64], err[256] = "";
	struct timeval tv = { 1700000000, 0 };
	struct pcapout *po;
	struct pcapout_conn *c;
	struct recorder r;
	struct capture_stats st;

	cr_assert_not_null(big);
	for (i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 9));
	tmp_name(path, sizeof(path));
	po = pcapout_open(path, 0600, err, sizeof(err));
	cr_assert_not_null(po, "%s", err);
	c = pcapout_conn_new(po, &cli, &srv, &tv);
	cr_assert_not_null(c);
	pcapout_data(c, SIDE_CLIENT, big, n, &tv);
	pcapout_data(c, SIDE_SERVER, &one, 1, &tv);
	pcapout_close(c, SIDE_CLIENT, CLOSE_FIN, &tv);
	pcapout_close(c, SIDE_SERVER, CLOSE_FIN, &tv);
	pcapout_conn_free(c);
	pcapout_close_file(po);
	check_read_back(path, &cli, &srv, big, n, &one, 1);
	read_back(path, &r, &st);
	/* SYN, SYN-ACK, ACK, 4 + 1 data segments, FIN, FIN, last ACK */
	cr_assert_eq(st.packets, 3 + 4 + 1 + 3, "%llu packets", (unsigned long long)st.packets);
	rec_free(&r);
	if (have_tshark())
		check_tshark(path, big, n, &one, 1);
	unlink(path);
	free(big);
}

/* A reset closes a side as RST; nothing is written for it afterwards. */
Test(pcapout, reset)
{
	struct endpoint cli = ep("10.1.2.3", 1234), srv = ep("10.3.2.1", 443);
	char path[64], err[256] = "";
	struct pcapout *po;
	struct pcapout_conn *c;
	struct recorder r;
	struct capture_stats st;

	tmp_name(path, sizeof(path));
	po = pcapout_open(path, 0600, err, sizeof(err));
	cr_assert_not_null(po, "%s", err);
	c = pcapout_conn_new(po, &cli, &srv, NULL);
	cr_assert_not_null(c);
	pcapout_data(c, SIDE_CLIENT, (const uint8_t *)"hello", 5, NULL);
	pcapout_close(c, SIDE_SERVER, CLOSE_RST, NULL);
	pcapout_data(c, SIDE_SERVER, (const uint8_t *)"late", 4, NULL);
	pcapout_conn_free(c);
	pcapout_close_file(po);

	read_back(path, &r, &st);
	cr_assert_eq(r.opened, 1);
	cr_assert_eq(r.side[0].len, 5);
	cr_assert_eq(r.side[1].len, 0);
	cr_assert_eq(r.side[1].rst, 1);
	cr_assert_eq(r.finished, 1);
	rec_free(&r);
	unlink(path);
}

Test(pcapout, bad_inputs)
{
	struct endpoint cli = ep("not-an-ip", 1), srv = ep("10.0.0.1", 2);
	char path[64], err[256] = "";
	struct pcapout *po;

	cr_assert_null(pcapout_open("/nonexistent-dir/x.pcap", 0600, err, sizeof(err)));
	cr_assert(strstr(err, "/nonexistent-dir/x.pcap") != NULL, "%s", err);
	tmp_name(path, sizeof(path));
	po = pcapout_open(path, 0600, err, sizeof(err));
	cr_assert_not_null(po, "%s", err);
	cr_assert_null(pcapout_conn_new(po, &cli, &srv, NULL));
	pcapout_close_file(po);
	pcapout_close_file(NULL);
	pcapout_conn_free(NULL);
	unlink(path);
}

Test(pcapout, the_file_is_readable_by_its_owner_only)
{
	char path[64], err[256] = "";
	struct pcapout *po;
	struct stat st;

	umask(022);
	tmp_name(path, sizeof(path));
	unlink(path);
	po = pcapout_open(path, 0600, err, sizeof(err));
	cr_assert_not_null(po, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	pcapout_close_file(po);
	unlink(path);
}

static void *count_open(void *ctx, const struct endpoint *init, const struct endpoint *resp,
			const struct timeval *ts, bool saw_syn)
{
	return ctx;
}

static void count_finish(void *ctx, void *flow, bool truncated, const struct timeval *ts)
{
	unsigned *n = ctx;

	cr_assert_not(truncated, "a connection read back was cut");
	++*n;
}

/* Connections of 1,000 bytes each way into po until a flush fails or
 * `max` connections; the number written. */
static unsigned fill(struct pcapout *po, unsigned max)
{
	struct endpoint cli = ep("10.0.0.1", 40000), srv = ep("10.0.0.2", 443);
	struct timeval tv = { 1700000000, 0 };
	uint8_t data[1000];
	unsigned i;

	memset(data, 'x', sizeof(data));
	for (i = 0; i < max; i++) {
		struct pcapout_conn *c;

		cli.port = (uint16_t)(40000 + i);
		c = pcapout_conn_new(po, &cli, &srv, &tv);
		cr_assert_not_null(c);
		pcapout_data(c, SIDE_CLIENT, data, sizeof(data), &tv);
		pcapout_data(c, SIDE_SERVER, data, sizeof(data), &tv);
		pcapout_close(c, SIDE_CLIENT, CLOSE_FIN, &tv);
		pcapout_close(c, SIDE_SERVER, CLOSE_FIN, &tv);
		pcapout_conn_free(c);
		if (pcapout_flush(po) != 0)
			break;
		tick(&tv);
	}
	return i;
}

Test(pcapout, a_full_disk_loses_packets_counted_and_leaves_a_whole_file)
{
	char path[64], err[256] = "";
	struct rlimit lim = { .rlim_cur = 100000, .rlim_max = RLIM_INFINITY };
	struct capture_stats st = { 0 };
	struct pcapout *po;
	struct stat sb;
	unsigned written;
	uint64_t lost;
	int error;

	/* a file size limit is a disk that fills at 100,000 bytes (EFBIG) */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &lim) == 0 && (lim.rlim_cur = 100000, setrlimit(RLIMIT_FSIZE, &lim)), 0);
	tmp_name(path, sizeof(path));
	po = pcapout_open(path, 0600, err, sizeof(err));
	cr_assert_not_null(po, "%s", err);
	written = fill(po, 1000);
	cr_assert_lt(written, 1000, "the limit was never reached");
	lost = pcapout_lost(po, &error);
	cr_assert_gt(lost, 0);
	cr_assert_eq(error, EFBIG, "%s", strerror(error));
	/* later connections are counted, not written */
	cr_assert_eq(fill(po, 3), 0);
	cr_assert_gt(pcapout_lost(po, NULL), lost);
	pcapout_close_file(po);

	/* what stays is whole: the connections flushed before the failure */
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_leq(sb.st_size, 100000);
	lim.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	{
		unsigned finished = 0;
		struct flow_sink sink = { .ctx = &finished, .open = count_open, .finish = count_finish };

		cr_assert_eq(capture_read_file(path, NULL, &sink, &st, err, sizeof(err)), 0, "%s", err);
		cr_assert_not(st.stopped, "%s", err);
		cr_assert_eq(st.flows, written, "%llu flows read back, %u written whole",
			     (unsigned long long)st.flows, written);
		cr_assert_eq(finished, written);
	}
	unlink(path);
}

Test(pcapout, dev_full_reports_enospc)
{
	char err[256] = "";
	struct pcapout *po = pcapout_open("/dev/full", 0600, err, sizeof(err));
	int error;

	cr_assert_not_null(po, "%s", err);
	cr_assert_eq(fill(po, 10), 0, "the first flush fails");
	cr_assert_gt(pcapout_lost(po, &error), 0);
	cr_assert_eq(error, ENOSPC);
	pcapout_close_file(po);
}
