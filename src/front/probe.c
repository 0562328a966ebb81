/* probe: one active check against a server (see probe.h).  The socket is
 * wrapped in OpenSSL's socket BIO with a callback that hands every byte
 * read or written to the observer; the CONNECT exchange is fed the same
 * way by hand, and OpenSSL's key-log lines go to the observer's key log as
 * they are derived.  The proxy's answer and the HTTP response are
 * untrusted bytes, read through the cursor (and http1). */
#include "config.h"

#include "front/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "analysis/codes.h"
#include "analysis/verdict.h"
#include "wire/cursor.h"
#include "wire/http1.h"
#include "wire/http2.h"
#include "wire/keylog.h"
#include "front/netaddr.h"
#include "out/report.h"
#include "wire/x509info.h"

#define CONNECT_ANSWER_MAX 16384
#define HTTP_READ_MAX 16384
/* TLS 1.3: how long to wait after the handshake for a refusal (the server
 * sends its alert as soon as it has checked our flight) */
#define ALERT_GRACE_MS 1000

/* What the ClientHello offers in ALPN (RFC 7301). */
enum alpn_offer {
	ALPN_NONE,      /* no_http: whatever the server speaks, it is not read */
	ALPN_HTTP11,    /* the default: "http/1.1", then GET / */
	ALPN_H2,        /* the server refused http/1.1: does it speak HTTP/2? */
};

struct probe {
	const struct probe_options *opt;
	struct probe_result *r;
	int fd;
	long long deadline;              /* monotonic ms */
	bool timed_out;
	enum alpn_offer alpn;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(const struct probe *p)
{
	long long left = p->deadline - now_ms();

	return left > 0 ? (int)left : 0;
}

static void feed(struct probe *p, enum side from, const void *data, size_t n)
{
	struct timeval tv;

	if (!p->r->obs || n == 0)
		return;
	gettimeofday(&tv, NULL);
	ticket_tap_data(p->r->tap, from, data, n, &tv);
	obs_conn_feed(p->r->obs, from, data, n, &tv);
}

const char *probe_client_auth_name(enum probe_client_auth a)
{
	switch (a) {
	case PROBE_AUTH_NOT_REQUESTED: return "not_requested";
	case PROBE_AUTH_ACCEPTED: return "accepted";
	case PROBE_AUTH_REJECTED: return "rejected";
	case PROBE_AUTH_UNDETERMINED: return "undetermined";
	default: return "unknown";
	}
}

const char *probe_sigalg_name(uint16_t code)
{
	static const struct { uint16_t code; const char *name; } names[] = {
		{ 0x0201, "rsa_pkcs1_sha1" }, { 0x0202, "dsa_sha1" }, { 0x0203, "ecdsa_sha1" },
		{ 0x0302, "dsa_sha224" }, { 0x0402, "dsa_sha256" }, { 0x0502, "dsa_sha384" },
		{ 0x0602, "dsa_sha512" },
		{ 0x0301, "rsa_pkcs1_sha224" }, { 0x0303, "ecdsa_sha224" },
		{ 0x0401, "rsa_pkcs1_sha256" }, { 0x0403, "ecdsa_secp256r1_sha256" },
		{ 0x0501, "rsa_pkcs1_sha384" }, { 0x0503, "ecdsa_secp384r1_sha384" },
		{ 0x0601, "rsa_pkcs1_sha512" }, { 0x0603, "ecdsa_secp521r1_sha512" },
		{ 0x0804, "rsa_pss_rsae_sha256" }, { 0x0805, "rsa_pss_rsae_sha384" },
		{ 0x0806, "rsa_pss_rsae_sha512" }, { 0x0807, "ed25519" }, { 0x0808, "ed448" },
		{ 0x0809, "rsa_pss_pss_sha256" }, { 0x080a, "rsa_pss_pss_sha384" },
		{ 0x080b, "rsa_pss_pss_sha512" },
		{ 0x081a, "ecdsa_brainpoolP256r1tls13_sha256" },
		{ 0x081b, "ecdsa_brainpoolP384r1tls13_sha384" },
		{ 0x081c, "ecdsa_brainpoolP512r1tls13_sha512" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].code == code)
			return names[i].name;
	return NULL;
}

/* ---- TCP ---- */

/* Resolves with getaddrinfo_a so that a slow resolver cannot outlast the
 * deadline.  The request lives on the heap: one that cannot be cancelled
 * at the deadline is left to finish on its own (the program is about to
 * exit with the timeout), never waited for. */
struct resolve_req {
	struct gaicb cb;
	struct addrinfo hints;
	char name[256], service[8];
};

static struct addrinfo *resolve(struct probe *p, const char *host, uint16_t port)
{
	struct resolve_req *req = calloc(1, sizeof(*req));
	struct gaicb *list[1];
	struct addrinfo *res = NULL;
	int rc;

