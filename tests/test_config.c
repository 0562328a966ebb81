/* The configuration file (-c FILE, conf/mtlsdiag.conf), the service unit
 * and `make install`: every key the shipped file documents is taken and
 * reaches the option it names (--print-config shows it in force), every
 * option of a command the file has a section for is documented there, two
 * listeners from the file relay to a real openssl s_server, the command
 * line replaces the file's values, each bad line is one message naming the
 * file and the line, and `make install DESTDIR=` installs the binary, the
 * page, the file (keeping an edited one) and a unit systemd-analyze
 * accepts. */
#include "config.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front/conffile.h"
#include "proxyutil.h"
#include "testutil.h"

#define SHIPPED "conf/mtlsdiag.conf"

struct run {
	int status;
	char *out, *err;
};

static struct run r;

/* mtlsdiag with args (NULL-terminated), standard output and error apart. */
static void run_argv(const char *const *args)
{
	const char *argv[64];
	struct e2e_io io = { NULL, px_tmp("out"), px_tmp("err") };
	size_t n = 0;

	argv[n++] = getenv("MTLSDIAG_BIN");
	cr_assert(argv[0] && *argv[0], "MTLSDIAG_BIN is not set");
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	free(r.out);
	free(r.err);
	r.status = e2e_run((char *const *)argv, &io, 20000);
	r.out = e2e_slurp(io.out);
	r.err = e2e_slurp(io.err);
	cr_assert(r.out && r.err);
}

#define RUN(...) run_argv((const char *const[]){ __VA_ARGS__, NULL })

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void fini(void)
{
	free(r.out);
	free(r.err);
	memset(&r, 0, sizeof(r));
	px_teardown();
}

TestSuite(config, .init = px_setup, .fini = fini);

/* ---- the reader ---- */

Test(config, the_reader_takes_each_form_of_line)
{
	static const char text[] = "\xef\xbb\xbf; a comment after a byte order mark\r\n"
				   "  [proxy]  \r\n"
				   "\tlisten=127.0.0.1:1\r\n"
				   "intercept\n"
				   "log = \" a b \"\n"
				   "json = \"\"\n"
				   "   # indented comment\n"
				   "[pcap]\n"
				   "filter = port 443 and host 10.0.0.1";   /* no final newline */
	struct conf_file cf = { 0 };
	char err[256] = "";
	const char *const names[] = { "listen", "upstream", "max-conns" };

	cr_assert(conffile_parse(&cf, "t.conf", (const uint8_t *)text, strlen(text), err, sizeof(err)), "%s", err);
	cr_assert_eq(cf.n, 5);
	cr_assert_eq(cf.n_sections, 2);
	cr_expect_str_eq(cf.sections[0], "proxy");
	cr_expect_eq(cf.section_lines[1], 8);
	cr_expect_str_eq(cf.entries[0].key, "listen");
	cr_expect_str_eq(cf.entries[0].value, "127.0.0.1:1");
	cr_expect_eq(cf.entries[0].line, 3);
	cr_expect_str_eq(cf.entries[1].key, "intercept");
	cr_expect_null(cf.entries[1].value, "a key alone has no value");
	cr_expect_str_eq(cf.entries[2].value, " a b ");
	cr_expect_str_eq(cf.entries[3].value, "");
	cr_expect_str_eq(cf.entries[4].section, "pcap");
	cr_expect_str_eq(cf.entries[4].value, "port 443 and host 10.0.0.1");
	cr_expect_eq(cf.entries[4].line, 9);
	conffile_clear(&cf);
	/* an empty file is a file without settings */
	cr_assert(conffile_parse(&cf, "t.conf", NULL, 0, err, sizeof(err)));
	cr_expect_eq(cf.n, 0);
	conffile_clear(&cf);
	cr_expect_str_eq(conffile_nearest("lisen", names, 3), "listen");
	cr_expect_str_eq(conffile_nearest("max-con", names, 3), "max-conns");
	cr_expect_null(conffile_nearest("ls", names, 3), "too short to be near anything");
	cr_expect_null(conffile_nearest("frobnicate", names, 3));
}

/* ---- the shipped file ---- */

/* A setting the shipped file documents: "#key" or "#key = value" under
 * [section] (prose comments have a blank after '#'). */
