/* `mtlsdiag proxy --intercept` end to end: the proxy stands in for a real
 * nginx started here (ssl_verify_client on, the lab's client root), holds
 * the server's certificate and key (or a forge CA made here), and meets
 * nginx with the lab's good client certificate as its own identity.  curl
 * brings each client-certificate case of the lab PKI in TLS 1.2 and 1.3;
 * the records must be observed (decrypted) in both versions, and the
 * stand-in's verify error must be the one `openssl verify` gives for the
 * same chain. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxyutil.h"
#include "testutil.h"

TestSuite(intercept, .init = px_setup, .fini = px_teardown);

/* A lab PKI file's path, the same pointer for as long as the test runs
 * (px_pki's buffers rotate; argument lists here hold many at once). */
static const char *lab(const char *file)
{
	static char paths[32][512], names[32][64];
	static size_t n;
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], file) == 0)
			return paths[i];
	cr_assert(n < 32);
	snprintf(names[n], sizeof(names[n]), "%s", file);
	snprintf(paths[n], sizeof(paths[n]), "%s", px_pki(file));
	return paths[n++];
}

/* A copy of a lab key the proxy accepts: readable by its owner only. */
static const char *private_key(const char *lab_key)
{
	char name[64], cmd[1200];

	snprintf(name, sizeof(name), "p-%s", lab_key);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 600 '%s'", lab(lab_key), px_tmp(name), px_tmp(name));
	cr_assert_eq(system(cmd), 0);
	return px_tmp(name);
}

/* Runs a shell command; its first line of output into out (may be NULL). */
static int run(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	char line[4096];
	int status;

	cr_assert_not_null(p);
	if (out) {
		out[0] = '\0';
		if (fgets(line, sizeof(line), p)) {
			size_t n = strcspn(line, "\n");

			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, line, n);
			out[n] = '\0';
		}
	}
	while (fgets(line, sizeof(line), p))
		;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first line of a file, its end of line kept ("" when there is none). */
static void first_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s", path);
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	fclose(f);
}

struct client_case {
	const char *name;
	const char *cert, *key;         /* lab files; cert NULL: none */
	const char *verdict, *reason;   /* expected; reason NULL: null */
	int http;
};

static const struct client_case cases[] = {
	{ "none", NULL, NULL, "client_sent_no_cert", NULL, 400 },
	{ "good", "good-chain.pem", "good.key", "client_cert_accepted", NULL, 200 },
	{ "expired", "expired-chain.pem", "expired.key", "server_rejected_chain", "expired", 400 },
	{ "wrong CA", "foreign.pem", "foreign.key", "server_rejected_chain", "unknown_issuer", 400 },
	{ "self-signed", "selfsigned.pem", "selfsigned.key", "server_rejected_chain", "self_signed", 400 },
	{ "missing intermediate", "good.pem", "good.key", "server_rejected_chain", "missing_intermediate", 400 },
};

/* curl https://NAME:port/ resolved to 127.0.0.1, trusting ca, with the
 * client's certificate (NULL: none); the HTTP code (000 when none) and
 * the body into body_path. */
static int icurl(uint16_t port, const char *name, const char *ca, const char *tls, const char *cert,
		 const char *key, const char *body_path, char *code, size_t codelen)
{
	char cmd[3000], creds[1200] = "", versions[80] = "";

	if (cert)
		snprintf(creds, sizeof(creds), "--cert '%s' --key '%s'", lab(cert), lab(key));
	if (tls)
		snprintf(versions, sizeof(versions), "--tlsv%s --tls-max %s", tls, tls);
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o '%s' -w '%%{http_code}' --max-time 5 --cacert '%s' --resolve %s:%u:127.0.0.1 %s %s "
		 "'https://%s:%u/'", body_path, ca, name, port, versions, creds, name, port);
	return run(cmd, code, codelen);
}

/* `openssl verify` on the chain the client sends: "N TEXT" of its first
 * error, or "" when it verifies. */
static void openssl_verify(const struct client_case *k, char *out, size_t len)
{
	char cmd[2000], line[512];
	int n, depth;
	char text[300];

	snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s' -untrusted '%s' '%s' 2>&1 | grep '^error [0-9]'",
		 lab("client-root.pem"), lab(k->cert), lab(k->cert));
	(void)run(cmd, line, sizeof(line));
	out[0] = '\0';
	/* "error 20 at 0 depth lookup: unable to get local issuer certificate" */
	if (sscanf(line, "error %d at %d depth lookup: %299[^\n]", &n, &depth, text) == 3)
		snprintf(out, len, "%d %s", n, text);
}

struct stand_in {
	uint16_t nginx_port, port;
	pid_t nginx, proxy;
	const char *log, *json;
};

/* The stand-in in front of the server on s->nginx_port, with the
 * server's key; `extra` more proxy options (NULL-terminated, at most 8). */
static void start_proxy(struct stand_in *s, const char *const *extra)
{
	char listen[40], upstream[40];
	const char *args[40];
	size_t n = 0, i;

	s->port = e2e_free_port();
	s->log = px_tmp("proxy.log");
	s->json = px_tmp("proxy.json");
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", s->port);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", s->nginx_port);
	args[n++] = "--listen";
	args[n++] = listen;
	args[n++] = "--upstream";
	args[n++] = upstream;
	args[n++] = "--intercept";
	args[n++] = "--ca-bundle";
	args[n++] = lab("client-root.pem");
	args[n++] = "--json";
	args[n++] = s->json;
	for (i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	s->proxy = px_start_argv(NULL, s->log, args);
}

