/* intercept_pool: idle connections to the real server, kept for the next
 * clients (--upstream-keepalive), as nginx's upstream keepalive and
 * HAProxy's connection reuse keep theirs.  A client's connection to the
 * server comes here at its teardown when the client left between two
 * exchanges (intercept_conn.c follows where each HTTP/1.x request and
 * response ends): the TLS session is established, nothing is buffered
 * either way, and the server said it would take another request.  The
 * next client forwarded under the same name takes the newest one instead
 * of a TCP connection and a TLS handshake of its own.
 *
 * A kept connection is closed when the server closes it or sends anything
 * (it owes no answer), after --upstream-keepalive-timeout, when more than
 * --upstream-keepalive would be kept (the oldest first), and at shutdown.
 * It is a worker's alone, as its connections are. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "front/intercept_int.h"

struct icpt_idle {
	struct icpt_idle *next;
	struct wlistener *wl;
	struct icpt_leg leg;             /* no connection's: leg.c is NULL */
	struct event *expire;
	char key[256];
};

const char *icpt_pool_key(SSL *client)
{
	const char *sni = client ? SSL_get_servername(client, TLSEXT_NAMETYPE_host_name) : NULL;

	return sni ? sni : "";
}

static unsigned limit_of(const struct wlistener *wl)
{
	return wl->l->icpt->cfg->upstream_keepalive;
}

/* Unlinks and closes one (a close_notify first, as a client ending its
 * session does). */
static void idle_close(struct icpt_idle *idle)
{
	struct wlistener *wl = idle->wl;
	struct icpt_idle **p;

	for (p = &wl->idle; *p; p = &(*p)->next)
		if (*p == idle) {
			*p = idle->next;
			wl->n_idle--;
			break;
		}
	if (idle->leg.ssl && !idle->leg.dead) {
		(void)SSL_shutdown(idle->leg.ssl);
		ERR_clear_error();
	}
	icpt_leg_free(&idle->leg);
	if (idle->expire)
		event_free(idle->expire);
	free(idle);
}

/* The server sent something, closed, or failed: nothing is owed on an
 * idle connection, so it is not to be used again. */
static void idle_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	idle_close(arg);
}

static void idle_event(struct bufferevent *bev, short what, void *arg)
{
	struct icpt_idle *idle = arg;

	(void)bev;
	(void)what;
	idle->leg.dead = true;   /* no close_notify into a closed connection */
	idle_close(idle);
}

static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	idle_close(arg);
}

/* The link to the newest idle connection kept under key (*link NULL:
 * none). */
static struct icpt_idle **find(struct icpt_idle **head, const char *key)
{
	struct icpt_idle **p = head;

	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

bool icpt_pool_has(struct wlistener *wl, const char *key)
{
	return *find(&wl->idle, key) != NULL;
}

int icpt_pool_take(struct wlistener *wl, const char *key, struct icpt_leg *leg)
{
	struct icpt_idle **p = find(&wl->idle, key), *idle = *p;

	if (!idle)
		return 0;
	*p = idle->next;
	wl->n_idle--;
	*leg = idle->leg;
	bufferevent_setcb(leg->bev, NULL, NULL, NULL, NULL);
	event_free(idle->expire);
	free(idle);
	return 1;
}

void icpt_pool_put(struct wlistener *wl, const char *key, struct icpt_leg *leg)
{
	struct icpt_idle *idle = limit_of(wl) ? calloc(1, sizeof(*idle)) : NULL;
	struct timeval after = { wl->l->icpt->cfg->upstream_keepalive_timeout_s, 0 };

	if (idle)
		idle->expire = evtimer_new(wl->w->base, idle_expired, idle);
	if (!idle || !idle->expire) {
		free(idle);
		icpt_leg_free(leg);
		return;
	}
	idle->wl = wl;
	idle->leg = *leg;
	memset(leg, 0, sizeof(*leg));
	idle->leg.c = NULL;
	snprintf(idle->key, sizeof(idle->key), "%s", key);
	icpt_ssl_forget(idle->leg.ssl);
	bufferevent_setcb(idle->leg.bev, idle_read, NULL, idle_event, idle);
	bufferevent_enable(idle->leg.bev, EV_READ);
	evtimer_add(idle->expire, &after);
	idle->next = wl->idle;
	wl->idle = idle;
	if (++wl->n_idle > limit_of(wl)) {
		struct icpt_idle *oldest = wl->idle;

		while (oldest->next)
			oldest = oldest->next;
		idle_close(oldest);
	}
}

void icpt_pool_close_all(struct wlistener *wl)
{
	while (wl->idle)
		idle_close(wl->idle);
}
