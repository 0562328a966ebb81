/* `mtlsdiag pcap` reading a capture as it is written (tcpdump -w - | mtlsdiag
 * pcap -, or a FIFO): a connection's verdict is printed, and reaches the
 * JSON file, while the input is still open, not when it ends. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "testutil.h"

static char dir[] = "/tmp/mtlsdiag-stream-XXXXXX";

static void make_dir(void)
{
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(stream, .init = make_dir, .fini = remove_dir);

Test(stream, a_verdict_arrives_while_the_fifo_is_still_open, .timeout = 60)
{
	char fifo[128], json[128], text[128], line[4096];
	char *argv[] = { getenv("MTLSDIAG_BIN"), "pcap", "--json", json, fifo, NULL };
	struct e2e_io io = { .in = NULL, .out = text, .err = NULL };
	size_t len;
	uint8_t *cap = test_load("tests/data/lab/captures/nginx-on_good_tls12.pcap", &len);
	pid_t pid;
	int fd;

	cr_assert(argv[0], "MTLSDIAG_BIN is not set");
	test_fmt(fifo, "%s/in", dir);
	test_fmt(json, "%s/out.json", dir);
	test_fmt(text, "%s/out.txt", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	cr_assert(len < 65536, "the FIFO must hold the capture at once (%zu bytes)", len);
	pid = e2e_spawn(argv, &io, 50);
	cr_assert(pid > 0);
	fd = open(fifo, O_WRONLY);
	cr_assert(fd >= 0, "open %s: %s", fifo, strerror(errno));
	cr_assert_eq(write(fd, cap, len), (ssize_t)len);

	/* the connection ended inside the capture: its record comes now */
	cr_assert(e2e_wait_lines(json, 1, 5000), "no JSON record within 5 s while the input stays open");
	cr_assert(e2e_wait_lines(text, 1, 2000), "no human line within 2 s while the input stays open");
	cr_assert(e2e_line(json, 0, line, sizeof(line)));
	cr_assert_str_eq(e2e_member(line, "verdict"), "client_cert_accepted", "%s", line);
	cr_assert_eq(e2e_count_lines(json), 1, "the summary comes only at the end");

	close(fd);
	cr_assert_eq(e2e_wait(pid, 10000), 0);
	cr_assert_eq(e2e_count_lines(json), 2, "%s", e2e_tail(json, 300));
	free(cap);
}
