// SPDX-License-Identifier: MIT
/*
 * The page channels' sink (docs/channels.md): pages striped by pfn over N
 * more connections, each a stream of its own (xl header, libxl and libxc
 * headers, PAGE_DATA, END) written by a thread of its own, so copying,
 * compressing and encrypting run on as many cores as there are channels.
 *
 * A pfn always goes on the same channel and each channel is in order, so
 * the newest copy of a page always lands last; the channels need no order
 * between them. The session's walk (zero checks, batching) stays on the
 * caller's thread and hands each channel full batches through a short
 * queue. Pages are read by the channel threads after put returns: a page
 * the guest writes meanwhile is dirty again and goes in a later round,
 * and an epoch's end waits until every channel has written everything.
 *
 * Each side of the migration reads with a progress timeout, so a channel
 * with nothing to send, and the main stream while the pages go elsewhere,
 * carry a FERRY_CHANNEL_SYNC every KEEPALIVE_S.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "stream/net.h"

/* Full batches waiting per channel: enough to cover a thread's wake-up. */
#define CHAN_QUEUE 4
/* Pfns per stripe: 1 MiB of guest memory goes on one channel. */
#define STRIPE_SHIFT 8
#define KEEPALIVE_S  1.0

struct chan_batch {
	uint32_t count;
	bool holes; /* XTAB entries, no data */
	uint64_t pfns[MIG_BATCH_PAGES];
	const void *pages[MIG_BATCH_PAGES];
};

struct mig_chan {
	struct mig_chans *set;
	unsigned idx;
	struct strm_io *lower;	/* borrowed: the handshake's connection */
	struct strm_io *framed; /* ours, on lower; NULL for a plain stream */
	struct mig_out out;
	char err[512];
	pthread_t thread;
	bool started;
	uint64_t wire0;
	uint64_t wire; /* bytes on lower so far (atomic) */
	/* Under set->lock. */
	struct chan_batch *q[CHAN_QUEUE];
	unsigned qhead, qlen;
	struct chan_batch *spare[CHAN_QUEUE + 2];
	unsigned nspare;
	bool busy;		      /* the thread is writing a batch */
	unsigned sync_req, sync_done; /* round ends asked and written */
	uint32_t sync_round;
	bool end_req, ended;
	int rc;			    /* the thread's first error; it writes nothing after */
	struct strm_frame_stats fs; /* as of the last round end (frames only) */
	/* The walker's. */
	struct chan_batch *fill;
};

struct mig_chans {
	pthread_mutex_t lock;
	pthread_cond_t to_thread; /* work queued, or stop */
	pthread_cond_t to_walker; /* a batch written, a sync done, an error */
	bool stopping;
	unsigned n;
	struct mig_out *main;
	double main_pulse; /* when main last carried a record */
	uint32_t round;
	struct mig_chan ch[STRM_HS_CHANNELS_MAX];
};

static int put_sync(struct mig_out *o, uint32_t round)
{
	struct ferry_channel_sync b = { .round = round };

	return mig_put_libxc(o, REC_TYPE_FERRY_CHANNEL_SYNC, &b, sizeof(b));
}

static int flush_out(struct mig_out *o)
{
	int err = strm_io_flush(o->io);

	if (err)
		return mig_fail(o, err, "flushing: %s%s%s", ferry_strerror(err),
				*strm_io_error(o->io) ? ": " : "", strm_io_error(o->io));
	return 0;
}

/* ---- a channel's thread -------------------------------------------------- */

static int write_batch(struct mig_chan *ch, struct chan_batch *b)
{
	struct mig_out *o = &ch->out;

	if (b->holes)
		return mig_put(o, strm_enc_page_data(o->enc, b->pfns, b->count, NULL, o->iov),
			       "PAGE_DATA (holes)");
	return mig_put(o, strm_enc_page_data(o->enc, b->pfns, b->count, b->pages, o->iov),
		       "PAGE_DATA");
}

/* The frame writer's figures, taken by the thread that writes it. */
static void take_stats(struct mig_chan *ch)
{
	struct strm_frame_stats fs;

	if (!ch->framed || strm_io_frame_stats(ch->framed, &fs))
		return;
	pthread_mutex_lock(&ch->set->lock);
	ch->fs = fs;
	pthread_mutex_unlock(&ch->set->lock);
}

