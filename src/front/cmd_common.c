/* cmd_common: what the subcommands share: option parsing, the files their
 * options name, and their output files. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "front/cmds.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "out/outfile.h"
#include "wire/keylog.h"

static int parse_time(const char *s, time_t *out)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d",
	};
	struct tm tm;
	size_t i;

	if (s[0] == '@') {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno || *end || end == s + 1)
			return 0;
		*out = (time_t)v;
		return 1;
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(s, formats[i], &tm);
		if (end && *end == '\0') {
			*out = timegm(&tm);
			return 1;
		}
	}
	return 0;
}

int cmd_parse_time(const char *who, const char *s, time_t *out)
{
	if (parse_time(s, out))
		return 1;
	fprintf(stderr, "%s: --at: cannot read time '%s' (use 2026-11-23T12:00:00Z, 2026-11-23 or @EPOCH)\n", who, s);
	return 0;
}

struct x509_store_st *cmd_load_bundle(const char *path)
{
	X509_STORE *store = X509_STORE_new();

	if (!store)
		return NULL;
	if (X509_STORE_load_file(store, path) != 1) {
		unsigned long e = ERR_peek_last_error();

		fprintf(stderr, "mtlsdiag: %s: cannot load CA bundle: %s\n", path,
			e ? ERR_reason_error_string(e) : "no certificates");
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

/* Where the bundled catalogue is: $MTLSDIAG_INSPECTION_CAS when set (the
 * test suites and scripts/demo point it at the source tree's conf/), else
 * what `make install` wrote, PKGDATADIR/inspection-cas.conf.  NULL when it
 * is not readable; `tried` lists the place looked at. */
static const char *bundled_catalogue(char *tried, size_t triedlen)
{
	static char found[PATH_MAX + 64];
	const char *env = getenv("MTLSDIAG_INSPECTION_CAS");

	if (env && *env)
		snprintf(found, sizeof(found), "%s", env);
	else
		snprintf(found, sizeof(found), "%s/inspection-cas.conf", PKGDATADIR);
	snprintf(tried, triedlen, "%s", found);
	return access(found, R_OK) == 0 ? found : NULL;
}

struct inspect_catalogue *cmd_load_inspection(const char *who, const char *const *files, size_t n)
{
	struct inspect_catalogue *cat = inspect_new();
	char tried[PATH_MAX + 64], err[1024];
	const char *bundled;
	size_t i;

	if (!cat) {
		fprintf(stderr, "%s: out of memory\n", who);
		return NULL;
	}
	bundled = bundled_catalogue(tried, sizeof(tried));
	if (!bundled) {
		fprintf(stderr, "%s: warning: the bundled inspection-CA catalogue is not installed (looked in %s)\n",
			who, tried);
	} else if (!inspect_load_file(cat, bundled, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", who, err);
		goto Fail;
	}
	for (i = 0; i < n; i++) {
		if (!inspect_load_file(cat, files[i], err, sizeof(err))) {
			fprintf(stderr, "%s: --inspection-cas %s\n", who, err);
			goto Fail;
		}
	}
	return cat;
Fail:
	inspect_free(cat);
	return NULL;
}

int cmd_add_file(const char *who, const char *opt, const char **list, size_t *n, size_t max, const char *arg)
{
	if (*n >= max) {
		fprintf(stderr, "%s: at most %zu %s files\n", who, max, opt);
		return 0;
	}
	list[(*n)++] = arg;
	return 1;
}

static void keylog_warning(void *who, const char *line)
{
	fprintf(stderr, "%s: warning: %s\n", (const char *)who, line);
}

int cmd_load_keylogs(const char *who, const char *const *files, size_t n, bool follow, struct keylog **out)
{
	char err[512];
	size_t i;

	*out = NULL;
	if (n == 0)
		return 1;
	if (!(*out = keylog_new(keylog_warning, (void *)who))) {
		fprintf(stderr, "%s: out of memory\n", who);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!keylog_add_file(*out, files[i], follow, err, sizeof(err))) {
			fprintf(stderr, "%s: --keylog %s\n", who, err);
			return 0;
		}
	}
	return 1;
}

int cmd_add_expect(const char *who, struct server_expect *e, bool is_ca, const char *arg)
{
	char err[1024];

	if (is_ca ? expect_add_ca_file(e, arg, err, sizeof(err)) : expect_add_spki(e, arg, err, sizeof(err)))
		return 1;
	fprintf(stderr, "%s: --expect-server-%s %s\n", who, is_ca ? "ca" : "spki", err);
	return 0;
}

int cmd_parse_umask(const char *who, const char *arg, mode_t *mode)
{
	char *end;
	unsigned long mask;

	errno = 0;
	mask = strtoul(arg, &end, 8);
	if (errno || !*arg || *end || mask > 0777) {
		fprintf(stderr, "%s: --umask: '%s' is not an octal mask (022, 077)\n", who, arg);
		return 0;
	}
	*mode = 0666 & ~(mode_t)mask;
	return 1;
}

struct outfile *cmd_open_file(const char *who, const char *opt, const char *path, bool append, mode_t mode)
{
	char label[PATH_MAX + 64], err[PATH_MAX + 128];
	struct outfile *o;

	snprintf(label, sizeof(label), "%s: %s %s", who, opt, path);
	if (strcmp(path, "-") == 0)
		o = outfile_fd(STDOUT_FILENO, label);
	else
		o = outfile_open(path, append, mode, label, err, sizeof(err));
	if (!o)
		fprintf(stderr, "%s\n", strcmp(path, "-") == 0 ? label : err);
	return o;
}

int cmd_open_outputs(const char *who, const char *json_path, bool append, mode_t mode, struct cmd_output *out)
{
	*out = (struct cmd_output){ .text = stdout, .json_path = json_path };
	if (!json_path)
		return 1;
	if (!(out->json_file = cmd_open_file(who, "--json", json_path, append, mode)))
		return 0;
	out->json = outfile_stream(out->json_file);
	if (strcmp(json_path, "-") == 0)
		out->text = stderr;
	return 1;
}

int cmd_close_outputs(const char *who, struct cmd_output *out)
{
	int closed;

	(void)who;
	if (!out->json_file)
		return 1;
	closed = outfile_close(out->json_file) == 0;
	out->json_file = NULL;
	out->json = NULL;
	return closed;
}

enum cmd_parsed cmd_getopt(const char *who, int argc, char **argv, const char *optstring,
			   const struct option *opts, void (*usage)(FILE *out),
			   int (*option)(void *o, int opt, const char *arg), void *o)
{
	int opt;

	while ((opt = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return CMD_HELP;
		}
		if (opt == '?' || opt == ':') {
			cmd_bad_option(who, opt, argv);
			return CMD_USAGE_ERROR;
		}
		if (!option(o, opt, optarg))
			return CMD_USAGE_ERROR;
	}
	return CMD_RUN;
}

void cmd_bad_option(const char *who, int opt, char *const *argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	int len = (int)strcspn(arg, "=");

	if (opt == ':')
		fprintf(stderr, "%s: %.*s needs an argument (try '%s --help')\n", who, len, arg, who);
	else if (optopt > 0 && optopt < 128 && arg[0] == '-' && arg[1] != '-')
		fprintf(stderr, "%s: unknown option '-%c' (try '%s --help')\n", who, optopt, who);
	else
		fprintf(stderr, "%s: unknown option '%.*s' (try '%s --help')\n", who, len, arg, who);
}
