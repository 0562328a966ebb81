/* e2e: child processes with deadlines, free ports and the files children
 * write, for the suites that drive real programs. */
#include "config.h"

#include "e2e.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long e2e_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when nothing listens on or holds TCP port `port` on any address (the
 * IPv6 wildcard covers IPv4 too where the system has IPv6). */
static int port_unbound(uint16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT, .sin6_port = htons(port) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = htons(port) };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	int ok = 1;

	if (fd >= 0) {
		ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
		close(fd);
	}
	if (!ok || (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return 0;
	ok = bind(fd, (struct sockaddr *)&s4, sizeof(s4)) == 0;
	close(fd);
	return ok;
}

/* The lowest port of the kernel's ephemeral range, where client sockets
 * take their source ports (32768 when it cannot be read). */
static unsigned ephemeral_low(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	unsigned lo = 32768, hi = 0;

	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	return lo;
}

/* A port drawn at random between 20000 and the ephemeral range: a port the
 * kernel hands out for port 0 is also the source port of the next client
 * connection on a busy machine, and a server started on it a moment later
 * can find it taken. */
uint16_t e2e_free_port(void)
{
	static unsigned seed;
	static pid_t seeded_by;
	unsigned lo = 20000, hi = ephemeral_low();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	uint16_t port = 0;
	int fd;

	if (seeded_by != getpid()) {   /* each test's process draws its own */
		seeded_by = getpid();
		seed = (unsigned)seeded_by * 2654435761u ^ (unsigned)e2e_now_ms();
	}
	for (int tries = 0; hi > lo + 1000 && tries < 200; tries++) {
		port = (uint16_t)(lo + rand_r(&seed) % (hi - lo));
		if (port_unbound(port))
			return port;
	}
	/* no room below the ephemeral range: let the kernel choose */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	port = 0;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* In the child: fd `target` becomes `path` (or /dev/null). */
static void redirect(int target, const char *path, int flags)
{
	int fd = open(path ? path : "/dev/null", flags, 0644);

	if (fd < 0)
		_exit(126);
	if (fd != target) {
		dup2(fd, target);
		close(fd);
	}
}

pid_t e2e_spawn(char *const argv[], const struct e2e_io *io, unsigned guard_s)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* a test that dies or hangs takes its children with it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(guard_s);
	signal(SIGPIPE, SIG_DFL);
	redirect(0, io->in, O_RDONLY);
	redirect(1, io->out, O_WRONLY | O_CREAT | O_TRUNC);
	if (io->err && io->out && strcmp(io->err, io->out) == 0)
		dup2(1, 2);
	else
		redirect(2, io->err, O_WRONLY | O_CREAT | O_TRUNC);
	execvp(argv[0], argv);
	_exit(127);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* Waits for pid until the deadline; the exit code, or -2 if still running. */
static int wait_until(pid_t pid, long long deadline)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return exit_code(status);
		if (r < 0 && errno != EINTR)
			return -1;
		if (e2e_now_ms() >= deadline)
			return -2;
		usleep(5000);
	}
}

int e2e_run(char *const argv[], const struct e2e_io *io, int timeout_ms)
{
	pid_t pid = e2e_spawn(argv, io, (unsigned)(timeout_ms / 1000 + 2));

	if (pid < 0)
		return -1;
	return e2e_wait(pid, timeout_ms);
}

int e2e_wait(pid_t pid, int timeout_ms)
{
	int ret;

	if (pid <= 0)
		return -1;
	ret = wait_until(pid, e2e_now_ms() + timeout_ms);
	if (ret == -2) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		ret = -1;
	}
	return ret;
}

int e2e_stop(pid_t pid, int timeout_ms)
{
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	return e2e_wait(pid, timeout_ms);
}

char *e2e_slurp(const char *path)
{
	size_t len;
	uint8_t *data = test_try_load(path, &len);
	char *text;

	if (!data)
		return NULL;
	text = realloc(data, len + 1);
	if (!text) {
		free(data);
		return NULL;
	}
	text[len] = '\0';
	return text;
}

size_t e2e_count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int ch;

	if (!f)
		return 0;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

bool e2e_wait_lines(const char *path, size_t n, int timeout_ms)
{
	long long end = e2e_now_ms() + timeout_ms;

	for (;;) {
		if (e2e_count_lines(path) >= n)
			return true;
		if (e2e_now_ms() >= end)
			return false;
		usleep(10000);
	}
}

bool e2e_wait_contains(const char *path, const char *needle, int timeout_ms)
{
	long long end = e2e_now_ms() + timeout_ms;

	for (;;) {
		char *text = e2e_slurp(path);
		bool found = text && strstr(text, needle);

		free(text);
		if (found)
			return true;
		if (e2e_now_ms() >= end)
			return false;
		usleep(10000);
	}
}

bool e2e_line(const char *path, size_t i, char *out, size_t outlen)
{
	char *text = e2e_slurp(path), *p, *nl;
	bool ok = false;

	if (outlen)
		out[0] = '\0';
	if (!text)
		return false;
	for (p = text; *p && i > 0; i--) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	if (i == 0 && *p) {
		size_t len = strcspn(p, "\n");

		snprintf(out, outlen, "%.*s", (int)len, p);
		ok = true;
	}
	free(text);
	return ok;
}

const char *e2e_tail(const char *path, size_t max)
{
	static char buf[2048];
	char *text = e2e_slurp(path), *from;
	size_t len, o = 0;

	buf[0] = '\0';
	if (!text)
		return "(no output)";
	len = strlen(text);
	if (max >= sizeof(buf) / 3)
		max = sizeof(buf) / 3 - 1;
	from = text + (len > max ? len - max : 0);
	for (; *from && o + 4 < sizeof(buf); from++) {
		if (*from == '\n') {
			if (from[1])
				o += (size_t)snprintf(buf + o, sizeof(buf) - o, " | ");
		} else {
			buf[o++] = *from;
		}
	}
	buf[o] = '\0';
	free(text);
	return buf;
}

bool e2e_json_member(const char *json, const char *key, char *out, size_t outlen)
{
	char pat[128];
	const char *p;
	size_t n = 0;

	if (outlen == 0)
		return false;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	/* inside a JSON string a quote is escaped, so `"key":` only matches a
	 * member name */
	p = strstr(json, pat);
	if (!p)
		return false;
	p += strlen(pat);
	if (*p == '"') {
		for (p++; *p && *p != '"' && n + 1 < outlen; p++) {
			if (*p == '\\' && p[1] && n + 2 < outlen)
				out[n++] = *p++;
			out[n++] = *p;
		}
	} else {
		for (; *p && *p != ',' && *p != '}' && *p != ']' && n + 1 < outlen; p++)
			out[n++] = *p;
	}
	out[n] = '\0';
	return true;
}

const char *e2e_member(const char *json, const char *key)
{
	static char val[8][4096];
	static int i;
	char *v = val[i++ % 8];

	if (!e2e_json_member(json, key, v, 4096))
		snprintf(v, 4096, "(absent)");
	return v;
}

size_t e2e_numbered(const char *dir, char names[][64], size_t max)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	size_t k = 0;

	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] >= '0' && list[i]->d_name[0] <= '9' && k < max)
			snprintf(names[k++], 64, "%.63s", list[i]->d_name);
		free(list[i]);
	}
	free(list);
	return k;
}