struct setting {
	char section[32], key[64], value[256];
	unsigned line;
};

static size_t shipped_settings(struct setting *s, size_t max)
{
	char *text = e2e_slurp(test_path(SHIPPED)), *line, *save = NULL, section[32] = "";
	unsigned lineno = 0;
	size_t n = 0;

	cr_assert_not_null(text, "cannot read %s", SHIPPED);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *eq;
		size_t klen;

		lineno++;   /* strtok_r skips empty lines: the number is only a label */
		if (line[0] == '[') {
			cr_assert(sscanf(line, "[%31[a-z-]]", section) == 1, "%s: bad section line '%s'", SHIPPED, line);
			continue;
		}
		if (line[0] != '#' || !islower((unsigned char)line[1]))
			continue;
		cr_assert(n < max);
		cr_assert(section[0], "%s: '%s' before any section", SHIPPED, line);
		eq = strstr(line, " = ");
		klen = eq ? (size_t)(eq - line - 1) : strlen(line + 1);
		cr_assert(klen < sizeof(s[n].key));
		snprintf(s[n].section, sizeof(s[n].section), "%s", section);
		snprintf(s[n].key, sizeof(s[n].key), "%.*s", (int)klen, line + 1);
		snprintf(s[n].value, sizeof(s[n].value), "%s", eq ? eq + 3 : "");
		s[n].line = lineno;
		n++;
	}
	free(text);
	return n;
}

Test(config, every_documented_key_is_taken_and_reaches_its_option)
{
	static struct setting s[256];
	size_t n = shipped_settings(s, 256), i;
	const char *conf = px_tmp("one.conf");

	cr_assert_gt(n, 80, "the shipped file documents only %zu keys", n);
	for (i = 0; i < n; i++) {
		char text[512], want[512];

		/* the one value read at parse time: it must be a real CA */
		if (strcmp(s[i].key, "expect-server-ca") == 0)
			snprintf(s[i].value, sizeof(s[i].value), "%s", px_pki("server-root.pem"));
		test_fmt(text, "[%s]\n%s%s%s\n", s[i].section, s[i].key, s[i].value[0] ? " = " : "", s[i].value);
		write_file(conf, text);
		RUN(s[i].section, "-c", conf, "--print-config");
		cr_expect_eq(r.status, 0, "[%s] %s: exit %d: %s", s[i].section, s[i].key, r.status, r.err);
		cr_expect_str_empty(r.err, "[%s] %s", s[i].section, s[i].key);
		test_fmt(want, "\n%s%s%s\n", s[i].key, s[i].value[0] ? " = " : "", s[i].value);
		cr_expect(strstr(r.out, want), "[%s] %s: not in force:\n%s", s[i].section, s[i].key, r.out);
	}
}

/* The long options a command's --help lists on its option lines (the
 * lines that start, after blanks, with '-'). */
static size_t help_options(const char *help, char names[][64], size_t max)
{
	const char *p = help;
	size_t n = 0;

	while (*p) {
		const char *end = strchr(p, '\n'), *q = p;

		if (!end)
			end = p + strlen(p);
		while (q < end && *q == ' ')
			q++;
		if (q > p && *q == '-') {
			for (const char *o = q; o && o < end; o = strstr(o + 2, " --")) {
				const char *w = o[0] == ' ' ? o + 3 : o[1] == '-' ? o + 2 : NULL;
				size_t len = 0;

				if (!w || w >= end)
					continue;
				while (w + len < end && (islower((unsigned char)w[len]) || isdigit((unsigned char)w[len]) || w[len] == '-'))
					len++;
				if (len > 0 && n < max)
					snprintf(names[n++], 64, "%.*s", (int)len, w);
			}
		}
		p = *end ? end + 1 : end;
	}
	return n;
}

