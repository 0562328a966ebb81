/* cmds: the subcommands of the mtlsdiag program. Each returns the process
 * exit status: 0 success, 1 findings that need attention, 2 usage or input error. */
#ifndef MTLSDIAG_CMDS_H
#define MTLSDIAG_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct x509_store_st;
struct inspect_catalogue;
struct keylog;
struct server_expect;

int cmd_pcap(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_probe(int argc, char **argv);

/* --at TIME: "2026-11-23T12:00:00Z", "2026-11-23 12:00:00", "2026-11-23"
 * (UTC) or "@EPOCH".  1 on success. */
int cmd_parse_time(const char *s, time_t *out);

/* --ca-bundle FILE: a PEM bundle as a store; NULL after printing why. */
struct x509_store_st *cmd_load_bundle(const char *path);

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

#endif
