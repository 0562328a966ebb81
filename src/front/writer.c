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
	struct batch *done;             /* said, to be released */
	unsigned out;                   /* batches put and not yet said */
	bool closing;
	/* the deciding thread's own */
	struct batch *cur;              /* being filled */
	struct batch *spare;            /* empty */
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
		pthread_mutex_lock(&wr->lock);
		b->next = wr->done;
		wr->done = b;
		wr->out--;
		pthread_cond_signal(&wr->said);
	}
	pthread_mutex_unlock(&wr->lock);
	return NULL;
}

/* The said batches' items released, the batches kept as spares. */
static void release_batches(struct writer *wr, struct batch *b)
{
	struct batch *next;
	unsigned i;

	for (; b; b = next) {
		next = b->next;
		for (i = 0; i < b->n; i++)
			wr->release(wr->ctx, b->item[i]);
		b->n = 0;
		b->next = wr->spare;
		wr->spare = b;
	}
}

/* The batch being filled goes to the writer, and a spare one is had
 * (waiting for the writer when all are out). */
static void submit(struct writer *wr)
{
	struct batch *said;

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
	said = wr->done;
	wr->done = NULL;
	pthread_mutex_unlock(&wr->lock);
	release_batches(wr, said);
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
	struct batch *said;

	if (!wr)
		return;
	if (wr->cur->n)
		submit(wr);
	pthread_mutex_lock(&wr->lock);
	while (wr->out)
		pthread_cond_wait(&wr->said, &wr->lock);
	said = wr->done;
	wr->done = NULL;
	pthread_mutex_unlock(&wr->lock);
	release_batches(wr, said);
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
	pthread_cond_destroy(&wr->said);
	pthread_cond_destroy(&wr->work);
	pthread_mutex_destroy(&wr->lock);
	free(wr);
}
