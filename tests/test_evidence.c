/* Tests for --evidence DIR, the folder for a support ticket: on lab
 * captures of every verdict (tests/data/lab) the files are there, report.md
 * begins with the verdict sentence, connection.json is the --json record,
 * handshake.pcap opens in tshark and re-analyses to the same verdict; no
 * file holds a private key, a key-log secret or an HTTP body; keys.log
 * holds only the connection's lines; --redact-hosts leaves no address or
 * name anywhere, the captures included; a folder that is not empty is
 * refused; --evidence-max bounds the folders; a full disk is said once
 * and the run goes on.  $MTLSDIAG_BIN is the built program. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/codes.h"
#include "e2e.h"
#include "testutil.h"

/* Lab captures: every verdict, TLS 1.2 and 1.3, servers that answer with
 * a body ("ok apache", "ok node-required"). */
static const char *const CAPTURES[] = {
	"nginx-off_good_tls12", "nginx-off_none_tls13", "nginx-on_good_tls12", "nginx-on_good_tls13",
	"apache_none_tls12", "nginx-on_none_tls13", "nginx-optional_none_tls12", "nginx-optional_none_tls13",
	"apache_expired_tls12", "apache_expired_tls13", "apache_foreign_tls13", "apache_good_tls12",
	"node-required_good_tls12", "node-required_good_tls13",
};
#define N_CAPTURES (sizeof(CAPTURES) / sizeof(CAPTURES[0]))

static char scratch[64];

static void setup(void)
{
	snprintf(scratch, sizeof(scratch), "/tmp/mtlsdiag-evidence-XXXXXX");
	cr_assert_not_null(mkdtemp(scratch));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	if (!getenv("MTLSDIAG_KEEP"))
		nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *bin(void)
{
	const char *b = getenv("MTLSDIAG_BIN");

	cr_assert(b && *b, "MTLSDIAG_BIN is not set");
	return b;
}

static char *capture_path(const char *name)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "tests/data/lab/captures/%s.pcap", name);
	return strdup(test_path(rel));
}

/* All the lab key logs of the captures, as one file. */
static char *all_keylogs(void)
{
	char *path, rel[256];
	FILE *out;

	cr_assert(asprintf(&path, "%s/all.keylog", scratch) > 0);
	cr_assert_not_null(out = fopen(path, "w"));
	for (size_t i = 0; i < N_CAPTURES; i++) {
		size_t len;
		uint8_t *kl;

		snprintf(rel, sizeof(rel), "tests/data/lab/keylogs/%s.keylog", CAPTURES[i]);
		kl = test_load(rel, &len);
		fwrite(kl, 1, len, out);
		free(kl);
	}
	fclose(out);
	return path;
}

/* Runs mtlsdiag pcap with `opts` (NULL-terminated) on every capture:
 * its exit status; standard output and error in scratch/NAME.out, .err. */
static int run_pcap(const char *name, const char *const *opts)
{
	char *argv[64], out[256], err[256];
	size_t n = 0;

	argv[n++] = (char *)bin();
	argv[n++] = "pcap";
	for (; *opts; opts++)
		argv[n++] = (char *)*opts;
	for (size_t i = 0; i < N_CAPTURES; i++)
		argv[n++] = capture_path(CAPTURES[i]);
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/%s.out", scratch, name);
	snprintf(err, sizeof(err), "%s/%s.err", scratch, name);
	int st = e2e_run(argv, &(struct e2e_io){ .out = out, .err = err }, 60000);

	for (size_t i = n - N_CAPTURES; i < n; i++)
		free(argv[i]);
	return st;
}

