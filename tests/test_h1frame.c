/* The HTTP/1.x framer (src/wire/h1frame.c).
 *
 * The fixtures in tests/data/h1frame/ are one connection each, both ways,
 * as curl and nginx (python3's http.server for untilclose) sent them on
 * loopback (capture.sh there made them).  Each direction is fed whole, one
 * byte at a time and in two pieces at every split point; every way must end
 * with the same counts, and h1f_between must be true exactly where a message
 * of the capture ends.  The rules real peers do not break (conflicting
 * lengths, bad chunks, tunnels, pipelining past what can be paired) are
 * checked on short messages written for each rule. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/h1frame.h"
#include "testutil.h"

struct expect {
	uint64_t messages;
	bool persistent;
	const char *why;        /* NULL: not lost */
};

struct fixture {
	const char *name;
	struct expect req, resp;
	bool idempotent;
};

static const struct fixture fixtures[] = {
	{ "length", { 1, true, NULL }, { 1, true, NULL }, true },
	{ "chunked", { 1, true, NULL }, { 1, true, NULL }, true },
	{ "head", { 2, true, NULL }, { 2, true, NULL }, true },
	{ "notmod", { 2, true, NULL }, { 2, true, NULL }, true },
	{ "keepalive", { 3, true, NULL }, { 3, true, NULL }, true },
	{ "continue", { 1, true, NULL }, { 1, true, NULL }, false },
	{ "chunkedreq", { 1, true, NULL }, { 1, true, NULL }, false },
	{ "http10", { 1, false, NULL }, { 1, false, NULL }, true },
	{ "nolength", { 1, false, NULL }, { 0, false, "the response's body ends at the close" }, true },
	{ "untilclose", { 1, true, NULL }, { 0, false, "the response's body ends at the close" }, true },
};

static uint8_t *load(const char *name, const char *dir, size_t *len)
{
	char rel[128];

	test_fmt(rel, "tests/data/h1frame/%s.%s.bin", name, dir);
	return test_load(rel, len);
}

static void check(const struct h1f *f, const struct expect *e, const char *what)
{
	cr_assert_eq(f->messages, e->messages, "%s: %llu messages, not %llu", what,
	             (unsigned long long)f->messages, (unsigned long long)e->messages);
	cr_assert_eq(f->persistent, e->persistent, "%s: persistent %d", what, f->persistent);
	cr_assert_eq(f->lost, e->why != NULL, "%s: lost %d (%s)", what, f->lost, f->why);
	cr_assert_str_eq(f->why, e->why ? e->why : "", "%s", what);
	cr_assert_eq(h1f_between(f), e->why == NULL, "%s: between at the end", what);
}

/* Where the capture's messages end: before each next request or final
 * status line (a line start of the capture), and at its end. */
static bool boundary(const uint8_t *p, size_t n, size_t at, bool responses)
{
	static const char *const methods[] = { "GET ", "HEAD ", "POST " };
	size_t i;

	if (at == 0)
		return false;
	if (responses) {
		/* the response that ends here is a final one: not after a 1xx */
		for (i = at - 1; i > 0; i--)
			if (p[i - 1] == '\n' && memcmp(p + i, "HTTP/1.", 7) == 0)
				break;
		if (n - i > 12 && p[i + 9] == '1')
			return false;
	}
	if (at == n)
		return true;
	if (p[at - 1] != '\n')
		return false;
	if (responses)
		return n - at > 12 && memcmp(p + at, "HTTP/1.", 7) == 0;
	for (i = 0; i < 3; i++)
		if (n - at > strlen(methods[i]) && memcmp(p + at, methods[i], strlen(methods[i])) == 0)
			return true;
	return false;
}

/* A framer for one direction of the fixture; responses are paired with a
 * framer that read all the requests. */
static void start(struct h1f *f, struct h1f *req, const uint8_t *reqdata, size_t reqlen, bool responses)
{
	h1f_init(f, responses ? H1F_RESPONSES : H1F_REQUESTS);
	if (!responses)
		return;
	h1f_init(req, H1F_REQUESTS);
	h1f_pair(f, req);
	h1f_feed(req, reqdata, reqlen);
}

