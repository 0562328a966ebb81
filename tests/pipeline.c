/* pipeline: the analyser end to end, in-process, for tests. */
#include "config.h"

#include "pipeline.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/chain.h"
#include "analysis/observer.h"
#include "wire/x509info.h"

struct collect {
	struct observer_config cfg;
	struct pipeline_result *out;
	size_t cap;
};

static void p_finish(void *ctx, struct obs_conn *flow, bool truncated, const struct timeval *ts)
{
	struct collect *c = ctx;
	const struct verdict *v = obs_conn_finish(flow, truncated, ts);

	if (c->out->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->out->conns = realloc(c->out->conns, c->cap * sizeof(*c->out->conns));
		cr_assert_not_null(c->out->conns);
	}
	c->out->conns[c->out->n].obs = flow;
	c->out->conns[c->out->n].facts = obs_conn_facts(flow);
	c->out->conns[c->out->n].verdict = v;
	c->out->n++;
}

static void run(const char *path, time_t at, struct keylog *keylog, bool no_evidence, struct pipeline_result *out)
{
	struct collect c = { .out = out };
	struct obs_sink os = { .cfg = &c.cfg, .finished = p_finish, .ctx = &c };
	struct flow_sink sink;
	struct capture_opts opts = { 0 };

	memset(out, 0, sizeof(*out));
	c.cfg.certs = cert_cache_new(256);
	c.cfg.chains = chain_memo_new();
	c.cfg.no_evidence = no_evidence;
	cr_assert_not_null(c.cfg.certs);
	cr_assert_not_null(c.cfg.chains);
	c.cfg.keylog = keylog;
	if (at) {
		c.cfg.at_set = true;
		c.cfg.at = at;
	}
	obs_sink_init(&os, &sink);
	out->status = capture_read_file(path, &opts, &sink, &out->stats, out->err, sizeof(out->err));
	out->certs = c.cfg.certs;
	chain_memo_free(c.cfg.chains);
}

void pipeline_run(const char *path, time_t at, struct pipeline_result *out)
{
	run(path, at, NULL, false, out);
}

void pipeline_run_keylog(const char *path, time_t at, struct keylog *keylog, struct pipeline_result *out)
{
	run(path, at, keylog, false, out);
}

void pipeline_run_counting(const char *path, struct pipeline_result *out)
{
	run(path, 0, NULL, true, out);
}

void pipeline_free(struct pipeline_result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		obs_conn_free(r->conns[i].obs);
	cert_cache_free(r->certs);
	free(r->conns);
	r->conns = NULL;
	r->n = 0;
}