	if (!req) {
		snprintf(p->r->error, sizeof(p->r->error), "out of memory");
		return NULL;
	}
	snprintf(req->name, sizeof(req->name), "%s", host);
	snprintf(req->service, sizeof(req->service), "%u", port);
	req->hints.ai_socktype = SOCK_STREAM;
	req->hints.ai_flags = AI_ADDRCONFIG;
	req->cb.ar_name = req->name;
	req->cb.ar_service = req->service;
	req->cb.ar_request = &req->hints;
	list[0] = &req->cb;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0) {
		snprintf(p->r->error, sizeof(p->r->error), "cannot resolve %s: %s", host, gai_strerror(rc));
		free(req);
		return NULL;
	}
	while ((rc = gai_error(&req->cb)) == EAI_INPROGRESS) {
		const struct gaicb *const wait[1] = { &req->cb };
		int left = remaining(p);
		struct timespec ts = { left / 1000, (long)(left % 1000) * 1000000L };

		if (left == 0) {
			p->timed_out = true;
			snprintf(p->r->error, sizeof(p->r->error), "timed out after %u s resolving %s",
				 p->opt->timeout_ms / 1000, host);
			if (gai_cancel(&req->cb) == EAI_CANCELED) {
				if (req->cb.ar_result)
					freeaddrinfo(req->cb.ar_result);
				free(req);
			}
			return NULL;
		}
		(void)gai_suspend(wait, 1, &ts);
	}
	if (rc != 0)
		snprintf(p->r->error, sizeof(p->r->error), "cannot resolve %s: %s", host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	else
		res = req->cb.ar_result;
	free(req);
	return res;
}

static int tcp_connect(struct probe *p, const char *host, uint16_t port)
{
	struct addrinfo *ai = resolve(p, host, port), *a;
	char what[300], addr[64] = "";
	int fd = -1, err = 0;

	if (!ai)
		return -1;
	report_endpoint(what, sizeof(what), host, port);
	for (a = ai; a && fd < 0; a = a->ai_next) {
		struct endpoint e;
		int s = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		socklen_t len = sizeof(err);
		struct pollfd pfd;

		if (s < 0) {
			err = errno;
			continue;
		}
		netaddr_endpoint(a->ai_addr, &e);
		snprintf(addr, sizeof(addr), "%s", e.ip);
		if (connect(s, a->ai_addr, a->ai_addrlen) == 0) {
			fd = s;
			break;
		}
		if (errno != EINPROGRESS) {
			err = errno;
			close(s);
			continue;
		}
		pfd.fd = s;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, remaining(p)) <= 0) {
			close(s);
			freeaddrinfo(ai);
			p->timed_out = true;
			snprintf(p->r->error, sizeof(p->r->error), "timed out after %u s connecting to %s (%s)",
				 p->opt->timeout_ms / 1000, what, addr);
			return -1;
		}
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			close(s);
			continue;
		}
		fd = s;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(p->r->error, sizeof(p->r->error), "cannot connect to %s%s%s%s: %s", what,
			 addr[0] ? " (" : "", addr, addr[0] ? ")" : "", strerror(err ? err : ECONNREFUSED));
		return -1;
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
			netaddr_endpoint((struct sockaddr *)&ss, &p->r->local);
		len = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
			netaddr_endpoint((struct sockaddr *)&ss, &p->r->peer);
	}
	return fd;
}

/* Waits for the socket; 0 at the deadline. */
static int wait_fd(struct probe *p, short events)
{
	struct pollfd pfd = { .fd = p->fd, .events = events };
	int rc;

	do {
		rc = poll(&pfd, 1, remaining(p));
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		p->timed_out = true;
		return 0;
	}
	return 1;
}

static int write_all(struct probe *p, const char *data, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(p->fd, data + off, n - off, MSG_NOSIGNAL);

		if (w > 0) {
			off += (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(p, POLLOUT))
				return 0;
		} else {
			return 0;
		}
	}
	return 1;
}

/* A printable copy of a line from the network, for messages. */
static void printable(const struct cursor *line, char *out, size_t outlen)
{
	size_t i, o = 0;
	uint8_t b;

	for (i = 0; o + 1 < outlen && cursor_peek_u8(line, i, &b); i++)
		out[o++] = b >= 0x20 && b < 0x7f ? (char)b : '?';
	out[o] = '\0';
}

/* "HTTP/1.x NNN reason": the status, 0 when the line is not one. */
static int status_line(const struct cursor *line)
{
	struct cursor c = *line;
	uint8_t d[3], sp;
	int i, code = 0;

	if (!cursor_starts_with(&c, "HTTP/1.", 7, 0) || !cursor_skip(&c, 8) || !cursor_get_u8(&c, &sp) ||
	    sp != ' ')
		return 0;
	for (i = 0; i < 3; i++) {
		if (!cursor_get_u8(&c, &d[i]) || d[i] < '0' || d[i] > '9')
			return 0;
		code = code * 10 + (d[i] - '0');
	}
	if (cursor_len(&c) > 0 && (!cursor_get_u8(&c, &sp) || sp != ' '))
		return 0;
	return code;
}

/* The first line of buf (without CR LF). */
static void first_line(const uint8_t *buf, size_t len, struct cursor *line)
{
	struct cursor all;
	size_t at;

	cursor_init(&all, buf, len);
	if (!cursor_find(&all, "\n", 1, &at))
		at = len;
	if (!cursor_get_bytes(&all, line, at))
		cursor_init(line, buf, 0);
	if (cursor_len(line) > 0) {
		uint8_t last;

		if (cursor_peek_u8(line, cursor_len(line) - 1, &last) && last == '\r')
			cursor_init(line, cursor_data(line), cursor_len(line) - 1);
	}
}

