// SPDX-License-Identifier: MIT
/*
 * The target's page channels (docs/channels.md): each is a stream of its
 * own (xl header, libxl and libxc headers, PAGE_DATA, END) read by a
 * thread that writes its pages straight into the domain's memory. The
 * sender stripes pages over the channels by pfn, so each pfn's copies
 * arrive in order on one channel and the channels need no order between
 * them; the main stream's state waits until all of them have ended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "formats/libxc-stream.h"
#include "internal.h"
#include "stream/net.h"

#define CHAN_READ_CHUNK (256u << 10)

struct rst_chan {
	struct rst_chans *set;
	unsigned idx;
	struct strm_io *io;
	pthread_t thread;
	bool started;
	struct rst shadow; /* the restore's domain and applier; own counters */
	char msg[512];
	int err;
	bool done;
};

struct rst_chans {
	struct strm_cancel *stop; /* fired to end every channel's reads */
	struct strm_cancel *home; /* the caller's token, the ios' again at free */
	int net_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a channel ended */
	unsigned n;
	bool joined;
	struct rst_chan ch[STRM_HS_CHANNELS_MAX];
};

static bool libxc_allowed(uint32_t type)
{
	return type == REC_TYPE_PAGE_DATA || type == STRM_REC_LIBXC_HEADERS ||
	       type == REC_TYPE_STATIC_DATA_END || type == REC_TYPE_END ||
	       type == REC_TYPE_FERRY_CHANNEL_SYNC;
}

static int on_rec(void *opaque, const struct strm_rec *rec)
{
	struct rst_chan *ch = opaque;

	if (rec->layer != STRM_LIBXC)
		return 0; /* the xl header and libxl's drive the decoder */
	if (!libxc_allowed(rec->type)) {
		snprintf(ch->msg, sizeof(ch->msg), "record %s at offset %llu does not belong on "
			 "a page channel", fmt_libxc_rec_name(rec->type) ?: "(unknown)",
			 (unsigned long long)rec->offset);
		return -EPROTO;
	}
	if (rec->type != REC_TYPE_PAGE_DATA)
		return 0;
	return rst_apply_pages(&ch->shadow, rec->page_pfns, rec->page_data, rec->page_count,
			       rec->offset, ch->msg, sizeof(ch->msg));
}

/* The whole channel stream: 0, or -errno with ch->msg. */
static int read_channel(struct rst_chan *ch, uint8_t *buf)
{
	struct strm_dec *dec = ch->shadow.dec;
	int err;

	while (!strm_dec_done(dec)) {
		void *at = buf;
		size_t want = strm_dec_body_space(dec, &at);
		ssize_t n = strm_io_read(ch->io, at, want ? want : CHAN_READ_CHUNK);

		if (n < 0) {
			snprintf(ch->msg, sizeof(ch->msg), "reading at offset %llu: %s",
				 (unsigned long long)ch->shadow.bytes,
				 strm_io_error(ch->io)[0] ? strm_io_error(ch->io)
							  : ferry_strerror((int)n));
			return (int)n;
		}
		if (n == 0)
			break;
		ch->shadow.bytes += (uint64_t)n;
		err = strm_dec_feed(dec, at, (size_t)n, on_rec, ch);
		if (err) {
			if (!ch->msg[0])
				snprintf(ch->msg, sizeof(ch->msg), "%s", strm_dec_error(dec));
			return err;
		}
	}
	err = strm_dec_finish(dec);
	if (err)
		snprintf(ch->msg, sizeof(ch->msg), "%s", strm_dec_error(dec));
	return err;
}

static void *chan_main(void *arg)
{
	struct rst_chan *ch = arg;
	struct rst_chans *set = ch->set;
	uint8_t *buf = malloc(CHAN_READ_CHUNK);
	int err = buf ? read_channel(ch, buf) : -ENOMEM;

	if (!buf)
		snprintf(ch->msg, sizeof(ch->msg), "no memory for the read buffer");
	free(buf);
	/* A broken channel stops the others: the migration has failed. */
	if (err)
		strm_cancel_fire(set->stop);
	pthread_mutex_lock(&set->lock);
	ch->err = err;
	ch->done = true;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	return NULL;
}

