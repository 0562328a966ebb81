/* labtruth: reading truth.tsv and judging a verdict against a row. */
#include "config.h"

#include "labtruth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_COLS 16

const char *lab_truth_path(const char *rel)
{
	static char buf[4096];
	const char *dir = getenv("MTLSDIAG_LAB_DIR");
	char committed[512];

	if (dir && *dir) {
		snprintf(buf, sizeof(buf), "%s/%s", dir, rel);
	} else {
		snprintf(committed, sizeof(committed), "tests/data/lab/%s", rel);
		snprintf(buf, sizeof(buf), "%s", test_path(committed));
	}
	return buf;
}

size_t lab_split_tsv(char *line, char **cols, size_t max)
{
	size_t n = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < max) {
		cols[n++] = p;
		p = strchr(p, '\t');
		if (!p)
			break;
		*p++ = '\0';
	}
	return n;
}

/* The columns a row needs, by header name. */
enum col { C_NAME, C_SERVER, C_MODE, C_CASE, C_TLS, C_EXIT, C_HTTP, C_VERDICT, C_REASON, C_FAULT,
	   C_UNDET, C_KEYLESS, C_COUNT };

static const char *const col_names[C_COUNT] = {
	"name", "server", "mode", "client_case", "tls", "curl_exit", "http_status",
	"verdict", "reason", "fault", "undetermined_ok", "keyless",
};

/* "-" is the file's empty value. */
static void copy_col(char *out, size_t outlen, const char *v)
{
	snprintf(out, outlen, "%s", strcmp(v, "-") == 0 ? "" : v);
}

int lab_truth_load(struct lab_truth *out, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[4096], *col[MAX_COLS];
	int idx[C_COUNT], mode_idx = -1;
	size_t nh, i, cap = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!f) {
		snprintf(err, errlen, "cannot read %s (scripts/lab capture makes it)", path);
		return 0;
	}
	if (!fgets(line, sizeof(line), f)) {
		snprintf(err, errlen, "%s is empty", path);
		goto Exit;
	}
	nh = lab_split_tsv(line, col, MAX_COLS);
	for (i = 0; i < C_COUNT; i++) {
		size_t k;

		idx[i] = -1;
		for (k = 0; k < nh; k++)
			if (strcmp(col[k], col_names[i]) == 0)
				idx[i] = (int)k;
		if (idx[i] < 0) {
			snprintf(err, errlen, "%s has no column %s", path, col_names[i]);
			goto Exit;
		}
	}
	/* optional: rows recorded before client modes were keep-alive */
	for (i = 0; i < nh; i++)
		if (strcmp(col[i], "client_mode") == 0)
			mode_idx = (int)i;
	while (fgets(line, sizeof(line), f)) {
		struct lab_case *c;
		char *us;

		if (lab_split_tsv(line, col, MAX_COLS) < nh)
			continue;
		if (out->n == cap) {
			struct lab_case *nc = realloc(out->cases, (cap = cap ? cap * 2 : 128) * sizeof(*nc));

			if (!nc) {
				snprintf(err, errlen, "out of memory");
				goto Exit;
			}
			out->cases = nc;
		}
		c = &out->cases[out->n++];
		memset(c, 0, sizeof(*c));
		copy_col(c->name, sizeof(c->name), col[idx[C_NAME]]);
		/* NAME is SERVERID_CASE_tlsNN; server ids have no underscore */
		snprintf(c->server_id, sizeof(c->server_id), "%s", c->name);
		if ((us = strchr(c->server_id, '_')))
			*us = '\0';
		copy_col(c->server, sizeof(c->server), col[idx[C_SERVER]]);
		copy_col(c->mode, sizeof(c->mode), col[idx[C_MODE]]);
		copy_col(c->client_case, sizeof(c->client_case), col[idx[C_CASE]]);
		copy_col(c->tls, sizeof(c->tls), col[idx[C_TLS]]);
		c->curl_exit = atoi(col[idx[C_EXIT]]);
		copy_col(c->http_status, sizeof(c->http_status), col[idx[C_HTTP]]);
		copy_col(c->verdict, sizeof(c->verdict), col[idx[C_VERDICT]]);
		copy_col(c->reason, sizeof(c->reason), col[idx[C_REASON]]);
		copy_col(c->fault, sizeof(c->fault), col[idx[C_FAULT]]);
		c->undetermined_ok = strcmp(col[idx[C_UNDET]], "1") == 0;
		copy_col(c->keyless, sizeof(c->keyless), col[idx[C_KEYLESS]]);
		copy_col(c->client_mode, sizeof(c->client_mode), mode_idx >= 0 ? col[mode_idx] : "ka");
	}
	ret = 1;
Exit:
	fclose(f);
	if (!ret)
		lab_truth_free(out);
	return ret;
}

void lab_truth_free(struct lab_truth *t)
{
	free(t->cases);
	t->cases = NULL;
	t->n = 0;
}

const struct lab_case *lab_truth_find(const struct lab_truth *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->cases[i].name, name) == 0)
			return &t->cases[i];
	return NULL;
}

void lab_got_format(char *out, size_t outlen, const struct lab_got *got)
{
	snprintf(out, outlen, "%s/%s/%s", got->verdict, got->reason[0] ? got->reason : "-", got->fault);
}

bool lab_truth_accepts(const struct lab_case *c, const struct lab_got *got)
{
	char as_keyless[160];

	if (strcmp(got->verdict, c->verdict) == 0 && strcmp(got->reason, c->reason) == 0 &&
	    strcmp(got->fault, c->fault) == 0)
		return true;
	/* the wire alone shows something else (see the row's note): nginx's
	 * HTTP-level refusals, gnutls-serv's lenient EKU check */
	lab_got_format(as_keyless, sizeof(as_keyless), got);
	if (c->keyless[0] && strcmp(as_keyless, c->keyless) == 0)
		return true;
	/* honest: the wire cannot show the answer without a key log */
	if (c->undetermined_ok && strcmp(got->verdict, "undetermined") == 0)
		return true;
	/* honest: TLS 1.3 encrypts the chain and the alert; the reason needs a
	 * key log */
	return strcmp(c->tls, "1.3") == 0 && strcmp(got->verdict, c->verdict) == 0 &&
	       strcmp(got->reason, "unknown") == 0 && strcmp(got->fault, "unknown") == 0 &&
	       strcmp(got->basis, "inferred") == 0;
}