/* nginx (ssl_verify_client on) and the stand-in in front of it. */
static void start_stand_in(struct stand_in *s, const char *location, const char *const *extra)
{
	s->nginx_port = e2e_free_port();
	s->nginx = location ? px_start_nginx_answer(s->nginx_port, "on", location) : px_start_nginx(s->nginx_port);
	start_proxy(s, extra);
}

static void stop_stand_in(struct stand_in *s)
{
	px_stop_child(s->proxy);
	px_stop_child(s->nginx);
}

/* The proxy's identity towards nginx: the lab's good client. */
#define SERVER_KEYS(keybuf) "--server-cert", lab("server.pem"), "--server-key", (keybuf)
#define IDENTITY(keybuf) "--upstream-cert", lab("good-chain.pem"), "--upstream-key", (keybuf), \
	"--upstream-ca", lab("server-root.pem")

/* Record n (0-based) once it is written. */
static const char *record(const struct stand_in *s, size_t n)
{
	if (!e2e_wait_lines(s->json, n + 1, 5000))
		cr_assert_fail("no record %zu: %s", n, e2e_tail(s->log, 600));
	return px_nth_line(s->json, n);
}

static void client_cases(const char *tls)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	size_t i;

	start_stand_in(&s, NULL, extra);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct client_case *k = &cases[i];
		char code[16], want[400], got[400], body[256] = "";
		const char *rec;

		icurl(s.port, "localhost", lab("server-root.pem"), tls, k->cert, k->key, px_tmp("body"), code,
		      sizeof(code));
		cr_expect_eq(atoi(code), k->http, "TLS %s %s: HTTP %s", tls, k->name, code);
		rec = record(&s, i);
		cr_expect_str_eq(e2e_member(rec, "tls_version"), tls, "%s: %s", k->name, rec);
		cr_expect_str_eq(e2e_member(rec, "verdict"), k->verdict, "TLS %s %s: %s", tls, k->name, rec);
		cr_expect_str_eq(e2e_member(rec, "reason"), k->reason ? k->reason : "null", "TLS %s %s: %s", tls,
				 k->name, rec);
		/* seen, not guessed: the stand-in holds every key */
		cr_expect_str_eq(e2e_member(rec, "basis"), "decrypted", "TLS %s %s: %s", tls, k->name, rec);
		cr_expect_str_eq(e2e_member(rec, "mode"), "intercept");
		if (k->http == 200) {
			first_line(px_tmp("body"), body, sizeof(body));
			cr_expect_str_eq(body, "ok nginx\n", "the answer is nginx's");
			cr_expect_str_eq(e2e_member(rec, "outcome"), "forwarded");
			cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":true,\"failed\":false"), "%s", rec);
		} else {
			char *page = e2e_slurp(px_tmp("body"));

			cr_expect_str_eq(e2e_member(rec, "outcome"), "refused_http", "%s", rec);
			cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":false"), "%s", rec);
			/* nginx's page, and the problem in words */
			cr_expect(strstr(page, k->cert ? "<title>400 The SSL certificate error</title>"
						       : "<title>400 No required SSL certificate was sent</title>"),
				  "%s: %s", k->name, page);
			cr_expect(strstr(page, k->cert ? "<p>The client certificate was refused: verify error "
						       : "<p>The client certificate was refused: no client certificate was sent.</p>"),
				  "%s: %s", k->name, page);
			free(page);
		}
		if (!k->cert || k->http == 200) {
			cr_expect_str_eq(e2e_member(rec, "verify_error"), "null", "%s", rec);
			continue;
		}
		/* the same error as `openssl verify` for the same chain */
		openssl_verify(k, want, sizeof(want));
		cr_assert_neq(want[0], '\0', "openssl verify found no error for %s", k->name);
		snprintf(got, sizeof(got), "%s %s", e2e_member(rec, "code"), e2e_member(rec, "text"));
		cr_expect_str_eq(got, want, "TLS %s %s", tls, k->name);
		snprintf(want, sizeof(want), "verify error %s: %s at depth", e2e_member(rec, "code"),
			 e2e_member(rec, "text"));
		cr_expect(strstr(rec, want), "the verify error is evidence: %s", rec);
	}
	stop_stand_in(&s);
}

Test(intercept, client_cases_tls13)
{
	client_cases("1.3");
}

Test(intercept, client_cases_tls12)
{
	client_cases("1.2");
}

/* The human line says which leg did what. */
Test(intercept, human_line_names_the_legs)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	char code[16];

	start_stand_in(&s, NULL, extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "expired-chain.pem", "expired.key",
	      px_tmp("body"), code, sizeof(code));
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	(void)record(&s, 1);
	cr_expect_not_null(px_find_line(s.log, "TLS1.3 server rejected chain: expired (fault: client; decrypted)"),
			   "%s", e2e_tail(s.log, 800));
	cr_expect_not_null(px_find_line(s.log, "[client leg refused: answered HTTP 400] [upstream leg: not opened]"),
			   "%s", e2e_tail(s.log, 800));
	cr_expect_not_null(px_find_line(s.log, "client cert accepted (fault: none; decrypted) client cert CN=good-client"),
			   "%s", e2e_tail(s.log, 800));
	/* the proxy's own connections: TLS 1.2 when nginx has it (resumed cheaply) */
	cr_expect_not_null(px_find_line(s.log, "the proxy's own connections to it use TLS 1.2"), "%s", e2e_tail(s.log, 800));
	cr_expect_not_null(px_find_line(s.log, "[upstream leg: TLS1.2 client cert accepted"), "%s", e2e_tail(s.log, 800));
	stop_stand_in(&s);
}

