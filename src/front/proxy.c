/* proxy: the relay's frame (see proxy.h): start-up (proxy_run), the
 * worker threads with their event loops and listeners, accepting within
 * the descriptor budget, signals, and the drain deadline at shutdown.
 * What happens to one connection is proxy_conn.c's, the bytes it relays
 * relay.c's (proxy_int.h lists the rooms). */
#include "config.h"

#include "front/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "analysis/chain.h"
#include "front/intercept.h"
#include "front/metrics_http.h"
#include "front/netaddr.h"
#include "front/proxy_int.h"
#include "front/sourcecap.h"
#include "front/term.h"
#include "out/metrics.h"
#include "out/outfile.h"
#include "out/pcapout.h"
#include "out/report.h"
#include "wire/x509info.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_IDLE_TIMEOUT_S 300
#define DEFAULT_DRAIN_TIMEOUT_S 10
#define DEFAULT_HANDSHAKE_TIMEOUT_S 10
#define DEFAULT_BUFFER_LIMIT (256 * 1024)
#define DEFAULT_MAX_HANDSHAKE (64 * 1024)
#define DEFAULT_MAX_HANDSHAKE_TOTAL (64 * 1024 * 1024)
/* Freed memory stays in the allocator's free lists (and in the process's
 * RSS) until given back: after about this much, it is (malloc_trim). */
#define TRIM_AFTER (8 * 1024 * 1024)
/* ... and when a worker's last connection ends, once as much as this was
 * freed: a burst's memory goes back as it ends, while clients that come
 * one at a time do not pay a heap walk and a madvise each */
#define TRIM_AT_REST (1024 * 1024)
#define ACCEPT_RETRY_S 1
#define SPLICE_PIPE_SIZE (1024 * 1024) /* asked for; the kernel may give less (fs.pipe-max-size) */
#define FDS_RESERVED 64          /* descriptors kept for files, DNS, listeners */

void proxy_set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	/* we forward each chunk as it comes: Nagle would only add latency */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- libevent's own messages ---- */

/* The proxy's --log while it runs: libevent's warnings (its resolver's
 * among them) go there instead of to standard error. */
static FILE *libevent_log;

static void libevent_log_cb(int severity, const char *msg)
{
	(void)severity;   /* debug messages are not enabled: each is worth a line */
	if (libevent_log)
		emit_fmt(libevent_log, "mtlsdiag proxy: libevent: %s", msg);
	else
		fprintf(stderr, "mtlsdiag proxy: libevent: %s\n", msg);
}

/* ---- memory ---- */

/* Gives the free memory at the top and inside the allocator's heaps (all
 * threads' arenas) back to the system. */
static void give_back_memory(struct proxy *px)
{
	atomic_store(&px->freed, 0);
#ifdef HAVE_MALLOC_TRIM
	(void)malloc_trim(0);
#endif
}

void proxy_note_freed(struct proxy *px, size_t n)
{
	atomic_fetch_add(&px->freed, n);
}

/* ---- workers ---- */

static void set_accepting(struct worker *w)
{
	bool on = !w->draining && !w->full && !w->backing_off;
	size_t i;

	for (i = 0; i < w->px->n_ls; i++) {
		if (!w->wls[i].ev)
			continue;
		if (on)
			evconnlistener_enable(w->wls[i].ev);
		else
			evconnlistener_disable(w->wls[i].ev);
	}
}

void worker_conn_opened(struct worker *w)
{
	w->n_conns++;
	if (w->px->metrics)
		metrics_open(w->px->metrics, 1);
	if (w->n_conns >= w->px->max_conns_per_worker && !w->full) {
		w->full = true;
		set_accepting(w);
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: %zu connections open, the limit (%s): accepting paused",
			 w->n_conns, w->px->conns_limit_from);
	}
}

