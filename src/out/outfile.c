/* outfile: whole lines or none (see outfile.h). stdio does the buffering;
 * the cookie below is where its buffer meets the descriptor: it lets only
 * complete lines through, or, in a file nothing else writes to, the whole
 * buffer, cut back to its last complete line when a write fails. */
#include "config.h"

#include "out/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* stdio's buffer: records are written to it whole and leave it in batches */
#define STREAM_BUFFER (64 * 1024)

struct outfile {
	FILE *stream;
	int fd;
	bool own_fd;             /* opened here: closed and reopened here */
	bool append;
	mode_t mode;
	char *path, *label;
	off_t good;              /* the file's length after its last complete line (-1: not a file) */
	/* Blocks: stdio's buffer goes out as it is, lines cut between two
	 * writes included (a file of its own: see blocks_fit). */
	bool blocks;
	off_t end;               /* a file's length: good, and in blocks the start of a line after it */
	bool skip;               /* blocks: the rest of a line lost at a failure is still to come */
	char *tail;              /* the start of a line stdio has handed over, waiting for its end */
	size_t tail_len, tail_cap;
	uint64_t lost;
	int error;
	bool said;               /* the loss has been reported on standard error */
	bool line_buffered;      /* each line leaves as it ends */
	char *buffer;            /* stdio's, STREAM_BUFFER bytes (stdio would take 8 KiB) */
};

static size_t count_lines(const char *p, size_t n)
{
	size_t lines = 0;

	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
		lines++;
	return lines;
}

/* Says the loss the first time. */
static void said_lost(struct outfile *o)
{
	if (!o->said) {
		fprintf(stderr, "%s: %s: records are being lost (each written whole or not at all)\n",
			o->label, strerror(o->error));
		o->said = true;
	}
}

/* n bytes to the descriptor, through short writes and interruptions:
 * how many went, all of them unless a write failed (o->error says why). */
static size_t write_all(struct outfile *o, const char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(o->fd, p + done, n - done);

		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		o->error = w < 0 ? errno : ENOSPC;
		break;
	}
	return done;
}

/* A write of p's n bytes failed after `done`: the lines written whole
 * stay, and a file goes back to the end of its last complete line, so
 * the next record starts clean (a pipe cannot take back a part: its line
 * is lost); the lines that end after the cut are counted lost. */
static void cut_back(struct outfile *o, const char *p, size_t n, size_t done)
{
	const char *nl = done ? memrchr(p, '\n', done) : NULL;
	size_t keep = nl ? (size_t)(nl - p) + 1 : 0;

	if (o->good >= 0) {
		if (nl)
			o->good = o->end + (off_t)keep;
		if (ftruncate(o->fd, o->good) == 0)
			(void)lseek(o->fd, o->good, SEEK_SET);
		o->end = o->good;
	}
	o->lost += count_lines(p + keep, n - keep);
}

/* n bytes of complete lines to the descriptor, or none of them. */
static void put_lines(struct outfile *o, const char *p, size_t n)
{
	size_t done = write_all(o, p, n);

	if (done == n) {
		if (o->good >= 0)
			o->good = o->end += (off_t)n;
		return;
	}
	cut_back(o, p, n, done);
	said_lost(o);
}

/* Blocks: n bytes as they are.  When a write fails, the file is cut back
 * to the end of its last complete line and the lines that do not end
 * before the cut are lost: those that end in these bytes, and the one
 * they leave unfinished, whose rest is dropped as it comes (skip). */
static void put_block(struct outfile *o, const char *p, size_t n)
{
	size_t done;

	if (o->skip) {
		const char *nl = memchr(p, '\n', n);

		if (!nl)
			return;
		o->skip = false;
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	done = write_all(o, p, n);
	if (done == n) {
		const char *nl = n ? memrchr(p, '\n', n) : NULL;

		if (nl)
			o->good = o->end + (off_t)(nl + 1 - p);
		o->end += (off_t)n;
		return;
	}
	cut_back(o, p, n, done);
	if (p[n - 1] != '\n') {
		o->lost++;   /* the line the buffer leaves unfinished */
		o->skip = true;
	}
	said_lost(o);
}

/* n more bytes of a line not yet ended; false when memory runs out. */
static bool tail_append(struct outfile *o, const char *p, size_t n)
{
	if (o->tail_len + n > o->tail_cap) {
		size_t cap = (o->tail_len + n) * 2;
		char *t = realloc(o->tail, cap);

		if (!t)
			return false;
		o->tail = t;
		o->tail_cap = cap;
	}
	memcpy(o->tail + o->tail_len, p, n);
	o->tail_len += n;
	return true;
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t size)
{
	struct outfile *o = cookie;
	const char *last;
	size_t whole;

	if (o->blocks && !o->line_buffered) {
		if (size)
			put_block(o, buf, size);
		return (ssize_t)size;
	}
	last = size ? memrchr(buf, '\n', size) : NULL;
	whole = last ? (size_t)(last - buf) + 1 : 0;

	if (whole && o->tail_len) {
		/* a line begun in an earlier batch ends in this one: that line
		 * goes out with its start, the lines after it straight from
		 * stdio's buffer (not copied behind the start: 64 KiB a batch) */
		size_t first = (size_t)((const char *)memchr(buf, '\n', whole) - buf) + 1;

		if (tail_append(o, buf, first))
			put_lines(o, o->tail, o->tail_len);
		else
			o->lost++;
		o->tail_len = 0;
		if (whole > first)
			put_lines(o, buf + first, whole - first);
	} else if (whole) {
		put_lines(o, buf, whole);
	}
	/* the start of a line: kept until its end comes */
	if (size > whole && !tail_append(o, buf + whole, size - whole)) {
		errno = ENOMEM;
		return -1;
	}
	/* stdio is always told all went well: the loss is counted here, and
	 * the stream stays usable for the records that follow */
	return (ssize_t)size;
}

static int cookie_close(void *cookie)
{
	struct outfile *o = cookie;

	/* a last line without its newline is still a line */
	if (o->tail_len)
		put_lines(o, o->tail, o->tail_len);
	o->tail_len = 0;
	if (o->own_fd && o->fd >= 0 && close(o->fd) != 0 && !o->error)
		o->error = errno;
	o->fd = -1;
	return 0;
}

/* Whether the descriptor's file may take stdio's buffer whole (blocks): a
 * regular file (a failed write can be cut back), written at its end by
 * this output alone: not opened to append (other writers' lines would
 * land inside one cut in two), nor standard error's file (a warning
 * would).  Writes then keep to the file's blocks and pages, 64 KiB each,
 * instead of ending wherever a line does; a reader of the file while it
 * is written may see a line's start before its end, as from any program
 * that buffers. */
static bool blocks_fit(int fd, const struct stat *st)
{
	struct stat err;
	int fl = fcntl(fd, F_GETFL);

	if (!S_ISREG(st->st_mode) || fl < 0 || (fl & O_APPEND))
		return false;
	return fstat(STDERR_FILENO, &err) != 0 || err.st_dev != st->st_dev || err.st_ino != st->st_ino;
}

/* o->fd's length, and how it is to be written. */
static void take_fd(struct outfile *o)
{
	struct stat st;
	bool file = fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode);

	o->good = file ? lseek(o->fd, 0, SEEK_END) : -1;
	o->end = o->good;
	o->blocks = file && o->good >= 0 && blocks_fit(o->fd, &st);
	o->skip = false;
}

