/* A person at a terminal: the human lines coloured by verdict, the summary
 * as a table and pcap's progress line appear under a pseudo-terminal
 * (util-linux's `script`), and none of them when the output is piped;
 * NO_COLOR and --color are honoured; the proxy counts what it saw by
 * verdict when it stops. */
#include "config.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"
#include "proxyutil.h"
#include "testutil.h"

#define RED "\033[31m"
#define GREEN "\033[32m"
#define RESET "\033[0m"
#define ERASE "\r\033[K"

static char *out;

/* `sh -c CMD` from tests/data/lab/captures with $M the program and $T a
 * scratch directory: under a
 * pseudo-terminal (everything it writes, as the terminal shows it) or
 * not (standard output and error into one file, as a pipe would). */
static void run(bool pty, const char *env, const char *cmd)
{
	const char *bin = getenv("MTLSDIAG_BIN");
	char sh[4096], outp[600];
	struct e2e_io io = { NULL, outp, outp };
	int status;

	cr_assert(bin && *bin, "MTLSDIAG_BIN is not set");
	test_fmt(outp, "%s", px_tmp("out"));
	test_fmt(sh, "cd '%s' && M='%s' && T='%s' && export M T && unset NO_COLOR && export TERM=xterm %s && %s",
		 test_path("tests/data/lab/captures"), bin, px_tmp("work"), env, cmd);
	if (pty) {
		char *argv[] = { "script", "-qec", sh, "/dev/null", NULL };

		status = e2e_run(argv, &io, 60000);
	} else {
		char *argv[] = { "sh", "-c", sh, NULL };

		status = e2e_run(argv, &io, 60000);
	}
	free(out);
	out = e2e_slurp(outp);
	cr_assert(out, "no output");
	cr_assert(status == 0 || status == 1, "exit status %d:\n%s", status, out);
}

#define HAS(s) cr_assert(strstr(out, (s)), "missing %s in:\n%s", #s, out)
#define LACKS(s) cr_assert(!strstr(out, (s)), "unexpected %s in:\n%s", #s, out)

static void setup(void)
{
	px_setup();
	if (!px_have("script"))
		cr_skip_test("script (util-linux) is not installed");
}

static void teardown(void)
{
	free(out);
	out = NULL;
	px_teardown();
}

TestSuite(term, .init = setup, .fini = teardown);

#define TWO "nginx-on_none_tls12.pcap nginx-on_good_tls12.pcap"

Test(term, colours_and_a_table_under_a_terminal)
{
	run(true, "", "$M pcap " TWO);
	/* each line in its verdict's colour, reset at its end */
	HAS(RED "2026-12-03T03:11:40.124Z 127.0.0.1:46482 -> localhost:18401 TLS1.2 client did not send cert");
	HAS(GREEN "2026-12-03T03:11:41.860Z 127.0.0.1:46490 -> localhost:18401 TLS1.2 client cert accepted");
	HAS("O=mtlsdiag Lab" RESET "\r\n");
	/* the summary: a table, names padded to the longest, counts aligned */
	HAS("2 connections\r\n");
	HAS("  " RED "client_sent_no_cert " RESET "  1   50.0%\r\n");
	HAS("  " GREEN "client_cert_accepted" RESET "  1   50.0%\r\n");
	LACKS("2 connections:");
}

Test(term, nothing_of_it_in_a_pipe)
{
	run(false, "", "$M pcap " TWO " | cat");
	LACKS("\033[");
	HAS("2 connections: 1 client_sent_no_cert, 1 client_cert_accepted\n");
	/* standard output redirected, standard error a terminal: plain lines */
	run(true, "", "mkdir -p $T && $M pcap " TWO " >$T/lines; cat $T/lines");
	LACKS("\033[");
	HAS("\r\n2 connections: 1 client_sent_no_cert, 1 client_cert_accepted\r\n");
}

Test(term, no_color_and_the_color_option)
{
	run(true, "NO_COLOR=1 && export NO_COLOR", "$M pcap " TWO);
	LACKS("\033[");
	HAS("  client_sent_no_cert   1   50.0%\r\n");   /* still a table: it is not colour */
	/* --color=always wins over NO_COLOR, and colours a pipe */
	run(false, "NO_COLOR=1 && export NO_COLOR", "$M pcap --color=always " TWO " | cat");
	HAS(RED "2026-12-03T03:11:40.124Z");
	HAS("2 connections: 1 client_sent_no_cert, 1 client_cert_accepted\n");
	run(true, "", "$M pcap --color never " TWO);
	LACKS(RED);
	LACKS(GREEN);
	run(true, "TERM=dumb", "$M pcap " TWO);
	LACKS(RED);
	run(false, "", "$M pcap --color=sometimes " TWO " 2>&1; echo status $?");
	HAS("mtlsdiag pcap: --color 'sometimes': use auto, always or never\n");
	HAS("status 2\n");
}