/* CONNECT through the proxy; the exchange is fed to the observer as the
 * bytes a tap between us and the proxy would see.  The answer is read one
 * byte at a time so that nothing of the TLS stream is taken from the
 * socket. */
static int proxy_connect(struct probe *p)
{
	const struct probe_options *o = p->opt;
	char req[700], target[300], proxy[300], shown[200];
	uint8_t *ans = malloc(CONNECT_ANSWER_MAX);
	size_t n = 0;
	struct cursor all, line;
	int code, ret = 0;

	if (!ans) {
		snprintf(p->r->error, sizeof(p->r->error), "out of memory");
		return 0;
	}
	report_endpoint(target, sizeof(target), o->host, o->port);
	report_endpoint(proxy, sizeof(proxy), o->via_host, o->via_port);
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mtlsdiag-probe/%s\r\n\r\n",
		 target, target, PACKAGE_VERSION);
	if (!write_all(p, req, strlen(req))) {
		snprintf(p->r->error, sizeof(p->r->error), "proxy %s: cannot send CONNECT: %s", proxy,
			 p->timed_out ? "timed out" : strerror(errno));
		goto Exit;
	}
	feed(p, SIDE_CLIENT, req, strlen(req));
	for (;;) {
		size_t at;
		ssize_t got = recv(p->fd, ans + n, 1, 0);

		if (got == 1) {
			n++;
			cursor_init(&all, ans, n);
			if (n >= 4 && cursor_find(&all, "\r\n\r\n", 4, &at))
				break;
			if (n >= 2 && cursor_find(&all, "\n\n", 2, &at))
				break;
			if (n == CONNECT_ANSWER_MAX) {
				snprintf(p->r->error, sizeof(p->r->error),
					 "proxy %s: answer to CONNECT longer than %d bytes", proxy, CONNECT_ANSWER_MAX);
				goto Exit;
			}
			continue;
		}
		if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(p, POLLIN))
				continue;
			snprintf(p->r->error, sizeof(p->r->error),
				 "proxy %s: no answer to CONNECT %s within %u s", proxy, target, o->timeout_ms / 1000);
			goto Exit;
		}
		first_line(ans, n, &line);
		printable(&line, shown, sizeof(shown));
		snprintf(p->r->error, sizeof(p->r->error),
			 "proxy %s closed the connection %s CONNECT %s%s%s%s", proxy,
			 n ? "while answering" : "without answering", target, n ? " ('" : "", shown, n ? "')" : "");
		goto Exit;
	}
	feed(p, SIDE_SERVER, ans, n);
	first_line(ans, n, &line);
	printable(&line, p->r->proxy_status, sizeof(p->r->proxy_status));
	code = status_line(&line);
	if (code == 0) {
		snprintf(p->r->error, sizeof(p->r->error), "proxy %s: the answer to CONNECT is not HTTP: '%s'",
			 proxy, p->r->proxy_status);
		goto Exit;
	}
	if (code < 200 || code > 299) {
		snprintf(p->r->error, sizeof(p->r->error), "proxy %s refused CONNECT %s: %s", proxy, target,
			 p->r->proxy_status);
		goto Exit;
	}
	ret = 1;
Exit:
	free(ans);
	return ret;
}

/* ---- TLS ---- */

/* Every byte the TLS connection moves, to the observer. */
static long bio_tap(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
		    size_t *processed)
{
	struct probe *p = (struct probe *)BIO_get_callback_arg(b);

	(void)len;
	(void)argi;
	(void)argl;
	if (p && ret > 0 && processed && *processed > 0) {
		if (oper == (BIO_CB_READ | BIO_CB_RETURN))
			feed(p, SIDE_SERVER, argp, *processed);
		else if (oper == (BIO_CB_WRITE | BIO_CB_RETURN))
			feed(p, SIDE_CLIENT, argp, *processed);
	}
	return ret;
}

/* OpenSSL's decoded view of the handshake: which messages and alerts
 * passed (also the encrypted ones of TLS 1.3). */
static void msg_seen(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
		     void *arg)
{
	struct probe *p = SSL_get_app_data(ssl);
	struct cursor c;
	uint8_t type, level, desc;

	(void)version;
	(void)arg;
	if (!p)
		return;
	cursor_init(&c, buf, len);
	if (content_type == SSL3_RT_HANDSHAKE && cursor_get_u8(&c, &type)) {
		if (!write_p && type == SSL3_MT_CERTIFICATE_REQUEST)
			p->r->cert_requested = true;
		if (write_p && type == SSL3_MT_CERTIFICATE) {
			struct cursor body, ctx, list;
			uint32_t blen;

			/* TLS 1.3 puts a request context before the list */
			if (cursor_get_u24(&c, &blen) && cursor_get_bytes(&c, &body, blen)) {
				if (SSL_version(ssl) >= TLS1_3_VERSION && !cursor_get_u8_prefixed(&body, &ctx))
					return;
				if (cursor_get_u24_prefixed(&body, &list))
					p->r->cert_sent = cursor_len(&list) > 0;
			}
		}
	} else if (content_type == SSL3_RT_ALERT && cursor_get_u8(&c, &level) && cursor_get_u8(&c, &desc)) {
		if (write_p) {
			if (p->r->alert_sent < 0)
				p->r->alert_sent = desc;
		} else if (p->r->alert_received < 0 && desc != SSL3_AD_CLOSE_NOTIFY) {
			p->r->alert_received = desc;
		}
	}
}