void worker_conn_closed(struct worker *w)
{
	w->n_conns--;
	if (w->px->metrics)
		metrics_open(w->px->metrics, -1);
	if (w->full && w->n_conns < w->px->max_conns_per_worker) {
		w->full = false;
		set_accepting(w);
		emit_fmt(w->px->cfg->log, "mtlsdiag proxy: below the limit (%s): accepting again",
			 w->px->conns_limit_from);
	}
	if (w->backing_off) {   /* a descriptor was freed: try again now */
		w->backing_off = false;
		evtimer_del(w->retry_ev);
		set_accepting(w);
	}
	if (w->n_conns == 0 && atomic_load(&w->px->freed) >= TRIM_AT_REST)
		give_back_memory(w->px);   /* the end of a burst */
	if (w->draining && w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
}

/* A connection accepted on wl, to the room that serves its listener. */
static void dispatch(struct wlistener *wl, evutil_socket_t fd, const struct sockaddr *sa)
{
	if (wl->l->cfg->intercept)
		icpt_accept(wl, fd, sa);
	else
		pconn_accept(wl, fd, sa);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct wlistener *wl = arg;

	(void)l;
	(void)salen;
	if (wl->w->draining) {
		evutil_closesocket(fd);
		return;
	}
	dispatch(wl, fd, sa);
}

static void retry_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->backing_off = false;
	set_accepting(w);
}

/* Out of descriptors or memory is a state, not a crash: the pending
 * connections wait in the kernel's queue until one closes here (or a
 * second has passed), instead of the loop spinning on a ready listener. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct wlistener *wl = arg;
	struct worker *w = wl->w;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval retry = { ACCEPT_RETRY_S, 0 };

	(void)l;
	emit_fmt(w->px->cfg->log, "mtlsdiag proxy: accept: %s; accepting paused until a connection closes (%zu open)",
		 evutil_socket_error_to_string(err), w->n_conns);
	w->backing_off = true;
	set_accepting(w);
	evtimer_add(w->retry_ev, &retry);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	while (w->conns) {
		struct pconn *c = w->conns;
		int s;

		pconn_note_end(c, CLOSER_PROXY, END_SHUTDOWN);
		for (s = 0; s < 2; s++)
			tap_close(c, (enum side)s, CLOSE_TIMEOUT);
		pconn_teardown(c);
	}
	icpt_close_all(w);
	event_base_loopexit(w->base, NULL);
}

/* The connections the kernel completed on wl before it closes are served
 * like any other; returns when none is left (or after a bound). */
static void accept_queued(struct wlistener *wl)
{
	evutil_socket_t lfd = evconnlistener_get_fd(wl->ev);
	int i;

	for (i = 0; i < SOMAXCONN; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			break;
		dispatch(wl, fd, (struct sockaddr *)&ss);
	}
}

/* At the stop: the worker's listeners are closed, not only left unread,
 * so that a client connecting from now on is refused by the kernel at once
 * instead of waiting in a queue nobody reads (and being reset at the
 * exit, unrecorded). */
static void close_listeners(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->px->n_ls; i++) {
		struct wlistener *wl = &w->wls[i];

		if (!wl->ev)
			continue;
		if (!w->full && !w->backing_off)
			accept_queued(wl);
		evconnlistener_free(wl->ev);
		wl->ev = NULL;
	}
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct proxy *px = w->px;
	struct timeval deadline = { px->drain_timeout_s, 0 };

	(void)fd;
	(void)what;
	if (w->draining) {   /* asked twice: stop now */
		deadline_cb(-1, 0, w);
		return;
	}
	close_listeners(w);
	w->draining = true;
	evtimer_del(w->retry_ev);
	if (atomic_fetch_sub(&px->listening, 1) == 1)
		emit_fmt(px->cfg->log, "mtlsdiag proxy: %s: listeners closed, no longer accepting; closing once the open connections end (at most %u s)",
			 px->stop_why, px->drain_timeout_s);
	if (w->n_conns == 0)
		event_base_loopexit(w->base, NULL);
	else
		evtimer_add(w->deadline_ev, &deadline);
}