static void run_direction(const struct fixture *fx, bool responses)
{
	const struct expect *e = responses ? &fx->resp : &fx->req;
	struct h1f f, req;
	uint8_t *reqdata, *p;
	size_t reqlen, n, i, k;
	char what[96];

	reqdata = load(fx->name, "req", &reqlen);
	p = responses ? load(fx->name, "resp", &n) : reqdata;
	if (!responses)
		n = reqlen;

	test_fmt(what, "%s %s whole", fx->name, responses ? "responses" : "requests");
	start(&f, &req, reqdata, reqlen, responses);
	cr_assert(h1f_between(&f));
	h1f_feed(&f, p, n);
	check(&f, e, what);
	if (!responses)
		cr_assert_eq(h1f_idempotent(&f), fx->idempotent, "%s: idempotent", what);

	/* byte by byte: between exactly at the capture's message ends */
	test_fmt(what, "%s %s byte by byte", fx->name, responses ? "responses" : "requests");
	start(&f, &req, reqdata, reqlen, responses);
	for (i = 0; i < n; i++) {
		uint64_t before = f.messages;

		h1f_feed(&f, p + i, 1);
		cr_assert_geq(f.messages, before);
		if (!f.lost)
			cr_assert_eq(h1f_between(&f), boundary(p, n, i + 1, responses), "%s: between after %zu bytes",
			             what, i + 1);
	}
	check(&f, e, what);

	for (k = 1; k < n; k++) {
		test_fmt(what, "%s %s split at %zu", fx->name, responses ? "responses" : "requests", k);
		start(&f, &req, reqdata, reqlen, responses);
		h1f_feed(&f, p, k);
		if (!f.lost)
			cr_assert_eq(h1f_between(&f), boundary(p, n, k, responses), "%s: between", what);
		h1f_feed(&f, p + k, n - k);
		check(&f, e, what);
	}
	if (p != reqdata)
		free(p);
	free(reqdata);
}

Test(h1frame, captures)
{
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		run_direction(&fixtures[i], false);
		run_direction(&fixtures[i], true);
	}
}

/* Without the requests, the answer to HEAD looks as if its Content-Length
 * bytes followed: the second response is taken for body. */
Test(h1frame, head_needs_pairing)
{
	struct h1f f;
	uint8_t *p;
	size_t n;

	p = load("head", "resp", &n);
	h1f_init(&f, H1F_RESPONSES);
	h1f_feed(&f, p, n);
	cr_assert_eq(f.messages, 1);
	cr_assert_not(h1f_between(&f));
	free(p);
}

static void feed_str(struct h1f *f, const char *s)
{
	h1f_feed(f, (const uint8_t *)s, strlen(s));
}

#define GET "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

/* Rules real peers keep, each broken once: the requests (sent first, as
 * the proxy feeds them), then the responses (NULL: the requests are lost). */
