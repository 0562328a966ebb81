/* `mtlsdiag check-bundle` on the lab's bundles, good and broken (the
 * three-level PKI of tests/data/lab/pki): what it lists, what it finds,
 * the client certificates it verifies, and its exit status. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"
#include "proxyutil.h"
#include "testutil.h"

struct run {
	int status;
	char *out, *err;
};

static struct run r;

/* `mtlsdiag ARGS` from tests/data/lab/pki, stdout and stderr apart. */
static void run(const char *args)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	char cmd[4096], outp[600], errp[600];
	char *argv[] = { "sh", "-c", cmd, NULL };
	struct e2e_io io = { NULL, outp, errp };

	cr_assert(bin && *bin, "MTLSDIAG_BIN is not set");
	test_fmt(outp, "%s", px_tmp("out"));
	test_fmt(errp, "%s", px_tmp("err"));
	test_fmt(cmd, "cd '%s' && exec '%s' %s", test_path("tests/data/lab/pki"), bin, args);
	free(r.out);
	free(r.err);
	r.status = e2e_run(argv, &io, 60000);
	r.out = e2e_slurp(outp);
	r.err = e2e_slurp(errp);
	cr_assert(r.out && r.err);
}

TestSuite(check_bundle, .init = px_setup, .fini = px_teardown);

#define HAS(s) cr_assert(strstr(r.out, (s)), "missing: %s\nin:\n%s", (s), r.out)

Test(check_bundle, a_good_bundle_and_a_good_client)
{
	run("check-bundle deep-cas.pem --client-cert deep-good-chain.pem --at 2026-12-01");
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	HAS("CA bundle deep-cas.pem: 3 certificates\n");
	HAS("  [1] CN=Lab Deep Root CA, O=mtlsdiag Lab; CA; self-issued; valid 2020-01-01T00:00:00Z to 2100-01-01T00:00:00Z: ok\n");
	HAS("  [2] CN=Lab Policy CA, O=mtlsdiag Lab; CA; issued by CN=Lab Deep Root CA, O=mtlsdiag Lab; valid 2020-01-01T00:00:00Z to 2100-01-01T00:00:00Z: ok\n");
	HAS("client certificate deep-good-chain.pem: CN=deep-good-client, O=mtlsdiag Lab, sent with 2 more certificates\n");
	HAS("  verified: CN=deep-good-client, O=mtlsdiag Lab <- CN=Lab Deep Issuing CA, O=mtlsdiag Lab <- CN=Lab Policy CA, O=mtlsdiag Lab <- CN=Lab Deep Root CA, O=mtlsdiag Lab\n");
	HAS("result: ok\n");
	cr_assert_str_empty(r.err);
	/* the bundle alone */
	run("check-bundle deep-root.pem");
	cr_assert_eq(r.status, 0, "%s", r.out);
	HAS("CA bundle deep-root.pem: 1 certificate\n");
}

