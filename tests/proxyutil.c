/* proxyutil: see proxyutil.h. */
#include "config.h"

#include "proxyutil.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"
#include "testutil.h"

#define MAX_ARGS 64

static char tmpdir[256];

unsigned long px_soft_nofile;

void px_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mtlsdiag-proxy-test.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	signal(SIGPIPE, SIG_IGN);
	/* the hang guard: criterion's .timeout leaks in its runner (2.4.1)
	 * when timed tests overlap, which fails the sanitizer build */
	alarm(60);
}

void px_teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

const char *px_tmp(const char *name)
{
	/* one buffer per name, so the pointers stay valid for the whole test
	 * (criterion runs each test in a process of its own) */
	static char paths[64][400];
	static char names[64][64];
	static size_t n;
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return paths[i];
	cr_assert(n < 64, "px_tmp: more than 64 names in one test");
	snprintf(names[n], sizeof(names[n]), "%s", name);
	snprintf(paths[n], sizeof(paths[n]), "%s/%s", tmpdir, name);
	return paths[n++];
}

static socklen_t loopback(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(port);
		return sizeof(*sin6);
	}
}

int px_listen_any(int family, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, 0, &ss);
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	cr_assert(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind: %s", strerror(errno));
	cr_assert(listen(fd, 512) == 0);
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int px_connect_to(int family, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, port, &ss);
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void px_child_guard(unsigned seconds)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(seconds);
}

void px_stop_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

const char *px_nth_line(const char *path, size_t i)
{
	static char line[65536];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	line[0] = '\0';
	if (!f)
		return line;
	while (fgets(line, sizeof(line), f)) {
		if (n++ == i)
			break;
		line[0] = '\0';
	}
	fclose(f);
	return line;
}

const char *px_find_line(const char *path, const char *needle)
{
	static char line[65536];
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, needle)) {
			fclose(f);
			return line;
		}
	}
	fclose(f);
	return NULL;
}

pid_t px_start_argv(const char *prefix, const char *log, const char *const *args)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	const char *argv[MAX_ARGS];
	char pre[256] = "";
	size_t n = 0, i;
	pid_t pid;

	cr_assert_not_null(bin, "MTLSDIAG_BIN is not set (run through make check)");
	if (prefix) {   /* split on blanks: the prefixes used here have no quoting */
		char *save = NULL, *tok;

		snprintf(pre, sizeof(pre), "%s", prefix);
		for (tok = strtok_r(pre, " ", &save); tok && n < MAX_ARGS - 8; tok = strtok_r(NULL, " ", &save))
			argv[n++] = tok;
	}
	argv[n++] = bin;
	argv[n++] = "proxy";
	for (i = 0; args[i] && n < MAX_ARGS - 3; i++)
		argv[n++] = args[i];
	argv[n++] = "--log";
	argv[n++] = log;
	argv[n] = NULL;
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		const char *asan = getenv("ASAN_OPTIONS");
		char opts[512];

		px_child_guard(90);
		dup2(devnull, 0);
		dup2(devnull, 1);
		/* under ASan, freed buffers sit in quarantine and would count as
		 * memory held: keep it small */
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1", asan ? asan : "", asan && *asan ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
		if (px_soft_nofile) {
			struct rlimit rl;

			if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max >= px_soft_nofile) {
				rl.rlim_cur = px_soft_nofile;
				(void)setrlimit(RLIMIT_NOFILE, &rl);
			}
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (!e2e_wait_contains(log, "listening on", 5000)) {
		px_stop_child(pid);
		cr_assert_fail("the proxy did not start: %s", px_nth_line(log, 0));
	}
	return pid;
}