static const struct lost_case {
	const char *requests, *responses, *why;
} lost_cases[] = {
	{ "\x16\x03\x01\x02\x00\x01",
	  NULL,
	  "the requests are not HTTP/1.x" },
	{ "GET / HTTP/2.0\r\n",
	  NULL,
	  "the requests are not HTTP/1.x" },
	{ "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
	  NULL,
	  "conflicting Content-Length values" },
	{ "POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\n",
	  NULL,
	  "an invalid Content-Length" },
	{ "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	  NULL,
	  "an invalid Content-Length" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	  NULL,
	  "a request whose Transfer-Encoding does not end in chunked" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	  NULL,
	  "both Transfer-Encoding and Content-Length" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	  NULL,
	  "a chunk-size line that is not a hex size" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
	  NULL,
	  "a chunk's data not followed by its line end" },
	{ "GET / HTTP/1.1\r\nConnection:\r\n close\r\n\r\n",
	  NULL,
	  "a folded header line (obs-fold)" },
	{ "GET / HTTP/1.1\r\nContent-Length : 0\r\n\r\n",
	  NULL,
	  "a header field name with a space or a byte no name may have" },
	{ "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	  NULL,
	  "a CONNECT request: a tunnel may follow it" },
	{ "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
	  NULL,
	  "an Upgrade request: what follows it may not be HTTP/1.x" },
	{ GET,
	  "SSH-2.0-OpenSSH_9.2\r\n",
	  "the responses are not HTTP/1.x" },
	{ GET,
	  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	  "101 Switching Protocols: the connection became a tunnel" },
	{ "CONNECT a:443 HTTP/1.1\r\n\r\n",
	  "HTTP/1.1 200 Connection established\r\n\r\n",
	  "a 2xx answer to CONNECT: the connection became a tunnel" },
	{ GET,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	  "the response's body ends at the close" },
	{ GET,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	  "a Transfer-Encoding that names chunked twice" },
	{ GET,
	  "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	  "a Transfer-Encoding in an HTTP/1.0 message" },
	{ "",
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  "a response came before its request" },
};

Test(h1frame, lost)
{
	for (size_t i = 0; i < sizeof(lost_cases) / sizeof(lost_cases[0]); i++) {
		const struct lost_case *c = &lost_cases[i];
		struct h1f req, resp;
		struct h1f *f = c->responses ? &resp : &req;

		h1f_init(&req, H1F_REQUESTS);
		h1f_init(&resp, H1F_RESPONSES);
		h1f_pair(&resp, &req);
		feed_str(&req, c->requests);
		if (c->responses)
			feed_str(&resp, c->responses);
		cr_assert(f->lost, "not lost: %s", c->why);
		cr_assert_str_eq(f->why, c->why);
		cr_assert_not(f->persistent);
		cr_assert_not(h1f_between(f));
		/* lost stays lost, whatever follows */
		feed_str(f, c->responses ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" : GET);
		cr_assert(f->lost);
		cr_assert_str_eq(f->why, c->why);
	}
}

/* Only the lines that frame a message are read, and only their first 256
 * bytes: a long target or a long other field passes, a long
 * Content-Length line does not. */
Test(h1frame, long_lines)
{
	static char line[4096];
	struct h1f f;

	h1f_init(&f, H1F_REQUESTS);
	feed_str(&f, "GET /");
	memset(line, 'a', sizeof(line) - 1);
	feed_str(&f, line);
	feed_str(&f, " HTTP/1.1\r\nCookie: ");
	feed_str(&f, line);
	feed_str(&f, "\r\nContent-Length: 2\r\n\r\nab");
	cr_assert_not(f.lost, "%s", f.why);
	cr_assert_eq(f.messages, 1);
	cr_assert(h1f_between(&f));

	feed_str(&f, "POST / HTTP/1.1\r\nContent-Length: 2 ");
	memset(line, ' ', sizeof(line) - 1);
	feed_str(&f, line);
	feed_str(&f, "\r\n\r\n");
	cr_assert(f.lost);
	cr_assert_str_eq(f.why, "a Content-Length, Transfer-Encoding or Connection line longer than 256 bytes");
	cr_assert_eq(f.messages, 1);

	/* a stream that never sends a line end is found out all the same */
	h1f_init(&f, H1F_REQUESTS);
	memset(line, 'A', sizeof(line) - 1);
	feed_str(&f, line);
	cr_assert(f.lost);
	cr_assert_str_eq(f.why, "the requests are not HTTP/1.x");
}

/* Chunk extensions, trailer fields, bare LF line ends, Connection as a
 * list, and HTTP/1.0 keep-alive. */
Test(h1frame, chunks_and_connection)
{
	struct h1f req, resp;

	h1f_init(&req, H1F_REQUESTS);
	h1f_init(&resp, H1F_RESPONSES);
	h1f_pair(&resp, &req);
	feed_str(&req, "\r\nPUT /x HTTP/1.1\nTransfer-Encoding: chunked\n\n3;name=\"v\"\nabc\n0\nDigest: x\n\n");
	cr_assert_eq(req.messages, 1, "%s", req.why);
	cr_assert(h1f_between(&req));
	cr_assert(h1f_idempotent(&req));
	feed_str(&resp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip ,Chunked\r\n\r\n"
	                "A \r\n0123456789\r\n0\r\n\r\n");
	cr_assert_eq(resp.messages, 1, "%s", resp.why);
	cr_assert(resp.persistent);
	cr_assert(h1f_between(&resp));

	feed_str(&req, "DELETE /x HTTP/1.1\r\nConnection: TE, Close\r\n\r\n");
	cr_assert_eq(req.messages, 2);
	cr_assert_not(req.persistent);
	cr_assert(h1f_idempotent(&req));
	feed_str(&req, "PATCH /x HTTP/1.1\r\n\r\n");
	cr_assert_not(h1f_idempotent(&req));

	h1f_init(&resp, H1F_RESPONSES);
	feed_str(&resp, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1, 1\r\n\r\nx");
	cr_assert_eq(resp.messages, 1, "%s", resp.why);
	cr_assert(resp.persistent);
	/* an interim response keeps the boundary away until the final one */
	feed_str(&resp, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
	cr_assert_not(h1f_between(&resp));
	cr_assert_eq(resp.messages, 1);
	feed_str(&resp, "HTTP/1.1 204 No Content\r\n\r\n");
	cr_assert_eq(resp.messages, 2);
	cr_assert(h1f_between(&resp));
}

/* Pipelined requests are paired in order with their answers (the second
 * one is HEAD); more than H1F_PENDING unanswered ones cannot be. */
Test(h1frame, pipelining)
{
	struct h1f req, resp;
	int i;

	h1f_init(&req, H1F_REQUESTS);
	h1f_init(&resp, H1F_RESPONSES);
	h1f_pair(&resp, &req);
	feed_str(&req, GET "HEAD / HTTP/1.1\r\n\r\n" GET);
	cr_assert_eq(req.messages, 3);
	feed_str(&resp, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
	                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
	                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny");
	cr_assert_eq(resp.messages, 3, "%s", resp.why);
	cr_assert(h1f_between(&resp));

	for (i = 0; i < H1F_PENDING; i++)
		feed_str(&req, GET);
	cr_assert_not(req.lost);
	feed_str(&req, GET);
	cr_assert(req.lost);
	cr_assert_str_eq(req.why, "more pipelined requests than the framer can pair with their responses");
}

Test(h1frame, small)
{
	cr_assert_leq(sizeof(struct h1f), 512, "%zu bytes", sizeof(struct h1f));
}