/* libxc END, libxl END, the end frame: the channel's stream is whole. */
static int end_stream(struct mig_chan *ch)
{
	int err = mig_put_epoch_close(&ch->out, false);

	take_stats(ch);
	if (!err && ch->framed) {
		err = strm_io_close(ch->framed);
		ch->framed = NULL;
		ch->out.io = ch->lower;
		if (err)
			return mig_fail(&ch->out, err, "finishing the stream: %s",
					ferry_strerror(err));
	}
	return err ?: flush_out(&ch->out);
}

static void note_wire(struct mig_chan *ch)
{
	__atomic_store_n(&ch->wire, strm_io_offset(ch->lower) - ch->wire0, __ATOMIC_RELAXED);
}

/* Under set->lock: the next piece of work, written unlocked. */
static void *chan_main(void *arg)
{
	struct mig_chan *ch = arg;
	struct mig_chans *set = ch->set;
	struct timespec t;
	int rc = 0;

	pthread_mutex_lock(&set->lock);
	while (!set->stopping && !rc) {
		if (ch->qlen) {
			struct chan_batch *b = ch->q[ch->qhead];

			ch->qhead = (ch->qhead + 1) % CHAN_QUEUE;
			ch->qlen--;
			ch->busy = true;
			pthread_mutex_unlock(&set->lock);
			rc = write_batch(ch, b);
			note_wire(ch);
			pthread_mutex_lock(&set->lock);
			ch->busy = false;
			ch->spare[ch->nspare++] = b;
		} else if (ch->sync_done != ch->sync_req) {
			unsigned req = ch->sync_req;
			uint32_t round = ch->sync_round;

			pthread_mutex_unlock(&set->lock);
			rc = put_sync(&ch->out, round) ?: flush_out(&ch->out);
			note_wire(ch);
			take_stats(ch);
			pthread_mutex_lock(&set->lock);
			ch->sync_done = req;
		} else if (ch->end_req) {
			pthread_mutex_unlock(&set->lock);
			rc = end_stream(ch);
			note_wire(ch);
			pthread_mutex_lock(&set->lock);
			ch->ended = !rc;
			break;
		} else {
			ferry_deadline_in(&t, KEEPALIVE_S);
			if (pthread_cond_timedwait(&set->to_thread, &set->lock, &t) != ETIMEDOUT ||
			    ch->qlen || ch->end_req || set->stopping)
				continue;
			/* Nothing for this stripe lately: the receiver must still
			 * hear from us within its progress timeout. */
			pthread_mutex_unlock(&set->lock);
			rc = put_sync(&ch->out, FERRY_CHANNEL_KEEPALIVE) ?: flush_out(&ch->out);
			note_wire(ch);
			pthread_mutex_lock(&set->lock);
		}
		pthread_cond_broadcast(&set->to_walker);
	}
	ch->rc = rc;
	pthread_cond_broadcast(&set->to_walker);
	pthread_mutex_unlock(&set->lock);
	return NULL;
}

/* ---- the walker's side ----------------------------------------------------- */

/* Under set->lock: the first channel error, said in the main stream's
 * error (each channel logged its own where it happened). */
static int chan_error_locked(struct mig_chans *set)
{
	for (unsigned i = 0; i < set->n; i++)
		if (set->ch[i].rc)
			return mig_fail_logged(set->main, set->ch[i].rc,
					       "page channel %u of %u: %s", i + 1, set->n,
					       set->ch[i].err);
	return 0;
}

/* The walker's filled batch of ch to its queue, waiting for room. */
static int submit(struct mig_chans *set, struct mig_chan *ch)
{
	int err;

	if (!ch->fill->count)
		return 0;
	pthread_mutex_lock(&set->lock);
	while (!(err = chan_error_locked(set)) && ch->qlen == CHAN_QUEUE)
		pthread_cond_wait(&set->to_walker, &set->lock);
	if (!err) {
		ch->q[(ch->qhead + ch->qlen) % CHAN_QUEUE] = ch->fill;
		ch->qlen++;
		ch->fill = ch->spare[--ch->nspare];
		ch->fill->count = 0;
		ch->fill->holes = false;
		pthread_cond_broadcast(&set->to_thread);
	}
	pthread_mutex_unlock(&set->lock);
	return err;
}

static struct mig_chan *chan_of(struct mig_chans *set, uint64_t pfn)
{
	return &set->ch[(pfn >> STRIPE_SHIFT) % set->n];
}

/* A record on the main stream at least every KEEPALIVE_S. */
static int main_pulse(struct mig_chans *set, uint32_t round, bool now)
{
	double t = ferry_now_s();

	if (!now && t - set->main_pulse < KEEPALIVE_S)
		return 0;
	set->main_pulse = t;
	return put_sync(set->main, round) ?: flush_out(set->main);
}