static struct outfile *wrap(struct outfile *o)
{
	cookie_io_functions_t io = { .write = cookie_write, .close = cookie_close };

	take_fd(o);
	if (!(o->buffer = malloc(STREAM_BUFFER)))
		return NULL;
	o->stream = fopencookie(o, "w", io);
	if (!o->stream)
		return NULL;
	setvbuf(o->stream, o->buffer, _IOFBF, STREAM_BUFFER);
	return o;
}

static void free_outfile(struct outfile *o)
{
	if (!o)
		return;
	free(o->tail);
	free(o->buffer);
	free(o->path);
	free(o->label);
	free(o);
}

static int open_path(const struct outfile *o)
{
	return open(o->path, O_WRONLY | O_CREAT | O_CLOEXEC | (o->append ? O_APPEND : O_TRUNC), o->mode);
}

struct outfile *outfile_open(const char *path, bool append, mode_t mode, const char *label, char *err,
			     size_t errlen)
{
	struct outfile *o = calloc(1, sizeof(*o));

	if (!o || !(o->path = strdup(path)) || !(o->label = strdup(label))) {
		snprintf(err, errlen, "%s: out of memory", label);
		free_outfile(o);
		return NULL;
	}
	o->append = append;
	o->mode = mode;
	o->own_fd = true;
	o->fd = open_path(o);
	if (o->fd < 0) {
		snprintf(err, errlen, "%s: %s", label, strerror(errno));
		free_outfile(o);
		return NULL;
	}
	if (!wrap(o)) {
		snprintf(err, errlen, "%s: %s", label, strerror(errno));
		close(o->fd);
		free_outfile(o);
		return NULL;
	}
	return o;
}

struct outfile *outfile_fd(int fd, const char *label)
{
	struct outfile *o = calloc(1, sizeof(*o));

	if (!o || !(o->label = strdup(label))) {
		free_outfile(o);
		return NULL;
	}
	o->fd = fd;
	if (!wrap(o)) {
		free_outfile(o);
		return NULL;
	}
	return o;
}

void outfile_set_line_buffered(struct outfile *o)
{
	/* stdio hands over what it holds at each newline: whole lines */
	setvbuf(o->stream, o->buffer, _IOLBF, STREAM_BUFFER);
	o->line_buffered = true;
}

bool outfile_line_buffered(const struct outfile *o)
{
	return o->line_buffered;
}

bool outfile_is_tty(const struct outfile *o)
{
	return o->fd >= 0 && isatty(o->fd);
}

FILE *outfile_stream(const struct outfile *o)
{
	return o->stream;
}

int outfile_reopen(struct outfile *o, char *err, size_t errlen)
{
	int fd;

	if (!o->own_fd)
		return 0;
	fd = open_path(o);
	if (fd < 0) {
		if (err)
			snprintf(err, errlen, "%s: cannot reopen: %s", o->label, strerror(errno));
		return -1;
	}
	flockfile(o->stream);
	fflush_unlocked(o->stream);
	close(o->fd);
	o->fd = fd;
	take_fd(o);
	funlockfile(o->stream);
	return 0;
}

uint64_t outfile_lost(const struct outfile *o, int *error)
{
	uint64_t lost;

	flockfile(o->stream);
	lost = o->lost;
	if (error)
		*error = o->error;
	funlockfile(o->stream);
	return lost;
}

int outfile_close(struct outfile *o)
{
	int ret;

	if (!o)
		return 0;
	fclose(o->stream);
	if (o->lost)
		fprintf(stderr, "%s: %llu record%s lost (%s)\n", o->label, (unsigned long long)o->lost,
			o->lost == 1 ? "" : "s", strerror(o->error ? o->error : EIO));
	else if (o->error)
		fprintf(stderr, "%s: %s\n", o->label, strerror(o->error));
	ret = o->lost || o->error ? -1 : 0;
	free_outfile(o);
	return ret;
}