int rst_chans_start(struct rst *r, struct strm_io *const *ios, unsigned n, int net_ms,
		    struct strm_cancel *home, struct rst_chans **out)
{
	struct strm_dec_limits lim = { .max_pfn = r->gm.npages, .page_channel = true };
	struct rst_chans *set;
	int err;

	if (n > STRM_HS_CHANNELS_MAX)
		return rst_fail(r, -EINVAL, "%u page channels (at most %d)", n,
				STRM_HS_CHANNELS_MAX);
	set = calloc(1, sizeof(*set));
	if (!set || strm_cancel_new(&set->stop)) {
		free(set);
		return rst_fail(r, -ENOMEM, "no memory for the page channels");
	}
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->cond, NULL);
	set->home = home;
	set->net_ms = net_ms;
	*out = set;
	for (unsigned i = 0; i < n; i++) {
		struct rst_chan *ch = &set->ch[i];

		ch->set = set;
		ch->idx = i;
		ch->io = ios[i];
		ch->shadow = *r;
		ch->shadow.npages = 0;
		ch->shadow.bytes = 0;
		ch->shadow.pw = NULL;
		ch->shadow.err = ch->msg;
		ch->shadow.errlen = sizeof(ch->msg);
		ch->shadow.dec = NULL; /* not the main stream's: its own */
		set->n = i + 1;	       /* what free undoes, started or not */
		err = strm_dec_new(&lim, &ch->shadow.dec) ?:
		      strm_io_set_cancel(ch->io, set->stop, net_ms);
		if (!err) {
			err = -pthread_create(&ch->thread, NULL, chan_main, ch);
			ch->started = !err;
		}
		if (err)
			return rst_fail(r, err, "cannot start page channel %u of %u: %s", i + 1, n,
					ferry_strerror(err));
	}
	return 0;
}

int rst_chans_wait(struct rst *r, struct rst_chans *set, const struct strm_cancel *cancel)
{
	unsigned first_bad = set->n;
	struct timespec t;
	int err = 0;

	pthread_mutex_lock(&set->lock);
	for (;;) {
		unsigned done = 0;

		for (unsigned i = 0; i < set->n; i++) {
			done += set->ch[i].done;
			if (set->ch[i].done && set->ch[i].err && first_bad == set->n)
				first_bad = i;
		}
		if (done == set->n || first_bad < set->n)
			break;
		if (strm_cancel_fired(cancel)) {
			err = -ECANCELED;
			break;
		}
		/* The caller's token has no condition variable: look again soon. */
		ferry_deadline_in(&t, 0.05);
		pthread_cond_timedwait(&set->cond, &set->lock, &t);
	}
	pthread_mutex_unlock(&set->lock);
	if (err)
		return rst_fail(r, err, "cancelled while waiting for the page channels");
	if (first_bad < set->n)
		return rst_fail(r, set->ch[first_bad].err, "page channel %u of %u: %s",
				first_bad + 1, set->n, set->ch[first_bad].msg);
	for (unsigned i = 0; i < set->n; i++) {
		pthread_join(set->ch[i].thread, NULL);
		set->ch[i].started = false;
		r->npages += set->ch[i].shadow.npages;
		r->bytes += set->ch[i].shadow.bytes;
	}
	set->joined = true;
	return 0;
}

bool rst_chans_joined(const struct rst_chans *set)
{
	return set->joined;
}

void rst_chans_free(struct rst_chans *set)
{
	if (!set)
		return;
	strm_cancel_fire(set->stop);
	for (unsigned i = 0; i < set->n; i++) {
		if (set->ch[i].started)
			pthread_join(set->ch[i].thread, NULL);
		strm_dec_free(set->ch[i].shadow.dec);
		/* The ios outlive set: their closing must not see its token. */
		strm_io_set_cancel(set->ch[i].io, set->home, set->net_ms);
	}
	strm_cancel_free(set->stop);
	pthread_cond_destroy(&set->cond);
	pthread_mutex_destroy(&set->lock);
	free(set);
}
