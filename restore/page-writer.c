// SPDX-License-Identifier: MIT
/*
 * The page writer: a plain restore's PAGE_DATA written into guest memory by
 * a thread of its own, so the receive thread goes back to the socket while
 * the last batch is written. A migration's receiver is its limit on a host
 * that also runs the sender (two cores here), and writing the pages into the
 * pool with their P2M work was a fifth of its time. The body stays in the
 * decoder's buffer, which the writer keeps until it is written and the
 * decoder swaps for a free one (strm_dec_swap_body): nothing is copied.
 * One thread takes the batches in the stream's order; every other record
 * waits until all are written (rst_pagew_drain), so a later record never
 * sees guest memory that is not yet what the stream said before it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "internal.h"

/* Batches in flight: a batch is 1 MiB (MIG_BATCH_PAGES) from Ferry. */
#define PAGEW_QUEUE 4

struct batch {
	void *buf; /* the body's buffer, kept until written */
	size_t cap;
	const uint64_t *pfns;
	const uint8_t *data;
	uint32_t count;
	uint64_t offset;
};

struct rst_pagew {
	struct rst *r;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a batch queued, or stop */
	pthread_cond_t done; /* a batch written */
	struct batch q[PAGEW_QUEUE];
	unsigned head, n; /* ring of queued batches, the first being written */
	/* buffers written out, for the decoder's next bodies */
	void *spare[PAGEW_QUEUE + 1];
	size_t spare_cap[PAGEW_QUEUE + 1];
	unsigned nspare;
	bool stop;
	int err; /* the first failed write; the batches after it are dropped */
	char msg[256];
};

/* Keeps buf for a later body, or frees it. Under the lock. */
static void put_spare(struct rst_pagew *w, void *buf, size_t cap)
{
	if (w->nspare < PAGEW_QUEUE + 1) {
		w->spare[w->nspare] = buf;
		w->spare_cap[w->nspare++] = cap;
	} else {
		free(buf);
	}
}

static void *writer_main(void *arg)
{
	struct rst_pagew *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct batch b;
		char msg[sizeof(w->msg)];
		int err = 0;

		while (!w->n && !w->stop)
			pthread_cond_wait(&w->work, &w->lock);
		if (!w->n)
			break;
		b = w->q[w->head];
		if (!w->err) {
			pthread_mutex_unlock(&w->lock);
			err = rst_apply_pages(w->r, b.pfns, b.data, b.count, b.offset, msg,
					      sizeof(msg));
			pthread_mutex_lock(&w->lock);
			if (err && !w->err) {
				w->err = err;
				snprintf(w->msg, sizeof(w->msg), "%s", msg);
			}
		}
		put_spare(w, b.buf, b.cap);
		w->head = (w->head + 1) % PAGEW_QUEUE;
		w->n--;
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int rst_pagew_new(struct rst *r, struct rst_pagew **out)
{
	struct rst_pagew *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->r = r;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	err = -pthread_create(&w->th, NULL, writer_main, w);
	if (err) {
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return err;
	}
	*out = w;
	return 0;
}

int rst_pagew_submit(struct rst_pagew *w, struct strm_dec *dec, const struct strm_rec *rec)
{
	void *fresh = NULL, *taken;
	size_t fresh_cap = 0, taken_cap;
	int err;

	pthread_mutex_lock(&w->lock);
	while (w->n == PAGEW_QUEUE && !w->err)
		pthread_cond_wait(&w->done, &w->lock);
	err = w->err;
	if (err)
		goto out;
	if (w->nspare) {
		fresh = w->spare[--w->nspare];
		fresh_cap = w->spare_cap[w->nspare];
	}
	if (strm_dec_swap_body(dec, rec, fresh, fresh_cap, &taken, &taken_cap)) {
		if (fresh)
			put_spare(w, fresh, fresh_cap);
		err = 0; /* the body is not the decoder's: the caller writes it */
		goto out;
	}
	w->q[(w->head + w->n) % PAGEW_QUEUE] = (struct batch){
		.buf = taken,
		.cap = taken_cap,
		/* Same offsets in the buffer now ours. */
		.pfns = rec->page_pfns,
		.data = rec->page_data,
		.count = rec->page_count,
		.offset = rec->offset,
	};
	w->n++;
	pthread_cond_signal(&w->work);
	err = 1;
out:
	pthread_mutex_unlock(&w->lock);
	return err;
}

int rst_pagew_on_pages(struct rst *r, const struct strm_rec *rec, bool *queued)
{
	int rc;

	if (queued)
		*queued = false;
	if (!r->pw)
		return rst_on_pages(r, rec);
	rc = rst_pagew_submit(r->pw, r->dec, rec);
	if (rc == 1 && queued)
		*queued = true;
	if (!rc)
		rc = rst_pagew_drain(r->pw) ?: rst_on_pages(r, rec);
	return rc < 0 ? rst_fail(r, rc, "%s", rst_pagew_error(r->pw)) : 0;
}

int rst_pagew_drain(struct rst_pagew *w)
{
	int err;

	pthread_mutex_lock(&w->lock);
	while (w->n)
		pthread_cond_wait(&w->done, &w->lock);
	err = w->err;
	pthread_mutex_unlock(&w->lock);
	return err;
}

const char *rst_pagew_error(const struct rst_pagew *w)
{
	return w->msg;
}

void rst_pagew_free(struct rst_pagew *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	/* It writes what is queued first: the domain is still there. */
	pthread_join(w->th, NULL);
	while (w->nspare)
		free(w->spare[--w->nspare]);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