/* --refuse alert: OpenSSL's own alert instead of nginx's page. */
Test(intercept, refuse_with_alert)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--refuse", "alert", NULL };
	char code[16];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	cr_expect_neq(icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "expired-chain.pem", "expired.key",
			    px_tmp("body"), code, sizeof(code)), 0, "curl must fail the handshake");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "server_rejected_chain", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "reason"), "expired", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "refused_alert", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "alert_sent"), "certificate_expired", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "code"), "10", "%s", rec);
	stop_stand_in(&s);
}

/* --forge-ca: a name never seen gets a certificate of its own, issued once. */
Test(intercept, forge_ca_issues_per_name_and_caches)
{
	struct stand_in s;
	const char *good_key = private_key("good.key");
	const char *forge = px_tmp("forge.pem"), *forge_key = px_tmp("forge.key");
	const char *const extra[] = { "--forge-ca", forge, "--forge-ca-key", forge_key, IDENTITY(good_key), NULL };
	char cmd[2000], code[16], first[600], second[600];
	const char *rec;

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%s' -out '%s' "
		 "-subj '/CN=mtlsdiag test forge CA' -days 2 -addext basicConstraints=critical,CA:TRUE "
		 "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 && chmod 600 '%s'",
		 forge_key, forge, forge_key);
	cr_assert_eq(system(cmd), 0);
	start_stand_in(&s, NULL, extra);
	icurl(s.port, "never-seen.example", forge, "1.3", "good-chain.pem", "good.key", px_tmp("body"), code,
	      sizeof(code));
	cr_expect_str_eq(code, "200", "a client trusting the forge CA gets through: %s", e2e_tail(s.log, 600));
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "certificate"), "forged", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "forged_for"), "never-seen.example", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "%s", rec);
	/* the certificate shown: for that name, and the same one twice */
	snprintf(cmd, sizeof(cmd),
		 "openssl s_client -connect 127.0.0.1:%u -servername never-seen.example </dev/null 2>/dev/null | "
		 "openssl x509 -noout -subject -ext subjectAltName -serial -fingerprint -sha256 | tr '\\n' ' '",
		 s.port);
	cr_assert_eq(run(cmd, first, sizeof(first)), 0);
	cr_expect(strstr(first, "subject=CN = never-seen.example"), "%s", first);
	cr_expect(strstr(first, "DNS:never-seen.example"), "%s", first);
	cr_assert_eq(run(cmd, second, sizeof(second)), 0);
	cr_expect_str_eq(second, first, "the second connection gets the cached certificate");
	stop_stand_in(&s);
}

/* The real server's chain is not from --upstream-ca: the upstream leg
 * fails, on its own, and the client gets a 502 that says so. */
Test(intercept, upstream_chain_refused)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), "--upstream-cert", lab("good-chain.pem"),
				      "--upstream-key", good_key, "--upstream-ca", lab("client-root.pem"), NULL };
	char code[16];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "502");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "the client leg is fine: %s", rec);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "upstream_failed", "%s", rec);
	cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":true,\"failed\":true"), "%s", rec);
	cr_expect(strstr(rec, "\"verify_error\":{\"code\":20,\"text\":\"unable to get local issuer certificate\""),
		  "%s", rec);
	cr_expect(strstr(rec, "\"verdict\":\"client_rejected_server_cert\""), "the upstream leg's own verdict: %s", rec);
	cr_expect_not_null(px_find_line(s.log, "[upstream leg failed: the server's certificate was refused: verify error 20"),
			   "%s", e2e_tail(s.log, 800));
	stop_stand_in(&s);
}

/* nginx asks the proxy for a certificate it does not have: the refusal
 * is the upstream leg's, not the client's. */
Test(intercept, upstream_wants_a_certificate)
{
	struct stand_in s;
	const char *server_key = private_key("server.key");
	const char *const extra[] = { SERVER_KEYS(server_key), "--upstream-ca", lab("server-root.pem"),
				      "--upstream-tls", "1.3", NULL };
	char code[16];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "400", "nginx's refusal reaches the client");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "%s", rec);
	cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":true,\"failed\":true"), "%s", rec);
	cr_expect(strstr(rec, "\"connection\":{\"type\":\"connection\""), "%s", rec);
	cr_expect(strstr(strstr(rec, "\"upstream_leg\""), "\"verdict\":\"client_sent_no_cert\""), "%s", rec);
	cr_expect_not_null(px_find_line(s.log, "[upstream leg failed: TLS1.3 client did not send cert"), "%s",
			   e2e_tail(s.log, 800));
	stop_stand_in(&s);
}

/* --forward-identity: nginx reads the client's certificate in headers. */
Test(intercept, forward_identity_headers)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--forward-identity",
				      "--verify", "optional", NULL };
	char code[16], body[2000];
	const char *rec;

	start_stand_in(&s, "return 200 \"[$http_x_ssl_client_verify] [$http_x_ssl_client_s_dn] [$http_x_ssl_client_cert]\\n\";",
		       extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "200");
	first_line(px_tmp("body"), body, sizeof(body));
	cr_expect(strstr(body, "[SUCCESS] [CN=good-client,O=mtlsdiag Lab] [-----BEGIN%20CERTIFICATE-----%0A"), "%s",
		  body);
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "identity_forwarded"), "true", "%s", rec);
	/* optional: an expired certificate is forwarded, and said so */
	icurl(s.port, "localhost", lab("server-root.pem"), "1.2", "expired-chain.pem", "expired.key",
	      px_tmp("body"), code, sizeof(code));
	cr_expect_str_eq(code, "200");
	first_line(px_tmp("body"), body, sizeof(body));
	cr_expect(strstr(body, "[FAILED:certificate has expired] [CN=expired-client,O=mtlsdiag Lab]"), "%s", body);
	rec = record(&s, 1);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "forwarded", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "code"), "10", "%s", rec);
	stop_stand_in(&s);
}