/* OpenSSL's NSS key-log lines (SSL_CTX_set_keylog_callback), each as it
 * derives the secret: into the observer's key log.  The record that
 * brought the secret (the ServerHello) has been fed already; the
 * observer holds protected records it had no key for (keylog_wait) and
 * opens them now. */
static void keylog_line(const SSL *ssl, const char *line)
{
	struct probe *p = SSL_get_app_data(ssl);

	if (!p || !p->r->keylog)
		return;
	if (keylog_add_text(p->r->keylog, "probe", (const uint8_t *)line, strlen(line)) > 0 && p->r->obs)
		obs_conn_retry_keys(p->r->obs);
}

static void collect_request(SSL *ssl, struct probe_result *r)
{
	const STACK_OF(X509_NAME) *names = SSL_get0_peer_CA_list(ssl);
	int i, n;

	if (!names || sk_X509_NAME_num(names) == 0)
		names = SSL_get_client_CA_list(ssl);
	if (names && !r->ca_list)
		r->ca_list = SSL_dup_CA_list(names);
	for (i = 0; names && i < sk_X509_NAME_num(names) && r->n_ca_names < FACTS_MAX_CA_NAMES; i++)
		x509info_name(sk_X509_NAME_value(names, i), r->ca_names[r->n_ca_names++], sizeof(r->ca_names[0]));
	n = SSL_get_sigalgs(ssl, -1, NULL, NULL, NULL, NULL, NULL);
	for (i = 0; i < n && r->n_sigalgs < PROBE_MAX_SIGALGS; i++) {
		unsigned char rsig = 0, rhash = 0;
		const char *name;
		uint16_t code;

		SSL_get_sigalgs(ssl, i, NULL, NULL, NULL, &rsig, &rhash);
		code = (uint16_t)((rhash << 8) | rsig);
		name = probe_sigalg_name(code);
		if (name)
			snprintf(r->sigalgs[r->n_sigalgs++], sizeof(r->sigalgs[0]), "%s", name);
		else
			snprintf(r->sigalgs[r->n_sigalgs++], sizeof(r->sigalgs[0]), "0x%04x", code);
	}
}

static void collect_chain(SSL *ssl, const struct probe_options *o, struct probe_result *r)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	int i, n = chain ? sk_X509_num(chain) : 0;

	if (n <= 0 || !(r->chain = calloc((size_t)n, sizeof(*r->chain))))
		return;
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		struct inspect_match m;

		x509info_summarize(x, &r->chain[r->n_chain]);
		if (o->cat && inspect_match_cert(o->cat, x, (size_t)i, &m) &&
		    (!r->interception.rule || m.rule->strength > r->interception.rule->strength))
			r->interception = m;
		r->n_chain++;
	}
}

/* Drives one SSL call to completion or the deadline: 1 done, 0 failed
 * (SSL error), -1 timed out. */
static int ssl_step(struct probe *p, SSL *ssl, int (*op)(SSL *, void *, int), void *buf, int len, int *out)
{
	for (;;) {
		int rc = op(ssl, buf, len), e;

		if (rc > 0) {
			if (out)
				*out = rc;
			return 1;
		}
		e = SSL_get_error(ssl, rc);
		if (e == SSL_ERROR_WANT_READ) {
			if (!wait_fd(p, POLLIN))
				return -1;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			if (!wait_fd(p, POLLOUT))
				return -1;
		} else {
			if (out)
				*out = e;
			return 0;
		}
	}
}

static int op_connect(SSL *ssl, void *buf, int len)
{
	(void)buf;
	(void)len;
	return SSL_connect(ssl);
}

static int op_read(SSL *ssl, void *buf, int len)
{
	return SSL_read(ssl, buf, len);
}

static int op_write(SSL *ssl, void *buf, int len)
{
	return SSL_write(ssl, buf, len);
}

/* Why the last SSL call failed, one line. */
static void ssl_failure(struct probe *p, SSL *ssl, int e, char *out, size_t outlen)
{
	unsigned long err = ERR_peek_last_error();
	char buf[256] = "";

	if (p->r->alert_received >= 0) {
		const char *name = tls_alert_name(p->r->alert_received);

		snprintf(out, outlen, "the server sent alert %s (%d)", name ? name : "unassigned",
			 p->r->alert_received);
	} else if (err) {
		ERR_error_string_n(err, buf, sizeof(buf));
		snprintf(out, outlen, "%s", ERR_reason_error_string(err) ? ERR_reason_error_string(err) : buf);
	} else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
		snprintf(out, outlen, "the server closed the connection%s", errno == ECONNRESET ? " (reset)" : "");
		p->r->server_closed = true;
	} else {
		snprintf(out, outlen, "TLS error %d", e);
	}
	(void)ssl;
	ERR_clear_error();
}

