#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "front/writer.h"
#include "wire/capture.h"

struct batch {
	struct batch *next;
	unsigned n;
	void *item[WRITER_BATCH];
};

/* Items given back, to be released. */
struct given {
	void **item;
	size_t n, cap;
};

struct writer {
	void (*say)(void *ctx, void *item);
	void (*release)(void *ctx, void *item);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;            /* a batch was put, or the end came */
	pthread_cond_t said;            /* a batch was said */
	/* under lock */
	struct batch *todo, *todo_tail; /* put, in order */
	struct batch *done;             /* said, empty again */
	unsigned out;                   /* batches put and not yet said */
	struct given given;             /* items given back */
	bool closing;
	/* the putting thread's own */
	struct batch *cur;              /* being filled */
	struct batch *spare;            /* empty */
	struct given releasing;         /* taken from given, being released */
	struct batch batches[WRITER_BATCHES];
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	struct batch *b;
	unsigned i;

	pthread_mutex_lock(&wr->lock);
	for (;;) {
		while (!wr->todo && !wr->closing)
			pthread_cond_wait(&wr->work, &wr->lock);
		if (!(b = wr->todo))
			break;
		wr->todo = b->next;
		pthread_mutex_unlock(&wr->lock);
		for (i = 0; i < b->n; i++)
			wr->say(wr->ctx, b->item[i]);
		b->n = 0;
		pthread_mutex_lock(&wr->lock);
		b->next = wr->done;
		wr->done = b;
		wr->out--;
		pthread_cond_signal(&wr->said);
	}
	pthread_mutex_unlock(&wr->lock);
	return NULL;
}

void writer_release(struct writer *wr, void *item)
{
	struct given *g = &wr->given;

	pthread_mutex_lock(&wr->lock);
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 4 * WRITER_BATCH;
		void **grown = realloc(g->item, cap * sizeof(*grown));

		if (!grown) {
			/* no memory to hand it back: it stays unreleased (its
			 * memory is lost, its record was written) */
			pthread_mutex_unlock(&wr->lock);
			return;
		}
		g->item = grown;
		g->cap = cap;
	}
	g->item[g->n++] = item;
	pthread_mutex_unlock(&wr->lock);
}

/* Under lock: the items given back so far become the putting thread's,
 * to release once the lock is let go. */
static void take_given(struct writer *wr)
{
	struct given t = wr->releasing;

	wr->releasing = wr->given;
	t.n = 0;
	wr->given = t;
}

static void release_taken(struct writer *wr)
{
	for (size_t i = 0; i < wr->releasing.n; i++)
		wr->release(wr->ctx, wr->releasing.item[i]);
	wr->releasing.n = 0;
}

/* Under lock: the said batches back among the spares. */
static void take_done(struct writer *wr)
{
	struct batch *b, *next;

	for (b = wr->done; b; b = next) {
		next = b->next;
		b->next = wr->spare;
		wr->spare = b;
	}
	wr->done = NULL;
}

/* The batch being filled goes to the writer, and a spare one is had
 * (waiting for the writer when all are out). */
static void submit(struct writer *wr)
{
	pthread_mutex_lock(&wr->lock);
	wr->cur->next = NULL;
	if (wr->todo)
		wr->todo_tail->next = wr->cur;
	else
		wr->todo = wr->cur;
	wr->todo_tail = wr->cur;
	wr->cur = NULL;
	wr->out++;
	pthread_cond_signal(&wr->work);
	while (!wr->spare && !wr->done)
		pthread_cond_wait(&wr->said, &wr->lock);
	take_done(wr);
	take_given(wr);
	pthread_mutex_unlock(&wr->lock);
	release_taken(wr);
	wr->cur = wr->spare;
	wr->spare = wr->cur->next;
	wr->cur->next = NULL;
}

struct writer *writer_start(void (*say)(void *ctx, void *item), void (*release)(void *ctx, void *item), void *ctx)
{
	struct writer *wr;
	size_t i;

	if (capture_cpus() < 2 || !(wr = calloc(1, sizeof(*wr))))
		return NULL;
	wr->say = say;
	wr->release = release;
	wr->ctx = ctx;
	for (i = 1; i < WRITER_BATCHES; i++) {
		wr->batches[i].next = wr->spare;
		wr->spare = &wr->batches[i];
	}
	wr->cur = &wr->batches[0];
	pthread_mutex_init(&wr->lock, NULL);
	pthread_cond_init(&wr->work, NULL);
	pthread_cond_init(&wr->said, NULL);
	if (pthread_create(&wr->thread, NULL, writer_main, wr) != 0) {
		pthread_cond_destroy(&wr->said);
		pthread_cond_destroy(&wr->work);
		pthread_mutex_destroy(&wr->lock);
		free(wr);
		return NULL;
	}
	pthread_setname_np(wr->thread, "mtlsdiag-write");
	return wr;
}

void writer_put(struct writer *wr, void *item)
{
	wr->cur->item[wr->cur->n++] = item;
	if (wr->cur->n == WRITER_BATCH)
		submit(wr);
}

void writer_flush(struct writer *wr)
{
	if (!wr)
		return;
	if (wr->cur->n)
		submit(wr);
	pthread_mutex_lock(&wr->lock);
	while (wr->out)
		pthread_cond_wait(&wr->said, &wr->lock);
	take_done(wr);
	take_given(wr);
	pthread_mutex_unlock(&wr->lock);
	release_taken(wr);
}

void writer_finish(struct writer *wr)
{
	if (!wr)
		return;
	writer_flush(wr);
	pthread_mutex_lock(&wr->lock);
	wr->closing = true;
	pthread_cond_signal(&wr->work);
	pthread_mutex_unlock(&wr->lock);
	pthread_join(wr->thread, NULL);
	free(wr->given.item);
	free(wr->releasing.item);
	pthread_cond_destroy(&wr->said);
	pthread_cond_destroy(&wr->work);
	pthread_mutex_destroy(&wr->lock);
	free(wr);
}
