/* metrics_http: the metrics over HTTP (metrics_http.h).  A scrape renders
 * every counter into memory (open_memstream) and answers at once: nothing
 * here blocks the loop it shares with the connections. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "front/metrics_http.h"
#include "front/netaddr.h"
#include "out/metrics.h"

struct metrics_http {
	struct evhttp *http;
	const struct metrics *m;
};

static void scrape_cb(struct evhttp_request *req, void *arg)
{
	struct metrics_http *h = arg;
	struct evbuffer *body = evhttp_request_get_output_buffer(req);
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	out = open_memstream(&text, &len);
	if (!out || metrics_render(h->m, out) != 0 || fclose(out) != 0) {
		if (out == NULL)
			evhttp_send_error(req, 500, "Out of memory");
		else
			evhttp_send_error(req, 500, "Metrics not rendered");
		free(text);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evbuffer_add(body, text, len);
	free(text);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void other_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "Not Found (the metrics are at /metrics)");
}

struct metrics_http *metrics_http_start(struct event_base *base, const char *addr, const struct metrics *m,
					char *err, size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	struct evconnlistener *l;
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (!h || !(h->http = evhttp_new(base))) {
		snprintf(err, errlen, "out of memory");
		goto Fail;
	}
	h->m = m;
	if (!netaddr_listen(addr, &ss, &sslen)) {
		snprintf(err, errlen, "expected ADDR:PORT with a numeric address and a port 1-65535 (127.0.0.1:9464, [::1]:9464)");
		goto Fail;
	}
	l = evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
				    64, (struct sockaddr *)&ss, (int)sslen);
	if (!l) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		goto Fail;
	}
	if (!evhttp_bind_listener(h->http, l)) {
		evconnlistener_free(l);
		snprintf(err, errlen, "out of memory");
		goto Fail;
	}
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					    EVHTTP_REQ_DELETE);
	evhttp_set_timeout(h->http, 10);
	evhttp_set_max_headers_size(h->http, 16384);
	evhttp_set_max_body_size(h->http, 0);
	if (evhttp_set_cb(h->http, "/metrics", scrape_cb, h) != 0) {
		snprintf(err, errlen, "out of memory");
		goto Fail;
	}
	evhttp_set_gencb(h->http, other_cb, h);
	return h;
Fail:
	metrics_http_free(h);
	return NULL;
}

void metrics_http_free(struct metrics_http *h)
{
	if (!h)
		return;
	if (h->http)
		evhttp_free(h->http);
	free(h);
}
