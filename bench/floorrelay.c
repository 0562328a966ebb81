/* floorrelay: the least a TCP relay can do, for scripts/bench-proxy.
 *
 *   floorrelay LISTEN_PORT UPSTREAM_PORT   (both on 127.0.0.1)
 *
 * One thread, one epoll set, level-triggered.  Per connection: accept4, one
 * socket and a non-blocking connect, a read and a write per burst of bytes,
 * shutdown to pass a FIN on, two closes.  No timers, no logging, no
 * decoding, no buffer beyond one pending write per direction.  TCP_NODELAY
 * is set once on the listener, where accepted sockets inherit it.
 *
 * It is not a tool: it stands in the benchmark table as the floor under any
 * relay on this machine, the cost of the second TCP connection and of the
 * extra wake-up per burst that every relay pays, so that what a real relay
 * adds on top of it can be told apart from what no relay can avoid. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUF = 65536, MAXEV = 64 };

struct side {
	int open;            /* 1 while the pair lives */
	int peer;            /* index of the other side in the table */
	char *pending;       /* bytes read from the other side, not yet written */
	size_t off, len;
	int closed_in;       /* this side sent its FIN */
};

static struct side *tab;  /* by file descriptor */
static int ep;
static struct sockaddr_in up;

static void watch(int fd, unsigned ev, int op)
{
	struct epoll_event e = { .events = ev, .data.fd = fd };

	if (epoll_ctl(ep, op, fd, &e) != 0 && op != EPOLL_CTL_DEL) {
		perror("floorrelay: epoll_ctl");
		exit(1);
	}
}

static void drop(int fd)
{
	int p = tab[fd].peer;

	free(tab[fd].pending);
	free(tab[p].pending);
	memset(&tab[fd], 0, sizeof(tab[fd]));
	memset(&tab[p], 0, sizeof(tab[p]));
	close(fd);
	close(p);
}

/* Moves what fd has to its peer; 0 when the pair is still open. */
static int pump(int fd)
{
	static char buf[BUF];
	struct side *s = &tab[fd], *o = &tab[s->peer];
	ssize_t n, w;

	if (o->len > o->off)   /* the peer still has bytes of ours to write */
		return 0;
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		s->closed_in = 1;
		shutdown(s->peer, SHUT_WR);
		if (tab[s->peer].closed_in)
			return -1;
		watch(fd, 0, EPOLL_CTL_MOD);
		return 0;
	}
	w = write(s->peer, buf, (size_t)n);
	if (w < 0 && errno != EAGAIN && errno != ENOTCONN)
		return -1;
	if (w < 0)
		w = 0;
	if (w < n) {   /* keep the rest; stop reading until it is written */
		o->pending = realloc(o->pending, (size_t)(n - w));
		memcpy(o->pending, buf + w, (size_t)(n - w));
		o->off = 0;
		o->len = (size_t)(n - w);
		watch(s->peer, EPOLLOUT | (o->closed_in ? 0 : EPOLLIN), EPOLL_CTL_MOD);
		watch(fd, 0, EPOLL_CTL_MOD);
	}
	return 0;
}

static int flush(int fd)
{
	struct side *s = &tab[fd];
	ssize_t w = write(fd, s->pending + s->off, s->len - s->off);

	if (w < 0)
		return errno == EAGAIN || errno == ENOTCONN ? 0 : -1;
	s->off += (size_t)w;
	if (s->off < s->len)
		return 0;
	s->off = s->len = 0;
	watch(fd, s->closed_in ? 0 : EPOLLIN, EPOLL_CTL_MOD);
	if (!tab[s->peer].closed_in)
		watch(s->peer, EPOLLIN, EPOLL_CTL_MOD);
	return 0;
}

static void accept_one(int lfd)
{
	int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), u;

	if (c < 0)
		return;
	u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u < 0) {
		close(c);
		return;
	}
	int one = 1;
	setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(u, (struct sockaddr *)&up, sizeof(up)) != 0 && errno != EINPROGRESS) {
		close(c);
		close(u);
		return;
	}
	tab[c] = (struct side){ .open = 1, .peer = u };
	tab[u] = (struct side){ .open = 1, .peer = c };
	watch(c, EPOLLIN, EPOLL_CTL_ADD);
	watch(u, EPOLLIN, EPOLL_CTL_ADD);
}

int main(int argc, char **argv)
{
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev[MAXEV];
	int lfd, one = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: floorrelay LISTEN_PORT UPSTREAM_PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	la.sin_port = htons((unsigned short)atoi(argv[1]));
	up = la;
	up.sin_port = htons((unsigned short)atoi(argv[2]));
	tab = calloc(1 << 20, sizeof(*tab));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!tab || lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 1024) != 0) {
		perror("floorrelay: listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	watch(lfd, EPOLLIN, EPOLL_CTL_ADD);
	for (;;) {
		int n = epoll_wait(ep, ev, MAXEV, -1);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd, bad = 0;

			if (fd == lfd) {
				accept_one(lfd);
				continue;
			}
			if (!tab[fd].open)   /* dropped earlier in this batch */
				continue;
			if (ev[i].events & EPOLLOUT)
				bad = flush(fd);
			if (!bad && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				bad = pump(fd);
			if (bad)
				drop(fd);
		}
	}
}
