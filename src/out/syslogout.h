/* syslogout: --syslog[=SOCKET], the human verdict lines sent to the
 * system log as datagrams on a local socket (/dev/log by default), in the
 * form glibc's syslog() writes there (RFC 3164: "<PRI>Mmm dd hh:mm:ss
 * TAG[PID]: LINE"), facility daemon.  Written here rather than through
 * syslog(3) so that the socket can be named (a test binds its own) and a
 * full log never blocks a relay: a datagram the socket does not take at
 * once is counted as lost. */
#ifndef MTLSDIAG_OUT_SYSLOGOUT_H
#define MTLSDIAG_OUT_SYSLOGOUT_H

#include <stdint.h>

#include "analysis/verdict.h"

#define SYSLOG_DEFAULT_SOCKET "/dev/log"

/* Severities (RFC 5424 6.2.1) a line is sent with. */
enum syslog_severity { SYSLOG_ERR = 3, SYSLOG_WARNING = 4, SYSLOG_NOTICE = 5, SYSLOG_INFO = 6 };

struct syslog_out;

/* Connects to the socket at path; tag names the sender ("mtlsdiag").
 * NULL with the reason in err. */
struct syslog_out *syslog_out_open(const char *path, const char *tag, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));
/* Sends one line (cut at 4 KiB; a newline ends it).  Safe from several
 * threads.  0, or -1 when it was lost (counted). */
int syslog_out_line(struct syslog_out *s, enum syslog_severity sev, const char *line) __attribute__((nonnull));
/* Lines lost so far. */
uint64_t syslog_out_lost(const struct syslog_out *s) __attribute__((nonnull));
void syslog_out_close(struct syslog_out *s);

/* A verdict's severity: info when no one must act, warning when someone
 * must, notice when it cannot be told. */
enum syslog_severity syslog_severity_of(const struct verdict *v) __attribute__((nonnull));

#endif
