/* The chain checks against a real nginx: for each case of the lab's
 * three-level PKI (tests/data/lab/pki: a depth-limited server, a chain
 * without its policy CA, a revoked client with the CAs' CRLs, a client
 * certificate without clientAuth, one whose key may not sign, a leaf sent
 * alone, a client's chain file used as the CA bundle), nginx runs on a
 * free port with that bundle, depth and CRL, curl connects through
 * `mtlsdiag proxy` given the same (--ca-bundle, --verify-depth, --crl,
 * --keylog following curl's key log), and the connection's record must say
 * what nginx wrote in its error log, byte for byte ("client SSL certificate
 * verify error: (N:TEXT)"), and what `openssl verify` says of the same
 * files (its first error and depth), with the reason and the exact
 * remedies.  Where the remedy is nginx's (the bundle, the depth), the test
 * applies it: the config rewritten, `nginx -s reload`, and the next
 * connection is served. */
#include "config.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"
#include "proxyutil.h"
#include "testutil.h"

/* How nginx (and so the proxy) verifies. */
struct server_conf {
	const char *bundle;     /* a file of the lab PKI, or a path: ssl_client_certificate */
	int depth;              /* ssl_verify_depth */
	const char *crl;        /* ssl_crl, or NULL */
};

struct lab {
	uint16_t nginx_port, proxy_port;
	pid_t nginx, proxy;
	size_t records;         /* the proxy's JSON records so far */
	size_t reloads;
	char record[65536];     /* the last one */
};

static const char *pki_or_path(const char *file)
{
	return file[0] == '/' ? file : px_pki(file);
}

/* The lab's nginx with the bundle, depth and CRL of sc (crl: its room for
 * the ssl_crl line); a master process, so that `nginx -s reload` starts
 * new workers with a new configuration. */
static struct px_nginx nginx_for(const struct server_conf *sc, char crl[600])
{
	crl[0] = '\0';
	if (sc->crl)
		test_fmtn(crl, 600, "ssl_crl %s;", pki_or_path(sc->crl));
	return (struct px_nginx){ .master = true, .bundle = pki_or_path(sc->bundle), .depth = sc->depth,
				  .extra = crl };
}

static void write_nginx_conf(const struct lab *lab, const struct server_conf *sc)
{
	char crl[600];
	const struct px_nginx n = nginx_for(sc, crl);

	px_write_nginx_conf(lab->nginx_port, &n);
}

static void start_nginx(struct lab *lab, const struct server_conf *sc)
{
	char crl[600];
	const struct px_nginx n = nginx_for(sc, crl);

	lab->nginx = px_start_nginx_conf(lab->nginx_port, &n);
}

/* The remedy applied: the configuration rewritten, `nginx -s reload`, and
 * the old worker gone (it stops accepting when it shuts down). */
static void reload_nginx(struct lab *lab, const struct server_conf *sc)
{
	const char *argv[] = { "nginx", "-p", px_tmp(""), "-c", px_tmp("nginx.conf"), "-e", px_tmp("nginx-error.log"),
			       "-s", "reload", NULL };
	struct e2e_io io = { .out = px_tmp("reload.out"), .err = px_tmp("reload.out") };
	long long end = e2e_now_ms() + 10000;
	char *log;
	size_t seen = 0;
	const char *p;

	write_nginx_conf(lab, sc);
	cr_assert_eq(e2e_run((char *const *)argv, &io, 10000), 0, "nginx -s reload: %s", e2e_tail(px_tmp("reload.out"), 400));
	lab->reloads++;
	while (e2e_now_ms() < end) {
		log = e2e_slurp(px_tmp("nginx-error.log"));
		seen = 0;
		for (p = log; p && (p = strstr(p, "gracefully shutting down")); p++)
			seen++;
		free(log);
		if (seen >= lab->reloads)
			break;
		usleep(50000);
	}
	cr_assert_geq(seen, lab->reloads, "the old worker did not stop: %s", e2e_tail(px_tmp("nginx-error.log"), 600));
}

