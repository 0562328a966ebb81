/* outfile: an output of lines (JSON Lines, human lines) that loses records
 * only whole, and says so.
 *
 * The stream it gives is a stdio FILE, so the reporters write to it as to
 * any other; underneath, only complete lines reach the descriptor, except
 * in a regular file that nothing else writes to (not opened to append, not
 * standard error's), which takes stdio's buffer whole, 64 KiB at a time.
 * When a write fails or falls short (a full disk, a file size limit, a
 * closed pipe), the file is cut back to its last complete line, the lines
 * that did not make it are counted as lost, one line on standard error
 * says so the first time, and writing goes on with the next record (the
 * disk may have room again). Nothing that follows a failure is glued to
 * half a record.
 *
 * A record must end with a newline and be written while the stream is
 * locked (one fwrite, or flockfile around several calls): lines from
 * several threads then never interleave. */
#ifndef MTLSDIAG_OUTFILE_H
#define MTLSDIAG_OUTFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct outfile;

/* Opens `path` for lines: appended to or truncated; a file it creates gets
 * `mode` (0600 unless the operator asked otherwise). `label` names the
 * output in messages ("mtlsdiag proxy: --json /var/log/x.json"). NULL
 * after filling err (one line). */
struct outfile *outfile_open(const char *path, bool append, mode_t mode, const char *label, char *err,
			     size_t errlen) __attribute__((nonnull(1, 4), warn_unused_result));

/* The same over a descriptor the process already has (standard output):
 * it is never closed or reopened. */
struct outfile *outfile_fd(int fd, const char *label) __attribute__((nonnull(2), warn_unused_result));

/* Records leave in batches of up to 64 KiB (and at close); once this is
 * called, each line leaves as it ends instead (a terminal, a reader
 * waiting on a pipe: --line-buffered).  Before the first write.  Whether
 * it is so: outfile_line_buffered. */
void outfile_set_line_buffered(struct outfile *o) __attribute__((nonnull));
bool outfile_line_buffered(const struct outfile *o) __attribute__((nonnull));

/* Whether the output is a terminal. */
bool outfile_is_tty(const struct outfile *o) __attribute__((nonnull));

/* The stream to write to. */
FILE *outfile_stream(const struct outfile *o) __attribute__((nonnull));

/* Closes the file and opens its path again (after log rotation): 0, or -1
 * with err filled and the old file kept. */
int outfile_reopen(struct outfile *o, char *err, size_t errlen) __attribute__((nonnull(1)));

/* Lines lost so far, and the errno of the last failed write (0: none). */
uint64_t outfile_lost(const struct outfile *o, int *error) __attribute__((nonnull(1)));

/* Flushes and closes; one line on standard error when lines were lost.
 * 0, or -1 when anything was lost. NULL is allowed. */
int outfile_close(struct outfile *o);

#endif
