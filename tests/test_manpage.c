/* Tests for the man page, doc/mtlsdiag.1: it renders without warnings,
 * it has a section for every command 'mtlsdiag --help' lists, each
 * section lists exactly the long options of 'mtlsdiag CMD --help' (an
 * option added to a command and not to the page fails here, by name), and
 * its .TH line carries the version 'mtlsdiag --version' prints.
 * $MTLSDIAG_BIN is the built program, the page is read from the source
 * tree ($MTLSDIAG_SRCDIR). */
#include "config.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"
#include "testutil.h"

#define MANPAGE "doc/mtlsdiag.1"

/* A list of distinct strings (option or command names). */
struct names {
	char **v;
	size_t n, cap;
};

static bool names_has(const struct names *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && memcmp(s->v[i], name, len) == 0)
			return true;
	return false;
}

static void names_add(struct names *s, const char *name, size_t len)
{
	if (names_has(s, name, len))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 32;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		cr_assert_not_null(s->v);
	}
	s->v[s->n] = strndup(name, len);
	cr_assert_not_null(s->v[s->n]);
	s->n++;
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* A growing text, for the failure report. */
struct text {
	char *s;
	size_t len, cap;
};

static void text_add(struct text *t, const char *s)
{
	size_t n = strlen(s);

	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		cr_assert_not_null(t->s);
	}
	memcpy(t->s + t->len, s, n + 1);
	t->len += n;
}

/* Runs CMD through the shell with standard output and standard error
 * captured apart; returns the exit status (-1 when it did not exit). */
