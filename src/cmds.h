/* cmds: the subcommands of the mtlsdiag program. Each returns the process
 * exit status: 0 success, 1 findings that need attention, 2 usage or input error. */
#ifndef MTLSDIAG_CMDS_H
#define MTLSDIAG_CMDS_H

int cmd_pcap(int argc, char **argv);
int cmd_proxy(int argc, char **argv);

#endif
