/* sourcecap: the per-source connection counts (see sourcecap.h). */
#include "config.h"

#include "front/sourcecap.h"
#include "wire/fnv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096   /* a power of two */

struct source {
	struct source *next;
	char ip[sizeof(((struct endpoint *)0)->ip)];
	unsigned open;
	uint64_t refused;            /* not reported yet */
	struct timeval first, last;  /* of those */
	struct timeval reported;     /* the last report (0: none yet) */
};

struct sourcecap {
	pthread_mutex_t lock;
	unsigned limit;
	struct source *bucket[BUCKETS];
};

struct sourcecap *sourcecap_new(unsigned limit)
{
	struct sourcecap *sc = calloc(1, sizeof(*sc));

	if (!sc)
		return NULL;
	pthread_mutex_init(&sc->lock, NULL);
	sc->limit = limit;
	return sc;
}

void sourcecap_free(struct sourcecap *sc)
{
	size_t i;

	if (!sc)
		return;
	for (i = 0; i < BUCKETS; i++) {
		while (sc->bucket[i]) {
			struct source *s = sc->bucket[i];

			sc->bucket[i] = s->next;
			free(s);
		}
	}
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* FNV-1a over the address as written. */
static size_t bucket_of(const char *ip)
{
	return fnv32(ip, strlen(ip)) & (BUCKETS - 1);
}

/* The address's entry, made if `make`; NULL otherwise (or out of memory). */
static struct source *find(struct sourcecap *sc, const char *ip, bool make)
{
	struct source **head = &sc->bucket[bucket_of(ip)], *s;

	for (s = *head; s; s = s->next)
		if (strcmp(s->ip, ip) == 0)
			return s;
	if (!make || !(s = calloc(1, sizeof(*s))))
		return NULL;
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->next = *head;
	*head = s;
	return s;
}

/* Moves what s has to report into r. */
static void take_report(struct source *s, const struct timeval *now, struct sourcecap_report *r)
{
	snprintf(r->ip, sizeof(r->ip), "%s", s->ip);
	r->refused = s->refused;
	r->open = s->open;
	r->first = s->first;
	r->last = s->last;
	s->refused = 0;
	s->reported = *now;
}

static bool report_due(const struct source *s, const struct timeval *now)
{
	return s->refused > 0 &&
	       (s->reported.tv_sec == 0 || now->tv_sec - s->reported.tv_sec >= SOURCECAP_REPORT_S);
}

bool sourcecap_take(struct sourcecap *sc, const char *ip, const struct timeval *now,
		    struct sourcecap_report *report)
{
	struct source *s;
	bool admitted = true;

	report->refused = 0;
	pthread_mutex_lock(&sc->lock);
	s = find(sc, ip, true);
	if (!s) {
		admitted = false;   /* out of memory: no room for it either */
	} else if (s->open < sc->limit) {
		s->open++;
	} else {
		admitted = false;
		if (s->refused++ == 0)
			s->first = *now;
		s->last = *now;
		if (report_due(s, now))
			take_report(s, now, report);
	}
	pthread_mutex_unlock(&sc->lock);
	return admitted;
}

void sourcecap_release(struct sourcecap *sc, const char *ip)
{
	struct source *s;

	pthread_mutex_lock(&sc->lock);
	s = find(sc, ip, false);
	if (s && s->open > 0)
		s->open--;
	pthread_mutex_unlock(&sc->lock);
}

size_t sourcecap_due(struct sourcecap *sc, const struct timeval *now, bool all, struct sourcecap_report *out,
		     size_t max)
{
	size_t n = 0, i;

	pthread_mutex_lock(&sc->lock);
	for (i = 0; i < BUCKETS && n < max; i++) {
		struct source **at = &sc->bucket[i];

		while (*at && n < max) {
			struct source *s = *at;

			if (s->refused > 0 && (all || report_due(s, now)))
				take_report(s, now, &out[n++]);
			/* forgotten once quiet for a whole report period: a
			 * source that comes back is reported at once again */
			if (s->open == 0 && s->refused == 0 &&
			    (all || now->tv_sec - s->reported.tv_sec >= SOURCECAP_REPORT_S)) {
				*at = s->next;
				free(s);
				continue;
			}
			at = &s->next;
		}
	}
	pthread_mutex_unlock(&sc->lock);
	return n;
}