/* ---- bad input at start: one line, exit 2 ---- */

static void start_fails(const char *const *args, const char *want)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	char cmd[4000], line[1000];
	size_t used, i;
	int rc;

	cr_assert_not_null(bin);
	used = (size_t)snprintf(cmd, sizeof(cmd), "'%s' proxy --listen 127.0.0.1:%u --upstream 127.0.0.1:1 --intercept",
				bin, e2e_free_port());
	for (i = 0; args[i] && used < sizeof(cmd); i++)
		used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, " '%s'", args[i]);
	snprintf(cmd + used, sizeof(cmd) - used, " 2>&1 >/dev/null");
	rc = run(cmd, line, sizeof(line));
	cr_expect_eq(rc, 2, "%s: exit %d", want, rc);
	cr_expect(strstr(line, want), "'%s' not in '%s'", want, line);
}

Test(intercept, key_readable_by_others_is_refused)
{
	const char *key = private_key("server.key");
	const char *const args[] = { "--server-cert", lab("server.pem"), "--server-key", key, "--ca-bundle",
				     lab("client-root.pem"), NULL };
	char want[600];

	cr_assert_eq(chmod(key, 0644), 0);
	snprintf(want, sizeof(want), "is readable by others (mode 0644): run chmod 600 '%s'", key);
	start_fails(args, want);
}

Test(intercept, key_not_the_certificates_is_refused)
{
	const char *key = private_key("good.key");
	const char *const args[] = { "--server-cert", lab("server.pem"), "--server-key", key, "--ca-bundle",
				     lab("client-root.pem"), NULL };

	start_fails(args, "is not the key of the certificate in --server-cert");
}

Test(intercept, encrypted_key_needs_a_passphrase)
{
	const char *key = px_tmp("enc.key");
	const char *const args[] = { "--server-cert", lab("server.pem"), "--server-key", key, "--ca-bundle",
				     lab("client-root.pem"), NULL };
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "openssl pkey -in '%s' -aes256 -passout pass:s3cret -out '%s' && chmod 600 '%s'",
		 lab("server.key"), key, key);
	cr_assert_eq(system(cmd), 0);
	start_fails(args, "is encrypted and no passphrase was given: give --key-pass");
}

Test(intercept, bundle_without_a_ca_is_refused)
{
	const char *key = private_key("server.key");
	const char *const args[] = { "--server-cert", lab("server.pem"), "--server-key", key, "--ca-bundle",
				     lab("good.pem"), NULL };

	start_fails(args, "no CA certificate in it");
}

/* Faithful by default: clients are asked for a certificate from the CAs
 * the real server names (nginx: the lab's client root), not from every CA
 * of --ca-bundle; --no-faithful names the bundle's. */
