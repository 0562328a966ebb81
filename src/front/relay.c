/* relay: moving a connection's bytes, both ways, unchanged.
 *
 * First through the two sides' libevent bufferevents: each chunk is shown
 * to the observer (tap_buffer), then written straight to the other side's
 * socket when nothing waits in that side's output (one write per burst,
 * as the least relay does, instead of libevent arming the socket's write
 * event, writing on its next turn and disarming it: two epoll_ctl and a
 * loop turn saved a burst), and what the socket did not take is queued on
 * that output, which libevent writes (nothing else writes to the socket
 * while its output holds bytes, so they stay in order).  A side whose
 * peer's output passes the buffer limit is not read until that output
 * drains (backpressure), and a FIN is passed on once what came before it
 * is delivered.  Once the observer wants no more
 * bytes (its verdict is settled) and nothing waits to be read, the
 * connection is spliced: the bufferevents are let go, what waited in an
 * output moves to that side's spill buffer, and splice(2) moves each
 * side's bytes to the other socket through the worker's one pipe without
 * copying them into the process; what a socket does not take at once is
 * read back out of the pipe into the spill buffer, so the pipe is empty
 * between callbacks and no connection holds one of its own. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "front/proxy_int.h"

#define MAX_SINGLE_READ 65536

static enum side other(enum side s)
{
	return s == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;
}

static size_t output_len(const struct pconn *c, enum side s)
{
	if (c->side[s].bev)
		return evbuffer_get_length(bufferevent_get_output(c->side[s].bev));
	return c->side[s].spill ? evbuffer_get_length(c->side[s].spill) : 0;
}

static evutil_socket_t side_fd(const struct pconn *c, enum side s)
{
	return c->side[s].bev ? bufferevent_getfd(c->side[s].bev) : c->side[s].fd;
}

/* Stops watching side s for what (EV_READ, EV_WRITE), relayed either way. */
static void side_stop(struct pconn *c, enum side s, short what)
{
	struct pconn_side *sd = &c->side[s];

	if (sd->bev) {
		bufferevent_disable(sd->bev, what);
		return;
	}
	if ((what & EV_READ) && sd->readable)
		event_del(sd->readable);
	if ((what & EV_WRITE) && sd->writable)
		event_del(sd->writable);
}

void relay_shut_side(struct pconn *c, enum side s)
{
	evutil_socket_t fd = side_fd(c, s);

	c->side[s].shut_pending = false;
	c->side[s].write_done = true;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_WR);
}

/* Moves what side s sent to the other side's output, pausing s when that
 * output is over the limit. */
void relay_input(struct pconn *c, enum side s)
{
	enum side o = other(s);
	struct evbuffer *in = bufferevent_get_input(c->side[s].bev), *out;
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	if (c->side[o].dead || c->side[o].write_done || !c->side[o].bev) {
		evbuffer_drain(in, n);   /* nowhere to send it */
		return;
	}
	out = bufferevent_get_output(c->side[o].bev);
	/* an error is left to libevent's write of the rest, which reports it */
	if (c->phase == PH_RELAY && evbuffer_get_length(out) == 0)
		(void)evbuffer_write(in, bufferevent_getfd(c->side[o].bev));
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= c->w->px->buffer_limit) {
		bufferevent_disable(c->side[s].bev, EV_READ);
		c->side[s].paused = true;
	}
}

static bool splice_ready(const struct pconn *c);
static void splice_start(struct pconn *c);

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	enum side s = pconn_side_of(c, bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	pconn_now(c, &c->last_activity);
	if (c->phase == PH_REQUEST) {
		pconn_connect_request(c);
		return;
	}
	c->side[s].bytes += n;
	tap_buffer(c, s, in, &c->last_activity);
	relay_input(c, s);
	pconn_check_early(c);
	if (splice_ready(c))
		splice_start(c);
}

/* Side s's output has drained to the low watermark (or to nothing). */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	enum side s = pconn_side_of(c, bev), o = other(s);
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	pconn_now(c, &c->last_activity);
	if (c->side[o].paused && !c->side[o].read_done && left < c->w->px->buffer_limit) {
		c->side[o].paused = false;
		bufferevent_enable(c->side[o].bev, EV_READ);
	}
	if (left == 0 && !c->side[s].write_done) {
		if (c->side[s].shut_pending)
			relay_shut_side(c, s);
		else if (c->side[o].dead)
			relay_shut_side(c, s);   /* what the dead side had sent is delivered: end this one */
	}
	if (splice_ready(c)) {
		splice_start(c);
		return;
	}
	pconn_maybe_done(c);
}