static int chans_begin(void *sink, unsigned epoch)
{
	(void)sink;
	(void)epoch;
	return 0;
}

static int chans_put(void *sink, const uint64_t *pfns, const void *const *pages, uint32_t count)
{
	struct mig_chans *set = sink;
	int err = 0;

	for (uint32_t i = 0; i < count && !err; i++) {
		struct mig_chan *ch = chan_of(set, pfns[i]);
		struct chan_batch *b = ch->fill;

		if (b->holes)
			err = submit(set, ch);
		b = ch->fill;
		b->pfns[b->count] = pfns[i];
		b->pages[b->count] = pages[i];
		if (++b->count == MIG_BATCH_PAGES)
			err = submit(set, ch);
	}
	return err ?: main_pulse(set, FERRY_CHANNEL_KEEPALIVE, false);
}

static int chans_holes(void *sink, const uint64_t *pfns, uint32_t count)
{
	struct mig_chans *set = sink;
	int err = 0;

	for (uint32_t i = 0; i < count && !err; i++) {
		struct mig_chan *ch = chan_of(set, pfns[i]);
		struct chan_batch *b = ch->fill;

		if (b->count && !b->holes)
			err = submit(set, ch);
		b = ch->fill;
		b->holes = true;
		b->pfns[b->count] = pfns[i] | ((uint64_t)PAGE_TYPE_XTAB << PAGE_DATA_TYPE_SHIFT);
		b->pages[b->count] = NULL;
		if (++b->count == MIG_BATCH_PAGES)
			err = submit(set, ch);
	}
	return err;
}

/* Every partial batch queued, then until every channel has done what
 * done() says (under set->lock), or one failed. */
static int wait_all(struct mig_chans *set, bool (*done)(const struct mig_chan *ch))
{
	int err = 0;

	pthread_mutex_lock(&set->lock);
	for (;;) {
		unsigned k = 0;

		err = chan_error_locked(set);
		if (err)
			break;
		for (unsigned i = 0; i < set->n; i++)
			k += done(&set->ch[i]);
		if (k == set->n)
			break;
		pthread_cond_wait(&set->to_walker, &set->lock);
	}
	pthread_mutex_unlock(&set->lock);
	return err;
}

static int submit_all(struct mig_chans *set)
{
	int err = 0;

	for (unsigned i = 0; i < set->n && !err; i++)
		err = submit(set, &set->ch[i]);
	return err;
}

static bool synced(const struct mig_chan *ch)
{
	return ch->sync_done == ch->sync_req;
}

static bool ended(const struct mig_chan *ch)
{
	return ch->ended;
}

/* A round's end: every channel has written and flushed its pages. */
static int chans_flush(void *sink)
{
	struct mig_chans *set = sink;
	int err = submit_all(set);

	if (err)
		return err;
	pthread_mutex_lock(&set->lock);
	for (unsigned i = 0; i < set->n; i++) {
		set->ch[i].sync_req++;
		set->ch[i].sync_round = set->round;
	}
	pthread_cond_broadcast(&set->to_thread);
	pthread_mutex_unlock(&set->lock);
	err = wait_all(set, synced) ?: main_pulse(set, set->round, true);
	set->round++;
	return err;
}

/* The epoch's pages are all put: each channel's stream ends. */
static int chans_end(void *sink, unsigned epoch)
{
	struct mig_chans *set = sink;
	int err = submit_all(set);

	(void)epoch;
	if (err)
		return err;
	pthread_mutex_lock(&set->lock);
	for (unsigned i = 0; i < set->n; i++)
		set->ch[i].end_req = true;
	pthread_cond_broadcast(&set->to_thread);
	pthread_mutex_unlock(&set->lock);
	return wait_all(set, ended);
}

static uint64_t chans_wire(void *sink)
{
	struct mig_chans *set = sink;
	uint64_t w = 0;

	for (unsigned i = 0; i < set->n; i++)
		w += __atomic_load_n(&set->ch[i].wire, __ATOMIC_RELAXED);
	return w;
}