pid_t px_start(const char *log, ...)
{
	const char *args[MAX_ARGS];
	size_t n = 0;
	va_list ap;

	va_start(ap, log);
	while (n < MAX_ARGS - 1 && (args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	return px_start_argv(NULL, log, args);
}

pid_t px_start_s_server(uint16_t port)
{
	return px_start_s_server_in(NULL, "127.0.0.1", port);
}

pid_t px_start_s_server_in(const char *prefix, const char *addr, uint16_t port)
{
	const char *argv[MAX_ARGS];
	char accept[80], pre[256] = "", *save = NULL, *tok;
	size_t n = 0;
	pid_t pid;
	long long end;

	/* "0.0.0.0": any address, IPv4 and IPv6 (s_server takes a bare port) */
	if (strcmp(addr, "0.0.0.0") == 0)
		snprintf(accept, sizeof(accept), "%u", port);
	else
		snprintf(accept, sizeof(accept), "%s:%u", addr, port);
	if (prefix) {
		snprintf(pre, sizeof(pre), "%s", prefix);
		for (tok = strtok_r(pre, " ", &save); tok && n < MAX_ARGS - 24; tok = strtok_r(NULL, " ", &save))
			argv[n++] = tok;
	}
	{
		/* the lab PKI by its absolute path: tests run from the build tree */
		const char *const tail[] = {
			"openssl", "s_server", "-accept", NULL, "-cert", px_pki("server.pem"), "-key", px_pki("server.key"),
			"-CAfile", px_pki("client-root.pem"), "-Verify", "1", "-verify_return_error", "-www",
		};
		size_t i;

		for (i = 0; i < sizeof(tail) / sizeof(tail[0]); i++)
			argv[n++] = tail[i] ? tail[i] : accept;
	}
	argv[n] = NULL;
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		px_child_guard(90);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (chdir(test_path("")) != 0)
			_exit(126);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (prefix) {   /* in another namespace: no port to probe from here */
		usleep(500000);
		return pid;
	}
	end = e2e_now_ms() + 5000;
	while (e2e_now_ms() < end) {
		int fd = px_connect_to(AF_INET, port);

		if (fd >= 0) {
			close(fd);
			return pid;
		}
		usleep(20000);
	}
	px_stop_child(pid);
	cr_assert_fail("openssl s_server did not start");
	return -1;
}

struct px_curl px_run_curl(uint16_t port, const char *tls, const char *cert_case, const char *extra)
{
	char cmd[2048], cert[512] = "";
	struct px_curl r = { -1, "" };
	FILE *p;
	int status;

	if (cert_case)
		snprintf(cert, sizeof(cert), "--cert '%s%s-chain.pem' --key '%s%s.key'",
			 test_path(PKI), cert_case, test_path(PKI), cert_case);
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --cacert '%sserver-root.pem' "
		 "--resolve localhost:%u:127.0.0.1 --tlsv%s --tls-max %s %s %s 'https://localhost:%u/'",
		 test_path(PKI), port, tls, tls, cert, extra ? extra : "", port);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(r.http_code, sizeof(r.http_code), p))
		r.http_code[0] = '\0';
	status = pclose(p);
	r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return r;
}

const char *px_json_field(const char *rec, const char *name)
{
	static char val[256];
	char key[64];
	const char *p;
	size_t n;

	snprintf(key, sizeof(key), "\"%s\":", name);
	if (!(p = strstr(rec, key)))
		return "(absent)";
	p += strlen(key);
	if (*p == '"')
		n = strcspn(++p, "\"");
	else
		n = strcspn(p, ",}]");
	if (n >= sizeof(val))
		n = sizeof(val) - 1;
	memcpy(val, p, n);
	val[n] = '\0';
	return val;
}

long px_proc_status(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

const char *px_pki(const char *file)
{
	static char buf[8][512];
	static int i;
	char *b = buf[i++ % 8];

	snprintf(b, 512, "%s%s", test_path(PKI), file);
	return b;
}

bool px_have(const char *program)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
	return system(cmd) == 0;
}