Test(check_bundle, a_leaf_in_the_bundle_fails)
{
	run("check-bundle bundle-with-leaf.pem --client-cert deep-good-chain.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("  [1] CN=deep-good-client, O=mtlsdiag Lab; not a CA; issued by CN=Lab Deep Issuing CA, O=mtlsdiag Lab; valid 2020-01-01T00:00:00Z to 2080-01-01T00:00:00Z: PROBLEM\n");
	HAS("error: [1] CN=deep-good-client, O=mtlsdiag Lab is not a CA certificate (a leaf): a server trusts it as a CA only by mistake\n");
	/* the root is not there: nginx and openssl verify both say 2 */
	HAS("  refused: nginx would log \"client SSL certificate verify error: (2:unable to get issuer certificate)\"\n");
	HAS("  openssl verify: error 2 at 2 depth lookup: unable to get issuer certificate\n");
	HAS("  the chain stops short of CN=Lab Deep Root CA, O=mtlsdiag Lab\n");
	HAS("result: not usable\n");
}

Test(check_bundle, expired_and_future_cas_fail)
{
	run("check-bundle bundle-dated.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("error: [4] CN=Lab Retired CA, O=mtlsdiag Lab expired 2021-01-01T00:00:00Z: no chain through it verifies\n");
	HAS("error: [5] CN=Lab Future CA, O=mtlsdiag Lab is not valid until 2090-01-01T00:00:00Z: no chain through it verifies before then\n");
	HAS("result: not usable\n");
}

Test(check_bundle, a_half_done_rotation_and_an_expiry_soon_only_warn)
{
	run("check-bundle bundle-rotation.pem --client-cert deep-good-chain.pem --at 2026-12-01");
	cr_assert_eq(r.status, 0, "%s", r.out);
	HAS("warning: [1] CN=Lab Deep Root CA, O=mtlsdiag Lab is in the bundle under 1 other key as well: a rotation half done; a chain signed by the other key verifies only where the issuer is told apart by its key identifier\n");
	HAS("warning: [4] CN=Lab Deep Root CA, O=mtlsdiag Lab is in the bundle under 1 other key as well");
	HAS("result: ok\n");
	/* 2100-01-01 is 26694 days after 2026-12-01 */
	run("check-bundle deep-root.pem --at 2026-12-01 --warn-days 30000");
	cr_assert_eq(r.status, 0, "%s", r.out);
	HAS("warning: [1] CN=Lab Deep Root CA, O=mtlsdiag Lab expires 2100-01-01T00:00:00Z, in 26694 days\n");
	run("check-bundle deep-root.pem --at 2026-12-01 --warn-days 26693");
	cr_assert(!strstr(r.out, "warning"), "%s", r.out);
	/* and a week before the end */
	run("check-bundle deep-root.pem --at 2099-12-25");
	HAS("expires 2100-01-01T00:00:00Z, in 7 days\n");
	cr_assert_eq(r.status, 0);
}

Test(check_bundle, refused_client_certificates)
{
	/* the verify depth: openssl verify stops at 22, nginx logs 20 */
	run("check-bundle deep-root.pem --client-cert deep-good-chain.pem --verify-depth 1 --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("  refused: nginx would log \"client SSL certificate verify error: (20:unable to get local issuer certificate)\"\n");
	HAS("  openssl verify: error 22 at 2 depth lookup: certificate chain too long\n");
	HAS("  the verify depth alone refuses it: it needs 2 (nginx's ssl_verify_depth)\n");
	HAS("  reason: depth_exceeded\n");
	cr_assert(!strstr(r.out, "stops short"), "%s", r.out);
	run("check-bundle deep-root.pem --client-cert deep-good-chain.pem --verify-depth 2 --at 2026-12-01");
	cr_assert_eq(r.status, 0, "%s", r.out);
	/* revoked, with the CRLs of the three CAs */
	run("check-bundle deep-root.pem --client-cert deep-revoked-chain.pem --crl deep-crl.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("  refused: nginx would log \"client SSL certificate verify error: (23:certificate revoked)\"\n");
	HAS("  reason: revoked\n");
	/* a CRL file without the root's CRL: nginx checks every certificate */
	run("check-bundle deep-root.pem --client-cert deep-good-chain.pem --crl deep-issuing.crl --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("(3:unable to get certificate CRL)");
	/* no clientAuth, a key usage that cannot sign */
	run("check-bundle deep-root.pem --client-cert deep-noclientauth-chain.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("  refused: nginx would log \"client SSL certificate verify error: (26:unsuitable certificate purpose)\"\n");
	HAS("  reason: bad_eku\n");
	run("check-bundle deep-root.pem --client-cert deep-badku-chain.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("  reason: bad_key_usage\n");
	/* a leaf sent alone: 21 in nginx's log, 20 from openssl verify */
	run("check-bundle deep-root.pem --client-cert deep-good.pem --at 2026-12-01");
	cr_assert_eq(r.status, 1, "%s", r.out);
	HAS("client certificate deep-good.pem: CN=deep-good-client, O=mtlsdiag Lab, sent alone\n");
	HAS("  refused: nginx would log \"client SSL certificate verify error: (21:unable to verify the first certificate)\"\n");
	HAS("  openssl verify: error 20 at 0 depth lookup: unable to get local issuer certificate\n");
	HAS("  reason: missing_intermediate\n");
	/* Apache's line is its first error */
	run("check-bundle deep-root.pem --client-cert deep-good.pem --server-kind apache --at 2026-12-01");
	HAS("  refused: apache would log \"Certificate Verification: Error (20): unable to get local issuer certificate\"\n");
}

Test(check_bundle, usage_and_input_errors)
{
	run("check-bundle");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "no bundle file given"), "%s", r.err);
	run("check-bundle /nonexistent.pem");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "/nonexistent.pem"), "%s", r.err);
	run("check-bundle deep-root.key");
	cr_assert_eq(r.status, 2, "%s", r.out);
	cr_assert(strstr(r.err, "no certificate in it"), "%s", r.err);
	run("check-bundle deep-root.pem --client-cert /nonexistent.pem");
	cr_assert_eq(r.status, 2);
	run("check-bundle deep-root.pem --warn-days soon");
	cr_assert_eq(r.status, 2);
	run("check-bundle deep-root.pem --purpose nothing");
	cr_assert_eq(r.status, 2);
	run("check-bundle deep-root.pem --help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: mtlsdiag check-bundle"), "%s", r.out);
}