Test(config, every_option_of_a_section_is_documented)
{
	static struct setting s[256];
	static char opts[128][64];
	size_t n = shipped_settings(s, 256);
	const char *sections[] = { "proxy", "pcap", "capture", "probe", "check-bundle" };

	for (size_t k = 0; k < sizeof(sections) / sizeof(*sections); k++) {
		size_t n_opts, found = 0;

		RUN(sections[k], "--help");
		cr_assert_eq(r.status, 0);
		n_opts = help_options(r.out, opts, 128);
		cr_assert_gt(n_opts, 5, "%s --help: %zu options", sections[k], n_opts);
		for (size_t j = 0; j < n_opts; j++) {
			bool documented = false;

			if (strcmp(opts[j], "help") == 0 || strcmp(opts[j], "config") == 0 ||
			    strcmp(opts[j], "print-config") == 0)
				continue;
			for (size_t i = 0; i < n && !documented; i++)
				documented = strcmp(s[i].section, sections[k]) == 0 && strcmp(s[i].key, opts[j]) == 0;
			cr_expect(documented, "%s: [%s] does not document --%s: add '#%s = ...' with what it does and "
				  "its default", SHIPPED, sections[k], opts[j], opts[j]);
			found += documented;
		}
		cr_expect_gt(found, 5);
	}
}

Test(config, the_shipped_file_as_it_is)
{
	RUN("proxy", "-c", test_path(SHIPPED), "--print-config");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "[proxy]\n", "every key is commented out");
	/* the service refuses to start until a listener is written in */
	RUN("proxy", "-c", test_path(SHIPPED));
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.err, "mtlsdiag proxy: --listen is required (try 'mtlsdiag proxy --help')\n");
}

/* ---- the file against a real server ---- */

Test(config, two_listeners_from_the_file_relay_to_a_real_server)
{
	uint16_t srv_port = e2e_free_port(), static_port = e2e_free_port(), connect_port = e2e_free_port();
	const char *conf = px_tmp("proxy.conf"), *json = px_tmp("from-cli.json"), *file_json = px_tmp("from-file.json");
	char text[2048], extra[128];
	struct px_curl direct, via;
	pid_t srv, proxy;

	srv = px_start_s_server(srv_port);
	test_fmt(text,
		 "# two listeners, each with its mode\n"
		 "[proxy]\n"
		 "listen = 127.0.0.1:%u\n"
		 "upstream = 127.0.0.1:%u\n"
		 "\n"
		 "listen = 127.0.0.1:%u\n"
		 "  connect\n"
		 "allow = localhost:%u\n"
		 "json = %s\n"
		 "idle-timeout = 30\n"
		 "[pcap]\n"
		 "quiet\n",
		 static_port, srv_port, connect_port, srv_port, file_json);
	write_file(conf, text);
	/* --json on the command line replaces the file's */
	proxy = px_start(px_tmp("proxy.log"), "-c", conf, "--json", json, (char *)NULL);
	cr_expect(px_find_line(px_tmp("proxy.log"), "listening on 127.0.0.1:"), "%s", px_nth_line(px_tmp("proxy.log"), 0));
	direct = px_run_curl(static_port, "1.2", "good", NULL);
	cr_expect_str_eq(direct.http_code, "200");
	cr_assert(e2e_wait_lines(json, 1, 5000), "no record for the static listener");
	test_fmt(extra, "-x http://127.0.0.1:%u", connect_port);
	via = px_run_curl(srv_port, "1.2", "good", extra);
	cr_expect_str_eq(via.http_code, "200");
	cr_assert(e2e_wait_lines(json, 2, 5000), "no record for the CONNECT listener");
	cr_expect_str_eq(px_json_field(px_nth_line(json, 0), "mode"), "static", "%s", px_nth_line(json, 0));
	cr_expect_str_eq(px_json_field(px_nth_line(json, 0), "verdict"), "client_cert_accepted");
	cr_expect_str_eq(px_json_field(px_nth_line(json, 1), "mode"), "connect", "%s", px_nth_line(json, 1));
	cr_expect_str_eq(px_json_field(px_nth_line(json, 1), "verdict"), "client_cert_accepted");
	cr_expect_eq(access(file_json, F_OK), -1, "the file's json was replaced by the command line's");
	cr_expect_eq(e2e_stop(proxy, 12000), 0);
	px_stop_child(srv);
}

/* ---- the command line over the file ---- */

/* The file's settings as --print-config shows them when the command line
 * gives none. */
static const char over_settings[] = "listen = 127.0.0.1:1443\n"
				    "upstream = 127.0.0.1:443\n"
				    "listen = 127.0.0.1:1080\n"
				    "connect\n"
				    "workers = 2\n"
				    "keylog = /var/lib/mtlsdiag/a.keys\n"
				    "keylog = /var/lib/mtlsdiag/b.keys\n"
				    "pcap-full\n";