void relay_eof(struct pconn *c, enum side s)
{
	enum side o = other(s);

	if (c->phase == PH_REQUEST) {
		pconn_request_abandoned(c, END_FIN);
		return;
	}
	c->side[s].read_done = true;
	pconn_note_end(c, (enum closer)s, END_FIN);
	tap_close(c, s, CLOSE_FIN);
	if (!c->side[o].write_done) {
		if (output_len(c, o) == 0 && (o == SIDE_CLIENT || c->phase == PH_RELAY))
			relay_shut_side(c, o);
		else
			c->side[o].shut_pending = true;
	}
	pconn_maybe_done(c);
}

void relay_error(struct pconn *c, enum side s)
{
	enum side o = other(s);
	struct pconn_side *dead = &c->side[s], *peer = &c->side[o];

	if (c->phase == PH_REQUEST) {
		pconn_request_abandoned(c, END_RST);
		return;
	}
	dead->dead = dead->read_done = dead->write_done = true;
	side_stop(c, s, EV_READ | EV_WRITE);
	pconn_note_end(c, (enum closer)s, END_RST);
	tap_close(c, s, CLOSE_RST);
	/* nothing the peer sends can be delivered any more */
	peer->read_done = true;
	side_stop(c, o, EV_READ);
	if (!peer->write_done && output_len(c, o) == 0) {
		peer->write_done = true;
		peer->rst_on_close = true;   /* pass the reset on */
	}
	pconn_maybe_done(c);
}

/* ---- spliced relaying ---- */

static void spliced_readable(evutil_socket_t fd, short what, void *arg);
static void spliced_writable(evutil_socket_t fd, short what, void *arg);

/* Whether c can be spliced now: the observer wants no more bytes, the
 * capture records no more payload, and both directions are open. */
static bool splice_ready(const struct pconn *c)
{
	int s;

	if (c->spliced || c->phase != PH_RELAY || c->w->pipe[0] < 0 || !c->obs ||
	    obs_conn_wants_bytes(c->obs) || (c->pcap && c->w->px->cfg->pcap_full))
		return false;
	for (s = 0; s < 2; s++) {
		const struct pconn_side *sd = &c->side[s];

		if (!sd->bev || sd->read_done || sd->write_done || sd->shut_pending || sd->dead ||
		    evbuffer_get_length(bufferevent_get_input(sd->bev)))
			return false;
	}
	return true;
}

/* From bufferevents to splicing: what waits in a side's output becomes its
 * spill buffer, written before anything spliced after it, and the other
 * side is read only once that is out. */
static void splice_start(struct pconn *c)
{
	bool lost = false;
	int s;

	c->spliced = true;
	for (s = 0; s < 2; s++) {
		struct pconn_side *sd = &c->side[s];
		struct evbuffer *out = bufferevent_get_output(sd->bev);

		if (evbuffer_get_length(out)) {
			/* libevent freezes the start of a socket bufferevent's
			 * output (only its own writes take from it) until the
			 * socket is set again: with the socket, we take over
			 * the bytes, or evbuffer_add_buffer refuses to move them */
			evbuffer_unfreeze(out, 1);
			if (!(sd->spill = evbuffer_new()) || evbuffer_add_buffer(sd->spill, out) != 0)
				lost = true;
		}
		sd->fd = bufferevent_getfd(sd->bev);
		bufferevent_setfd(sd->bev, -1);   /* let it go without closing the socket */
		bufferevent_free(sd->bev);
		sd->bev = NULL;
		sd->readable = event_new(c->w->base, sd->fd, EV_READ | EV_PERSIST, spliced_readable, c);
		sd->writable = event_new(c->w->base, sd->fd, EV_WRITE | EV_PERSIST, spliced_writable, c);
	}
	for (s = 0; s < 2; s++) {
		if (lost || !c->side[s].readable || !c->side[s].writable) {
			emit_fmt(c->w->px->cfg->log, "mtlsdiag proxy: out of memory: connection from %s closed",
				 c->client.ip);
			pconn_note_end(c, CLOSER_PROXY, END_SHUTDOWN);
			pconn_teardown(c);
			return;
		}
	}
	for (s = 0; s < 2; s++) {
		struct pconn_side *sd = &c->side[s], *to = &c->side[other((enum side)s)];

		sd->paused = to->spill && evbuffer_get_length(to->spill);
		if (!sd->paused)
			event_add(sd->readable, NULL);
		if (sd->spill && evbuffer_get_length(sd->spill))
			event_add(sd->writable, NULL);
	}
}

static enum side side_of_fd(const struct pconn *c, evutil_socket_t fd)
{
	return c->side[SIDE_SERVER].fd == fd ? SIDE_SERVER : SIDE_CLIENT;
}

/* Empties the worker's pipe of `left` bytes that side `to` could not take,
 * into its spill buffer (or, out of memory, nowhere).  0 if the pipe could
 * not be emptied, which leaves the worker unable to splice. */
