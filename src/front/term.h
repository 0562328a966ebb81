/* term: what the front ends do differently when a person watches the
 * terminal: human lines coloured by verdict (--color, NO_COLOR), the
 * closing summary as a small table, and pcap's progress line on standard
 * error.  None of it ever reaches a file or a pipe unless asked for
 * (--color=always colours a pipe; the table and the progress line need a
 * terminal). */
#ifndef MTLSDIAG_FRONT_TERM_H
#define MTLSDIAG_FRONT_TERM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "analysis/verdict.h"
#include "out/report.h"

/* --color=WHEN, as ls and grep take it. */
enum term_color { TERM_COLOR_AUTO, TERM_COLOR_ALWAYS, TERM_COLOR_NEVER };

/* Whether lines are coloured: always, never, or (auto) when they go to a
 * terminal (tty), TERM is not "dumb" and NO_COLOR is unset or empty
 * (no-color.org: the option given on the command line wins). */
bool term_colors(enum term_color when, bool tty);

/* The SGR sequence that starts a line of this verdict ("\033[31m"), or
 * NULL for none: green when the client got through as the server wanted,
 * red when a side refused or failed, yellow when it cannot be told or is
 * worth a look. */
const char *term_verdict_sgr(enum verdict_code code, enum fault fault);

/* One human line and its newline, in sgr's colour when sgr is not NULL. */
void term_line(FILE *out, const char *line, const char *sgr) __attribute__((nonnull(1, 2)));

/* The closing summary: a small aligned table (count, share, coloured
 * verdict names when color) when `table` (out is a terminal), else the
 * one line report_summary_text writes. */
void term_summary(FILE *out, const struct report_tally *t, bool table, bool color) __attribute__((nonnull));

/* ---- pcap's progress line ---- */

struct term_progress;

/* A progress line on standard error, when it is a terminal: percent of
 * `total_bytes` (0: unknown, then the bytes read), MB/s and connections,
 * redrawn four times a second once the run has taken a second, erased by
 * term_progress_stop.  NULL when standard error is not a terminal (or
 * without memory): every other call accepts NULL and does nothing. */
struct term_progress *term_progress_start(const char *who, uint64_t total_bytes);

/* Where the capture reader says how far into the current file it is
 * (capture_opts.progress); `before`: the bytes of the files already read. */
uint64_t *term_progress_file(struct term_progress *p, uint64_t before);

/* One connection decided. */
void term_progress_connection(struct term_progress *p);

/* Around writing a line to the terminal the progress line is drawn on:
 * the line is erased first, and redrawn at the next tick. */
void term_progress_hold(struct term_progress *p);
void term_progress_release(struct term_progress *p);

/* Erases the line and frees p. */
void term_progress_stop(struct term_progress *p);

#endif