static void asked_cas(bool faithful, const char *want)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *bundle = px_tmp("bundle.pem");
	const char *const plain[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	const char *const unfaithful[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--no-faithful", NULL };
	char cmd[1200], code[16];
	const char *rec;

	snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", lab("client-root.pem"), lab("foreign-root.pem"), bundle);
	cr_assert_eq(system(cmd), 0);
	/* the bundle replaces the lab root as --ca-bundle (the later one wins) */
	{
		const char *args[16];
		size_t n = 0, i;
		const char *const *extra = faithful ? plain : unfaithful;

		for (i = 0; extra[i]; i++)
			args[n++] = extra[i];
		args[n++] = "--ca-bundle";
		args[n++] = bundle;
		args[n] = NULL;
		start_stand_in(&s, NULL, args);
	}
	cr_expect_not_null(px_find_line(s.log, faithful ? "learnt from 127.0.0.1:" : "(--no-faithful)"), "%s",
			   e2e_tail(s.log, 600));
	icurl(s.port, "localhost", lab("server-root.pem"), "1.2", NULL, NULL, px_tmp("body"), code, sizeof(code));
	rec = record(&s, 0);
	cr_expect(strstr(rec, want), "%s not in %s", want, rec);
	stop_stand_in(&s);
}

Test(intercept, faithful_asks_for_the_servers_cas)
{
	asked_cas(true, "\"acceptable_cas\":[\"CN=Lab Client Root CA, O=mtlsdiag Lab\"]");
}

Test(intercept, no_faithful_asks_for_the_bundles_cas)
{
	asked_cas(false, "\"acceptable_cas\":[\"CN=Lab Client Root CA, O=mtlsdiag Lab\",\"CN=Elsewhere Root CA, O=Elsewhere Inc\"]");
}

/* --post-handshake-auth: a TLS 1.3 client is asked for its certificate
 * once its first request is in, not in the handshake; what it sends then
 * is verified and decided on as in the handshake, and the record shows the
 * request made after the handshake.  A client that does not offer
 * post-handshake authentication cannot be asked (s_client without
 * -enable_pha); a TLS 1.2 client is asked in the handshake. */
static void s_client_get(uint16_t port, bool pha, char *status, size_t len)
{
	char cmd[3000];

	snprintf(cmd, sizeof(cmd),
		 "printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | "
		 "timeout 10 openssl s_client -quiet %s -connect 127.0.0.1:%u -servername localhost -tls1_3 "
		 "-CAfile '%s' -cert '%s' -key '%s' -cert_chain '%s' 2>/dev/null",
		 pha ? "-enable_pha" : "", port, lab("server-root.pem"), lab("good.pem"), lab("good.key"),
		 lab("client-inter.pem"));
	(void)run(cmd, status, len);
}

Test(intercept, post_handshake_auth_asks_after_the_first_request)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--post-handshake-auth", NULL };
	char code[16], body[256], status[256];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	/* curl offers post-handshake authentication in TLS 1.3 */
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "200", "%s", e2e_tail(s.log, 600));
	first_line(px_tmp("body"), body, sizeof(body));
	cr_expect_str_eq(body, "ok nginx\n", "the request went on once the certificate was in");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "post_handshake_auth"), "answered", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "basis"), "decrypted", "%s", rec);
	cr_expect(strstr(rec, "asked for a client certificate after the handshake"), "%s", rec);
	cr_expect(strstr(rec, "\"client_chain\":[{\"subject\":\"CN=good-client, O=mtlsdiag Lab\""), "%s", rec);
	/* asked after the handshake, refused as in it */
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "expired-chain.pem", "expired.key",
	      px_tmp("body"), code, sizeof(code));
	cr_expect_str_eq(code, "400");
	rec = record(&s, 1);
	cr_expect_str_eq(e2e_member(rec, "post_handshake_auth"), "answered", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "server_rejected_chain", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "code"), "10", "%s", rec);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", NULL, NULL, px_tmp("body"), code, sizeof(code));
	cr_expect_str_eq(code, "400");
	rec = record(&s, 2);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_sent_no_cert", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "refusal"), "no client certificate was sent when asked after the handshake",
			 "%s", rec);
	/* s_client offers it only when told */
	s_client_get(s.port, true, status, sizeof(status));
	cr_expect(strstr(status, "HTTP/1.1 200"), "s_client -enable_pha: %s", status);
	rec = record(&s, 3);
	cr_expect_str_eq(e2e_member(rec, "post_handshake_auth"), "answered", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "%s", rec);
	s_client_get(s.port, false, status, sizeof(status));
	cr_expect(strstr(status, "HTTP/1.1 400"), "s_client without -enable_pha: %s", status);
	rec = record(&s, 4);
	cr_expect_str_eq(e2e_member(rec, "post_handshake_auth"), "not_offered", "%s", rec);
	cr_expect(strstr(e2e_member(rec, "refusal"), "did not offer post-handshake authentication"), "%s", rec);
	/* TLS 1.2 has no such request: asked in the handshake */
	icurl(s.port, "localhost", lab("server-root.pem"), "1.2", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "200");
	rec = record(&s, 5);
	cr_expect_str_eq(e2e_member(rec, "post_handshake_auth"), "in_handshake", "%s", rec);
	cr_expect_not(strstr(rec, "after the handshake"), "%s", rec);
	stop_stand_in(&s);
}

/* --post-handshake-auth --refuse alert: the alert OpenSSL sends after the
 * handshake, when the client answers without a certificate. */
Test(intercept, post_handshake_auth_refused_with_alert)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--post-handshake-auth",
				      "--refuse", "alert", NULL };
	char code[16];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	cr_expect_neq(icurl(s.port, "localhost", lab("server-root.pem"), "1.3", NULL, NULL, px_tmp("body"), code,
			    sizeof(code)), 0, "curl must fail");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "refused_alert", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "alert_sent"), "certificate_required", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "client_sent_no_cert", "%s", rec);
	cr_expect(strstr(rec, "asked for a client certificate after the handshake"), "%s", rec);
	stop_stand_in(&s);
}

/* No resumption: a client that tries to resume (s_client -reconnect, five
 * times after the first) gets a full handshake each time, and each
 * connection shows its certificate. */
Test(intercept, no_resumption_every_connection_shows_its_certificate)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	static const char *const versions[] = { "1_2", "1_3" };
	char cmd[3000], count[64];
	size_t v, i;

	start_stand_in(&s, NULL, extra);
	for (v = 0; v < 2; v++) {
		snprintf(cmd, sizeof(cmd),
			 "timeout 20 openssl s_client -reconnect -connect 127.0.0.1:%u -servername localhost -tls%s "
			 "-CAfile '%s' -cert '%s' -key '%s' -cert_chain '%s' </dev/null 2>/dev/null | "
			 "grep -c '^New,'",
			 s.port, versions[v], lab("server-root.pem"), lab("good.pem"), lab("good.key"),
			 lab("client-inter.pem"));
		(void)run(cmd, count, sizeof(count));
		/* "Reused," for a resumed one */
		cr_expect_str_eq(count, "6", "TLS %s: six new sessions", versions[v]);
	}
	for (i = 0; i < 12; i++) {
		const char *rec = record(&s, i);

		/* no request follows: what the stand-in decided is the evidence */
		cr_expect_neq(strcmp(e2e_member(rec, "verdict"), "resumed"), 0, "connection %zu", i);
		cr_expect_str_eq(e2e_member(rec, "client_cert_sent"), "true", "connection %zu: %s", i, rec);
		cr_expect_str_eq(e2e_member(rec, "verify_result"), "ok", "connection %zu: %s", i, rec);
	}
	stop_stand_in(&s);
}

/* Bytes that are not TLS: one record saying so, and the stand-in goes on
 * serving. */
