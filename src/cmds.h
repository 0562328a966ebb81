/* cmds: the subcommands of the mtlsdiag program. Each returns the process
 * exit status: 0 success, 1 findings that need attention, 2 usage or input error. */
#ifndef MTLSDIAG_CMDS_H
#define MTLSDIAG_CMDS_H

#include <stddef.h>
#include <time.h>

struct x509_store_st;
struct inspect_catalogue;

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

#endif