static char *slurp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurp(const char *fmt, ...)
{
	char path[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return e2e_slurp(path);
}

static bool exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool exists(const char *fmt, ...)
{
	char path[1024];
	va_list ap;
	struct stat st;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return stat(path, &st) == 0 && st.st_size > 0;
}

/* The verdict, reason and fault of the one connection in a capture. */
static void reanalyse(const char *pcap, const char *keylog, char *verdict, char *reason, char *fault, char *basis)
{
	char out[1024];
	char *argv[] = { (char *)bin(), "pcap", "--json", "-", keylog ? "--keylog" : (char *)pcap,
			 (char *)keylog, (char *)pcap, NULL };
	char *json;

	if (!keylog)
		argv[5] = NULL;
	snprintf(out, sizeof(out), "%s/reanalysed.json", scratch);
	cr_assert_eq(e2e_run(argv, &(struct e2e_io){ .out = out }, 30000), 0, "mtlsdiag pcap %s failed", pcap);
	cr_assert_not_null(json = e2e_slurp(out));
	cr_assert_eq(e2e_count_lines(out), 2, "%s: %s", pcap, json);
	strcpy(verdict, e2e_member(json, "verdict"));
	strcpy(reason, e2e_member(json, "reason"));
	strcpy(fault, e2e_member(json, "fault"));
	strcpy(basis, e2e_member(json, "basis"));
	free(json);
}

/* ---- scanning every file of a folder for what must not be there ---- */

struct needle {
	const uint8_t *p;
	size_t len;
	const char *what;
};

static struct needle *g_needles;
static size_t g_n_needles;
static char g_found[2048];
static size_t g_files;

static int scan_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	size_t len;
	uint8_t *data;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	g_files++;
	cr_assert_not_null(data = test_try_load(path, &len), "cannot read %s", path);
	for (size_t i = 0; i < g_n_needles && !g_found[0]; i++)
		if (memmem(data, len, g_needles[i].p, g_needles[i].len))
			snprintf(g_found, sizeof(g_found), "%s holds %s", path, g_needles[i].what);
	free(data);
	return 0;
}

/* "" when no file under dir holds any needle, else which does. */
static const char *scan(const char *dir, struct needle *needles, size_t n)
{
	g_needles = needles;
	g_n_needles = n;
	g_found[0] = '\0';
	g_files = 0;
	cr_assert_eq(nftw(dir, scan_one, 16, FTW_PHYS), 0);
	cr_assert_gt(g_files, 0, "%s holds no files", dir);
	return g_found;
}

static void add_needle(struct needle **v, size_t *n, const void *p, size_t len, const char *what)
{
	*v = realloc(*v, (*n + 1) * sizeof(**v));
	cr_assert_not_null(*v);
	(*v)[(*n)++] = (struct needle){ .p = p, .len = len, .what = what };
}

TestSuite(evidence, .init = setup, .fini = teardown, .timeout = 120);

/* Every lab verdict: the files, the verdict sentence, the record, and a
 * capture that opens in tshark and says the same. */
