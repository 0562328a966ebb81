/* conffile: the configuration file's syntax (conf/mtlsdiag.conf), read
 * into a list of entries; what the keys mean is the commands' business
 * (cmd_common.c maps each key onto the command's own option parsing).
 *
 *   # a comment (a line whose first non-blank is '#' or ';')
 *   [proxy]                     a section: the command its keys are for
 *   listen = 127.0.0.1:8443     a key (a long option's name) and its value
 *   intercept                   a key alone (an option without argument)
 *   log = "/var/log/a b.log"    double quotes keep blanks at either end
 *
 * The file is read whole, through the cursor; a syntax error names the
 * file, the line and what was expected. */
#ifndef MTLSDIAG_CONFFILE_H
#define MTLSDIAG_CONFFILE_H

#include <stddef.h>
#include <stdint.h>

/* Larger files are refused: a configuration is a few kilobytes. */
#define CONFFILE_MAX_BYTES (1u << 20)

struct conf_entry {
	const char *section;    /* "proxy" (shared by the section's entries) */
	char *key;              /* "listen" */
	char *value;            /* NULL: the key alone, without '=' */
	unsigned line;          /* 1-based */
};

struct conf_file {
	char *path;             /* as given, for messages */
	struct conf_entry *entries;
	size_t n;
	char **sections;        /* the section names, in file order */
	unsigned *section_lines;
	size_t n_sections;
};

/* Parses data (the contents of path) into cf, which must be zeroed.  0
 * after writing "PATH:LINE: what was expected" into err; cf then holds
 * nothing (conffile_clear is still safe). */
int conffile_parse(struct conf_file *cf, const char *path, const uint8_t *data, size_t len, char *err,
		   size_t errlen) __attribute__((nonnull(1, 2, 5), warn_unused_result));

/* Reads and parses the file path.  0 after writing "PATH: why" (it
 * cannot be read, it is too large) or a syntax error into err. */
int conffile_read(struct conf_file *cf, const char *path, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));

void conffile_clear(struct conf_file *cf) __attribute__((nonnull));

/* The candidate nearest to word (at most 2 edits, and fewer than half of
 * its length), to suggest for a misspelt key; NULL when none is near. */
const char *conffile_nearest(const char *word, const char *const *candidates, size_t n) __attribute__((nonnull(1)));

#endif