void px_wait_port(uint16_t port, pid_t pid, const char *what, const char *log)
{
	long long end = e2e_now_ms() + 25000;

	while (e2e_now_ms() < end) {
		int fd = px_connect_to(AF_INET, port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(50000);
	}
	px_stop_child(pid);
	cr_assert_fail("%s did not start: %s", what, e2e_tail(log, 400));
}

pid_t px_start_nginx(uint16_t port)
{
	return px_start_nginx_verify(port, "on");
}

pid_t px_start_nginx_verify(uint16_t port, const char *verify)
{
	return px_start_nginx_answer(port, verify, "return 200 \"ok nginx\\n\";");
}

pid_t px_start_nginx_answer(uint16_t port, const char *verify, const char *location)
{
	const struct px_nginx n = { .verify = verify, .location = location };

	return px_start_nginx_conf(port, &n);
}

void px_write_nginx_conf(uint16_t port, const struct px_nginx *n)
{
	FILE *f = fopen(px_tmp("nginx.conf"), "w");

	cr_assert_not_null(f);
	fprintf(f,
		"daemon off;\n%sworker_processes 1;\npid %s;\nerror_log %s info;\n"
		"events { worker_connections %d; }\n"
		"http {\n"
		"  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
		"  uwsgi_temp_path %s; scgi_temp_path %s;\n"
		"  access_log off;\n"
		"  server {\n"
		"    listen 127.0.0.1:%u ssl;\n"
		"    server_name localhost;\n"
		"    ssl_certificate %s; ssl_certificate_key %s;\n"
		"    ssl_protocols TLSv1.2 TLSv1.3;\n"
		"    ssl_verify_client %s; ssl_client_certificate %s; ssl_verify_depth %d;\n"
		"    %s\n"
		"    location / { %s }\n"
		"  }\n"
		"}\n",
		n->master ? "" : "master_process off;\n", px_tmp("nginx.pid"), px_tmp("nginx-error.log"),
		n->conns ? n->conns : 32, px_tmp("t-body"), px_tmp("t-proxy"), px_tmp("t-fcgi"), px_tmp("t-uwsgi"), px_tmp("t-scgi"), port,
		px_pki("server.pem"), px_pki("server.key"), n->verify ? n->verify : "on",
		n->bundle ? n->bundle : px_pki("client-root.pem"), n->depth ? n->depth : 2, n->extra ? n->extra : "",
		n->location ? n->location : "return 200 \"ok nginx\\n\";");
	cr_assert_eq(fclose(f), 0);
}

pid_t px_start_nginx_conf(uint16_t port, const struct px_nginx *n)
{
	const char *argv[] = { "nginx", "-p", px_tmp(""), "-c", px_tmp("nginx.conf"), "-e", px_tmp("nginx-error.log"),
			       NULL };
	struct e2e_io io = { .out = px_tmp("nginx.out"), .err = px_tmp("nginx.out") };
	pid_t pid;

	px_write_nginx_conf(port, n);
	pid = e2e_spawn((char *const *)argv, &io, 90);
	cr_assert(pid > 0);
	px_wait_port(port, pid, "nginx", px_tmp("nginx.out"));
	return pid;
}

pid_t px_start_mitmproxy(uint16_t port, const char *confdir)
{
	char portbuf[8], conf[512];
	struct e2e_io io = { .out = px_tmp("mitm.log"), .err = px_tmp("mitm.log") };
	const char *argv[] = {
		"mitmdump", "--listen-host", "127.0.0.1", "--listen-port", portbuf, "--set", conf,
		"--set", "ssl_insecure=true", NULL,
	};
	pid_t pid;

	snprintf(portbuf, sizeof(portbuf), "%u", port);
	snprintf(conf, sizeof(conf), "confdir=%s", confdir);
	setenv("HOME", px_tmp(""), 1);      /* a scratch HOME, as on a first start */
	pid = e2e_spawn((char *const *)argv, &io, 60);
	cr_assert(pid > 0);
	px_wait_port(port, pid, "mitmdump", px_tmp("mitm.log"));
	return pid;
}

pid_t px_start_poll_server(int lfd, size_t max_conns, bool echo)
{
	pid_t pid = fork();
	struct pollfd *p;
	size_t n = 1, i;

	cr_assert(pid >= 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	px_child_guard(120);
	if (!(p = calloc(max_conns + 1, sizeof(*p))))
		_exit(1);
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	p[0].fd = lfd;
	for (;;) {
		p[0].events = n <= max_conns ? POLLIN : 0;
		if (poll(p, n, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			int fd;

			/* an echo writes blocking: the echoes are small */
			while (n <= max_conns && (fd = accept4(lfd, NULL, NULL, echo ? 0 : SOCK_NONBLOCK)) >= 0) {
				p[n].fd = fd;
				p[n].events = POLLIN;
				p[n++].revents = 0;
			}
		}
		for (i = n - 1; i >= 1; i--) {
			char buf[65536];
			ssize_t r, off = 0;

			if (!p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			while (echo && r > 0 && off < r) {
				ssize_t w = write(p[i].fd, buf + off, (size_t)(r - off));

				if (w <= 0)
					break;
				off += w;
			}
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(p[i].fd);
				p[i] = p[--n];
			}
		}
	}
}

void px_room_for_fds(size_t n)
{
	struct rlimit rl;

	cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
		cr_skip_test("RLIMIT_NOFILE hard limit %llu is below %zu", (unsigned long long)rl.rlim_max, n);
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;
	cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
}

size_t px_count_lines(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, needle) != NULL;
	free(line);
	fclose(f);
	return n;
}