static int run(const char *cmd, char **out, char **err)
{
	const char *tmp = getenv("TMPDIR");
	char outp[4096], errp[4096], full[16384];
	int fo, fe, st;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	test_fmt(outp, "%s/mtlsdiag-man-out-XXXXXX", tmp);
	test_fmt(errp, "%s/mtlsdiag-man-err-XXXXXX", tmp);
	fo = mkstemp(outp);
	fe = mkstemp(errp);
	cr_assert(fo >= 0 && fe >= 0, "mkstemp in %s failed", tmp);
	close(fo);
	close(fe);
	test_fmt(full, "( %s ) >'%s' 2>'%s' </dev/null", cmd, outp, errp);
	st = system(full);
	*out = e2e_slurp(outp);
	*err = e2e_slurp(errp);
	unlink(outp);
	unlink(errp);
	cr_assert(*out && *err, "cannot read the output of: %s", cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *bin(void)
{
	const char *b = getenv("MTLSDIAG_BIN");

	cr_assert(b && *b, "MTLSDIAG_BIN is not set");
	return b;
}

/* 'mtlsdiag ARGS' (ARGS trusted: command names and options), its
 * standard output; fails the test unless it exits 0 and says nothing on
 * standard error. */
static char *program_output(const char *args)
{
	char cmd[8192], *out, *err;
	int st;

	test_fmt(cmd, "'%s' %s", bin(), args);
	st = run(cmd, &out, &err);
	cr_assert_eq(st, 0, "'mtlsdiag %s' exited %d: %s", args, st, err);
	cr_assert_str_empty(err, "'mtlsdiag %s' wrote to standard error: %s", args, err);
	free(err);
	return out;
}

static bool have(const char *tool)
{
	char cmd[256];

	test_fmt(cmd, "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

static bool long_option_char(int c)
{
	return islower(c) || isdigit(c) || c == '-';
}

/* Adds to OPTS the long options that start one line of a command's
 * --help: an option line is indented and begins with '-'; it lists
 * options ('--name', '-x,'), each possibly followed by one argument
 * (FILE, HOST:PORT, 1.2|1.3|both: no lower-case letter, or a '|'), up to
 * the first word of the description.  So '--cert FILE --key FILE  a
 * client certificate' gives --cert and --key, '-f, --filter EXPR only
 * packets' gives --filter, and an option named in a description does not
 * count. */
static void help_options(const char *help, struct names *opts)
{
	const char *line = help;

	while (*line) {
		const char *end = strchr(line, '\n'), *p = line;
		bool after_option = false;

		if (!end)
			end = line + strlen(line);
		while (p < end && *p == ' ')
			p++;
		if (p > line && p < end && *p == '-') {
			while (p < end) {
				const char *w = p, *we;
				bool lower = false, bar = false;

				while (p < end && *p != ' ')
					p++;
				we = p;
				while (p < end && *p == ' ')
					p++;
				for (const char *q = w; q < we; q++) {
					lower |= islower((unsigned char)*q) != 0;
					bar |= *q == '|';
				}
				if (we - w > 2 && w[0] == '-' && w[1] == '-') {
					const char *q = w + 2;

					while (q < we && long_option_char((unsigned char)*q))
						q++;
					names_add(opts, w, (size_t)(q - w));
					after_option = true;
				} else if (we - w >= 2 && w[0] == '-' && w[1] != '-') {
					after_option = true;         /* a short option, "-f," */
				} else if (after_option && (!lower || bar)) {
					after_option = false;        /* its argument */
				} else {
					break;                       /* the description */
				}
			}
		}
		line = *end ? end + 1 : end;
	}
}

/* The commands 'mtlsdiag --help' lists: the first word of each line
 * indented by exactly two spaces under "commands:". */
static void help_commands(const char *help, struct names *cmds)
{
	const char *p = strstr(help, "\ncommands:\n");

	cr_assert_not_null(p, "'mtlsdiag --help' has no \"commands:\" list:\n%s", help);
	p += strlen("\ncommands:\n");
	while (*p && *p != '\n') {
		const char *end = strchr(p, '\n');

		if (!end)
			end = p + strlen(p);
		if (end - p > 2 && p[0] == ' ' && p[1] == ' ' && islower((unsigned char)p[2])) {
			const char *w = p + 2, *q = w;

			while (q < end && *q != ' ')
				q++;
			names_add(cmds, w, (size_t)(q - w));
		}
		p = *end ? end + 1 : end;
	}
	cr_assert(cmds->n > 0, "'mtlsdiag --help' lists no command:\n%s", help);
}

/* One roff line as plain text: font changes (\fB, \fI, \fR, \fP, \f(XX,
 * \f[...]), \&, \% and \: removed, \- and \(hy as '-', quotes dropped. */
static void roff_plain(const char *line, size_t len, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < outsize; i++) {
		if (line[i] == '\\' && i + 1 < len) {
			char c = line[i + 1];

			if (c == 'f' && i + 2 < len) {
				if (line[i + 2] == '(')
					i += 4;
				else if (line[i + 2] == '[') {
					const char *close = memchr(line + i + 3, ']', len - i - 3);

					i = close ? (size_t)(close - line) : len;
				} else
					i += 2;
				continue;
			}
			if (c == '&' || c == '%' || c == ':') {
				i++;
				continue;
			}
			if (c == '-') {
				out[o++] = '-';
				i++;
				continue;
			}
			if (c == '(' && i + 3 < len && line[i + 2] == 'h' && line[i + 3] == 'y') {
				out[o++] = '-';
				i += 3;
				continue;
			}
		}
		if (line[i] == '"')
			continue;
		out[o++] = line[i];
	}
	out[o] = '\0';
}

/* The page's section for command CMD: from '.SH "COMMAND: CMD"' to the
 * next .SH; NULL when there is none.  *len is its length. */
static const char *man_section(const char *man, const char *cmd, size_t *len)
{
	const char *line = man;

	while (*line) {
		const char *end = strchr(line, '\n');
		char plain[512], want[256];

		if (!end)
			end = line + strlen(line);
		if (strncmp(line, ".SH ", 4) == 0) {
			roff_plain(line + 4, (size_t)(end - line - 4), plain, sizeof(plain));
			test_fmt(want, "COMMAND: %s", cmd);
			if (strcmp(plain, want) == 0) {
				const char *start = *end ? end + 1 : end, *next = start;

				while (*next && strncmp(next, ".SH ", 4) != 0) {
					const char *e = strchr(next, '\n');

					next = e ? e + 1 : next + strlen(next);
				}
				*len = (size_t)(next - start);
				return start;
			}
		}
		line = *end ? end + 1 : end;
	}
	return NULL;
}

/* The commands the page has a section for ('.SH "COMMAND: NAME"'). */
static void man_commands(const char *man, struct names *cmds)
{
	const char *line = man;

	while (*line) {
		const char *end = strchr(line, '\n');
		char plain[512];

		if (!end)
			end = line + strlen(line);
		if (strncmp(line, ".SH ", 4) == 0) {
			roff_plain(line + 4, (size_t)(end - line - 4), plain, sizeof(plain));
			if (strncmp(plain, "COMMAND: ", 9) == 0)
				names_add(cmds, plain + 9, strlen(plain + 9));
		}
		line = *end ? end + 1 : end;
	}
}

/* The long options a section of the page lists: the '--name' words of
 * each .TP entry's tag (the line after .TP, comments skipped). */
static void man_options(const char *sec, size_t len, struct names *opts)
{
	const char *line = sec, *stop = sec + len;
	bool tag_next = false;

	while (line < stop) {
		const char *end = memchr(line, '\n', (size_t)(stop - line));
		char plain[1024];

		if (!end)
			end = stop;
		if (strncmp(line, ".\\\"", 3) == 0 || strncmp(line, "'\\\"", 3) == 0) {
			/* a comment: the tag is still to come */
		} else if (strncmp(line, ".TP", 3) == 0 && (end - line == 3 || line[3] == ' ')) {
			tag_next = true;
		} else if (tag_next) {
			tag_next = false;
			roff_plain(line, (size_t)(end - line), plain, sizeof(plain));
			for (const char *p = plain; (p = strstr(p, "--")) != NULL;) {
				const char *q = p + 2;

				while (long_option_char((unsigned char)*q))
					q++;
				if (q > p + 2 && (p == plain || !long_option_char((unsigned char)p[-1])))
					names_add(opts, p, (size_t)(q - p));
				p = q;
			}
		}
		line = end < stop ? end + 1 : stop;
	}
}

static char *load_manpage(void)
{
	char *man = e2e_slurp(test_path(MANPAGE));

	cr_assert_not_null(man, "cannot read %s", test_path(MANPAGE));
	return man;
}

/* Names in A and not in B, ", " between them, into T; how many. */
static size_t missing(const struct names *a, const struct names *b, struct text *t)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		if (!names_has(b, a->v[i], strlen(a->v[i]))) {
			text_add(t, n++ ? ", " : "");
			text_add(t, a->v[i]);
		}
	return n;
}

Test(manpage, renders_without_warnings)
{
	static const char *const devices[] = { "", "-Tutf8", "-Tascii" };
	const char *page = test_path(MANPAGE);
	char cmd[8192], *out, *err;
	int st;

	if (access(page, R_OK) != 0)
		cr_assert_fail("cannot read %s", page);
	if (have("groff")) {
		for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
			test_fmt(cmd, "groff %s -man -ww -z '%s'", devices[i], page);
			st = run(cmd, &out, &err);
			cr_expect_eq(st, 0, "%s exited %d: %s", cmd, st, err);
			cr_expect_str_empty(err, "%s warns:\n%s", cmd, err);
			free(out);
			free(err);
		}
	} else if (have("man")) {
		test_fmt(cmd, "MANWIDTH=80 man --warnings -l '%s' >/dev/null", page);
		st = run(cmd, &out, &err);
		cr_expect_eq(st, 0, "%s exited %d: %s", cmd, st, err);
		cr_expect_str_empty(err, "%s warns:\n%s", cmd, err);
		free(out);
		free(err);
	} else {
		cr_skip_test("neither groff nor man is installed (Debian: groff-base, man-db): " MANPAGE " not rendered");
	}
}

/* Every command of 'mtlsdiag --help' has its section in the page, and
 * every section is a command. */
Test(manpage, a_section_per_command)
{
	struct names prog = { 0 }, page = { 0 };
	struct text only_prog = { 0 }, only_page = { 0 };
	char *help = program_output("--help"), *man = load_manpage();
	size_t a, b;

	help_commands(help, &prog);
	man_commands(man, &page);
	text_add(&only_prog, "");
	text_add(&only_page, "");
	a = missing(&prog, &page, &only_prog);
	b = missing(&page, &prog, &only_page);
	cr_assert(a == 0 && b == 0,
		"commands in 'mtlsdiag --help' without a '.SH \"COMMAND: NAME\"' section in " MANPAGE ": [%s]; "
		"sections of " MANPAGE " for commands 'mtlsdiag --help' does not list: [%s]",
		only_prog.s, only_page.s);
	names_free(&prog);
	names_free(&page);
	free(only_prog.s);
	free(only_page.s);
	free(help);
	free(man);
}

/* For each command, the long options of its --help and the .TP entries
 * of its section are the same set; the failure names every one missing
 * on either side, for every command. */
Test(manpage, options_match_help)
{
	struct names cmds = { 0 };
	struct text report = { 0 };
	char *top = program_output("--help"), *man = load_manpage();
	size_t bad = 0;

	help_commands(top, &cmds);
	text_add(&report, "");
	for (size_t i = 0; i < cmds.n; i++) {
		struct names prog = { 0 }, page = { 0 };
		struct text t = { 0 };
		const char *sec;
		char args[512], *help;
		size_t len = 0;

		test_fmt(args, "%s --help", cmds.v[i]);
		help = program_output(args);
		help_options(help, &prog);
		cr_assert(prog.n > 0, "no option found in 'mtlsdiag %s':\n%s", args, help);
		sec = man_section(man, cmds.v[i], &len);
		if (!sec) {
			text_add(&report, "\n  no '.SH \"COMMAND: ");
			text_add(&report, cmds.v[i]);
			text_add(&report, "\"' section");
			bad++;
		} else {
			man_options(sec, len, &page);
			text_add(&t, "");
			if (missing(&prog, &page, &t)) {
				text_add(&report, "\n  ");
				text_add(&report, cmds.v[i]);
				text_add(&report, ": in 'mtlsdiag ");
				text_add(&report, args);
				text_add(&report, "' but not in the man page: ");
				text_add(&report, t.s);
				bad++;
			}
			t.len = 0;
			t.s[0] = '\0';
			if (missing(&page, &prog, &t)) {
				text_add(&report, "\n  ");
				text_add(&report, cmds.v[i]);
				text_add(&report, ": in the man page but not in 'mtlsdiag ");
				text_add(&report, args);
				text_add(&report, "': ");
				text_add(&report, t.s);
				bad++;
			}
		}
		free(t.s);
		names_free(&prog);
		names_free(&page);
		free(help);
	}
	cr_assert_eq(bad, 0, MANPAGE " and --help disagree (each option is a .TP entry of its command's section):%s",
		report.s);
	names_free(&cmds);
	free(report.s);
	free(top);
	free(man);
}

/* The .TH line's fourth argument is "mtlsdiag VERSION", as --version
 * prints it. */
Test(manpage, version_matches_the_program)
{
	char *man = load_manpage(), *ver = program_output("--version");
	const char *th = strncmp(man, ".TH ", 4) == 0 ? man : strstr(man, "\n.TH ");
	char args[8][256];
	size_t n = 0, vlen = strlen(ver);

	cr_assert_not_null(th, MANPAGE " has no .TH line");
	th += *th == '\n' ? 5 : 4;
	while (*th && *th != '\n' && n < 8) {
		size_t o = 0;

		while (*th == ' ')
			th++;
		if (!*th || *th == '\n')
			break;
		if (*th == '"') {
			for (th++; *th && *th != '"' && *th != '\n'; th++)
				if (o + 1 < sizeof(args[n]))
					args[n][o++] = *th;
			if (*th == '"')
				th++;
		} else {
			for (; *th && *th != ' ' && *th != '\n'; th++)
				if (o + 1 < sizeof(args[n]))
					args[n][o++] = *th;
		}
		args[n++][o] = '\0';
	}
	while (vlen && (ver[vlen - 1] == '\n' || ver[vlen - 1] == ' '))
		ver[--vlen] = '\0';
	cr_assert_geq(n, 4, ".TH of " MANPAGE " has no source argument (\"mtlsdiag VERSION\")");
	cr_assert_str_eq(args[3], ver, ".TH of " MANPAGE " says \"%s\", 'mtlsdiag --version' \"%s\": update the page",
		args[3], ver);
	cr_assert_str_eq(ver, "mtlsdiag " PACKAGE_VERSION);
	free(man);
	free(ver);
}