static int unpipe(struct pconn *c, struct pconn_side *to, size_t left)
{
	struct worker *w = c->w;
	char scrap[4096];

	if (!to->spill)
		to->spill = evbuffer_new();
	while (left > 0 && to->spill) {
		int r = evbuffer_read(to->spill, w->pipe[0], (int)left);

		if (r <= 0)
			break;
		left -= (size_t)r;
	}
	while (left > 0) {
		ssize_t r = read(w->pipe[0], scrap, left < sizeof(scrap) ? left : sizeof(scrap));

		if (r <= 0)
			return 0;
		left -= (size_t)r;
	}
	return 1;
}

/* Side s is readable: its bytes go to the other side through the pipe. */
static void splice_move(struct pconn *c, enum side s)
{
	struct worker *w = c->w;
	enum side o = other(s);
	struct pconn_side *from = &c->side[s], *to = &c->side[o];
	ssize_t n, m = 0;
	size_t left;
	bool to_failed;

	n = splice(from->fd, NULL, w->pipe[1], NULL, w->pipe_size, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		relay_error(c, s);
		return;
	}
	if (n == 0) {
		side_stop(c, s, EV_READ);
		relay_eof(c, s);
		return;
	}
	pconn_now(c, &c->last_activity);
	from->bytes += (uint64_t)n;
	if (c->pcap)
		from->unrecorded += (uint64_t)n;
	for (left = (size_t)n; left > 0; left -= (size_t)m) {
		m = splice(w->pipe[0], NULL, to->fd, NULL, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (m < 0 && errno == EINTR)
			m = 0;
		else if (m <= 0)
			break;
	}
	if (left == 0)
		return;
	/* the socket took less: the rest waits in its spill buffer, and side s
	 * is not read until that is written (backpressure) */
	to_failed = !(m < 0 && errno == EAGAIN);
	if (!unpipe(c, to, left)) {
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: cannot empty the splice pipe: %s; no more splicing",
			 strerror(errno));
		close(w->pipe[0]);
		close(w->pipe[1]);
		w->pipe[0] = w->pipe[1] = -1;
	}
	if (to_failed) {
		relay_error(c, o);
		return;
	}
	side_stop(c, s, EV_READ);
	from->paused = true;
	event_add(to->writable, NULL);
}

static void spliced_readable(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;

	(void)what;
	if (c->w->pipe[0] < 0) {   /* the pipe broke: this connection cannot go on */
		pconn_note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		pconn_teardown(c);
		return;
	}
	splice_move(c, side_of_fd(c, fd));
}

/* Side o is writable again: its spill buffer goes out, then the other
 * side is read again. */
static void spliced_writable(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;
	enum side o = side_of_fd(c, fd), s = other(o);
	struct pconn_side *to = &c->side[o], *from = &c->side[s];

	(void)what;
	if (to->spill && evbuffer_get_length(to->spill)) {
		int r = evbuffer_write(to->spill, to->fd);

		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			relay_error(c, o);
			return;
		}
		if (r > 0)
			pconn_now(c, &c->last_activity);
		if (evbuffer_get_length(to->spill))
			return;
	}
	side_stop(c, o, EV_WRITE);
	if (from->paused && !from->read_done) {
		from->paused = false;
		event_add(from->readable, NULL);
	}
	if (!to->write_done && (to->shut_pending || from->dead))
		relay_shut_side(c, o);
	pconn_maybe_done(c);
}

/* ---- either way ---- */

void relay_close_side(struct pconn_side *side)
{
	evutil_socket_t fd = side->bev ? bufferevent_getfd(side->bev) : side->fd;

	if (side->rst_on_close && fd >= 0) {
		struct linger lg = { 1, 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (side->bev) {
		bufferevent_free(side->bev);
		side->bev = NULL;
		return;
	}
	if (side->readable)
		event_free(side->readable);
	if (side->writable)
		event_free(side->writable);
	if (side->spill)
		evbuffer_free(side->spill);
	side->readable = side->writable = NULL;
	side->spill = NULL;
	if (fd >= 0)
		evutil_closesocket(fd);
	side->fd = -1;
}

struct bufferevent *relay_side_new(struct pconn *c, evutil_socket_t fd)
{
	struct bufferevent *bev = bufferevent_socket_new(c->w->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev)
		return NULL;
	bufferevent_setcb(bev, read_cb, write_cb, pconn_event_cb, c);
	/* the write callback is where a paused reader resumes */
	bufferevent_setwatermark(bev, EV_WRITE, c->w->px->buffer_limit / 2, 0);
	bufferevent_set_max_single_read(bev, MAX_SINGLE_READ);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}
