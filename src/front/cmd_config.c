/* cmd_config: every command's option loop (cmd_getopt), and with it the
 * configuration file (-c FILE, --config FILE) and --print-config.
 *
 * The file's keys are the command's long options, under a section named
 * after the command, and each is handed to the command's own option
 * function exactly as the same option on the command line would be: a
 * flag added to a command can be written in the file the moment it
 * exists, and checks its value the same way.  The file's options come
 * first, then the command line's; an option the command line gives
 * replaces all of the file's values for it (a repeatable one included),
 * and a listener given on the command line replaces all the file's
 * listeners with what describes them. */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/cmds.h"
#include "front/conffile.h"

/* Above any command's own option ids. */
enum { O_CONFIG = 0x10000, O_PRINT_CONFIG };

/* The options that describe a listener (mtlsdiag proxy): the order
 * between them matters, so they are taken from one place only. */
static const char *const listener_keys[] = {
	"listen", "upstream", "connect", "via", "allow", "transparent", "intercept",
};

/* One option as it was applied, for --print-config. */
struct applied {
	const char *key;
	const char *value;      /* NULL: a flag */
	unsigned line;          /* 0: the command line */
};

/* What the command line gave, found before anything is applied. */
struct given {
	int *ids;               /* option ids (getopt's values) */
	size_t n;
	bool listener;          /* one of listener_keys */
	const char *config;     /* -c FILE */
	bool print;
};

/* The file stays loaded while the process runs: the commands keep
 * pointers to its values, as they do to argv's. */
static struct conf_file loaded;

static bool is_listener_key(const char *name)
{
	for (size_t i = 0; i < sizeof(listener_keys) / sizeof(*listener_keys); i++)
		if (strcmp(name, listener_keys[i]) == 0)
			return true;
	return false;
}

static bool given_has(const struct given *g, int id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->ids[i] == id)
			return true;
	return false;
}

/* The command's table with the options every command has added. */
static struct option *all_options(const struct option *opts, size_t *n_own)
{
	size_t n = 0;
	struct option *all;

	while (opts[n].name)
		n++;
	*n_own = n;
	if (!(all = calloc(n + 3, sizeof(*all))))
		return NULL;
	memcpy(all, opts, n * sizeof(*all));
	all[n] = (struct option){ "config", required_argument, NULL, O_CONFIG };
	all[n + 1] = (struct option){ "print-config", no_argument, NULL, O_PRINT_CONFIG };
	return all;
}

/* The name of the option getopt_long returned: its long name, or for a
 * short option the long one with the same id. */
static const char *option_name(const struct option *all, int id, int longindex)
{
	if (longindex >= 0)
		return all[longindex].name;
	for (size_t i = 0; all[i].name; i++)
		if (all[i].val == id)
			return all[i].name;
	return NULL;
}

/* getopt_long's next option with -c told from a long option whose id is
 * also 'c'; *name is the option's long name (NULL for errors). */
static int next_option(int argc, char **argv, const char *optstring, const struct option *all, const char **name)
{
	int longindex = -1;
	int opt = getopt_long(argc, argv, optstring, all, &longindex);

	if (opt == 'c' && longindex < 0)
		opt = O_CONFIG;
	*name = opt == -1 || opt == '?' || opt == ':' ? NULL : option_name(all, opt, longindex);
	return opt;
}

/* The first pass over the command line: --help, a bad option, and what
 * it gives. */
static enum cmd_parsed scan(const char *who, int argc, char **argv, const char *optstring,
			    const struct option *all, void (*usage)(FILE *out), struct given *g)
{
	const char *name;
	int opt;

	optind = 0;   /* getopt starts afresh (and permutes again) */
	while ((opt = next_option(argc, argv, optstring, all, &name)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			printf("\n"
			       "configuration file (mtlsdiag(1), CONFIGURATION FILE):\n"
			       "  -c, --config FILE      options from FILE's [%s] section, read first\n"
			       "                         (keys: the long option names); an option given here\n"
			       "                         replaces the file's values for it\n"
			       "  --print-config         print the options in force, from the file and the\n"
			       "                         command line, each checked, and exit without running\n",
			       argv[0]);
			return CMD_HELP;
		}
		if (opt == '?' || opt == ':') {
			cmd_bad_option(who, opt, argv);
			return CMD_USAGE_ERROR;
		}
		if (opt == O_CONFIG)
			g->config = optarg;
		else if (opt == O_PRINT_CONFIG)
			g->print = true;
		else
			g->ids[g->n++] = opt;
		g->listener |= name && is_listener_key(name);
	}
	return CMD_RUN;
}