/* The bytes read after GET / are HTTP/2 frames (http2.h). */
static bool answered_h2(const uint8_t *buf, size_t n)
{
	struct cursor c;

	cursor_init(&c, buf, n);
	return http2_server_preface(&c);
}

/* nginx says why it refused a certificate only in its error page's title
 * ("400 No required SSL certificate was sent"). */
static void nginx_reason(struct probe_result *r)
{
	static const char *const texts[] = { "No required SSL certificate was sent", "The SSL certificate error" };
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (strstr(r->http_title, texts[i]))
			snprintf(r->http_nginx, sizeof(r->http_nginx), "%s", texts[i]);
}

/* What the bytes read after GET / are: the first response's status and
 * title, or why there is none (r->http_error). */
static void take_answer(struct probe *p, const uint8_t *buf, size_t n, enum http1_result hr,
			const struct http1_response *resp, bool timed_out)
{
	struct probe_result *r = p->r;
	struct cursor line;
	char shown[80];

	if (hr == HTTP1_DONE) {
		r->http_status = resp->status;
		first_line(buf, n, &line);
		printable(&line, r->http_status_line, sizeof(r->http_status_line));
		snprintf(r->http_title, sizeof(r->http_title), "%s", resp->title);
		nginx_reason(r);
	} else if (!n && r->alert_received >= 0) {
		/* the alert is the server's answer */
	} else if (n && answered_h2(buf, n)) {
		r->h2_only = true;
		snprintf(r->http_error, sizeof(r->http_error),
			 "the server answered GET / with HTTP/2 frames: it speaks HTTP/2 only, and its answer, where a server like nginx refuses a certificate, is not read");
	} else if (n) {
		first_line(buf, n, &line);
		printable(&line, shown, sizeof(shown));
		snprintf(r->http_error, sizeof(r->http_error),
			 "the server's answer to GET / is not HTTP/1.x ('%s'); for a server that does not speak HTTP, use --no-http",
			 shown);
	} else if (!r->http_sent) {
		snprintf(r->http_error, sizeof(r->http_error),
			 "GET / could not be sent after the handshake: the server had closed the connection");
	} else if (timed_out) {
		snprintf(r->http_error, sizeof(r->http_error), "no answer to GET / within the probe's %u s",
			 p->opt->timeout_ms / 1000);
	} else {
		snprintf(r->http_error, sizeof(r->http_error),
			 "the server closed the connection without answering GET /");
	}
}

/* After the handshake: GET / and the first HTTP answer when the server
 * chose http/1.1 or no protocol at all (nginx completes the handshake and
 * refuses a certificate in that answer, 400); otherwise, under TLS 1.3, a
 * short read for the alert a refusing server sends once it has checked
 * our certificate flight. */
static void after_handshake(struct probe *p, SSL *ssl)
{
	const struct probe_options *o = p->opt;
	struct probe_result *r = p->r;
	uint8_t *buf = malloc(HTTP_READ_MAX);
	struct http1_response resp;
	enum http1_result hr = HTTP1_MORE;
	struct cursor all;
	size_t n = 0;
	int got = 0, rc;
	long long saved = p->deadline;
	bool http = p->alpn != ALPN_NONE && (!r->alpn[0] || strcmp(r->alpn, "http/1.1") == 0);
	bool timed_out = false;

	if (!buf) {
		snprintf(r->http_error, sizeof(r->http_error), "out of memory");
		return;
	}
	if (http) {
		char req[600], host[300];

		report_endpoint(host, sizeof(host), o->sni ? o->sni : o->host, o->port);
		snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: mtlsdiag-probe/%s\r\n"
			 "Accept: */*\r\nConnection: close\r\n\r\n", host, PACKAGE_VERSION);
		rc = ssl_step(p, ssl, op_write, req, (int)strlen(req), &got);
		r->http_sent = rc == 1;
		/* sent or not, a refusing server's alert may be waiting */
		ERR_clear_error();
	} else if (SSL_version(ssl) >= TLS1_3_VERSION) {
		long long grace = now_ms() + ALERT_GRACE_MS;

		if (grace < p->deadline)
			p->deadline = grace;
	} else {
		goto Exit;
	}
	while (n < HTTP_READ_MAX) {
		rc = ssl_step(p, ssl, op_read, buf + n, (int)(HTTP_READ_MAX - n), &got);
		if (rc != 1) {
			timed_out = rc < 0;
			if (rc == 0 && (got == SSL_ERROR_ZERO_RETURN || got == SSL_ERROR_SYSCALL))
				r->server_closed = true;
			if (rc == 0 && r->alert_received >= 0)
				ssl_failure(p, ssl, got, r->handshake_error, sizeof(r->handshake_error));
			ERR_clear_error();
			break;
		}
		n += (size_t)got;
		if (!http)
			continue;
		cursor_init(&all, buf, n);
		if ((hr = http1_response(&all, false, &resp)) != HTTP1_MORE)
			break;
	}
	if (http) {
		if (n && hr == HTTP1_MORE) {
			/* closed, timed out or full: decide on what came */
			cursor_init(&all, buf, n);
			hr = http1_response(&all, true, &resp);
		}
		take_answer(p, buf, n, hr, &resp, timed_out);
	}