static void start_proxy(struct lab *lab, const struct server_conf *sc)
{
	char listen_at[64], upstream[64], depth[16];
	const char *args[24];
	size_t n = 0;
	FILE *f = fopen(px_tmp("keys.log"), "w");   /* followed as curl writes it */

	cr_assert_not_null(f);
	fclose(f);
	test_fmt(listen_at, "127.0.0.1:%u", lab->proxy_port);
	test_fmt(upstream, "127.0.0.1:%u", lab->nginx_port);
	test_fmt(depth, "%d", sc->depth);
	args[n++] = "--listen";
	args[n++] = listen_at;
	args[n++] = "--upstream";
	args[n++] = upstream;
	args[n++] = "--ca-bundle";
	args[n++] = pki_or_path(sc->bundle);
	args[n++] = "--verify-depth";
	args[n++] = depth;
	if (sc->crl) {
		args[n++] = "--crl";
		args[n++] = pki_or_path(sc->crl);
	}
	args[n++] = "--keylog";
	args[n++] = px_tmp("keys.log");
	args[n++] = "--json";
	args[n++] = px_tmp("proxy.json");
	args[n] = NULL;
	lab->proxy = px_start_argv(NULL, px_tmp("proxy.log"), args);
}

static void lab_up(struct lab *lab, const struct server_conf *sc)
{
	memset(lab, 0, sizeof(*lab));
	lab->nginx_port = e2e_free_port();
	lab->proxy_port = e2e_free_port();
	start_nginx(lab, sc);
	start_proxy(lab, sc);
}

static void lab_down(struct lab *lab)
{
	if (lab->proxy > 0)
		(void)e2e_stop(lab->proxy, 12000);
	if (lab->nginx > 0)
		(void)e2e_stop(lab->nginx, 10000);
}

/* curl through the proxy with a client certificate file (leaf first) and
 * its key, TLS version tls ("1.2", "1.3"), writing its key log; the HTTP
 * status, and the proxy's record of the connection in lab->record. */
static int connect_tls(struct lab *lab, const char *tls, const char *cert, const char *key)
{
	char cmd[4096], code[8] = "";
	FILE *p;

	test_fmt(cmd,
		 "SSLKEYLOGFILE='%s' curl -s -o /dev/null -w '%%{http_code}' --max-time 10 --cacert '%s' "
		 "--resolve localhost:%u:127.0.0.1 --tlsv%s --tls-max %s --cert '%s' --key '%s' https://localhost:%u/",
		 px_tmp("keys.log"), px_pki("server-root.pem"), lab->proxy_port, tls, tls, pki_or_path(cert), px_pki(key),
		 lab->proxy_port);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(code, sizeof(code), p))
		code[0] = '\0';
	pclose(p);
	lab->records++;
	cr_assert(e2e_wait_lines(px_tmp("proxy.json"), lab->records, 15000), "no record for the connection: %s",
		  e2e_tail(px_tmp("proxy.log"), 800));
	cr_assert(e2e_line(px_tmp("proxy.json"), lab->records - 1, lab->record, sizeof(lab->record)));
	return atoi(code);
}

static int connect_through(struct lab *lab, const char *cert, const char *key)
{
	return connect_tls(lab, "1.2", cert, key);
}

/* The string values of the array member `key` of a one-line JSON record,
 * unescaped (\" and \\; the texts here have no other escapes). */
static size_t json_strings(const char *rec, const char *key, char (*out)[1024], size_t max)
{
	char pat[128];
	const char *p;
	size_t n = 0, o;

	test_fmt(pat, "\"%s\":[", key);
	if (!(p = strstr(rec, pat)))
		return 0;
	p += strlen(pat);
	while (*p == '"' && n < max) {
		for (p++, o = 0; *p && *p != '"' && o + 1 < sizeof(out[0]); p++) {
			if (*p == '\\' && p[1])
				p++;
			out[n][o++] = *p;
		}
		out[n++][o] = '\0';
		if (*p == '"')
			p++;
		if (*p == ',')
			p++;
	}
	return n;
}

/* nginx's last words on a client certificate: "client SSL certificate
 * verify error: (N:TEXT)", or "" when it wrote none. */
static const char *nginx_verify_error(void)
{
	static char line[256];
	char *log = e2e_slurp(px_tmp("nginx-error.log")), *p, *last = NULL, *end;

	line[0] = '\0';
	for (p = log; p && (p = strstr(p, "client SSL certificate verify error: (")); p++)
		last = p;
	if (last && (end = strchr(last, ')')))
		snprintf(line, sizeof(line), "%.*s", (int)(end + 1 - last), last);
	free(log);
	return line;
}

struct openssl_verify {
	int error, depth;       /* -1: it verified */
};