/* Stops the proxy as SIGTERM does (why: "SIGTERM"); again: at once. */
static void proxy_stop(struct proxy *px, const char *why)
{
	unsigned i;

	if (!px->stop_why)
		px->stop_why = why;
	for (i = 0; i < px->n_workers; i++)
		event_active(px->workers[i].stop_ev, EV_TIMEOUT, 0);
}

/* SIGHUP: the log files are opened again by name (after logrotate moved
 * them).  The FILE stays the same; its descriptor now points at the new
 * file, switched under the stream's lock so no line is split. */
/* SIGHUP: one output opened again at its path (after log rotation).  1, or
 * 0 after saying why on the log (the old file stays in use). */
static int reopen(struct outfile *o, FILE *log)
{
	char err[PATH_MAX + 128];

	if (!o || outfile_reopen(o, err, sizeof(err)) == 0)
		return 1;
	emit_fmt(log, "%s (SIGHUP; still writing to the old file)", err);
	return 0;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;

	(void)what;
	if (sig == SIGHUP) {
		int ok = reopen(px->cfg->log_file, px->cfg->log);

		ok &= reopen(px->cfg->json_file, px->cfg->log);
		if (ok)
			emit_fmt(px->cfg->log, "mtlsdiag proxy: SIGHUP: log files reopened");
		return;
	}
	proxy_stop(px, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/* The per-source refusals whose report waited for its turn (all of them
 * at the stop). */
/* What the proxy saw, said when it stops: the connections by verdict, as a
 * table when the log is a terminal, else one line. */
static void stop_summary(const struct proxy *px)
{
	FILE *log = px->cfg->log;
	struct report_tally t;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;

	metrics_tally(px->metrics, &t);
	if (px->log_tty) {
		flockfile(log);
		fputs("mtlsdiag proxy: ", log);
		term_summary(log, &t, true, px->color);
		fflush(log);
		funlockfile(log);
		return;
	}
	if (!(mem = open_memstream(&text, &len)))
		return;
	term_summary(mem, &t, false, false);
	if (fclose(mem) == 0 && len > 0) {
		text[len - 1] = '\0';   /* its newline: emit_fmt adds one */
		emit_fmt(log, "mtlsdiag proxy: %s", text);
	}
	free(text);
}

static void report_refusals(struct proxy *px, bool all)
{
	struct sourcecap_report due[32];
	struct timeval now;
	size_t n, i;

	if (!px->sources)
		return;
	gettimeofday(&now, NULL);
	do {
		n = sourcecap_due(px->sources, &now, all, due, sizeof(due) / sizeof(due[0]));
		for (i = 0; i < n; i++)
			emit_refused(px, &due[i]);
	} while (all && n > 0);
}

/* --on-output-error stop: an output that lost a record stops the proxy.
 * True when o did. */
static bool output_lost(struct proxy *px, struct outfile *o, const char *opt, const char *path)
{
	uint64_t lost;
	int err = 0;

	if (!o || !(lost = outfile_lost(o, &err)))
		return false;
	fprintf(stderr, "mtlsdiag proxy: %s %s: %llu record%s lost (%s); stopping (--on-output-error stop)\n", opt, path,
		(unsigned long long)lost, lost == 1 ? "" : "s", err ? strerror(err) : "write failed");
	if (px->cfg->log_path)
		emit_fmt(px->cfg->log, "mtlsdiag proxy: %s %s: %llu record%s lost (%s); stopping (--on-output-error stop)",
			 opt, path, (unsigned long long)lost, lost == 1 ? "" : "s", err ? strerror(err) : "write failed");
	proxy_stop(px, "--on-output-error stop");
	return true;
}

/* Once a second, on worker 0. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&px->freed) >= TRIM_AFTER)
		give_back_memory(px);
	report_refusals(px, false);
	if (px->cfg->stop_on_output_error && !px->stop_why &&
	    !output_lost(px, px->cfg->json_file, "--json", px->cfg->json_path) && px->cfg->log_path)
		(void)output_lost(px, px->cfg->log_file, "--log", px->cfg->log_path);
}

/* ---- the outputs' batches ---- */

/* A record waits in its output's buffer at most this long. */
#define FLUSH_MS 50

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	atomic_store(&px->flush->pending, false);
	/* the lines first: a reader that saw a record finds its line */
	fflush(px->cfg->log);
	if (px->cfg->json)
		fflush(px->cfg->json);
}

void proxy_record_written(const struct proxy *px, FILE *out)
{
	static const struct timeval delay = { 0, FLUSH_MS * 1000 };
	struct proxy_flush *fl = px->flush;

	if (!fl || !fl->ev) {
		fflush(out);
		return;
	}
	/* one timer for every worker's records: the first record arms it */
	if (!atomic_exchange(&fl->pending, true) && evtimer_add(fl->ev, &delay) != 0) {
		atomic_store(&fl->pending, false);
		fflush(out);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

/* 1 ready, 0 out of memory, -1 a listener could not bind (errno set). */
static int worker_init(struct worker *w, size_t *failed_listener)
{
	struct proxy *px = w->px;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	size_t i;

	struct event_config *ec = event_config_new();

	if (!ec)
		return 0;
	/* add/del pairs within one pass of the loop cost no epoll_ctl */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!w->base)
		return 0;
	if (pipe2(w->pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
		int got;

		(void)fcntl(w->pipe[0], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
		got = fcntl(w->pipe[0], F_GETPIPE_SZ);
		w->pipe_size = got > 0 ? (size_t)got : 65536;
	} else {
		w->pipe[0] = w->pipe[1] = -1;   /* relayed through buffers only */
	}
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns) {   /* no usable resolv.conf: names from /etc/hosts only */
		w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns)
			evdns_base_load_hosts(w->dns, NULL);
	}
	w->ocfg.at_set = px->cfg->at_set;
	w->ocfg.at = px->cfg->at;
	w->ocfg.ca_bundle = px->cfg->ca_bundle;
	w->ocfg.chain_policy = px->cfg->chain_policy;
	w->ocfg.inspection = px->cfg->inspection;
	w->ocfg.expect = px->cfg->expect;
	w->ocfg.certs = cert_cache_new(4096);
	w->ocfg.chains = chain_memo_new();   /* like the certificates: per worker */
	/* the clients write their key logs while their connections run */
	w->ocfg.keylog = px->cfg->keylog;
	w->ocfg.keylog_wait = px->cfg->keylog != NULL;
	w->ocfg.keep_query = px->cfg->keep_query;
	w->ocfg.max_buffered = px->max_handshake;
	w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
	w->deadline_ev = evtimer_new(w->base, deadline_cb, w);
	w->retry_ev = evtimer_new(w->base, retry_accept_cb, w);
	w->wls = calloc(px->n_ls, sizeof(*w->wls));
	if (!w->dns || !w->ocfg.certs || !w->ocfg.chains || !w->stop_ev || !w->deadline_ev || !w->retry_ev || !w->wls)
		return 0;
	if (px->n_workers > 1)
		flags |= LEV_OPT_REUSEABLE_PORT;
	for (i = 0; i < px->n_ls; i++) {
		struct wlistener *wl = &w->wls[i];

		wl->w = w;
		wl->l = &px->ls[i];
		/* libevent's default backlog (128) overflows under a burst, and
		 * each SYN dropped is retried only a second later: take what the
		 * kernel allows (net.core.somaxconn caps it) */
		wl->ev = evconnlistener_new_bind(w->base, accept_cb, wl, flags, SOMAXCONN,
						 (const struct sockaddr *)&px->ls[i].ss, (int)px->ls[i].sslen);
		if (!wl->ev) {
			*failed_listener = i;
			return -1;
		}
		evconnlistener_set_error_cb(wl->ev, accept_error_cb);
		/* accepted sockets inherit it: one setsockopt per listener,
		 * not one per connection */
		proxy_set_nodelay(evconnlistener_get_fd(wl->ev));
	}
	return 1;
}

static void worker_free(struct worker *w)
{
	size_t i;

	while (w->conns) {
		pconn_note_end(w->conns, CLOSER_PROXY, END_SHUTDOWN);
		pconn_teardown(w->conns);
	}
	icpt_close_all(w);
	for (i = 0; w->wls && i < w->px->n_ls; i++)
		if (w->wls[i].ev)
			evconnlistener_free(w->wls[i].ev);
	free(w->wls);
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->deadline_ev)
		event_free(w->deadline_ev);
	if (w->retry_ev)
		event_free(w->retry_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	json_free(&w->record);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	chain_memo_free(w->ocfg.chains);
	cert_cache_free(w->ocfg.certs);
	if (w->base)
		event_base_free(w->base);
}

/* ---- start-up ---- */

/* Each relayed connection holds two descriptors: the soft limit goes up
 * to the hard one, and the connection limit follows from what is there
 * (*nofile: the descriptor limit then, 0 if unknown). */
static size_t descriptor_budget(unsigned long long *nofile)
{
	struct rlimit rl;

	*nofile = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1000;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 2000000)
		rl.rlim_cur = 2000000;
	*nofile = rl.rlim_cur;
	return rl.rlim_cur > 2 * FDS_RESERVED ? (size_t)(rl.rlim_cur - FDS_RESERVED) / 2 : 32;
}

static int setup_listener(struct plistener *l, const struct proxy_listen_config *lc)
{
	l->cfg = lc;
	if (!netaddr_listen(lc->listen, &l->ss, &l->sslen)) {
		fprintf(stderr, "mtlsdiag proxy: --listen '%s': expected ADDR:PORT with a numeric address and a port 1-65535 (127.0.0.1:8443, [::1]:8443, 0.0.0.0:8443)\n",
			lc->listen);
		return 0;
	}
	switch (lc->mode) {
	case PROXY_STATIC:
		if (!lc->upstream || !proxy_split_hostport(lc->upstream, l->up_host, sizeof(l->up_host), &l->up_port)) {
			fprintf(stderr, "mtlsdiag proxy: --upstream '%s': expected HOST:PORT with a port 1-65535 (server.example:443, 10.0.0.5:443, [2001:db8::5]:443)\n",
				lc->upstream ? lc->upstream : "");
			return 0;
		}
		break;
	case PROXY_CONNECT:
		if (lc->via && !proxy_split_hostport(lc->via, l->up_host, sizeof(l->up_host), &l->up_port)) {
			fprintf(stderr, "mtlsdiag proxy: --via '%s': expected HOST:PORT with a port 1-65535 (gateway.example:8080)\n",
				lc->via);
			return 0;
		}
		if (lc->n_allow == 0 && !netaddr_is_loopback((struct sockaddr *)&l->ss)) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s --connect: a CONNECT proxy on a non-loopback address needs --allow HOST:PORT (--allow '*:*' to relay anywhere)\n",
				lc->listen);
			return 0;
		}
		break;
	case PROXY_TRANSPARENT:
		break;
	}
	return 1;
}