Test(config, the_command_line_replaces_the_files_values)
{
	const char *conf = px_tmp("over.conf");
	char want[2048];

	/* keep-query = no: the flag not given */
	test_fmt(want, "[proxy]\n%skeep-query = no\n", over_settings);
	write_file(conf, want);
	/* a scalar, a repeatable option and the listeners, each replaced;
	 * the file's flag stays */
	RUN("proxy", "-c", conf, "--print-config", "--workers", "3", "--keylog", "/tmp/c.keys", "--listen",
	    "127.0.0.1:2443", "--transparent");
	cr_assert_eq(r.status, 0, "%s", r.err);
	test_fmt(want, "[proxy]\n"
		       "# from %s\n"
		       "pcap-full\n"
		       "# from the command line\n"
		       "workers = 3\n"
		       "keylog = /tmp/c.keys\n"
		       "listen = 127.0.0.1:2443\n"
		       "transparent\n", conf);
	cr_assert_str_eq(r.out, want);
	/* nothing on the command line: the file as written */
	RUN("proxy", "-c", conf, "--print-config");
	cr_assert_eq(r.status, 0, "%s", r.err);
	test_fmt(want, "[proxy]\n# from %s\n%s", conf, over_settings);
	cr_assert_str_eq(r.out, want);
	/* -c before the command, and --config=FILE, read the same */
	RUN("-c", conf, "proxy", "--print-config");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, want);
	{
		char opt[600];

		test_fmt(opt, "--config=%s", conf);
		RUN(opt, "proxy", "--print-config");
		cr_assert_str_eq(r.out, want);
		RUN("proxy", opt, "--print-config");
		cr_assert_str_eq(r.out, want);
	}
	/* a short option (-q) replaces the file's flag (quiet = yes) too */
	write_file(conf, "[pcap]\nquiet = yes\nfilter = port 443\n");
	RUN("pcap", "-c", conf, "-f", "port 8443", "--print-config");
	test_fmt(want, "[pcap]\n# from %s\nquiet\n# from the command line\nfilter = port 8443\n", conf);
	cr_assert_str_eq(r.out, want);
	/* a password given as pass:TEXT is not printed */
	write_file(conf, "[probe]\npass = pass:s3cret\n");
	RUN("probe", "-c", conf, "--print-config");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "pass = pass:(hidden)\n") && !strstr(r.out, "s3cret"), "%s", r.out);
}

/* ---- bad files ---- */

static const struct {
	const char *text;       /* the file; NULL: none at all */
	unsigned line;          /* the line named, 0: none */
	const char *says;       /* what follows "mtlsdiag: FILE:LINE: " */
	const char *before;     /* the option's own line before it, or NULL */
} bad[] = {
	{ "[proxy]\nlisten = 127.0.0.1:1443\nlisen = 127.0.0.1:1444\n", 3,
	  "unknown key 'lisen' (did you mean 'listen'?)", NULL },
	{ "[proxy]\nfrobnicate = 1\n", 2,
	  "unknown key 'frobnicate' in [proxy] (the keys are the long options 'mtlsdiag proxy --help' lists)", NULL },
	{ "[proxy]\n# a comment\nupstream\n", 3, "missing value: expected 'upstream = VALUE'", NULL },
	{ "[proxy]\nupstream =   \n", 2, "missing value: expected 'upstream = VALUE'", NULL },
	{ "[proxy]\nworkers = many\n", 2, "bad value for 'workers' (what it takes is said above)",
	  "mtlsdiag proxy: --workers: 'many' is not a number from 1 to 256" },
	{ "[proxy]\nover-budget = drop\n", 2, "bad value for 'over-budget' (what it takes is said above)",
	  "mtlsdiag proxy: --over-budget 'drop': use splice or close" },
	{ "[proxy]\nkeep-query = maybe\n", 2, "'keep-query' takes yes or no (or the key alone), not 'maybe'", NULL },
	{ "[proxxy]\nworkers = 2\n", 1, "unknown section [proxxy] (did you mean [proxy]?)", NULL },
	{ "[other]\n", 1, "unknown section [other] (a section is a command: [proxy], [pcap], ...)", NULL },
	{ "workers = 2\n[proxy]\n", 1, "'workers' before any section: expected a [command] line first, such as [proxy]",
	  NULL },
	{ "[proxy\n", 1, "expected a section such as [proxy]: a command's name in brackets", NULL },
	{ "[proxy]\nlog = \"/var/log/x.log\n", 2, "expected a closing '\"' at the end of the line", NULL },
	{ "[proxy]\nWorkers = 2\n", 2, "expected 'key = value' or a [section], not 'Workers = 2'", NULL },
	{ "[proxy]\nworkers 2\n", 2,
	  "expected '=' after the key 'workers' (keys are long option names: lower-case letters, digits and '-')", NULL },
	{ "[proxy]\nworkers = 2\x01\n", 2, "control character 0x01 at column 12: expected text", NULL },
	{ NULL, 0, "cannot open the configuration file: No such file or directory", NULL },
};