/* `openssl verify` on the same files: its first error and its depth. */
static struct openssl_verify openssl_verify(const struct server_conf *sc, const char *cert)
{
	struct openssl_verify v = { -1, -1 };
	char cmd[4096], depth[32] = "", crl[600] = "", out[4096];
	const char *p;
	size_t n;
	FILE *f;

	test_fmt(depth, "-verify_depth %d", sc->depth);
	if (sc->crl)
		test_fmt(crl, "-CRLfile '%s' -crl_check_all", pki_or_path(sc->crl));
	test_fmt(cmd, "openssl verify -purpose sslclient -CAfile '%s' -untrusted '%s' %s %s '%s' 2>&1",
		 pki_or_path(sc->bundle), pki_or_path(cert), depth, crl, pki_or_path(cert));
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	if ((p = strstr(out, "\nerror ")) || (p = strstr(out, "error ")))
		cr_assert_eq(sscanf(strstr(p, "error "), "error %d at %d depth lookup", &v.error, &v.depth), 2, "%s", out);
	return v;
}

/* The record's chain_check against nginx's log and openssl verify. */
static void expect_server_words(const struct lab *lab, const struct server_conf *sc, const char *cert,
				const char *nginx_line, int first_error, int first_depth)
{
	const char *rec = lab->record, *logged = nginx_verify_error();
	struct openssl_verify ov = openssl_verify(sc, cert);
	char member[32];

	/* what nginx wrote, and what the record says it writes */
	cr_assert_str_eq(logged, nginx_line, "nginx's error log: %s", e2e_tail(px_tmp("nginx-error.log"), 600));
	cr_assert_str_eq(e2e_member(rec, "log"), nginx_line, "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "log_server"), "nginx", "%s", rec);
	cr_assert(strstr(rec, "\"trust\":\"ca-bundle\""), "%s", rec);
	/* its error number is nginx's, its first error openssl verify's */
	test_fmt(member, "%d", atoi(strchr(nginx_line, '(') + 1));
	cr_assert_str_eq(e2e_member(rec, "error"), member, "%s", rec);
	cr_assert_eq(ov.error, first_error, "openssl verify said %d at %d", ov.error, ov.depth);
	cr_assert_eq(ov.depth, first_depth, "openssl verify said %d at %d", ov.error, ov.depth);
	test_fmt(member, "%d", ov.error);
	cr_assert_str_eq(e2e_member(rec, "first_error"), member, "%s", rec);
	test_fmt(member, "%d", ov.depth);
	cr_assert_str_eq(e2e_member(rec, "first_error_depth"), member, "%s", rec);
	/* the human line carries nginx's words */
	cr_assert(strstr(e2e_member(rec, "summary"), nginx_line), "%s", e2e_member(rec, "summary"));
}

static void expect_verdict(const struct lab *lab, const char *verdict, const char *reason, const char *fault)
{
	const char *rec = lab->record;

	cr_assert_str_eq(e2e_member(rec, "verdict"), verdict, "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "reason"), reason, "%s", rec);
	cr_assert_str_eq(e2e_member(rec, "fault"), fault, "%s", rec);
}

/* The remedies, exactly and in order (NULL-terminated). */
static void expect_remedies(const struct lab *lab, ...)
{
	char got[8][1024];
	size_t n = json_strings(lab->record, "remedies", got, 8), i = 0;
	const char *want;
	va_list ap;

	va_start(ap, lab);
	while ((want = va_arg(ap, const char *)) != NULL) {
		cr_assert_lt(i, n, "remedy %zu missing (%s): %s", i, want, lab->record);
		cr_assert_str_eq(got[i], want, "remedy %zu", i);
		i++;
	}
	va_end(ap);
	cr_assert_eq(n, i, "%zu remedies, %zu expected; the next: %s", n, i, i < n ? got[i] : "");
	/* the first is on the human line */
	cr_assert(n == 0 || strstr(e2e_member(lab->record, "summary"), "; remedy: "), "%s", lab->record);
}

static void expect_served(struct lab *lab, const char *cert, const char *key)
{
	int code = connect_through(lab, cert, key);

	cr_assert_eq(code, 200, "after the remedy: HTTP %d: %s", code, e2e_tail(px_tmp("nginx-error.log"), 400));
	cr_assert_str_eq(e2e_member(lab->record, "verdict"), "client_cert_accepted", "%s", lab->record);
}

TestSuite(chain_lab, .init = px_setup, .fini = px_teardown);

Test(chain_lab, depth_limited_nginx)
{
	struct server_conf sc = { "deep-root.pem", 1, NULL };
	struct lab lab;

	cr_assert(px_have("nginx") && px_have("curl"), "nginx and curl are needed");
	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-good-chain.pem", "deep-good.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "depth_exceeded", "server");
	/* nginx logs the last error, openssl verify stops at the first */
	expect_server_words(&lab, &sc, "deep-good-chain.pem",
			    "client SSL certificate verify error: (20:unable to get local issuer certificate)", 22, 2);
	cr_assert_str_eq(e2e_member(lab.record, "needed_depth"), "2", "%s", lab.record);
	cr_assert_str_eq(e2e_member(lab.record, "depth_limited"), "true", "%s", lab.record);
	cr_assert(strstr(lab.record, "\"server_kind\":{\"name\":\"nginx\",\"from\":\"server_header\"}"), "%s", lab.record);
	expect_remedies(&lab,
			"nginx: set ssl_verify_depth 2 (the chain has 4 certificates; OpenSSL counts neither the leaf nor the trusted root), then nginx -s reload",
			NULL);
	/* the same in TLS 1.3, where the chain is read with the key log */
	cr_assert_eq(connect_tls(&lab, "1.3", "deep-good-chain.pem", "deep-good.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "depth_exceeded", "server");
	cr_assert_str_eq(e2e_member(lab.record, "tls_version"), "1.3", "%s", lab.record);
	expect_server_words(&lab, &sc, "deep-good-chain.pem",
			    "client SSL certificate verify error: (20:unable to get local issuer certificate)", 22, 2);
	expect_remedies(&lab,
			"nginx: set ssl_verify_depth 2 (the chain has 4 certificates; OpenSSL counts neither the leaf nor the trusted root), then nginx -s reload",
			NULL);
	/* the remedy, applied */
	sc.depth = 2;
	reload_nginx(&lab, &sc);
	expect_served(&lab, "deep-good-chain.pem", "deep-good.key");
	lab_down(&lab);
}

Test(chain_lab, missing_policy_ca)
{
	struct server_conf sc = { "deep-root.pem", 2, NULL };
	struct lab lab;
	FILE *f;
	char *root, *policy;

	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-good-short.pem", "deep-good.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "missing_intermediate", "client");
	expect_server_words(&lab, &sc, "deep-good-short.pem",
			    "client SSL certificate verify error: (20:unable to get local issuer certificate)", 20, 1);
	cr_assert_str_eq(e2e_member(lab.record, "stops_at"), "CN=Lab Policy CA, O=mtlsdiag Lab", "%s", lab.record);
	expect_remedies(&lab,
			"client: send the intermediate CA certificates with the leaf (the chain stops short of CN=Lab Policy CA, O=mtlsdiag Lab): curl --cert FILE takes the leaf followed by its intermediates in that one PEM file",
			"browser: import a PKCS#12 bundle that holds the intermediates (openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile intermediates.pem -out client.p12), then restart the browser",
			"nginx: or add CN=Lab Policy CA, O=mtlsdiag Lab to the file of ssl_client_certificate, then nginx -s reload",
			NULL);
	/* the client's remedy: the whole chain */
	expect_served(&lab, "deep-good-chain.pem", "deep-good.key");
	/* nginx's: the policy CA added to the bundle, reloaded, and the short
	 * chain served */
	root = e2e_slurp(px_pki("deep-root.pem"));
	policy = e2e_slurp(px_pki("deep-policy.pem"));
	cr_assert(root && policy);
	f = fopen(px_tmp("bundle-fixed.pem"), "w");
	cr_assert_not_null(f);
	fputs(root, f);
	fputs(policy, f);
	fclose(f);
	free(root);
	free(policy);
	sc.bundle = px_tmp("bundle-fixed.pem");
	reload_nginx(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-good-short.pem", "deep-good.key"), 200,
		     "%s", e2e_tail(px_tmp("nginx-error.log"), 400));
	lab_down(&lab);
}

Test(chain_lab, revoked_client_with_crls)
{
	struct server_conf sc = { "deep-root.pem", 2, "deep-crl.pem" };
	struct lab lab;

	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-revoked-chain.pem", "deep-revoked.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "revoked", "client");
	expect_server_words(&lab, &sc, "deep-revoked-chain.pem",
			    "client SSL certificate verify error: (23:certificate revoked)", 23, 0);
	cr_assert_str_eq(e2e_member(lab.record, "crl"), "true", "%s", lab.record);
	expect_remedies(&lab,
			"client: CN=deep-revoked-client, O=mtlsdiag Lab is revoked by its CA: issue the client a new certificate and key, and install them where it reads them",
			NULL);
	/* a certificate the CRL does not list goes through */
	expect_served(&lab, "deep-good-chain.pem", "deep-good.key");
	lab_down(&lab);
}

Test(chain_lab, client_certificate_without_client_auth)
{
	struct server_conf sc = { "deep-root.pem", 2, NULL };
	struct lab lab;

	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-noclientauth-chain.pem", "deep-noclientauth.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "bad_eku", "client");
	expect_server_words(&lab, &sc, "deep-noclientauth-chain.pem",
			    "client SSL certificate verify error: (26:unsuitable certificate purpose)", 26, 0);
	expect_remedies(&lab,
			"client: reissue CN=deep-noclientauth-client, O=mtlsdiag Lab with extendedKeyUsage clientAuth: an OpenSSL-based server refuses a client certificate without it",
			NULL);
	/* and a key usage without digitalSignature */
	cr_assert_eq(connect_through(&lab, "deep-badku-chain.pem", "deep-badku.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "bad_key_usage", "client");
	expect_server_words(&lab, &sc, "deep-badku-chain.pem",
			    "client SSL certificate verify error: (26:unsuitable certificate purpose)", 26, 0);
	expect_remedies(&lab,
			"client: reissue CN=deep-badku-client, O=mtlsdiag Lab with keyUsage digitalSignature: a TLS client signs the handshake (CertificateVerify) with its key",
			NULL);
	lab_down(&lab);
}

Test(chain_lab, a_leaf_sent_alone)
{
	struct server_conf sc = { "deep-root.pem", 2, NULL };
	struct lab lab;

	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-good.pem", "deep-good.key"), 400);
	expect_verdict(&lab, "server_rejected_chain", "missing_intermediate", "client");
	/* nginx goes on past 20 and logs 21; openssl verify stops at 20 */
	expect_server_words(&lab, &sc, "deep-good.pem",
			    "client SSL certificate verify error: (21:unable to verify the first certificate)", 20, 0);
	expect_remedies(&lab,
			"client: send the intermediate CA certificates with the leaf (the chain stops short of CN=Lab Deep Issuing CA, O=mtlsdiag Lab): curl --cert FILE takes the leaf followed by its intermediates in that one PEM file",
			"browser: import a PKCS#12 bundle that holds the intermediates (openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile intermediates.pem -out client.p12), then restart the browser",
			"nginx: or add CN=Lab Deep Issuing CA, O=mtlsdiag Lab to the file of ssl_client_certificate, then nginx -s reload",
			NULL);
	lab_down(&lab);
}

Test(chain_lab, a_client_chain_file_used_as_the_bundle)
{
	struct server_conf sc = { "bundle-with-leaf.pem", 2, NULL };
	struct lab lab;

	lab_up(&lab, &sc);
	cr_assert_eq(connect_through(&lab, "deep-good-chain.pem", "deep-good.key"), 400);
	/* the bundle lacks the root: the server must act */
	expect_verdict(&lab, "server_rejected_chain", "missing_intermediate", "server");
	expect_server_words(&lab, &sc, "deep-good-chain.pem",
			    "client SSL certificate verify error: (2:unable to get issuer certificate)", 2, 2);
	cr_assert(strstr(lab.record, "\"bundle_problems\":[\"leaf\"]"), "%s", lab.record);
	expect_remedies(&lab,
			"nginx: the file of ssl_client_certificate must hold the CA certificates up to the root: add CN=Lab Deep Root CA, O=mtlsdiag Lab, then nginx -s reload",
			"nginx: take the leaf certificate out of the file of ssl_client_certificate: it holds CA certificates, not client certificates",
			NULL);
	/* both applied: the CAs, root included, and no leaf */
	sc.bundle = "deep-cas.pem";
	reload_nginx(&lab, &sc);
	expect_served(&lab, "deep-good-chain.pem", "deep-good.key");
	lab_down(&lab);
}