Test(intercept, a_client_that_does_not_speak_tls)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	char cmd[600], code[16];
	const char *rec;

	start_stand_in(&s, NULL, extra);
	snprintf(cmd, sizeof(cmd),
		 "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%u; printf \"GET / HTTP/1.1\\r\\n\\r\\n\" >&3; cat <&3' "
		 ">/dev/null 2>&1", s.port);
	(void)run(cmd, NULL, 0);
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "verdict"), "not_tls", "%s", rec);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "handshake_failed", "%s", rec);
	cr_expect_neq(strcmp(e2e_member(rec, "error"), "null"), 0, "the reason, in one line: %s", rec);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "200");
	stop_stand_in(&s);
}

/* --resumption: clients may resume, as with a server that allows it; a
 * resumed connection shows no certificate and keeps its session's
 * verification. */
Test(intercept, resumption_when_asked)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--resumption", NULL };
	char cmd[3000], count[64];
	const char *rec;
	size_t i, resumed = 0;

	start_stand_in(&s, NULL, extra);
	snprintf(cmd, sizeof(cmd),
		 "timeout 20 openssl s_client -reconnect -connect 127.0.0.1:%u -servername localhost -tls1_2 "
		 "-CAfile '%s' -cert '%s' -key '%s' -cert_chain '%s' </dev/null 2>/dev/null | grep -c '^Reused,'",
		 s.port, lab("server-root.pem"), lab("good.pem"), lab("good.key"), lab("client-inter.pem"));
	(void)run(cmd, count, sizeof(count));
	cr_expect_str_eq(count, "5", "the five reconnections resume");
	/* the records come as the connections end, not in their order */
	for (i = 0; i < 6; i++) {
		const char *leg;

		rec = record(&s, i);
		leg = strstr(rec, "\"client_leg\":{");
		cr_assert_not_null(leg, "%s", rec);
		cr_expect_str_eq(e2e_member(rec, "verify_result"), "ok", "the session's verification: %s", rec);
		if (strcmp(e2e_member(rec, "verdict"), "resumed") == 0) {
			resumed++;
			cr_expect(strstr(leg, "\"resumed\":true"), "connection %zu: %s", i, rec);
		} else {
			cr_expect_str_eq(e2e_member(rec, "client_cert_sent"), "true", "%s", rec);
			cr_expect(strstr(leg, "\"resumed\":false"), "connection %zu: %s", i, rec);
		}
	}
	cr_expect_eq(resumed, 5, "five resumed records");
	stop_stand_in(&s);
}

/* --forward-identity: identity headers of the client's own are dropped
 * whatever its lines end with (nginx ends a line at a bare LF), and a head
 * too long to check is refused, not sent as it is. */
Test(intercept, forward_identity_is_not_spoofed)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--forward-identity",
				      "--verify", "optional", NULL };
	char cmd[3000], body[600];
	const char *rec;

	start_stand_in(&s, "return 200 \"[$http_x_ssl_client_verify] [$http_x_ssl_client_s_dn] [$http_x_ssl_client_cert]\\n\";",
		       extra);
	snprintf(cmd, sizeof(cmd),
		 "printf 'GET / HTTP/1.1\\r\\nHost: localhost\\nX-SSL-Client-S-DN: CN=admin\\r\\n"
		 "X-Other: 1\\rX-SSL-Client-Cert: forged\\r\\nConnection: keep-alive\\n\\n' | "
		 "timeout 10 openssl s_client -quiet -connect 127.0.0.1:%u -servername localhost -CAfile '%s' 2>/dev/null | "
		 "grep '^\\['", s.port, lab("server-root.pem"));
	(void)run(cmd, body, sizeof(body));
	cr_expect_str_eq(body, "[NONE] [] []", "no certificate, and none claimed: %s", e2e_tail(s.log, 600));
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "identity_forwarded"), "true", "%s", rec);
	/* a head over 64 KiB */
	snprintf(cmd, sizeof(cmd),
		 "{ printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\n'; head -c 70000 /dev/zero | tr '\\\\0' a; "
		 "printf '\\r\\n\\r\\n'; } | timeout 10 openssl s_client -quiet -connect 127.0.0.1:%u -servername localhost "
		 "-CAfile '%s' 2>/dev/null | head -n1", s.port, lab("server-root.pem"));
	(void)run(cmd, body, sizeof(body));
	cr_expect(strstr(body, "HTTP/1.1 400"), "%s", body);
	rec = record(&s, 1);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "refused_http", "%s", strstr(rec, "\"client_leg\""));
	cr_expect(strstr(e2e_member(rec, "refusal"), "longer than 65536 bytes"), "%s", strstr(rec, "\"client_leg\""));
	stop_stand_in(&s);
}

/* --verify-depth: nginx's ssl_verify_depth.  The good chain (leaf, issuing
 * CA, then the root in --ca-bundle) needs 1: with 0 it is refused with the
 * error `openssl verify -verify_depth 0` gives, with 1 it is accepted. */
Test(intercept, verify_depth_0_refuses_as_openssl_verify)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--verify-depth", "0", NULL };
	char cmd[2000], want[400], got[400], code[16];
	const char *rec;
	int n, depth;
	char text[300];

	start_stand_in(&s, NULL, extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "400");
	rec = record(&s, 0);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "refused_http", "%s", rec);
	snprintf(cmd, sizeof(cmd),
		 "openssl verify -verify_depth 0 -CAfile '%s' -untrusted '%s' '%s' 2>&1 | grep '^error [0-9]'",
		 lab("client-root.pem"), lab("good-chain.pem"), lab("good-chain.pem"));
	(void)run(cmd, got, sizeof(got));
	cr_assert_eq(sscanf(got, "error %d at %d depth lookup: %299[^\n]", &n, &depth, text), 3, "%s", got);
	snprintf(want, sizeof(want), "%d %s", n, text);
	snprintf(got, sizeof(got), "%s %s", e2e_member(rec, "code"), e2e_member(rec, "text"));
	cr_expect_str_eq(got, want, "the stand-in's error is openssl verify's");
	stop_stand_in(&s);
}

