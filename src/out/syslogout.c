/* syslogout: lines to the system log's socket (syslogout.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "analysis/codes.h"
#include "out/syslogout.h"

#define FACILITY_DAEMON 3
#define MAX_DATAGRAM 4096

struct syslog_out {
	int fd;
	struct sockaddr_un sun;
	char tag[64];
	pid_t pid;
	pthread_mutex_t lock;    /* sending and reconnecting: fd is never used once closed */
	atomic_ullong lost;
};

static int connect_socket(struct syslog_out *s)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&s->sun, sizeof(s->sun)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct syslog_out *syslog_out_open(const char *path, const char *tag, char *err, size_t errlen)
{
	struct syslog_out *s;

	if (strlen(path) >= sizeof(s->sun.sun_path)) {
		snprintf(err, errlen, "the socket's path is too long");
		return NULL;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->sun.sun_family = AF_UNIX;
	memcpy(s->sun.sun_path, path, strlen(path) + 1);
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->pid = getpid();
	pthread_mutex_init(&s->lock, NULL);
	if ((s->fd = connect_socket(s)) < 0) {
		snprintf(err, errlen, "cannot reach the system log: %s", strerror(errno));
		syslog_out_close(s);
		return NULL;
	}
	return s;
}

int syslog_out_line(struct syslog_out *s, enum syslog_severity sev, const char *line)
{
	char msg[MAX_DATAGRAM], stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	int head, len, tries;

	localtime_r(&now, &tm);
	/* RFC 3164 4.1.2: "Mmm dd hh:mm:ss", the day padded with a space */
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	head = snprintf(msg, sizeof(msg), "<%d>%s %s[%ld]: ", FACILITY_DAEMON * 8 + (int)sev, stamp, s->tag, (long)s->pid);
	if (head < 0 || (size_t)head >= sizeof(msg))
		goto Lost;
	len = head + snprintf(msg + head, sizeof(msg) - (size_t)head, "%.*s", (int)strcspn(line, "\n"), line);
	if ((size_t)len >= sizeof(msg))
		len = sizeof(msg) - 1;
	pthread_mutex_lock(&s->lock);
	for (tries = 0; tries < 2; tries++) {
		if (s->fd >= 0 && send(s->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len) {
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		if (s->fd >= 0 && errno != ECONNREFUSED && errno != ENOTCONN)
			break;   /* full (EAGAIN): not waited for */
		/* the log daemon restarted: its socket is a new one */
		if (s->fd >= 0)
			close(s->fd);
		s->fd = connect_socket(s);
	}
	pthread_mutex_unlock(&s->lock);
Lost:
	atomic_fetch_add(&s->lost, 1);
	return -1;
}

uint64_t syslog_out_lost(const struct syslog_out *s)
{
	return atomic_load(&s->lost);
}

void syslog_out_close(struct syslog_out *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

enum syslog_severity syslog_severity_of(const struct verdict *v)
{
	switch (v->fault) {
	case F_NONE: return SYSLOG_INFO;
	case F_CLIENT:
	case F_SERVER:
	case F_MIDDLEBOX: return SYSLOG_WARNING;
	default: break;
	}
	return SYSLOG_NOTICE;
}
