/* cmds: the subcommands of the mtlsdiag program. Each returns the process
 * exit status: 0 success, 1 findings that need attention, 2 usage or input error. */
#ifndef MTLSDIAG_CMDS_H
#define MTLSDIAG_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/x509.h>

#include "analysis/codes.h"
#include "front/term.h"

struct x509_store_st;
struct chain_policy;
struct inspect_catalogue;
struct keylog;
struct outfile;
struct server_expect;
struct x509_st;
struct evp_pkey_st;
struct stack_st_X509;

int cmd_pcap(int argc, char **argv);
int cmd_capture(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_check_bundle(int argc, char **argv);

/* The i-th command's name ("pcap"), NULL past the last (main.c). */
const char *cmd_name(size_t i);

/* What a command's option parsing decided.  Each command parses its
 * options into a struct of its own, then runs from that struct alone. */
enum cmd_parsed {
	CMD_RUN,                /* the options are usable: run */
	CMD_HELP,               /* --help was printed: exit 0 */
	CMD_USAGE_ERROR,        /* one line (or the usage) was printed: exit 2 */
};

/* Where a command writes.  --json FILE: JSON Lines to FILE, or with "-" to
 * standard output, and then the human lines go to standard error. */
struct cmd_output {
	FILE *text;             /* human lines (the proxy has --log instead) */
	FILE *json;             /* JSON Lines (json_file's stream), or NULL */
	struct outfile *json_file;
	struct outfile *text_file; /* text's, after cmd_open_text */
	const char *json_path;  /* as given ("-" included), or NULL */
};

/* An output option's file ("--json", "--log"): "-" is standard output;
 * otherwise opened for appending (append) or truncated, and created
 * readable by its owner only.  Records reach it whole or not at all
 * (out/outfile.h).  NULL after printing "who: OPT PATH: why". */
struct outfile *cmd_open_file(const char *who, const char *opt, const char *path, bool append, mode_t mode)
	__attribute__((nonnull, warn_unused_result));

/* Files the commands create are readable by their owner only (0600); with
 * --umask MASK they get 0666 less MASK instead.  0 after printing why. */
#define CMD_FILE_MODE 0600
int cmd_parse_umask(const char *who, const char *arg, mode_t *mode) __attribute__((nonnull));

/* Fills out for --json json_path (NULL: none).  0 after printing one line
 * prefixed with `who` ("mtlsdiag pcap"); out can be closed either way. */
int cmd_open_outputs(const char *who, const char *json_path, bool append, mode_t mode, struct cmd_output *out)
	__attribute__((nonnull(1, 5), warn_unused_result));

/* The human lines through an outfile as well (after cmd_open_outputs):
 * whole lines, in 64 KiB batches, a loss counted and said.  Each output
 * that is a terminal, or both with line_buffered (--line-buffered), gets
 * each line as it ends.  0 after printing one line. */
int cmd_open_text(const char *who, struct cmd_output *out, bool line_buffered) __attribute__((nonnull));

/* Closes the human lines' output (when cmd_open_text took it) and then
 * the JSON output.  1 when every record reached it; 0 when records
 * were lost (outfile_close has said how many), and the command then exits
 * 2.  Idempotent. */
int cmd_close_outputs(const char *who, struct cmd_output *out) __attribute__((nonnull));

/* An option that takes one of a few words (words: NULL-terminated): the
 * word's index, or -1 after printing "who: OPT 'arg': use a, b or c"
 * (and the hint in brackets when given). */
int cmd_choice(const char *who, const char *opt, const char *arg, const char *const *words, const char *hint)
	__attribute__((nonnull(1, 2, 3, 4)));

/* --syslog[=SOCKET]: the system log's socket, connected.  NULL after
 * printing "who: --syslog SOCKET: why". */
struct syslog_out;
struct syslog_out *cmd_open_syslog(const char *who, const char *path) __attribute__((nonnull));
/* Closes it (NULL: nothing), saying how many lines it lost, if any. */
void cmd_close_syslog(const char *who, const char *path, struct syslog_out *s);

/* --json-format default|ecs: *ecs set for "ecs" (out/ecs.h).  0 after
 * printing why the word is neither. */
int cmd_parse_json_format(const char *who, const char *arg, bool *ecs) __attribute__((nonnull));
/* --color's argument ("auto", "always", "never"): 1, or 0 after saying why. */
int cmd_parse_color(const char *who, const char *arg, enum term_color *out) __attribute__((nonnull));

/* One command's option loop (cmd_config.c): getopt_long over argv,
 * --help printed with `usage`, each other option handed to `option`
 * (which returns 0 after saying why it is unusable).  With -c FILE, the
 * [argv[0]] section's keys (long option names) are handed to `option`
 * first, except those the command line gives; --print-config prints the
 * options in force and returns CMD_HELP.  CMD_RUN leaves optind at the
 * first operand. */
struct option;
enum cmd_parsed cmd_getopt(const char *who, int argc, char **argv, const char *optstring,
			   const struct option *opts, void (*usage)(FILE *out),
			   int (*option)(void *o, int opt, const char *arg), void *o)
	__attribute__((nonnull(1, 3, 4, 5, 6, 7)));

/* An option getopt_long refused ('?') or one missing its argument (':',
 * with opterr 0 and an optstring starting with ':'): one line and a hint,
 * not the whole usage. */
void cmd_bad_option(const char *who, int opt, char *const *argv) __attribute__((nonnull));

/* --at TIME: "2026-11-23T12:00:00Z", "2026-11-23 12:00:00", "2026-11-23"
 * (UTC) or "@EPOCH".  0 after printing one line prefixed with `who`. */
int cmd_parse_time(const char *who, const char *s, time_t *out);

/* --ca-bundle FILE: a PEM bundle as a store; NULL after printing why. */
struct x509_store_st *cmd_load_bundle(const char *path);

/* The options that say how the server verifies client chains, as given. */
struct cmd_chain_opts {
	const char *bundle_path;   /* --ca-bundle FILE */
	const char *crl_path;      /* --crl FILE */
	int verify_depth;          /* --verify-depth N, -1 when not given */
	int purpose;               /* --purpose NAME, 0 when not given (sslclient) */
	enum server_kind server_kind; /* --server-kind KIND */
};

void cmd_chain_opts_init(struct cmd_chain_opts *o) __attribute__((nonnull));

/* A whole number from min to max into out: 0 after printing why the
 * argument is unusable ("WHO: OPT: 'x' is not a number from 1 to 9"). */
int cmd_parse_uint(const char *who, const char *opt, const char *arg, unsigned min, unsigned max, unsigned *out)
	__attribute__((nonnull));
/* --verify-depth N, --purpose NAME and --server-kind KIND: 0 after
 * printing why the argument is unusable. */
int cmd_parse_verify_depth(const char *who, const char *arg, int *out) __attribute__((nonnull));
int cmd_parse_purpose(const char *who, const char *arg, int *out) __attribute__((nonnull));
int cmd_parse_server_kind(const char *who, const char *arg, enum server_kind *out) __attribute__((nonnull));

/* The policy the options describe, its files read as nginx reads
 * ssl_client_certificate and ssl_crl (certificates and CRLs both); with
 * warn_at, a warning on stderr for each mistake in the bundle at that
 * time.  NULL after printing why (an unreadable file, --crl without
 * --ca-bundle). */
struct chain_policy *cmd_load_policy(const char *who, const struct cmd_chain_opts *o, const time_t *warn_at)
	__attribute__((nonnull(1, 2), warn_unused_result));
void cmd_policy_free(struct chain_policy *p);

/* A PEM file's certificates in file order (and its CRLs into crls, when
 * not NULL).  NULL after printing "who: what FILE: why". */
STACK_OF(X509) *cmd_read_pem(const char *who, const char *what, const char *path, STACK_OF(X509_CRL) *crls)
	__attribute__((nonnull(1, 2, 3)));

/* The inspection-CA catalogue: the bundled file (a warning when it is not
 * installed) and then each --inspection-cas FILE.  NULL after printing
 * one line prefixed with `who` ("mtlsdiag probe"). */
struct inspect_catalogue *cmd_load_inspection(const char *who, const char *const *files, size_t n);

/* A repeatable option's argument appended to list (room for max): 0 after
 * printing "who: at most MAX OPT files". */
int cmd_add_file(const char *who, const char *opt, const char **list, size_t *n, size_t max, const char *arg);

/* --keylog FILE...: one key log from all of them, each followed as it grows
 * when `follow`; its warnings go to stderr prefixed with `who`.  *out is
 * NULL when n is 0.  0 after printing one line prefixed with `who`. */
int cmd_load_keylogs(const char *who, const char *const *files, size_t n, bool follow, struct keylog **out);

/* --expect-server-ca FILE (is_ca) or --expect-server-spki SHA256 into e.
 * 0 after printing one line prefixed with `who`. */
int cmd_add_expect(const char *who, struct server_expect *e, bool is_ca, const char *arg);

/* ---- the evidence folder's options (pcap, proxy, probe) ---- */

/* Option ids for getopt_long, above every command's own. */
enum { O_EV_DIR = 600, O_EV_ALL, O_EV_MAX, O_EV_KEEP_DATA, O_EV_KEYS, O_EV_REDACT, O_EV_FORCE };

#define CMD_EVIDENCE_LONGOPTS \
	{ "evidence", required_argument, NULL, O_EV_DIR }, \
	{ "evidence-all", no_argument, NULL, O_EV_ALL }, \
	{ "evidence-max", required_argument, NULL, O_EV_MAX }, \
	{ "evidence-keep-data", no_argument, NULL, O_EV_KEEP_DATA }, \
	{ "evidence-keys", no_argument, NULL, O_EV_KEYS }, \
	{ "redact-hosts", no_argument, NULL, O_EV_REDACT }, \
	{ "force", no_argument, NULL, O_EV_FORCE }

#define CMD_EVIDENCE_USAGE \
	"  --evidence DIR    write an evidence folder for a support ticket: for each\n" \
	"                    connection that did not end well report.md,\n" \
	"                    connection.json, handshake.pcap (application data as\n" \
	"                    zeros) and certs/, and index.md and index.html\n" \
	"  --evidence-all    a folder for every connection, not only failures\n" \
	"  --evidence-max N  at most N folders per verdict (default 100)\n" \
	"  --evidence-keep-data  keep application data in handshake.pcap\n" \
	"  --evidence-keys   also keys.log: the connection's key-log lines only\n" \
	"  --redact-hosts    replace addresses and host names in the evidence (the\n" \
	"                    capture and certificates included) by placeholders\n" \
	"  --force           write into an --evidence DIR that is not empty\n"

struct ticket_opts;

/* One evidence option into o: 1 taken, 0 after printing why it is
 * unusable, -1 when opt is not one of them. */
int cmd_evidence_option(const char *who, struct ticket_opts *o, int opt, const char *arg) __attribute__((nonnull(1, 2)));
/* The options that need --evidence DIR: 0 after printing why. */
int cmd_evidence_check(const char *who, const struct ticket_opts *o, bool have_keylog) __attribute__((nonnull));

/* ---- cmd_intercept.c: the options of proxy --intercept ---- */

/* Option ids for getopt_long, above the proxy's own. */
enum {
	O_ICPT_INTERCEPT = 512, O_ICPT_SERVER_CERT, O_ICPT_SERVER_KEY, O_ICPT_FORGE_CA, O_ICPT_FORGE_CA_KEY,
	O_ICPT_UPSTREAM_CERT, O_ICPT_UPSTREAM_KEY, O_ICPT_UPSTREAM_CA, O_ICPT_KEY_PASS, O_ICPT_VERIFY,
	O_ICPT_REFUSE, O_ICPT_FORWARD_IDENTITY, O_ICPT_NO_FAITHFUL, O_ICPT_UPSTREAM_TLS,
	O_ICPT_POST_HANDSHAKE_AUTH, O_ICPT_RESUMPTION, O_ICPT_UPSTREAM_KEEPALIVE, O_ICPT_UPSTREAM_KEEPALIVE_TIMEOUT,
};

/* The intercept options as given. */
struct icpt_opts {
	const char *server_cert, *server_key, *forge_ca, *forge_ca_key;
	const char *upstream_cert, *upstream_key, *upstream_ca, *key_pass;
	const char *verify, *refuse, *upstream_tls;
	bool forward_identity, no_faithful, post_handshake_auth, resumption;
	const char *keepalive_given, *keepalive_timeout_given;   /* as given, or NULL */
	unsigned keepalive, keepalive_timeout_s;
};

struct intercept_config;

/* One option into o: 1 taken, 0 after printing why it is unusable, -1
 * not an intercept option. */
int icpt_option(struct icpt_opts *o, int opt, const char *arg) __attribute__((nonnull(1)));
/* The options that go together (intercepting: a listener has
 * --intercept; ca_bundle: --ca-bundle as given).  0 after one line. */
int icpt_check(const struct icpt_opts *o, bool intercepting, const char *ca_bundle) __attribute__((nonnull(1)));
/* Reads what the options name into c (intercept_config_clear frees it,
 * whatever the outcome); verify_depth is --verify-depth (the server's, as
 * the chain checks take it; -1 not given).  0 after one line. */
int icpt_load(const struct icpt_opts *o, const char *ca_bundle, int verify_depth, struct intercept_config *c)
	__attribute__((nonnull, warn_unused_result));

/* ---- cmd_creds.c: credentials named on the command line ---- */

/* Where the password of an encrypted key comes from: spec "env:VAR",
 * "file:PATH" or "pass:TEXT" (option `opt`), else the terminal, unless
 * no_prompt (a daemon: then an encrypted key is refused).  Messages are
 * prefixed with `who`. */
struct cmd_pass {
	const char *who;        /* "mtlsdiag probe" */
	const char *opt;        /* "--pass" */
	const char *spec;       /* NULL: none given */
	bool no_prompt;
	char text[1024];
	bool have, prompted;
	bool asked;             /* a key or file wanted a password */
	bool failed;            /* cmd_pass_get said why it has none */
	char label[300];        /* what the password is for, in messages */
};

/* 0 after printing why spec is none of env:VAR, file:PATH, pass:TEXT. */
int cmd_pass_valid(const char *who, const char *opt, const char *spec) __attribute__((nonnull));
/* 1 with the password in p->text; 0 after printing why (once). */
int cmd_pass_get(struct cmd_pass *p, const char *what) __attribute__((nonnull));
/* Wipes the password. */
void cmd_pass_clear(struct cmd_pass *p) __attribute__((nonnull));

/* A certificate (the first in its file), the rest of the file as its
 * chain, and its private key. */
struct cmd_creds {
	struct x509_st *cert;
	struct evp_pkey_st *key;
	struct stack_st_X509 *chain;
};

/* A private key file as an option names it.  private_file: refused, with
 * the chmod to run, when group or others may read it. */
struct cmd_key_source {
	const char *opt;        /* "--key" */
	const char *path;
	bool private_file;
};

/* The key (PEM, decrypted with pass when it is encrypted).  0 after
 * printing one line. */
int cmd_load_key(const struct cmd_key_source *src, struct cmd_pass *pass, struct evp_pkey_st **out)
	__attribute__((nonnull, warn_unused_result));
/* The certificate, its chain and its key, which must be the
 * certificate's.  0 after printing one line; what was read is in c either
 * way (cmd_creds_free). */
int cmd_load_pem_creds(const char *cert_opt, const char *cert_path, const struct cmd_key_source *key,
		       struct cmd_pass *pass, struct cmd_creds *c) __attribute__((nonnull, warn_unused_result));
void cmd_creds_free(struct cmd_creds *c) __attribute__((nonnull));
/* OpenSSL's reason for the last error, or "not recognised". */
const char *cmd_ossl_reason(void);

#endif