Test(intercept, verify_depth_1_accepts)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--verify-depth", "1", NULL };
	char code[16];

	start_stand_in(&s, NULL, extra);
	icurl(s.port, "localhost", lab("server-root.pem"), "1.3", "good-chain.pem", "good.key", px_tmp("body"),
	      code, sizeof(code));
	cr_expect_str_eq(code, "200", "%s", e2e_tail(s.log, 800));
	stop_stand_in(&s);
}

/* ---- --upstream-keepalive: the connection to the server kept between clients ---- */

/* nginx says which of its connections a request came on, and how many
 * requests that connection has carried. */
#define CONN_ANSWER "return 200 \"conn $connection req $connection_requests\\n\";"

/* One good client's GET through the stand-in (asking the server to close
 * after it when close): nginx's "conn N req M". */
static void kept_get_as(const struct stand_in *s, const char *tls, bool close, char *body, size_t len)
{
	char cmd[2000], code[16];

	snprintf(cmd, sizeof(cmd),
		 "curl -s -o '%s' -w '%%{http_code}' --max-time 5 --cacert '%s' --cert '%s' --key '%s' --tlsv%s "
		 "--tls-max %s %s --resolve localhost:%u:127.0.0.1 https://localhost:%u/",
		 px_tmp("body"), lab("server-root.pem"), lab("good-chain.pem"), lab("good.key"), tls, tls,
		 close ? "-H 'Connection: close'" : "", s->port, s->port);
	(void)run(cmd, code, sizeof(code));
	cr_expect_str_eq(code, "200");
	first_line(px_tmp("body"), body, len);
}

static void kept_get(const struct stand_in *s, const char *tls, char *body, size_t len)
{
	kept_get_as(s, tls, false, body, len);
}

Test(intercept, keepalive_reuses_the_connection_to_the_server)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	char body[4][80], want[80];
	unsigned conn;
	const char *rec;
	int i;

	start_stand_in(&s, CONN_ANSWER, extra);
	/* TLS 1.3, 1.2, a client that asks the server to close after its
	 * request (the proxy leaves that line out and closes the client's leg
	 * itself), and one more */
	for (i = 0; i < 4; i++)
		kept_get_as(&s, i == 1 ? "1.2" : "1.3", i == 2, body[i], sizeof(body[i]));
	/* four clients, one connection to nginx, four requests on it */
	cr_assert_eq(sscanf(body[0], "conn %u req 1", &conn), 1, "%s", body[0]);
	for (i = 1; i < 4; i++) {
		snprintf(want, sizeof(want), "conn %u req %d\n", conn, i + 1);
		cr_expect_str_eq(body[i], want);
	}
	rec = record(&s, 0);
	cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":true,\"failed\":false"), "%s", rec);
	cr_expect(strstr(rec, "\"reused\":false,\"earlier_clients\":null,\"resent\":false}"), "%s", rec);
	for (i = 1; i < 4; i++) {
		char member[120];

		rec = record(&s, (size_t)i);
		snprintf(member, sizeof(member), "\"connection\":null,\"reused\":true,\"earlier_clients\":%d,\"resent\":false}", i);
		cr_expect(strstr(rec, member), "%s", rec);
		/* the client's own handshake is seen whole all the same */
		cr_expect_str_eq(e2e_member(rec, "verdict"), "client_cert_accepted", "%s", rec);
		cr_expect_str_eq(e2e_member(rec, "basis"), "decrypted", "%s", rec);
	}
	/* the client that asked for the close had it, from the proxy */
	cr_expect_str_eq(e2e_member(record(&s, 2), "closed_by"), "proxy", "%s", record(&s, 2));
	/* the human line says so */
	cr_expect(e2e_wait_contains(s.log, "[upstream leg: a kept connection, its client 3, no handshake of its own]",
				    2000), "%s", e2e_tail(s.log, 800));
	stop_stand_in(&s);
}

Test(intercept, keepalive_0_opens_one_connection_per_client)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), "--upstream-keepalive", "0", NULL };
	char body[80];
	unsigned c0, c1;

	start_stand_in(&s, CONN_ANSWER, extra);
	kept_get(&s, "1.3", body, sizeof(body));
	cr_assert_eq(sscanf(body, "conn %u req 1", &c0), 1, "%s", body);
	kept_get(&s, "1.3", body, sizeof(body));
	cr_assert_eq(sscanf(body, "conn %u req 1", &c1), 1, "%s", body);
	cr_expect_neq(c0, c1);
	cr_expect(strstr(record(&s, 1), "\"reused\":false"), "%s", record(&s, 1));
	stop_stand_in(&s);
}

/* A connection is kept only where HTTP says another request may follow:
 * not after an HTTP/1.0 exchange, and not once the server closed it. */