/* --user: after the listeners are bound and the files open. */
static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: no such user\n", user);
		return 0;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: cannot switch to uid %u: %s\n", user,
			(unsigned)pw->pw_uid, strerror(errno));
		return 0;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		fprintf(stderr, "mtlsdiag proxy: --user %s: privileges could be regained; stopping\n", user);
		return 0;
	}
	return 1;
}

static void describe_listener(const struct plistener *l, char *buf, size_t len)
{
	const struct proxy_listen_config *lc = l->cfg;
	char up[300];

	switch (lc->mode) {
	case PROXY_STATIC:
		report_endpoint(up, sizeof(up), l->up_host, l->up_port);
		snprintf(buf, len, "%s %s %s", lc->listen, lc->intercept ? "intercepting TLS (the server's stand-in) for"
									 : "relaying to", up);
		break;
	case PROXY_CONNECT:
		if (lc->via) {
			report_endpoint(up, sizeof(up), l->up_host, l->up_port);
			snprintf(buf, len, "%s as a CONNECT proxy via %s (%s)", lc->listen, up,
				 lc->n_allow ? "destinations from --allow" : "any destination");
		} else {
			snprintf(buf, len, "%s as a CONNECT proxy (%s)", lc->listen,
				 lc->n_allow ? "destinations from --allow" : "any destination");
		}
		break;
	case PROXY_TRANSPARENT:
		snprintf(buf, len, "%s transparently (redirected connections)", lc->listen);
		break;
	}
}