Exit:
	p->deadline = saved;
	p->timed_out = false;   /* the wait for the answer (or the grace period) ended: that is the answer */
	free(buf);
}

static void collect_alpn(SSL *ssl, struct probe_result *r)
{
	const unsigned char *proto = NULL;
	unsigned int len = 0;
	struct cursor c;

	SSL_get0_alpn_selected(ssl, &proto, &len);
	cursor_init(&c, proto, proto ? len : 0);
	printable(&c, r->alpn, sizeof(r->alpn));
}

/* What the server made of the certificate (or of its absence), from what
 * the probe saw as the client. */
static void decide_auth(struct probe *p)
{
	struct probe_result *r = p->r;

	if (!r->cert_requested) {
		/* a failure before any request is not about client certificates;
		 * nginx's words on a session that never asked are a refusal
		 * behind a middlebox that terminated TLS and sent none */
		r->client_auth = !r->handshake_ok ? PROBE_AUTH_UNKNOWN
				 : r->http_nginx[0] ? PROBE_AUTH_REJECTED : PROBE_AUTH_NOT_REQUESTED;
	} else if (!r->handshake_ok || r->alert_received >= 0) {
		r->client_auth = PROBE_AUTH_REJECTED;
	} else if (r->http_status) {
		/* read as the verdict rules read it */
		r->client_auth = verdict_http_refusal(r->http_status, r->http_title) ? PROBE_AUTH_REJECTED
										      : PROBE_AUTH_ACCEPTED;
	} else if (p->alpn == ALPN_NONE && r->tls_version < TLS1_3_VERSION) {
		/* below 1.3 the server sends its Finished after it has checked our
		 * Certificate: completing is accepting it (a refusal in the
		 * server's own protocol is what no_http gives up on) */
		r->client_auth = PROBE_AUTH_ACCEPTED;
	} else {
		r->client_auth = PROBE_AUTH_UNDETERMINED;
		if (p->alpn == ALPN_NONE)
			snprintf(r->undetermined, sizeof(r->undetermined),
				 "TLS 1.3 with --no-http: no alert within %d s of the handshake, but a TLS 1.3 server checks the client's certificate after the client has finished, and may refuse in its own protocol, which is not read",
				 ALERT_GRACE_MS / 1000);
		else if (p->alpn == ALPN_H2)
			snprintf(r->undetermined, sizeof(r->undetermined),
				 "the server speaks HTTP/2 only (it refused ALPN http/1.1 with no_application_protocol and chose h2): its first answer, where a server like nginx refuses a certificate, is HTTP/2, which the probe does not read");
		else if (r->http_error[0])
			snprintf(r->undetermined, sizeof(r->undetermined), "%s", r->http_error);
		else
			snprintf(r->undetermined, sizeof(r->undetermined),
				 "the server chose ALPN '%s', not http/1.1: its answer is not read", r->alpn);
	}
}

/* The record says what the probe found.  The observer decided from the
 * bytes with the session's own keys (and, as the client, offers no key
 * log advice); where the probe knows more it overrules: it could not tell
 * (no answer to read), or, with --no-http below TLS 1.3, the server's
 * Finished after our Certificate is the acceptance there is to see. */
static void correct_record(struct probe *p)
{
	struct probe_result *r = p->r;
	char own[VERDICT_EVIDENCE_LEN];
	struct verdict *v;

	if (!r->obs || !r->verdict)
		return;
	v = obs_conn_verdict_for_update(r->obs);
	if (r->client_auth == PROBE_AUTH_UNDETERMINED) {
		/* what was decrypted held no answer to read */
		verdict_overrule(v, V_UNDETERMINED, F_UNKNOWN,
				 obs_conn_facts(r->obs)->keylog == KEYLOG_DECRYPTED ? B_DECRYPTED : B_OBSERVED,
				 r->undetermined);
	} else if (r->client_auth == PROBE_AUTH_ACCEPTED && p->alpn == ALPN_NONE && !r->http_status) {
		snprintf(own, sizeof(own),
			 "the server sent its Finished after the client's %sCertificate: its TLS layer accepted %s (--no-http: a refusal in the server's own protocol is not looked for)",
			 r->cert_sent ? "" : "empty ", r->cert_sent ? "the certificate" : "no certificate");
		verdict_overrule(v, r->cert_sent ? V_CLIENT_CERT_ACCEPTED : V_NO_CERT_ACCEPTED, F_NONE, B_OBSERVED, own);
	}
}