static bool yes_word(const char *v)
{
	return strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0;
}

static bool no_word(const char *v)
{
	return strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "off") == 0;
}

/* The section names must be commands: a misspelt one would be ignored. */
static int check_sections(const struct conf_file *cf)
{
	const char *names[32];
	size_t n = 0;

	while (n < 32 && (names[n] = cmd_name(n)))
		n++;
	for (size_t i = 0; i < cf->n_sections; i++) {
		const char *near;
		size_t j;

		for (j = 0; j < n && strcmp(cf->sections[i], names[j]) != 0; j++)
			;
		if (j < n)
			continue;
		near = conffile_nearest(cf->sections[i], names, n);
		fprintf(stderr, "mtlsdiag: %s:%u: unknown section [%s] (%s%s%s)\n", cf->path, cf->section_lines[i],
			cf->sections[i], near ? "did you mean [" : "a section is a command: [proxy], [pcap], ...",
			near ? near : "", near ? "]?" : "");
		return 0;
	}
	return 1;
}

static int unknown_key(const char *cmd, const struct conf_entry *e, const struct option *opts, size_t n)
{
	const char **names = calloc(n + 1, sizeof(*names));
	const char *near;
	size_t k = 0;

	for (size_t i = 0; names && i < n; i++)
		if (strcmp(opts[i].name, "help") != 0)
			names[k++] = opts[i].name;
	near = names ? conffile_nearest(e->key, names, k) : NULL;
	if (near)
		fprintf(stderr, "mtlsdiag: %s:%u: unknown key '%s' (did you mean '%s'?)\n", loaded.path, e->line, e->key,
			near);
	else
		fprintf(stderr, "mtlsdiag: %s:%u: unknown key '%s' in [%s] (the keys are the long options "
			"'mtlsdiag %s --help' lists)\n", loaded.path, e->line, e->key, cmd, cmd);
	free(names);
	return 0;
}

/* One entry of the command's section, handed to the command.  0 after
 * saying which line is wrong and what it expected. */
static int apply_entry(const char *cmd, const struct conf_entry *e, const struct option *opts, size_t n,
		       const struct given *g, int (*option)(void *o, int opt, const char *arg), void *o,
		       struct applied *done, size_t *n_done)
{
	const struct option *op = NULL;
	const char *value = e->value;

	for (size_t i = 0; i < n && !op; i++)
		if (strcmp(opts[i].name, e->key) == 0 && strcmp(e->key, "help") != 0)
			op = &opts[i];
	if (!op)
		return unknown_key(cmd, e, opts, n);
	if (op->has_arg == no_argument) {
		if (value && !yes_word(value) && !no_word(value)) {
			fprintf(stderr, "mtlsdiag: %s:%u: '%s' takes yes or no (or the key alone), not '%s'\n",
				loaded.path, e->line, e->key, value);
			return 0;
		}
		if (value && no_word(value))
			return 1;
		value = NULL;
	} else if (op->has_arg == required_argument && (!value || !*value)) {
		fprintf(stderr, "mtlsdiag: %s:%u: missing value: expected '%s = VALUE'\n", loaded.path, e->line, e->key);
		return 0;
	}
	/* the command line's option replaces the file's */
	if (given_has(g, op->val) || (g->listener && is_listener_key(e->key)))
		return 1;
	if (!option(o, op->val, value)) {
		fprintf(stderr, "mtlsdiag: %s:%u: bad value for '%s' (what it takes is said above)\n", loaded.path,
			e->line, e->key);
		return 0;
	}
	done[(*n_done)++] = (struct applied){ op->name, value, e->line };
	return 1;
}

