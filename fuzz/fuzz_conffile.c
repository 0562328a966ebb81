/* fuzz_conffile: libFuzzer target for the configuration file's reader
 * (front/conffile.c).
 *
 * The input is a configuration file.  When it parses, every entry must
 * have a section the file declared, a key of name characters only and a
 * line within the file, and entries must come in line order; when it does
 * not, the error must be one line naming the file and nothing may stay
 * behind. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "front/conffile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_file cf = { 0 };
	char err[512];
	unsigned lines = 1, last = 0;
	size_t i, j;

	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	err[0] = '\0';
	if (!conffile_parse(&cf, "fuzz.conf", data, size, err, sizeof(err))) {
		if (strncmp(err, "fuzz.conf:", 10) != 0 || strchr(err, '\n') || cf.n || cf.n_sections || cf.path)
			abort();
		return 0;
	}
	for (i = 0; i < cf.n; i++) {
		const struct conf_entry *e = &cf.entries[i];
		int declared = 0;

		if (!e->key[0] || strspn(e->key, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(e->key))
			abort();
		if (e->line == 0 || e->line > lines || e->line <= last)
			abort();
		last = e->line;
		for (j = 0; j < cf.n_sections; j++)
			declared |= e->section == cf.sections[j] && cf.section_lines[j] < e->line;
		if (!declared || (e->value && strchr(e->value, '\n')))
			abort();
	}
	(void)conffile_nearest(cf.n ? cf.entries[0].key : "listen", (const char *const *)cf.sections, cf.n_sections);
	conffile_clear(&cf);
	return 0;
}