static bool is_numeric_host(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static void tls(struct probe *p)
{
	const struct probe_options *o = p->opt;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	BIO *bio = NULL;
	int rc, e = 0, i;

	if (!ctx) {
		snprintf(p->r->error, sizeof(p->r->error), "cannot create a TLS context");
		return;
	}
	SSL_CTX_set_min_proto_version(ctx, o->tls_version);
	SSL_CTX_set_max_proto_version(ctx, o->tls_version);
	/* the probe reports the server's chain; it does not judge it */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_msg_callback(ctx, msg_seen);
	SSL_CTX_set_keylog_callback(ctx, keylog_line);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* (SSL_CTX_set_alpn_protos returns 0 on success) */
	if ((p->alpn == ALPN_HTTP11 && SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) ||
	    (p->alpn == ALPN_H2 && SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0)) {
		snprintf(p->r->error, sizeof(p->r->error), "out of memory");
		goto Exit;
	}
	if (o->cert && o->key) {
		if (SSL_CTX_use_certificate(ctx, o->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, o->key) != 1) {
			snprintf(p->r->error, sizeof(p->r->error), "the client certificate cannot be used: %s",
				 ERR_reason_error_string(ERR_peek_last_error()));
			goto Exit;
		}
		for (i = 0; o->chain && i < sk_X509_num(o->chain); i++)
			SSL_CTX_add1_chain_cert(ctx, sk_X509_value(o->chain, i));
		p->r->cert_offered = true;
	}
	if (!(ssl = SSL_new(ctx)) || !(bio = BIO_new_socket(p->fd, BIO_NOCLOSE))) {
		snprintf(p->r->error, sizeof(p->r->error), "out of memory");
		BIO_free(bio);
		goto Exit;
	}
	BIO_set_callback_ex(bio, bio_tap);
	BIO_set_callback_arg(bio, (char *)p);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_app_data(ssl, p);
	if (o->sni)
		SSL_set_tlsext_host_name(ssl, o->sni);
	else if (!is_numeric_host(o->host))
		SSL_set_tlsext_host_name(ssl, o->host);
	p->r->ran = true;
	rc = ssl_step(p, ssl, op_connect, NULL, 0, &e);
	if (rc == 1) {
		p->r->handshake_ok = true;
		p->r->tls_version = SSL_version(ssl);
		snprintf(p->r->cipher, sizeof(p->r->cipher), "%s", SSL_get_cipher_name(ssl));
		collect_request(ssl, p->r);
		collect_chain(ssl, o, p->r);
		collect_alpn(ssl, p->r);
		after_handshake(p, ssl);
	} else {
		if (rc < 0) {
			/* no TLS answer at all: the probe could not run */
			char where[300];

			report_endpoint(where, sizeof(where), o->host, o->port);
			snprintf(p->r->error, sizeof(p->r->error),
				 "timed out after %u s waiting for %s to answer the TLS handshake%s",
				 o->timeout_ms / 1000, where, o->via_host ? " (through the proxy)" : "");
			snprintf(p->r->handshake_error, sizeof(p->r->handshake_error), "%s", p->r->error);
			p->r->ran = false;
			goto Exit;
		}
		ssl_failure(p, ssl, e, p->r->handshake_error, sizeof(p->r->handshake_error));
		collect_request(ssl, p->r);
		collect_chain(ssl, o, p->r);
		collect_alpn(ssl, p->r);
	}
	if (p->r->handshake_ok && !p->r->server_closed && p->r->alert_received < 0) {
		/* close_notify, fed like the rest; a failure here changes nothing */
		(void)SSL_shutdown(ssl);
	}
	ERR_clear_error();
Exit:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void result_init(struct probe_result *r)
{
	memset(r, 0, sizeof(*r));
	r->alert_received = r->alert_sent = -1;
}

/* One connection: TCP (and CONNECT through the proxy), TLS offering
 * p->alpn, the answer.  Its bytes and secrets go to a new observer,
 * finished here. */
static void attempt(struct probe *p)
{
	const struct probe_options *opt = p->opt;
	struct probe_result *out = p->r;
	struct observer_config cfg = *opt->ocfg;
	struct timeval tv;

	cfg.endpoint = true;

	if (opt->via_host)
		p->fd = tcp_connect(p, opt->via_host, opt->via_port);
	else
		p->fd = tcp_connect(p, opt->host, opt->port);
	if (p->fd < 0)
		return;
	/* the session's own secrets: the observer opens every record, and
	 * holds those whose secret OpenSSL has not logged yet */
	if (!(out->keylog = keylog_new(NULL, NULL))) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		goto Exit;
	}
	cfg.keylog = out->keylog;
	cfg.keylog_wait = true;
	gettimeofday(&tv, NULL);
	out->obs = obs_conn_new(&cfg, &out->local, &out->peer, &tv, true);
	if (!out->obs) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		goto Exit;
	}
	if (opt->keep_bytes)
		out->tap = ticket_tap_new();   /* NULL: its folder goes without handshake.pcap */
	if (opt->via_host && !proxy_connect(p))
		goto Exit;
	tls(p);
Exit:
	gettimeofday(&tv, NULL);
	if (out->obs) {
		if (out->server_closed) {
			ticket_tap_close(out->tap, SIDE_SERVER, CLOSE_FIN, &tv);
			obs_conn_close(out->obs, SIDE_SERVER, CLOSE_FIN, &tv);
		}
		ticket_tap_close(out->tap, SIDE_CLIENT, CLOSE_FIN, &tv);
		obs_conn_close(out->obs, SIDE_CLIENT, CLOSE_FIN, &tv);
		out->verdict = obs_conn_finish(out->obs, false, &tv);
	}
	close(p->fd);
	p->fd = -1;
}

/* The server refused ALPN http/1.1 (no_application_protocol, RFC 7301
 * 3.2): a second connection offering h2 tells whether it speaks HTTP/2
 * only.  If it does, that connection, which gets past the handshake, is
 * the probe's. */