/* A capture that arrives over 1.6 s: the progress line is drawn (the
 * input's size unknown: the bytes read), then erased before the summary. */
#define SLOW "(cat " TWO_FILES "; sleep 1.6) | $M pcap -q -"
#define TWO_FILES "nginx-on_none_tls12.pcap"

Test(term, a_progress_line_on_a_terminal_only)
{
	char *last, *summary;

	run(true, "", SLOW);
	HAS("mtlsdiag pcap: ");
	HAS(" MB read, ");
	HAS(" MB/s, 1 connections");
	/* erased, and the summary written over it */
	last = strstr(out, "mtlsdiag pcap: ");
	summary = strstr(out, "1 connection\r\n");
	cr_assert(last && summary && summary > last, "%s", out);
	cr_assert(summary - strlen(ERASE) >= out && strncmp(summary - strlen(ERASE), ERASE, strlen(ERASE)) == 0,
		  "the progress line is not erased before the summary:\n%s", out);
	/* the same run with standard error not a terminal */
	run(false, "", "mkdir -p $T && " SLOW " 2>$T/err; cat $T/err");
	LACKS("MB/s");
	LACKS("\r");
	HAS("1 connection: 1 client_sent_no_cert\n");
}

Test(term, the_proxy_says_what_it_saw_when_it_stops, .timeout = 60)
{
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port();
	pid_t srv = px_start_s_server(srv_port), px;
	char listen[64], upstream[64];
	const char *log = px_tmp("proxy.log");
	size_t n;

	test_fmt(listen, "127.0.0.1:%u", px_port);
	test_fmt(upstream, "127.0.0.1:%u", srv_port);
	px_wait_port(srv_port, srv, "openssl s_server", px_tmp("s_server.log"));
	px = px_start(log, "--listen", listen, "--upstream", upstream, NULL);
	px_run_curl(px_port, "1.2", NULL, NULL);
	px_run_curl(px_port, "1.2", "good", NULL);
	px_run_curl(px_port, "1.2", "expired", NULL);
	cr_assert(e2e_wait_contains(log, "closed by", 5000));
	kill(px, SIGTERM);
	cr_assert_eq(e2e_wait(px, 15000), 0, "%s", e2e_tail(log, 600));
	px_stop_child(srv);
	n = e2e_count_lines(log);
	cr_assert(n >= 2);
	cr_assert_str_eq(px_nth_line(log, n - 2), "mtlsdiag proxy: stopped\n");
	cr_assert_str_eq(px_nth_line(log, n - 1),
			 "mtlsdiag proxy: 3 connections: 1 client_sent_no_cert, 1 server_rejected_chain, 1 client_cert_accepted\n");
}

/* The proxy colours its verdict lines when told to, even into a file
 * (--color=always), and by default not there; the probe's lines are
 * coloured on a terminal. */
Test(term, the_proxy_and_the_probe_colour, .timeout = 60)
{
	uint16_t srv_port = e2e_free_port(), px_port = e2e_free_port(), px2_port = e2e_free_port();
	pid_t srv = px_start_s_server(srv_port), px;
	char listen[64], upstream[64], cmd[256];
	const char *log = px_tmp("proxy.log"), *plain = px_tmp("plain.log");
	char *text;

	test_fmt(upstream, "127.0.0.1:%u", srv_port);
	px_wait_port(srv_port, srv, "openssl s_server", px_tmp("s_server.log"));
	test_fmt(listen, "127.0.0.1:%u", px_port);
	px = px_start(log, "--listen", listen, "--upstream", upstream, "--color=always", NULL);
	px_run_curl(px_port, "1.2", NULL, NULL);
	cr_assert(e2e_wait_contains(log, "closed by", 5000));
	px_stop_child(px);
	text = e2e_slurp(log);
	cr_assert(text && strstr(text, "\n" RED "20"), "%s", text);
	cr_expect(strstr(text, "client did not send cert (fault: client; observed)"), "%s", text);
	free(text);
	test_fmt(listen, "127.0.0.1:%u", px2_port);
	px = px_start(plain, "--listen", listen, "--upstream", upstream, NULL);
	px_run_curl(px2_port, "1.2", NULL, NULL);
	cr_assert(e2e_wait_contains(plain, "closed by", 5000));
	px_stop_child(px);
	text = e2e_slurp(plain);
	cr_assert(text && !strstr(text, "\033["), "%s", text);
	free(text);
	/* the probe on a terminal */
	test_fmt(cmd, "$M probe localhost:%u --tls 1.2", srv_port);
	run(true, "", cmd);
	HAS(RED);
	HAS("TLS1.2 client did not send cert");
	run(false, "", cmd);
	LACKS("\033[");
	px_stop_child(srv);
}