Test(config, a_bad_line_is_named_with_its_file_and_line)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *conf = bad[i].text ? px_tmp("bad.conf") : px_tmp("absent.conf");
		char want[1024];

		if (bad[i].text)
			write_file(conf, bad[i].text);
		RUN("proxy", "-c", conf, "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2");
		if (bad[i].line)
			test_fmt(want, "%s%smtlsdiag: %s:%u: %s\n", bad[i].before ? bad[i].before : "",
				 bad[i].before ? "\n" : "", conf, bad[i].line, bad[i].says);
		else
			test_fmt(want, "mtlsdiag: %s: %s\n", conf, bad[i].says);
		cr_expect_eq(r.status, 2, "case %zu: exit %d", i, r.status);
		cr_expect_str_eq(r.err, want, "case %zu", i);
		cr_expect_str_empty(r.out, "case %zu", i);
	}
	/* a directory: opened, not read */
	RUN("pcap", "-c", px_tmp(""), "x.pcap");
	cr_expect_eq(r.status, 2);
	cr_expect(strstr(r.err, "cannot read the configuration file: Is a directory"), "%s", r.err);
	/* -c without a command; the program's help says where -c goes */
	RUN("--help");
	cr_expect(strstr(r.out, "usage: mtlsdiag [-c FILE] COMMAND [OPTIONS]\n"), "%s", r.out);
	RUN("-c", px_tmp("bad.conf"));
	cr_expect_eq(r.status, 2);
	cr_expect_str_eq(r.err, "mtlsdiag: -c FILE goes with a command: mtlsdiag -c FILE COMMAND [OPTIONS]\n");
}

/* ---- make install ---- */

/* The build directory: MTLSDIAG_BIN is BUILDDIR/src/mtlsdiag. */
static const char *builddir(void)
{
	static char dir[4096];
	const char *bin = getenv("MTLSDIAG_BIN");

	cr_assert(bin && *bin);
	test_fmt(dir, "%s", bin);
	return dirname(dirname(dir));
}

/* The one path under root whose name ends with suffix (find's answer). */
static const char *installed(const char *root, const char *suffix)
{
	static char found[8][4096];
	static int k;
	char cmd[8192];
	FILE *p;
	char *f = found[k++ % 8];

	test_fmt(cmd, "find '%s' -path '*%s' | head -n 2", root, suffix);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(f, 4096, p))
		f[0] = '\0';
	pclose(p);
	f[strcspn(f, "\n")] = '\0';
	return f;
}

static int make_install(const char *dest, const char *target)
{
	char cmd[8192];

	test_fmt(cmd, "make -s -C '%s' %s DESTDIR='%s' >'%s' 2>&1", builddir(), target, dest, px_tmp("make.log"));
	return system(cmd);
}