static void confirm_h2(struct probe *p)
{
	struct probe_result *second = malloc(sizeof(*second));
	struct probe q = *p;

	if (!second)
		return;
	result_init(second);
	q.r = second;
	q.alpn = ALPN_H2;
	attempt(&q);
	if (second->ran && strcmp(second->alpn, "h2") == 0) {
		second->h2_only = true;
		probe_result_clear(p->r);
		*p->r = *second;
		p->alpn = ALPN_H2;
	} else {
		snprintf(p->r->handshake_error, sizeof(p->r->handshake_error),
			 "the server sent alert no_application_protocol (120) to ALPN http/1.1%s (--no-http probes without ALPN)",
			 second->ran && second->alert_received == SSL_AD_NO_APPLICATION_PROTOCOL
			 ? ", and again to h2: it speaks no HTTP" : "");
		probe_result_clear(second);
	}
	free(second);
}

void probe_run(const struct probe_options *opt, struct probe_result *out)
{
	struct probe p = { .opt = opt, .r = out, .fd = -1, .alpn = opt->no_http ? ALPN_NONE : ALPN_HTTP11 };

	result_init(out);
	p.deadline = now_ms() + (opt->timeout_ms ? opt->timeout_ms : 10000);
	attempt(&p);
	if (p.alpn == ALPN_HTTP11 && out->ran && !out->handshake_ok &&
	    out->alert_received == SSL_AD_NO_APPLICATION_PROTOCOL)
		confirm_h2(&p);
	if (out->ran) {
		decide_auth(&p);
		correct_record(&p);
	}
}

void probe_result_clear(struct probe_result *r)
{
	if (r->obs)
		obs_conn_free(r->obs);
	keylog_free(r->keylog);
	ticket_tap_free(r->tap);
	r->tap = NULL;
	r->obs = NULL;
	r->verdict = NULL;
	r->keylog = NULL;
	free(r->chain);
	r->chain = NULL;
	sk_X509_NAME_pop_free(r->ca_list, X509_NAME_free);
	r->ca_list = NULL;
	r->n_chain = 0;
}

/* ---- direct against via ---- */

static void diff_add(struct probe_diff *d, const char *what, const char *direct, const char *via)
{
	if (d->n < PROBE_MAX_DIFFS)
		snprintf(d->lines[d->n++], sizeof(d->lines[0]), "%s: direct %s, via proxy %s", what, direct, via);
}

static void ca_list_text(char *buf, size_t len, const struct probe_result *r)
{
	size_t used = (size_t)snprintf(buf, len, "[");
	size_t i;

	for (i = 0; i < r->n_ca_names && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "; " : "", r->ca_names[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

static const char *version_text(int v)
{
	return v == TLS1_3_VERSION ? "1.3" : v == TLS1_2_VERSION ? "1.2" : "?";
}

int probe_compare(const struct probe_result *a, const struct probe_result *b, struct probe_diff *d)
{
	char x[1200], y[1200];
	bool same;
	size_t i;

	memset(d, 0, sizeof(*d));
	if (!a->ran || !b->ran)
		return 0;
	if (a->handshake_ok != b->handshake_ok)
		diff_add(d, "handshake", a->handshake_ok ? "completed" : a->handshake_error,
			 b->handshake_ok ? "completed" : b->handshake_error);
	if (a->tls_version && b->tls_version && a->tls_version != b->tls_version)
		diff_add(d, "TLS version", version_text(a->tls_version), version_text(b->tls_version));
	if (a->n_chain && b->n_chain && strcmp(a->chain[0].sha256, b->chain[0].sha256) != 0) {
		d->intercepted = true;
		if (strcmp(a->chain[0].issuer, b->chain[0].issuer) != 0)
			diff_add(d, "server certificate issuer", a->chain[0].issuer, b->chain[0].issuer);
		else
			diff_add(d, "server certificate (sha256)", a->chain[0].sha256, b->chain[0].sha256);
	}
	if (a->cert_requested != b->cert_requested)
		diff_add(d, "client certificate requested", a->cert_requested ? "yes" : "no",
			 b->cert_requested ? "yes" : "no");
	same = a->n_ca_names == b->n_ca_names;
	for (i = 0; same && i < a->n_ca_names; i++)
		same = strcmp(a->ca_names[i], b->ca_names[i]) == 0;
	if (!same) {
		ca_list_text(x, sizeof(x), a);
		ca_list_text(y, sizeof(y), b);
		diff_add(d, "acceptable CAs", x, y);
	}
	if (!!a->interception.rule != !!b->interception.rule ||
	    (a->interception.rule && a->interception.rule != b->interception.rule)) {
		if (a->interception.rule)
			inspect_describe(&a->interception, x, sizeof(x));
		if (b->interception.rule)
			inspect_describe(&b->interception, y, sizeof(y));
		diff_add(d, "inspection CA", a->interception.rule ? x : "none", b->interception.rule ? y : "none");
	}
	if (a->client_auth != b->client_auth)
		diff_add(d, "client certificate", probe_client_auth_name(a->client_auth),
			 probe_client_auth_name(b->client_auth));
	return 1;
}