Test(evidence, folder_per_connection_reanalyses_the_same)
{
	char dir[256], json[256], names[64][64], verdict[64], reason[64], fault[64], basis[64];
	const char *opts[] = { "--evidence-all", "--evidence", dir, "--json", json, "-q", NULL };
	size_t n;

	cr_assert_eq(system("command -v tshark >/dev/null"), 0, "tshark is not installed (scripts/deps test)");
	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(json, sizeof(json), "%s/all.json", scratch);
	cr_assert_eq(run_pcap("all", opts), 0, "%s", e2e_tail(json, 500));
	n = e2e_numbered(dir, names, 64);
	cr_assert_eq(n, N_CAPTURES, "%zu folders for %zu connections", n, N_CAPTURES);
	cr_assert(exists("%s/index.md", dir));
	cr_assert(exists("%s/index.html", dir));
	for (size_t i = 0; i < n; i++) {
		char line[1 << 16], first[512], expect[512], *report, *record, *code_name;
		enum verdict_code code;

		cr_assert(e2e_line(json, i, line, sizeof(line)));
		cr_assert(exists("%.255s/%.63s/report.md", dir, names[i]), "%s: no report.md", names[i]);
		cr_assert(exists("%.255s/%.63s/handshake.pcap", dir, names[i]), "%s: no handshake.pcap", names[i]);
		/* connection.json is the record --json wrote, byte for byte */
		cr_assert_not_null(record = slurp("%.255s/%.63s/connection.json", dir, names[i]));
		cr_assert_eq(strlen(record), strlen(line) + 1);
		cr_assert_eq(strncmp(record, line, strlen(line)), 0, "%s: connection.json differs from --json", names[i]);
		/* the folder is named by the verdict, report.md says it first */
		code_name = strchr(names[i], '-') + 1;
		cr_assert_str_eq(e2e_member(record, "verdict"), code_name);
		for (code = 0; code < V_COUNT && strcmp(verdict_code_name(code), code_name) != 0; code++)
			;
		cr_assert_lt(code, V_COUNT);
		snprintf(expect, sizeof(expect), "# Verdict: %s", verdict_code_text(code));
		cr_assert_not_null(report = slurp("%.255s/%.63s/report.md", dir, names[i]));
		snprintf(first, sizeof(first), "%.*s", (int)strcspn(report, "\n"), report);
		cr_assert_eq(strncmp(first, expect, strlen(expect)), 0, "%s: report.md begins '%s'", names[i], first);
		cr_assert(strstr(first, e2e_member(record, "fault")), "%s: no fault in '%s'", names[i], first);
		cr_assert(strstr(report, "## Timeline of the handshake") && strstr(report, "ClientHello"),
			  "%s: no timeline", names[i]);
		cr_assert(strstr(report, "## How the verdict was reached"));
		/* a server chain read is written out as PEM */
		if (strstr(record, "\"server_chain\":[{"))
			cr_assert(strstr(report, "certs/server-0-"), "%s", names[i]);
		/* the capture opens in tshark and says the same */
		char pcap[512], tsh[512];

		snprintf(pcap, sizeof(pcap), "%.255s/%.63s/handshake.pcap", dir, names[i]);
		snprintf(tsh, sizeof(tsh), "%s/tshark.out", scratch);
		cr_assert_eq(e2e_run((char *[]){ "tshark", "-r", pcap, NULL }, &(struct e2e_io){ .out = tsh }, 30000), 0,
			     "tshark cannot read %s", pcap);
		char *t = e2e_slurp(tsh);

		cr_assert(t && strstr(t, "Client Hello"), "%s: tshark sees no Client Hello", names[i]);
		free(t);
		reanalyse(pcap, NULL, verdict, reason, fault, basis);
		cr_assert_str_eq(verdict, e2e_member(record, "verdict"), "%s re-analysed: %s", names[i], verdict);
		cr_assert_str_eq(reason, e2e_member(record, "reason"), "%s re-analysed: %s", names[i], reason);
		cr_assert_str_eq(fault, e2e_member(record, "fault"), "%s re-analysed: %s", names[i], fault);
		free(report);
		free(record);
	}
}

/* With the key log: only connections that did not end well get a folder,
 * and nothing in it is a key, a secret or a body. */