Test(config, make_install_puts_each_file_in_place, .timeout = 60)
{
	const char *dest = px_tmp("dest");
	const char *bin, *man, *conf, *unit;
	char *unit_text, *conf_text, want[8192], cmd[8192];
	const char *exec;

	cr_assert_eq(make_install(dest, "install"), 0, "make install: %s", e2e_tail(px_tmp("make.log"), 2000));
	bin = installed(dest, "/bin/mtlsdiag");
	man = installed(dest, "/man1/mtlsdiag.1");
	conf = installed(dest, "/mtlsdiag/mtlsdiag.conf");
	unit = installed(dest, "/systemd/system/mtlsdiag.service");
	cr_assert(bin[0] && access(bin, X_OK) == 0, "no binary installed");
	cr_assert(man[0], "no man page installed");
	cr_assert(conf[0], "no configuration installed");
	cr_assert(unit[0], "no unit installed");
	cr_assert(installed(dest, "/share/mtlsdiag/inspection-cas.conf")[0]);
	conf_text = e2e_slurp(conf);
	cr_assert_not_null(conf_text);
	{
		char *shipped = e2e_slurp(test_path(SHIPPED));

		cr_expect_str_eq(conf_text, shipped, "the installed file is the shipped one");
		free(shipped);
	}
	free(conf_text);
	/* the unit runs the installed binary on the installed file */
	unit_text = e2e_slurp(unit);
	cr_assert_not_null(unit_text);
	test_fmt(want, "\nExecStart=%s proxy -c %s\n", bin + strlen(dest), conf + strlen(dest));
	cr_expect(strstr(unit_text, want), "%s not in:\n%s", want, unit_text);
	for (const char *k = "DynamicUser=yes\0CapabilityBoundingSet=CAP_NET_BIND_SERVICE\0"
			     "AmbientCapabilities=CAP_NET_BIND_SERVICE\0ProtectSystem=strict\0ProtectHome=yes\0"
			     "PrivateTmp=yes\0NoNewPrivileges=yes\0StateDirectory=mtlsdiag\0LogsDirectory=mtlsdiag\0";
	     *k; k += strlen(k) + 1) {
		char line[128];

		test_fmt(line, "\n%s\n", k);
		cr_expect(strstr(unit_text, line), "the unit lacks %s", k);
	}
	cr_expect(!strstr(unit_text, "CAP_NET_RAW") && !strstr(unit_text, "CAP_SYS_ADMIN"));
	/* systemd's own reading of the unit, the binary at its DESTDIR place */
	exec = strstr(unit_text, "ExecStart=");
	cr_assert_not_null(exec);
	if (px_have("systemd-analyze")) {
		const char *moved = px_tmp("mtlsdiag.service");
		char *err;
		FILE *f = fopen(moved, "w");

		cr_assert_not_null(f);
		fwrite(unit_text, 1, (size_t)(exec - unit_text), f);
		fprintf(f, "ExecStart=%s%s", dest, exec + strlen("ExecStart="));
		cr_assert_eq(fclose(f), 0);
		test_fmt(cmd, "systemd-analyze verify --man=no '%s' >'%s' 2>&1", moved, px_tmp("verify.log"));
		cr_expect_eq(system(cmd), 0, "systemd-analyze verify: %s", e2e_tail(px_tmp("verify.log"), 2000));
		err = e2e_slurp(px_tmp("verify.log"));
		cr_expect_str_empty(err, "systemd-analyze verify warns: %s", err);
		free(err);
	} else {
		cr_log_warn("systemd-analyze is not installed (Debian package systemd): the unit is not verified");
	}
	free(unit_text);
	/* an edited configuration is kept; the shipped one goes beside it */
	write_file(conf, "[proxy]\nlisten = 127.0.0.1:8443\nupstream = 127.0.0.1:443\n");
	cr_assert_eq(make_install(dest, "install"), 0, "make install: %s", e2e_tail(px_tmp("make.log"), 2000));
	conf_text = e2e_slurp(conf);
	cr_expect_str_eq(conf_text, "[proxy]\nlisten = 127.0.0.1:8443\nupstream = 127.0.0.1:443\n");
	free(conf_text);
	test_fmt(want, "%s.dist", conf);
	cr_expect_eq(access(want, F_OK), 0, "no %s", want);
	/* uninstall leaves the edited file and takes the rest */
	cr_assert_eq(make_install(dest, "uninstall"), 0, "make uninstall: %s", e2e_tail(px_tmp("make.log"), 2000));
	cr_expect_eq(access(conf, F_OK), 0, "the edited configuration was removed");
	cr_expect_eq(access(want, F_OK), -1, "%s stayed", want);
	cr_expect_eq(access(bin, F_OK), -1);
	cr_expect_eq(access(unit, F_OK), -1);
}