/* Reads the file and applies the command's section. */
static int apply_file(const char *cmd, const struct option *opts, size_t n, const struct given *g,
		      int (*option)(void *o, int opt, const char *arg), void *o, struct applied **done,
		      size_t *n_done)
{
	char err[1024];

	conffile_clear(&loaded);
	if (!conffile_read(&loaded, g->config, err, sizeof(err))) {
		fprintf(stderr, "mtlsdiag: %s\n", err);
		return 0;
	}
	if (!check_sections(&loaded))
		return 0;
	if (!(*done = realloc(*done, (loaded.n + g->n + 1) * sizeof(**done)))) {
		fprintf(stderr, "mtlsdiag: out of memory\n");
		return 0;
	}
	for (size_t i = 0; i < loaded.n; i++)
		if (strcmp(loaded.entries[i].section, cmd) == 0 &&
		    !apply_entry(cmd, &loaded.entries[i], opts, n, g, option, o, *done, n_done))
			return 0;
	return 1;
}

/* A value as the file would need it written; a password given as
 * pass:TEXT is not shown. */
static void print_value(const char *v)
{
	size_t n = strlen(v);
	bool quote = n == 0 || v[0] == ' ' || v[0] == '\t' || v[0] == '"' || v[n - 1] == ' ' || v[n - 1] == '\t';

	if (strncmp(v, "pass:", 5) == 0)
		printf("pass:(hidden)\n");
	else
		printf(quote ? "\"%s\"\n" : "%s\n", v);
}

/* --print-config: the options in force, as a section of the file. */
static void print_config(const char *cmd, const struct given *g, const struct applied *done, size_t n_done)
{
	bool header = false;

	printf("[%s]\n", cmd);
	for (size_t i = 0; i < n_done; i++) {
		if (!header || (i > 0 && done[i].line == 0 && done[i - 1].line != 0)) {
			if (done[i].line)
				printf("# from %s\n", g->config);
			else
				printf("# from the command line\n");
			header = true;
		}
		printf("%s", done[i].key);
		if (done[i].value) {
			printf(" = ");
			print_value(done[i].value);
		} else {
			printf("\n");
		}
	}
	fflush(stdout);
}

enum cmd_parsed cmd_getopt(const char *who, int argc, char **argv, const char *optstring,
			   const struct option *opts, void (*usage)(FILE *out),
			   int (*option)(void *o, int opt, const char *arg), void *o)
{
	const char *cmd = argv[0], *name;
	struct given g = { 0 };
	struct applied *done = NULL;
	struct option *all = NULL;
	char *shorts = NULL;
	size_t n_own, n_done = 0;
	enum cmd_parsed ret = CMD_USAGE_ERROR;
	int opt;

	if (!(all = all_options(opts, &n_own)) || !(shorts = malloc(strlen(optstring) + 3)) ||
	    !(g.ids = calloc((size_t)argc + 1, sizeof(*g.ids))) || !(done = calloc((size_t)argc + 1, sizeof(*done)))) {
		fprintf(stderr, "%s: out of memory\n", who);
		goto Exit;
	}
	strcpy(shorts, optstring);
	strcat(shorts, "c:");
	if ((ret = scan(who, argc, argv, shorts, all, usage, &g)) != CMD_RUN)
		goto Exit;
	ret = CMD_USAGE_ERROR;
	if (g.config && !apply_file(cmd, opts, n_own, &g, option, o, &done, &n_done))
		goto Exit;
	optind = 0;
	while ((opt = next_option(argc, argv, shorts, all, &name)) != -1) {
		if (opt == O_CONFIG || opt == O_PRINT_CONFIG)
			continue;
		if (opt == 'h' || opt == '?' || opt == ':')   /* scan has dealt with these */
			goto Exit;
		if (!option(o, opt, optarg))
			goto Exit;
		done[n_done++] = (struct applied){ name, optarg, 0 };
	}
	ret = CMD_RUN;
	if (g.print) {
		print_config(cmd, &g, done, n_done);
		ret = CMD_HELP;
	}
Exit:
	free(done);
	free(g.ids);
	free(shorts);
	free(all);
	return ret;
}