Test(evidence, no_keys_secrets_or_bodies)
{
	char dir[256], all[256], names[64][64];
	char *keylog = all_keylogs();
	const char *opts[] = { "--keylog", keylog, "--evidence", dir, "--json", all, NULL };
	struct needle *nd = NULL;
	size_t n_nd = 0, n, failures = 0;
	char *kl, *line, *save = NULL, *rec;
	static const char *const keys[] = { "good.key", "expired.key", "foreign.key", "server.key" };
	uint8_t *keydata[4];

	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(all, sizeof(all), "%s/all.json", scratch);
	cr_assert_eq(run_pcap("keyed", opts), 0);
	/* one folder for each connection whose fault is not none */
	cr_assert_not_null(rec = e2e_slurp(all));
	for (char *p = rec; (p = strstr(p, "\"fault\":\"")); p += 9)
		failures += strncmp(p + 9, "none\"", 5) != 0;
	free(rec);
	n = e2e_numbered(dir, names, 64);
	cr_assert_eq(n, failures, "%zu folders, %zu connections did not end well", n, failures);
	cr_assert_gt(n, 3);
	/* the secrets: each hex secret of the key log */
	cr_assert_not_null(kl = e2e_slurp(keylog));
	for (line = strtok_r(kl, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *secret = strrchr(line, ' ');

		if (secret && strlen(secret + 1) >= 64)
			add_needle(&nd, &n_nd, secret + 1, strlen(secret + 1), "a key-log secret");
	}
	cr_assert_gt(n_nd, 10);
	/* the private keys: a line from the middle of each PEM */
	for (size_t i = 0; i < 4; i++) {
		char rel[128], *mid;
		size_t len;

		snprintf(rel, sizeof(rel), "tests/data/lab/pki/%s", keys[i]);
		keydata[i] = test_load(rel, &len);
		mid = strchr(strchr((char *)keydata[i], '\n') + 1, '\n') + 1;
		add_needle(&nd, &n_nd, mid, 64, keys[i]);
	}
	/* the bodies the servers answer with, and the request's headers */
	add_needle(&nd, &n_nd, "ok apache", 9, "an HTTP body");
	add_needle(&nd, &n_nd, "ok node-required", 16, "an HTTP body");
	add_needle(&nd, &n_nd, "User-Agent", 10, "an HTTP header");
	cr_assert_str_empty(scan(dir, nd, n_nd), "%s", g_found);
	for (size_t i = 0; i < n; i++)
		cr_assert(!exists("%.255s/%.63s/keys.log", dir, names[i]), "keys.log written unasked");
	for (size_t i = 0; i < 4; i++)
		free(keydata[i]);
	free(nd);
	free(kl);
	free(keylog);
}

/* --evidence-keys: the connection's lines only; they open the handshake in
 * tshark, and the application data they would open is zeros (with
 * --evidence-keep-data it is there: the check can fail). */
Test(evidence, keys_log_is_the_connections_only)
{
	char dir[256], kdir[256], names[64][64];
	char *keylog = all_keylogs();
	const char *opts[] = { "--keylog", keylog, "--evidence-all", "--evidence-keys", "--evidence", dir, "-q", NULL };
	const char *kopts[] = { "--keylog", keylog, "--evidence-all", "--evidence-keys", "--evidence-keep-data",
				"--evidence", kdir, "-q", NULL };
	char *kl = NULL;
	size_t n, checked = 0;

	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(kdir, sizeof(kdir), "%s/kept", scratch);
	cr_assert_eq(run_pcap("keys", opts), 0);
	cr_assert_eq(run_pcap("kept", kopts), 0);
	cr_assert_not_null(kl = e2e_slurp(keylog));
	n = e2e_numbered(dir, names, 64);
	cr_assert_eq(n, N_CAPTURES);
	for (size_t i = 0; i < n; i++) {
		char *keys = slurp("%.255s/%.63s/keys.log", dir, names[i]), *report, *save = NULL, random[65] = "";
		size_t lines = 0, theirs = 0;

		cr_assert_not_null(keys, "%s: no keys.log", names[i]);
		cr_assert_not_null(report = slurp("%.255s/%.63s/report.md", dir, names[i]));
		cr_assert(strstr(report, "**Warning:** `keys.log`"), "%s: no warning in report.md", names[i]);
		for (char *l = strtok_r(keys, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char *r = strchr(l, ' ');

			cr_assert_not_null(r);
			/* every line is in the key log, and of one client random */
			cr_assert_not_null(strstr(kl, l), "%s: '%s' is not a key-log line", names[i], l);
			if (!random[0])
				snprintf(random, sizeof(random), "%.64s", r + 1);
			cr_assert_eq(strncmp(r + 1, random, 64), 0, "%s: lines of two connections", names[i]);
			lines++;
		}
		/* ... and all of that random's lines that hold a secret used
		 * (the exporter secrets are not) */
		for (char *p = kl; (p = strstr(p, random)); p += 64) {
			char *bol = p;

			while (bol > kl && bol[-1] != '\n')
				bol--;
			theirs += strncmp(bol, "EXPORTER_SECRET", 15) != 0 && strncmp(bol, "EARLY_EXPORTER", 14) != 0 &&
				  strncmp(bol, "CLIENT_EARLY", 12) != 0;
		}
		cr_assert_eq(lines, theirs, "%s: %zu of the %zu lines", names[i], lines, theirs);
		free(report);
		free(keys);
		if (strcmp(names[i] + 5, "client_cert_accepted") == 0) {
			char pcap[512], kpcap[512], keyf[512], kkeyf[512], out[512], *t;
			char *targv[] = { "tshark", "-o", NULL, "-r", NULL, "-V", NULL };
			char opt[600];

			snprintf(pcap, sizeof(pcap), "%.255s/%.63s/handshake.pcap", dir, names[i]);
			snprintf(keyf, sizeof(keyf), "%.255s/%.63s/keys.log", dir, names[i]);
			snprintf(kpcap, sizeof(kpcap), "%.255s/%.63s/handshake.pcap", kdir, names[i]);
			snprintf(kkeyf, sizeof(kkeyf), "%.255s/%.63s/keys.log", kdir, names[i]);
			snprintf(out, sizeof(out), "%s/tshark.out", scratch);
			snprintf(opt, sizeof(opt), "tls.keylog_file:%s", keyf);
			targv[2] = opt;
			targv[4] = pcap;
			cr_assert_eq(e2e_run(targv, &(struct e2e_io){ .out = out }, 30000), 0);
			cr_assert_not_null(t = e2e_slurp(out));
			bool handshake_opened = strstr(t, "Certificate Verify") != NULL;
			bool body_zero = !strstr(t, "ok node") && !strstr(t, "ok apache");

			free(t);
			snprintf(opt, sizeof(opt), "tls.keylog_file:%s", kkeyf);
			targv[4] = kpcap;
			cr_assert_eq(e2e_run(targv, &(struct e2e_io){ .out = out }, 30000), 0);
			cr_assert_not_null(t = e2e_slurp(out));
			bool body_kept = strstr(t, "ok node") || strstr(t, "ok apache");

			free(t);
			if (!body_kept)
				continue;   /* a server without a body of its own */
			cr_assert(handshake_opened, "%s: keys.log does not open the handshake", names[i]);
			cr_assert(body_zero, "%s: the application data is readable with keys.log", names[i]);
			checked++;
		}
	}
	cr_assert_gt(checked, 0, "no connection with a body was decrypted");
	free(kl);
	free(keylog);
}

/* --redact-hosts: no address or name is left in any file, the captures
 * and certificates included; the captures still re-analyse the same. */
Test(evidence, redact_hosts_everywhere)
{
	char dir[256], json[256], names[64][64], verdict[64], reason[64], fault[64], basis[64];
	const char *opts[] = { "--evidence-all", "--redact-hosts", "--evidence", dir, "--json", json, "-q", NULL };
	static const uint8_t loopback[4] = { 127, 0, 0, 1 };
	struct needle nd[] = {
		{ (const uint8_t *)"127.0.0.1", 9, "127.0.0.1" },
		{ (const uint8_t *)"localhost", 9, "localhost" },
		{ loopback, 4, "127.0.0.1 in binary" },
	};
	size_t n;

	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(json, sizeof(json), "%s/all.json", scratch);
	cr_assert_eq(run_pcap("redacted", opts), 0);
	/* the check can fail: the unredacted record has both */
	char *rec = e2e_slurp(json);

	cr_assert(rec && strstr(rec, "127.0.0.1") && strstr(rec, "localhost"));
	free(rec);
	cr_assert_str_empty(scan(dir, nd, sizeof(nd) / sizeof(nd[0])), "%s", g_found);
	n = e2e_numbered(dir, names, 64);
	cr_assert_eq(n, N_CAPTURES);
	for (size_t i = 0; i < n; i++) {
		char line[1 << 16], pcap[512], *record;

		cr_assert(e2e_line(json, i, line, sizeof(line)));
		cr_assert_not_null(record = slurp("%.255s/%.63s/connection.json", dir, names[i]));
		/* one placeholder for one host, the same everywhere */
		cr_assert_str_eq(e2e_member(record, "sni"), "host1-xxx");
		snprintf(pcap, sizeof(pcap), "%.255s/%.63s/handshake.pcap", dir, names[i]);
		reanalyse(pcap, NULL, verdict, reason, fault, basis);
		cr_assert_str_eq(verdict, e2e_member(line, "verdict"), "%s re-analysed: %s", names[i], verdict);
		free(record);
	}
	char *index = slurp("%s/index.md", dir);

	cr_assert(index && strstr(index, "192.0.2.1:") && strstr(index, "host1-xxx:"), "%s", index);
	free(index);
}

/* A folder that is not empty is refused unless --force; the evidence
 * options want --evidence; --evidence-max bounds each verdict. */
Test(evidence, refusals_and_bounds)
{
	char dir[256], file[300], err[300], names[64][64], *text;
	const char *plain[] = { "--evidence", dir, "-q", NULL };
	const char *forced[] = { "--evidence", dir, "--force", "-q", NULL };
	const char *orphan[] = { "--redact-hosts", "-q", NULL };
	const char *bounded[] = { "--evidence-all", "--evidence-max", "1", "--evidence", dir, "--force", "-q", NULL };
	const char *zero[] = { "--evidence-max", "0", "--evidence", dir, NULL };
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(file, sizeof(file), "%s/notes.txt", dir);
	snprintf(err, sizeof(err), "%s/plain.err", scratch);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_not_null(f = fopen(file, "w"));
	fputs("mine\n", f);
	fclose(f);
	cr_assert_eq(run_pcap("plain", plain), 2);
	cr_assert_not_null(text = e2e_slurp(err));
	cr_assert(strstr(text, "is not empty") && strstr(text, "--force"), "%s", text);
	/* said once, and nothing of the run followed */
	cr_assert_null(strstr(strstr(text, "is not empty") + 1, "is not empty"), "%s", text);
	cr_assert_eq(strlen(strstr(text, "is not empty")),
		     strlen("is not empty (add --force to write into it)\n"), "%s", text);
	free(text);
	cr_assert_eq(run_pcap("orphan", orphan), 2);
	cr_assert_eq(run_pcap("zero", zero), 2);
	cr_assert_eq(run_pcap("forced", forced), 0);
	cr_assert(exists("%s/index.md", dir) && exists("%s", file));
	cr_assert_gt(e2e_numbered(dir, names, 64), 3);
	/* --evidence-max 1: one folder per verdict, the rest counted */
	char bdir[256];

	snprintf(bdir, sizeof(bdir), "%s/bounded", scratch);
	bounded[4] = bdir;
	cr_assert_eq(run_pcap("bounded", bounded), 0);
	size_t n = e2e_numbered(bdir, names, 64);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(strchr(names[i], '-'), strchr(names[j], '-'), "two folders of one verdict");
	/* the lab's six verdicts without a key log */
	cr_assert_eq(n, 6, "%zu folders", n);
	cr_assert_not_null(text = slurp("%s/index.md", bdir));
	char left[64];

	snprintf(left, sizeof(left), "left out by --evidence-max 1: %zu", N_CAPTURES - n);
	cr_assert(strstr(text, left), "%s", text);
	free(text);
}

/* A disk that fills: said once, the verdicts all printed, exit 0. */
Test(evidence, full_disk_goes_on)
{
	char cmd[8192], out[300], *text;
	size_t used, said = 0, verdicts = 0;

	snprintf(out, sizeof(out), "%s/full.out", scratch);
	/* files past 2 KiB fail with EFBIG (the signal ignored); the output
	 * goes through a pipe, out of the limit's reach */
	used = (size_t)snprintf(cmd, sizeof(cmd),
				"trap '' XFSZ; (ulimit -f 2; '%s' pcap --evidence-all --evidence '%s/ev'", bin(),
				scratch);
	for (size_t i = 0; i < N_CAPTURES; i++) {
		char *p = capture_path(CAPTURES[i]);

		used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, " '%s'", p);
		free(p);
	}
	snprintf(cmd + used, sizeof(cmd) - used, "; echo \"exit $?\") 2>&1 | cat");
	cr_assert_eq(e2e_run((char *[]){ "sh", "-c", cmd, NULL }, &(struct e2e_io){ .out = out }, 60000), 0);
	cr_assert_not_null(text = e2e_slurp(out));
	for (char *p = text; (p = strstr(p, "no more evidence is written")); p++)
		said++;
	for (char *p = text; (p = strstr(p, " -> localhost:")); p++)
		verdicts++;
	cr_assert_eq(said, 1, "%s", text);
	cr_assert_eq(verdicts, N_CAPTURES, "%s", text);
	cr_assert(strstr(text, "14 connections:") && strstr(text, "exit 0\n"), "%s", text);
	free(text);
}

/* Runs headless Chromium on a page: a screenshot, the DOM as rendered
 * (into dom), and its log (into log).  The exit status. */
static int chromium(const char *page, const char *png, const char *dom, const char *log, const char *size)
{
	char url[600], shot[600], profile[300], win[64];

	snprintf(url, sizeof(url), "file://%s", page);
	snprintf(shot, sizeof(shot), "--screenshot=%s", png);
	snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium", scratch);
	snprintf(win, sizeof(win), "--window-size=%s", size);
	char *argv[] = { "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
			 "--hide-scrollbars", profile, shot, win, "--dump-dom", url, NULL };

	return e2e_run(argv, &(struct e2e_io){ .out = dom, .err = log }, 60000);
}

/* index.html in headless Chromium: it renders (a screenshot is taken),
 * the console stays silent, nothing is fetched from elsewhere, and each
 * connection has its sequence diagram, the missing certificate drawn. */
Test(evidence, index_html_in_chromium)
{
	char dir[256], page[300], png[300], dom[300], log[300], bad[300], names[64][64];
	const char *opts[] = { "--evidence", dir, "-q", NULL };
	char *html, *text, *p;
	size_t n, sections = 0, svgs = 0, missing = 0, no_cert = 0;
	uint8_t *shot;
	size_t shot_len;
	FILE *f;

	cr_assert_eq(system("command -v chromium >/dev/null"), 0, "chromium is not installed (scripts/deps test)");
	snprintf(dir, sizeof(dir), "%s/ev", scratch);
	snprintf(page, sizeof(page), "%s/index.html", dir);
	snprintf(png, sizeof(png), "%s/index.png", scratch);
	snprintf(dom, sizeof(dom), "%s/dom.html", scratch);
	snprintf(log, sizeof(log), "%s/chromium.log", scratch);
	cr_assert_eq(run_pcap("html", opts), 0);
	n = e2e_numbered(dir, names, 64);
	cr_assert_gt(n, 3);
	for (size_t i = 0; i < n; i++)
		no_cert += strstr(names[i], "client_sent_no_cert") != NULL;
	cr_assert_gt(no_cert, 0);
	/* one file: nothing from elsewhere, no script */
	cr_assert_not_null(html = e2e_slurp(page));
	static const char *const external[] = { "<script", "<link", "src=", "http://", "https://", "@import", "url(" };
	for (size_t i = 0; i < sizeof(external) / sizeof(external[0]); i++)
		cr_assert_null(strstr(html, external[i]), "index.html holds %s", external[i]);
	free(html);

	/* the console check can fail: a page that logs an error is caught */
	snprintf(bad, sizeof(bad), "%s/bad.html", scratch);
	cr_assert_not_null(f = fopen(bad, "w"));
	fputs("<!DOCTYPE html><p>x</p><script>console.error('broken')</script>\n", f);
	fclose(f);
	cr_assert_eq(chromium(bad, png, dom, log, "400,300"), 0);
	cr_assert_not_null(text = e2e_slurp(log));
	cr_assert(strstr(text, ":CONSOLE") && strstr(text, "broken"), "chromium's log shows no console: %s", text);
	free(text);

	/* the page, as wide as a desktop's and as a phone's */
	cr_assert_eq(chromium(page, png, dom, log, "1000,2400"), 0, "%s", e2e_tail(log, 400));
	cr_assert_not_null(shot = test_try_load(png, &shot_len), "no screenshot");
	cr_assert_gt(shot_len, 10000);
	cr_assert_eq(memcmp(shot, "\x89PNG\r\n\x1a\n", 8), 0);
	/* IHDR: the width asked for */
	cr_assert_eq((shot[16] << 24 | shot[17] << 16 | shot[18] << 8 | shot[19]), 1000);
	free(shot);
	cr_assert_not_null(text = e2e_slurp(log));
	cr_assert_null(strstr(text, ":CONSOLE"), "console messages: %s", strstr(text, ":CONSOLE"));
	free(text);
	/* the DOM as rendered: a section per connection, an SVG diagram in
	 * each, and the missing certificate boxed in red where it is missing */
	cr_assert_not_null(html = e2e_slurp(dom));
	for (p = strstr(html, "<section class=\"conn\""); p; p = strstr(p + 1, "<section class=\"conn\"")) {
		char *end = strstr(p, "</section>");

		cr_assert_not_null(end);
		sections++;
		*end = '\0';
		svgs += strstr(p, "<svg class=\"seq\"") != NULL && strstr(p, "<line") != NULL;
		missing += strstr(p, "client_sent_no_cert") && strstr(p, "class=\"miss\"") &&
			   strstr(p, "no client certificate");
		*end = '<';
	}
	cr_assert_eq(sections, n, "%zu sections for %zu folders", sections, n);
	cr_assert_eq(svgs, n, "%zu diagrams for %zu connections", svgs, n);
	cr_assert_eq(missing, no_cert, "the missing certificate is drawn in %zu of %zu", missing, no_cert);
	free(html);
	cr_assert_eq(chromium(page, png, dom, log, "390,844"), 0);
	cr_assert_not_null(text = e2e_slurp(log));
	cr_assert_null(strstr(text, ":CONSOLE"), "console messages on a phone's width: %s", text);
	free(text);
}

/* A capture with a CONNECT preamble (a gateway's both legs) and one that
 * began mid-connection: the folders re-analyse to the same verdicts; the
 * CONNECT request line stays in the capture, its header lines do not. */
Test(evidence, preamble_and_midstream)
{
	static const char *const inputs[] = { "tests/data/mitm/mitm_nocert_tls12.both.pcap",
					      "tests/data/capture/midstream_server.pcap" };

	for (size_t k = 0; k < 2; k++) {
		char dir[256], json[256], names[64][64], verdict[64], reason[64], fault[64], basis[64];
		char *argv[] = { (char *)bin(), "pcap", "--evidence-all", "--evidence", dir, "--json", json, "-q",
				 strdup(test_path(inputs[k])), NULL };
		size_t n;

		snprintf(dir, sizeof(dir), "%s/ev%zu", scratch, k);
		snprintf(json, sizeof(json), "%s/in%zu.json", scratch, k);
		cr_assert_eq(e2e_run(argv, &(struct e2e_io){ 0 }, 30000), 0);
		free(argv[8]);
		n = e2e_numbered(dir, names, 64);
		cr_assert_gt(n, 0);
		for (size_t i = 0; i < n; i++) {
			char line[1 << 16], pcap[512];

			cr_assert(e2e_line(json, i, line, sizeof(line)));
			snprintf(pcap, sizeof(pcap), "%.255s/%.63s/handshake.pcap", dir, names[i]);
			reanalyse(pcap, NULL, verdict, reason, fault, basis);
			cr_assert_str_eq(verdict, e2e_member(line, "verdict"), "%s %s re-analysed: %s", inputs[k], names[i],
					 verdict);
			if (k == 0 && strstr(line, "\"preamble\":\"HTTP CONNECT\"")) {
				size_t len;
				uint8_t *bytes = test_try_load(pcap, &len);

				cr_assert_not_null(bytes);
				cr_assert_not_null(memmem(bytes, len, "CONNECT localhost:18401 HTTP/1.1\r\n", 34));
				cr_assert_null(memmem(bytes, len, "User-Agent", 10), "a CONNECT header in %s", pcap);
				cr_assert_null(memmem(bytes, len, "Proxy-Connection", 16), "a CONNECT header in %s", pcap);
				free(bytes);
			}
		}
	}
}