int proxy_run(const struct proxy_config *cfg)
{
	struct proxy px = { .cfg = cfg };
	struct proxy_flush flush = { .ev = NULL };
	struct event *sigs[3] = { NULL, NULL, NULL };
	static const int signos[3] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t block, old;
	size_t i, max_conns, failed = 0;
	unsigned long long nofile;
	int ret = 2, r;
	char desc[600], err[300];

	px.n_workers = cfg->workers ? cfg->workers : 1;
	px.log_tty = cfg->log_file ? outfile_is_tty(cfg->log_file) : isatty(fileno(cfg->log)) == 1;
	px.color = term_colors(cfg->color, px.log_tty);
	atomic_init(&px.listening, px.n_workers);
	atomic_init(&flush.pending, false);
	px.connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
	px.idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
	px.drain_timeout_s = cfg->drain_timeout_s ? cfg->drain_timeout_s : DEFAULT_DRAIN_TIMEOUT_S;
	px.handshake_timeout_s = cfg->handshake_timeout_s ? cfg->handshake_timeout_s : DEFAULT_HANDSHAKE_TIMEOUT_S;
	px.buffer_limit = cfg->buffer_limit ? cfg->buffer_limit : DEFAULT_BUFFER_LIMIT;
	px.max_handshake = cfg->max_handshake_bytes ? cfg->max_handshake_bytes : DEFAULT_MAX_HANDSHAKE;
	px.max_handshake_total = cfg->max_handshake_total ? cfg->max_handshake_total : DEFAULT_MAX_HANDSHAKE_TOTAL;
	pthread_mutex_init(&px.pcap_lock, NULL);
	if (cfg->n_listeners == 0 || !(px.ls = calloc(cfg->n_listeners, sizeof(*px.ls)))) {
		fprintf(stderr, "mtlsdiag proxy: no listener\n");
		return 2;
	}
	px.n_ls = cfg->n_listeners;
	for (i = 0; i < px.n_ls; i++)
		if (!setup_listener(&px.ls[i], &cfg->listeners[i]))
			goto Exit;
	max_conns = descriptor_budget(&nofile);
	if (nofile)
		snprintf(px.conns_limit_from, sizeof(px.conns_limit_from),
			 "from the descriptor limit, %llu descriptors", nofile);
	else
		snprintf(px.conns_limit_from, sizeof(px.conns_limit_from), "the descriptor limit being unknown");
	if (cfg->max_conns) {
		if (cfg->max_conns > max_conns)
			fprintf(stderr, "mtlsdiag proxy: --max-conns %u: the descriptor limit allows %zu; using that\n",
				cfg->max_conns, max_conns);
		else {
			max_conns = cfg->max_conns;
			snprintf(px.conns_limit_from, sizeof(px.conns_limit_from), "--max-conns %u", cfg->max_conns);
		}
	}
	px.max_conns_per_worker = (max_conns + px.n_workers - 1) / px.n_workers;
	if (cfg->max_conns_per_source && !(px.sources = sourcecap_new(cfg->max_conns_per_source))) {
		fprintf(stderr, "mtlsdiag proxy: out of memory\n");
		goto Exit;
	}
	for (i = 0; i < px.n_ls; i++) {
		if (px.ls[i].cfg->mode == PROXY_TRANSPARENT && !px.own_ports &&
		    !(px.own_ports = calloc(65536, sizeof(*px.own_ports)))) {
			fprintf(stderr, "mtlsdiag proxy: out of memory\n");
			goto Exit;
		}
	}
	libevent_log = cfg->log;
	event_set_log_callback(libevent_log_cb);
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "mtlsdiag proxy: cannot set up libevent threading\n");
		goto Exit;
	}
	signal(SIGPIPE, SIG_IGN);   /* a peer gone mid-write is an error to handle, not a reason to die */
	if (cfg->pcap_out && !(px.pcap = pcapout_open(cfg->pcap_out, cfg->file_mode, err, sizeof(err)))) {
		fprintf(stderr, "mtlsdiag proxy: --pcap-out: %s\n", err);
		goto Exit;
	}
	if (cfg->evidence.dir && !(px.ticket = ticket_open(&cfg->evidence)))
		goto Exit;
	for (i = 0; i < px.n_ls; i++) {
		struct plistener *l = &px.ls[i];

		if (l->cfg->intercept &&
		    !(l->icpt = intercept_new(cfg->intercept, l->up_host, l->up_port, err, sizeof(err)))) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s --intercept: %s\n", l->cfg->listen, err);
			goto Exit;
		}
	}
	px.workers = calloc(px.n_workers, sizeof(*px.workers));
	if (!px.workers) {
		fprintf(stderr, "mtlsdiag proxy: out of memory\n");
		goto Exit;
	}
	for (i = 0; i < px.n_workers; i++)
		px.workers[i].pipe[0] = px.workers[i].pipe[1] = -1;
	for (i = 0; i < px.n_workers; i++) {
		px.workers[i].px = &px;
		px.workers[i].id = (unsigned)i;
		r = worker_init(&px.workers[i], &failed);
		if (r < 0) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: cannot listen: %s\n", px.ls[failed].cfg->listen,
				evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			goto Exit;
		}
		if (r == 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot set up worker %zu (out of memory?)\n", i);
			goto Exit;
		}
	}
	{
		struct timeval second = { 1, 0 };
		struct worker *w0 = &px.workers[0];

		w0->tick_ev = event_new(w0->base, -1, EV_PERSIST, tick_cb, &px);
		if (!w0->tick_ev || event_add(w0->tick_ev, &second) != 0) {
			fprintf(stderr, "mtlsdiag proxy: out of memory\n");
			goto Exit;
		}
		/* without the timer each record is flushed as it is written */
		flush.ev = evtimer_new(w0->base, flush_cb, &px);
		px.flush = &flush;
	}
	/* the counters: for --metrics, and for the summary at the stop */
	if (!(px.metrics = metrics_new(METRICS_PROXY))) {
		fprintf(stderr, "mtlsdiag proxy: out of memory\n");
		goto Exit;
	}
	if (cfg->metrics_listen) {
		/* on worker 0's loop, bound before --user drops the right to */
		px.metrics_http = metrics_http_start(px.workers[0].base, cfg->metrics_listen, px.metrics, err, sizeof(err));
		if (!px.metrics_http) {
			fprintf(stderr, "mtlsdiag proxy: --metrics %s: %s\n", cfg->metrics_listen, err);
			goto Exit;
		}
	}
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(px.workers[0].base, signos[i], signal_cb, &px);
		if (!sigs[i] || evsignal_add(sigs[i], NULL) != 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot install signal handlers\n");
			goto Exit;
		}
	}
	if (cfg->user && !drop_privileges(cfg->user))
		goto Exit;
	/* before "listening", the line that ends the start */
	if (cfg->metrics_listen)
		emit_fmt(cfg->log, "mtlsdiag proxy: metrics on http://%s/metrics", cfg->metrics_listen);
	for (i = 0; i < px.n_ls; i++) {
		describe_listener(&px.ls[i], desc, sizeof(desc));
		/* what the stand-in learnt comes first: "listening" is the line
		 * that says the start is over */
		if (px.ls[i].icpt)
			emit_fmt(cfg->log, "mtlsdiag proxy: %s", intercept_describe(px.ls[i].icpt));
		emit_fmt(cfg->log, "mtlsdiag proxy: listening on %s", desc);
	}
	emit_fmt(cfg->log, "mtlsdiag proxy: %u worker%s, at most %zu connections open (%s)%s%s%s", px.n_workers,
		 px.n_workers == 1 ? "" : "s", px.max_conns_per_worker * px.n_workers, px.conns_limit_from,
		 cfg->pcap_out ? "; writing " : "", cfg->pcap_out ? cfg->pcap_out : "",
		 cfg->pcap_out ? (cfg->pcap_full ? " (whole connections)" : " (up to each verdict)") : "");
	/* signals are taken by worker 0's loop, on this thread */
	sigemptyset(&block);
	for (i = 0; i < 3; i++)
		sigaddset(&block, signos[i]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 1; i < px.n_workers; i++) {
		if (pthread_create(&px.workers[i].thread, NULL, worker_main, &px.workers[i]) != 0) {
			fprintf(stderr, "mtlsdiag proxy: cannot start worker thread %zu\n", i);
			break;
		}
		px.workers[i].thread_started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (i < px.n_workers) {
		px.stop_why = "a worker could not start";
		for (i = 1; i < px.n_workers; i++)
			if (px.workers[i].thread_started)
				event_active(px.workers[i].stop_ev, EV_TIMEOUT, 0);
	} else {
		ret = 0;
		event_base_dispatch(px.workers[0].base);
	}
	for (i = 1; i < px.n_workers; i++)
		if (px.workers[i].thread_started)
			pthread_join(px.workers[i].thread, NULL);
	report_refusals(&px, true);
	if (atomic_load(&px.refused))
		emit_fmt(cfg->log, "mtlsdiag proxy: stopped; %llu connections refused over --max-conns-per-source",
			 (unsigned long long)atomic_load(&px.refused));
	else
		emit_fmt(cfg->log, "mtlsdiag proxy: stopped");
	stop_summary(&px);
Exit:
	for (i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (flush.ev) {
		/* what the workers wrote since is flushed when the outputs close */
		event_free(flush.ev);
		flush.ev = NULL;
	}
	metrics_http_free(px.metrics_http);   /* before worker 0's loop goes */
	px.metrics_http = NULL;
	for (i = 0; px.workers && i < px.n_workers; i++)
		worker_free(&px.workers[i]);
	metrics_free(px.metrics);
	free(px.workers);
	for (i = 0; i < px.n_ls; i++)
		intercept_free(px.ls[i].icpt);
	if (px.pcap) {
		int error;
		uint64_t lost = pcapout_lost(px.pcap, &error);

		if (lost) {
			fprintf(stderr, "mtlsdiag proxy: --pcap-out %s: %llu packets lost (%s)\n", cfg->pcap_out,
				(unsigned long long)lost, strerror(error));
			ret = 2;
		}
	}
	pcapout_close_file(px.pcap);
	pthread_mutex_destroy(&px.pcap_lock);
	/* after the workers: every connection has been added; a failed write
	 * was said when it happened */
	(void)ticket_close(px.ticket);
	sourcecap_free(px.sources);
	free(px.own_ports);
	free(px.ls);
	libevent_log = NULL;   /* the log may be closed next */
	return ret;
}
