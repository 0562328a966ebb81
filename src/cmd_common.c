/* cmd_common: option parsing shared by the subcommands. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "cmds.h"
#include "inspect.h"

int cmd_parse_time(const char *s, time_t *out)
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

struct inspect_catalogue *cmd_load_inspection(const char *who, const char *const *files, size_t n)
{
	struct inspect_catalogue *cat = inspect_new();
	char tried[2048], err[1024];
	const char *bundled;
	size_t i;

	if (!cat) {
		fprintf(stderr, "%s: out of memory\n", who);
		return NULL;
	}
	bundled = inspect_bundled_path(tried, sizeof(tried));
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