void mig_chans_frame_stats(struct mig_chans *set, struct strm_frame_stats *sum)
{
	pthread_mutex_lock(&set->lock);
	for (unsigned i = 0; i < set->n; i++) {
		const struct strm_frame_stats *fs = &set->ch[i].fs;

		sum->frames += fs->frames;
		sum->frames_stored_raw += fs->frames_stored_raw;
		for (unsigned c = 0; c <= STRM_CODEC_ZSTD; c++)
			sum->frames_by_codec[c] += fs->frames_by_codec[c];
		sum->frames_unchecked += fs->frames_unchecked;
		sum->frames_untried += fs->frames_untried;
		sum->raw_bytes += fs->raw_bytes;
		sum->stored_bytes += fs->stored_bytes;
	}
	pthread_mutex_unlock(&set->lock);
}

const struct mig_page_sink_ops mig_chans_sink_ops = {
	.begin = chans_begin,
	.put = chans_put,
	.holes = chans_holes,
	.flush = chans_flush,
	.end = chans_end,
	.wire = chans_wire,
};

/* ---- set-up and tear-down -------------------------------------------------- */

/* The channel's stream up to STATIC_DATA_END, framed as the main one;
 * auto's link estimate is the channel's share of a cap. */
static int chan_open(struct mig_chan *ch, const struct mig_session_opts *o, unsigned n)
{
	int err;

	ch->wire0 = strm_io_offset(ch->lower);
	err = mig_open_stream(&ch->out, "{}", o->codec, o->codec_auto, (double)o->bandwidth / n,
			      &ch->framed) ?:
	      mig_put_headers(&ch->out);
	note_wire(ch);
	return err;
}

int mig_chans_new(struct mig_out *main, const struct mig_session_opts *o, struct mig_chans **out)
{
	struct mig_chans *set;
	int err = 0;

	*out = NULL;
	if (!o->nchannels || o->nchannels > STRM_HS_CHANNELS_MAX)
		return mig_fail(main, -EINVAL, "%u page channels (1 to %d)", o->nchannels,
				STRM_HS_CHANNELS_MAX);
	set = calloc(1, sizeof(*set));
	if (!set)
		return mig_fail(main, -ENOMEM, "no memory for the page channels");
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->to_thread, NULL);
	pthread_cond_init(&set->to_walker, NULL);
	set->main = main;
	set->main_pulse = ferry_now_s();
	*out = set;
	for (unsigned i = 0; i < o->nchannels && !err; i++) {
		struct mig_chan *ch = &set->ch[i];

		ch->set = set;
		ch->idx = i;
		ch->lower = o->channels[i];
		ch->out = (struct mig_out){ .h = main->h, .domid = main->domid, .io = ch->lower,
					    .err = ch->err, .errlen = sizeof(ch->err) };
		set->n = i + 1;
		for (unsigned k = 0; k < CHAN_QUEUE + 2; k++) {
			ch->spare[k] = calloc(1, sizeof(struct chan_batch));
			if (!ch->spare[k])
				return mig_fail(main, -ENOMEM, "no memory for the page channels");
			ch->nspare++;
		}
		ch->fill = ch->spare[--ch->nspare];
		err = chan_open(ch, o, o->nchannels);
		if (err)
			return mig_fail_logged(main, err, "page channel %u of %u: %s", i + 1,
					       o->nchannels, ch->err);
		err = -pthread_create(&ch->thread, NULL, chan_main, ch);
		if (err)
			return mig_fail(main, err, "cannot start page channel %u of %u: %s", i + 1,
					o->nchannels, ferry_strerror(err));
		ch->started = true;
	}
	/* The target starts reading the channels once the main stream's
	 * headers have made the domain: they must not wait in a frame. */
	return flush_out(main);
}

void mig_chans_free(struct mig_chans *set)
{
	if (!set)
		return;
	pthread_mutex_lock(&set->lock);
	set->stopping = true;
	pthread_cond_broadcast(&set->to_thread);
	pthread_mutex_unlock(&set->lock);
	for (unsigned i = 0; i < set->n; i++) {
		struct mig_chan *ch = &set->ch[i];

		/* A thread blocked on a stalled peer ends at the progress
		 * timeout, or at once when the migration is cancelled. */
		if (ch->started)
			pthread_join(ch->thread, NULL);
		/* Without END the receiver sees a channel cut short. */
		if (ch->framed)
			strm_io_close(ch->framed);
		mig_out_fini(&ch->out);
		free(ch->fill);
		for (unsigned k = 0; k < ch->qlen; k++)
			free(ch->q[(ch->qhead + k) % CHAN_QUEUE]);
		for (unsigned k = 0; k < ch->nspare; k++)
			free(ch->spare[k]);
	}
	pthread_cond_destroy(&set->to_walker);
	pthread_cond_destroy(&set->to_thread);
	pthread_mutex_destroy(&set->lock);
	free(set);
}
