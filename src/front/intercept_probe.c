/* intercept_probe: faithful mode.  Before it answers any client, the
 * stand-in asks the real server what it asks of its clients, with the
 * probe (probe.c) at TLS 1.3 and 1.2, offering the upstream identity as
 * the upstream leg will: the CertificateRequest's CA names and signature
 * algorithms, and the versions it completes a handshake in.  Clients are
 * then sent the same.  The probe sends no request (no_http). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "front/intercept_int.h"
#include "front/probe.h"
#include "out/report.h"
#include "wire/x509info.h"

#define LEARN_TIMEOUT_MS 5000

/* The request's signature algorithms as a list OpenSSL takes: each name
 * tried on its own, so one it does not know leaves the others. */
static void take_sigalgs(struct icpt_server_profile *prof, const struct probe_result *r)
{
	SSL_CTX *trial = SSL_CTX_new(TLS_server_method());
	size_t i, used = 0;

	if (!trial)
		return;
	for (i = 0; i < r->n_sigalgs; i++) {
		if (SSL_CTX_set1_client_sigalgs_list(trial, r->sigalgs[i]) != 1)
			continue;
		used += (size_t)snprintf(prof->sigalgs + used, sizeof(prof->sigalgs) - used, "%s%s", used ? ":" : "",
					 r->sigalgs[i]);
		if (used >= sizeof(prof->sigalgs)) {
			prof->sigalgs[0] = '\0';   /* cannot happen with 48 names; none rather than a cut list */
			prof->n_sigalgs = 0;
			break;
		}
		prof->n_sigalgs++;
	}
	ERR_clear_error();
	SSL_CTX_free(trial);
}

static void describe(struct intercept *ic, const char *failure)
{
	const struct icpt_server_profile *prof = &ic->profile;
	char up[300], names[900] = "";
	size_t used = 0;
	int i;

	report_endpoint(up, sizeof(up), ic->up_host, ic->up_port);
	if (!prof->learnt) {
		snprintf(ic->description, sizeof(ic->description),
			 "warning: could not learn what %s asks of its clients (%s): clients are asked for a certificate from the CAs of --ca-bundle",
			 up, failure);
		return;
	}
	for (i = 0; prof->ca_names && i < sk_X509_NAME_num(prof->ca_names) && used < sizeof(names); i++) {
		char name[256];

		x509info_name(sk_X509_NAME_value(prof->ca_names, i), name, sizeof(name));
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? "; " : "", name);
	}
	if (prof->cert_requested)
		snprintf(ic->description, sizeof(ic->description),
			 "learnt from %s: TLS %s%s%s; clients are asked for a certificate from CAs [%s] with its %zu signature algorithms, as it asks",
			 up, prof->min_version == TLS1_3_VERSION ? "1.3" : "1.2",
			 prof->min_version != prof->max_version ? " to " : "",
			 prof->min_version != prof->max_version ? "1.3" : "", names, prof->n_sigalgs);
	else
		snprintf(ic->description, sizeof(ic->description),
			 "learnt from %s: TLS %s%s%s; it did not ask the probe for a client certificate (it may ask later, per location): clients are asked from the CAs of --ca-bundle",
			 up, prof->min_version == TLS1_3_VERSION ? "1.3" : "1.2",
			 prof->min_version != prof->max_version ? " to " : "",
			 prof->min_version != prof->max_version ? "1.3" : "");
}

void icpt_learn(struct intercept *ic)
{
	static const int versions[2] = { TLS1_3_VERSION, TLS1_2_VERSION };
	const struct intercept_config *cfg = ic->cfg;
	struct icpt_server_profile *prof = &ic->profile;
	struct observer_config ocfg = { .ca_bundle = NULL };
	char failure[1100] = "no handshake completed";
	int i;

	if (!(ocfg.certs = cert_cache_new(16))) {
		describe(ic, "out of memory");
		return;
	}
	for (i = 0; i < 2; i++) {
		struct probe_options o = {
			.host = ic->up_host, .port = ic->up_port, .tls_version = versions[i],
			.timeout_ms = LEARN_TIMEOUT_MS, .no_http = true, .cert = cfg->upstream_cert,
			.key = cfg->upstream_key, .chain = cfg->upstream_chain, .ocfg = &ocfg,
		};
		struct probe_result r;

		probe_run(&o, &r);
		if (!r.ran)
			snprintf(failure, sizeof(failure), "%s", r.error);
		else if (!r.handshake_ok && !prof->learnt)
			snprintf(failure, sizeof(failure), "TLS %s: %s", i == 0 ? "1.3" : "1.2", r.handshake_error);
		if (r.ran && (r.handshake_ok || r.cert_requested)) {
			if (!prof->learnt) {
				prof->learnt = true;
				prof->min_version = prof->max_version = versions[i];
				prof->cert_requested = r.cert_requested;
				prof->ca_names = r.ca_list;
				r.ca_list = NULL;
				take_sigalgs(prof, &r);
			} else {
				prof->min_version = versions[i];
			}
		}
		probe_result_clear(&r);
		if (!r.ran && i == 0)
			break;   /* not reachable at all: the second would say the same */
	}
	cert_cache_free(ocfg.certs);
	describe(ic, failure);
}
