/* term: colour by verdict, the summary table and pcap's progress line,
 * for a person at a terminal (term.h). */
#include "config.h"

#include "front/term.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SGR_RESET "\033[0m"
#define SGR_RED "\033[31m"
#define SGR_GREEN "\033[32m"
#define SGR_YELLOW "\033[33m"
#define ERASE_LINE "\r\033[K"

bool term_colors(enum term_color when, bool tty)
{
	const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");

	if (when != TERM_COLOR_AUTO)
		return when == TERM_COLOR_ALWAYS;
	if (no_color && *no_color)
		return false;
	if (term && strcmp(term, "dumb") == 0)
		return false;
	return tty;
}

const char *term_verdict_sgr(enum verdict_code code, enum fault fault)
{
	if (fault == F_MIDDLEBOX)
		return SGR_RED;
	switch (code) {
	case V_CLIENT_CERT_ACCEPTED:
	case V_RESUMED:
		return SGR_GREEN;
	case V_CLIENT_SENT_NO_CERT:
	case V_SERVER_REJECTED_CHAIN:
	case V_CLIENT_REJECTED_SERVER_CERT:
	case V_HANDSHAKE_FAILED:
		return SGR_RED;
	case V_NO_CERT_ACCEPTED:      /* let in without a certificate: worth a look */
	case V_CERT_NOT_REQUESTED:
	case V_UNDETERMINED:
		return SGR_YELLOW;
	case V_INCOMPLETE:
	case V_NOT_TLS:
	case V_COUNT:
		break;
	}
	return NULL;
}

void term_line(FILE *out, const char *line, const char *sgr)
{
	if (sgr)
		fprintf(out, "%s%s" SGR_RESET "\n", sgr, line);
	else
		fprintf(out, "%s\n", line);
}

static int digits(uint64_t n)
{
	int d = 1;

	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

void term_summary(FILE *out, const struct report_tally *t, bool table, bool color)
{
	int i, name_w = 0, count_w;

	if (!table) {
		report_summary_text(out, t);
		return;
	}
	fprintf(out, "%llu connection%s\n", (unsigned long long)t->connections, t->connections == 1 ? "" : "s");
	count_w = digits(t->connections);
	for (i = 0; i < V_COUNT; i++) {
		int w = (int)strlen(verdict_code_name((enum verdict_code)i));

		if (t->by_verdict[i] && w > name_w)
			name_w = w;
	}
	for (i = 0; i < V_COUNT; i++) {
		/* the colour of the verdict's usual fault: a middlebox's shows on its lines */
		const char *sgr = color ? term_verdict_sgr((enum verdict_code)i, F_UNKNOWN) : NULL;
		uint64_t n = t->by_verdict[i];

		if (!n)
			continue;
		fprintf(out, "  %s%-*s%s  %*llu  %5.1f%%\n", sgr ? sgr : "", name_w,
			verdict_code_name((enum verdict_code)i), sgr ? SGR_RESET : "", count_w,
			(unsigned long long)n, 100.0 * (double)n / (double)t->connections);
	}
}

/* ---- the progress line ---- */

#define TICK_MS 250
#define FIRST_DRAW_MS 1000

struct term_progress {
	const char *who;
	uint64_t total;          /* bytes of all the files, 0 if unknown */
	uint64_t before;         /* bytes of the files already read */
	uint64_t in_file;        /* the reader's position in the current file (atomic) */
	uint64_t connections;    /* (atomic) */
	struct timespec started;
	pthread_mutex_t lock;    /* the terminal: a line or the progress, one at a time */
	pthread_cond_t wake;
	bool stopping, shown;
	pthread_t thread;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Draws the line; the lock is held. */
static void draw(struct term_progress *p, double elapsed)
{
	uint64_t done = __atomic_load_n(&p->before, __ATOMIC_RELAXED) + __atomic_load_n(&p->in_file, __ATOMIC_RELAXED);
	unsigned long long conns = __atomic_load_n(&p->connections, __ATOMIC_RELAXED);
	double mb = (double)done / 1e6;

	if (p->total)
		fprintf(stderr, ERASE_LINE "%s: %3.0f%% of %.1f MB, %.1f MB/s, %llu connections", p->who,
			done >= p->total ? 100.0 : 100.0 * (double)done / (double)p->total, (double)p->total / 1e6,
			mb / elapsed, conns);
	else
		fprintf(stderr, ERASE_LINE "%s: %.1f MB read, %.1f MB/s, %llu connections", p->who, mb, mb / elapsed,
			conns);
	fflush(stderr);
	p->shown = true;
}

static void *progress_main(void *arg)
{
	struct term_progress *p = arg;
	struct timespec until;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		double elapsed;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT || p->stopping)
			continue;
		elapsed = seconds_since(&p->started);
		if (elapsed * 1000 >= FIRST_DRAW_MS)
			draw(p, elapsed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct term_progress *term_progress_start(const char *who, uint64_t total_bytes)
{
	struct term_progress *p;

	if (isatty(STDERR_FILENO) != 1 || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->who = who;
	p->total = total_bytes;
	clock_gettime(CLOCK_MONOTONIC, &p->started);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

uint64_t *term_progress_file(struct term_progress *p, uint64_t before)
{
	if (!p)
		return NULL;
	__atomic_store_n(&p->in_file, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->before, before, __ATOMIC_RELAXED);
	return &p->in_file;
}

void term_progress_connection(struct term_progress *p)
{
	if (p)
		__atomic_add_fetch(&p->connections, 1, __ATOMIC_RELAXED);
}

void term_progress_hold(struct term_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->shown) {
		fputs(ERASE_LINE, stderr);
		fflush(stderr);
		p->shown = false;
	}
}

void term_progress_release(struct term_progress *p)
{
	if (p)
		pthread_mutex_unlock(&p->lock);
}

void term_progress_stop(struct term_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	if (p->shown) {
		fputs(ERASE_LINE, stderr);
		fflush(stderr);
	}
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