Test(intercept, keepalive_only_between_persistent_exchanges)
{
	struct stand_in s;
	const char *server_key = private_key("server.key"), *good_key = private_key("good.key");
	const char *const extra[] = { SERVER_KEYS(server_key), IDENTITY(good_key), NULL };
	const struct px_nginx conf = { .verify = "on", .extra = "keepalive_timeout 1s;", .location = CONN_ANSWER };
	char cmd[2000], body[80];
	unsigned c0, c1, c2;

	s.nginx_port = e2e_free_port();
	s.nginx = px_start_nginx_conf(s.nginx_port, &conf);
	start_proxy(&s, extra);
	snprintf(cmd, sizeof(cmd),
		 "curl -s --http1.0 -o '%s' --max-time 5 --cacert '%s' --cert '%s' --key '%s' "
		 "--resolve localhost:%u:127.0.0.1 https://localhost:%u/",
		 px_tmp("body"), lab("server-root.pem"), lab("good-chain.pem"), lab("good.key"), s.port, s.port);
	cr_assert_eq(run(cmd, NULL, 0), 0);
	first_line(px_tmp("body"), body, sizeof(body));
	cr_assert_eq(sscanf(body, "conn %u req 1", &c0), 1, "%s", body);
	kept_get(&s, "1.3", body, sizeof(body));
	cr_assert_eq(sscanf(body, "conn %u req 1", &c1), 1, "HTTP/1.0's connection was kept: %s", body);
	cr_expect_neq(c0, c1);
	/* nginx closes an idle connection after 1 s: the kept one is let go */
	usleep(1600 * 1000);
	kept_get(&s, "1.3", body, sizeof(body));
	cr_assert_eq(sscanf(body, "conn %u req 1", &c2), 1, "a connection nginx closed was used: %s", body);
	cr_expect_neq(c1, c2);
	cr_expect(strstr(record(&s, 2), "\"reused\":false,\"earlier_clients\":null,\"resent\":false"), "%s",
		  record(&s, 2));
	stop_stand_in(&s);
}

/* A server that answers the first request of each connection and closes
 * at the second without answering: the race every reuse of a connection
 * has, made certain. */
static const char close_second[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
	"ctx.load_cert_chain(sys.argv[2], sys.argv[3])\n"
	"ls = socket.socket()\n"
	"ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
	"ls.bind(('127.0.0.1', int(sys.argv[1])))\n"
	"ls.listen(16)\n"
	"served = 0\n"
	"while True:\n"
	"    c, _ = ls.accept()\n"
	"    t = None\n"
	"    try:\n"
	"        t = ctx.wrap_socket(c, server_side=True)\n"
	"        buf, n = b'', 0\n"
	"        while True:\n"
	"            while b'\\r\\n\\r\\n' not in buf:\n"
	"                d = t.recv(4096)\n"
	"                if not d:\n"
	"                    raise EOFError\n"
	"                buf += d\n"
	"            head, buf = buf.split(b'\\r\\n\\r\\n', 1)\n"
	"            n += 1\n"
	"            if n == 2:\n"
	"                break\n"
	"            served += 1\n"
	"            body = b'answer %d\\n' % served\n"
	"            t.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
	"    except Exception:\n"
	"        pass\n"
	"    (t or c).close()\n";

Test(intercept, keepalive_resends_an_idempotent_request_on_a_closed_connection)
{
	struct stand_in s;
	const char *server_key = private_key("server.key");
	const char *const extra[] = { SERVER_KEYS(server_key), "--upstream-ca", lab("server-root.pem"),
				      "--verify", "optional", "--no-faithful", NULL };
	struct e2e_io io = { .out = px_tmp("py.log"), .err = px_tmp("py.log") };
	char portbuf[8], body[80], cmd[2000], code[16];
	const char *argv[] = { "python3", px_tmp("close_second.py"), portbuf, lab("server.pem"), lab("server.key"),
			       NULL };
	FILE *f = fopen(px_tmp("close_second.py"), "w");
	const char *rec;

	cr_assert_not_null(f);
	fputs(close_second, f);
	cr_assert_eq(fclose(f), 0);
	s.nginx_port = e2e_free_port();
	snprintf(portbuf, sizeof(portbuf), "%u", s.nginx_port);
	s.nginx = e2e_spawn((char *const *)argv, &io, 60);
	cr_assert(s.nginx > 0);
	px_wait_port(s.nginx_port, s.nginx, "python3", px_tmp("py.log"));
	start_proxy(&s, extra);
	kept_get(&s, "1.3", body, sizeof(body));
	cr_expect_str_eq(body, "answer 1\n");
	/* the kept connection is closed at this request: sent again on a new one */
	kept_get(&s, "1.3", body, sizeof(body));
	cr_expect_str_eq(body, "answer 2\n");
	rec = record(&s, 1);
	cr_expect(strstr(rec, "\"upstream_leg\":{\"opened\":true,\"failed\":false") &&
		  strstr(rec, "\"reused\":false,\"earlier_clients\":null,\"resent\":true}"),
		  "%s", rec);
	cr_expect(e2e_wait_contains(s.log, "[the kept connection to the server was closed before it answered: the request went again on a new one]",
				    2000), "%s", e2e_tail(s.log, 800));
	/* a POST is not sent twice: the client is told the server went away
	 * (it closed, or reset as it left the body unread) */
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' -d x=1 --max-time 5 --cacert '%s' --cert '%s' --key '%s' "
		 "--resolve localhost:%u:127.0.0.1 https://localhost:%u/",
		 lab("server-root.pem"), lab("good-chain.pem"), lab("good.key"), s.port, s.port);
	(void)run(cmd, code, sizeof(code));
	cr_expect_str_eq(code, "502");
	rec = record(&s, 2);
	cr_expect_str_eq(e2e_member(rec, "outcome"), "upstream_failed", "%s", rec);
	cr_expect(strstr(rec, "a kept connection before answering; the request was not sent again"),
		  "%s", rec);
	stop_stand_in(&s);
}
