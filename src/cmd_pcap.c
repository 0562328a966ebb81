/* cmd_pcap: (to be written) */
#include "config.h"
#include "cmds.h"
int cmd_pcap(int argc, char **argv) { (void)argc; (void)argv; return 2; }
