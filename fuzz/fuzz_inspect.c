/* fuzz_inspect: libFuzzer target for the inspection-CA catalogue parser.
 *
 * The input is a catalogue file.  When it loads, every rule must be
 * well formed (a name, a strength, 1..INSPECT_MAX_CONDS conditions with
 * attributes and a pattern) and matching it against a few names, plain
 * and with RFC 2253 escapes, must not fault; when it does not, the error
 * must be one line naming the origin and no rule may stay behind. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const dns[] = {
		"O=mitmproxy, CN=mitmproxy",
		"CN=Zscaler Intermediate Root CA (zscaler.net), OU=Zscaler Inc., O=Zscaler Inc., C=US",
		"CN=a\\, b + OU=c\\+d, O=\\#x ",
		"",
		"no equals sign",
	};
	struct inspect_catalogue *cat = inspect_new();
	char err[512];
	size_t i;

	if (!cat)
		return 0;
	err[0] = '\0';
	if (inspect_load_buffer(cat, "fuzz.conf", data, size, err, sizeof(err))) {
		for (i = 0; i < inspect_count(cat); i++) {
			const struct inspect_rule *r = inspect_rule_at(cat, i);
			size_t j;

			if (!r->name[0] || r->n_conds == 0 || r->n_conds > INSPECT_MAX_CONDS ||
			    (r->strength != INSPECT_WEAK && r->strength != INSPECT_STRONG) || r->line == 0)
				abort();
			for (j = 0; j < r->n_conds; j++)
				if (!r->conds[j].pattern || !r->conds[j].pattern[0] || r->conds[j].n_nids == 0)
					abort();
		}
		for (i = 0; i < sizeof(dns) / sizeof(dns[0]); i++)
			(void)inspect_match_dn(cat, dns[i]);
	} else {
		if (strncmp(err, "fuzz.conf", 9) != 0 || strchr(err, '\n') || inspect_count(cat) != 0)
			abort();
	}
	inspect_free(cat);
	return 0;
}
