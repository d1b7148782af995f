// SPDX-License-Identifier: MIT
/*
 * The backup's side of a pair: epochs into a paused copy, acknowledged
 * once committed; failover when the primary goes silent (ha/ha.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

const char *ha_backup_outcome_name(enum ha_backup_outcome o)
{
	static const char *const n[] = {"broken", "stopped", "failed over", "handed over"};

	return (unsigned)o < sizeof(n) / sizeof(n[0]) ? n[o] : "?";
}

struct backup {
	struct hyp *h;
	struct strm_io *link;
	const struct ha_backup_opts *o;
	struct ha_backup_result *res;
	struct rst_session *rs;
	uint64_t acked;
	double timeout_s, hb_s, last_heard, next_hb;
	uint64_t echo; /* the primary's last heartbeat stamp, sent back */
	uint8_t *buf;
};

/*
 * With a witness, the copy may run only once this host holds the lease
 * (the primary's has expired, or it gave it back) and the primary did
 * not run on alone. Retries every 50 ms for as long as it takes: 0 (held:
 * the caller records the takeover and gives it back), -ESTALE (the
 * primary ran on: drop the copy), -ECANCELED (this daemon stops).
 */
static int witness_claim(struct backup *b, struct ha_witness *w, char *state, size_t len)
{
	char holder[128];
	bool got, said = false;

	for (;;) {
		if (strm_cancel_fired(b->o->cancel))
			return -ECANCELED;
		if (!ha_witness_get_state(w, state, len)) {
			if (ha_witness_moved_on(state))
				return -ESTALE;
			if (!ha_witness_acquire(w, &got, holder, sizeof(holder)) && got) {
				/* Again, now that nobody else can write it. */
				if (!ha_witness_get_state(w, state, len) &&
				    !ha_witness_moved_on(state))
					return 0;
				ha_witness_release(w);
				return -ESTALE;
			}
		} else if (!said) {
			log_warn("remus backup: the witness cannot be asked (%s): waiting for it "
				 "before resuming",
				 ha_witness_error(w));
			said = true;
		}
		usleep(50 * 1000);
	}
}

/* The copy runs from its last committed epoch. */
static void take_over(struct backup *b, enum ha_backup_outcome how, const char *why)
{
	struct ha_backup_result *res = b->res;
	struct ha_witness *w = NULL;
	char state[128] = "", werr[256];
	uint32_t domid = 0;
	int rc;

	res->committed = rst_session_committed(b->rs);
	if (!res->committed || rst_session_domid(b->rs, &domid)) {
		res->outcome = HA_BACKUP_BROKEN;
		snprintf(res->err, sizeof(res->err), "%s, and no epoch is complete here", why);
		log_err("remus backup: %s", res->err);
		return;
	}
	if (b->o->witness_url) {
		rc = ha_witness_new(b->o->witness_url,
				    b->o->witness_pair ? b->o->witness_pair : "pair",
				    b->o->witness_me ? b->o->witness_me : "backup",
				    &b->o->witness_tls, &w, werr, sizeof(werr));
		rc = rc ?: witness_claim(b, w, state, sizeof(state));
		if (rc) {
			res->outcome = HA_BACKUP_BROKEN;
			snprintf(res->err, sizeof(res->err), "%s; %s", why,
				 rc == -ESTALE ? "the witness says the primary ran on without this "
						 "backup: the copy is dropped"
				 : rc == -ECANCELED ? "cancelled while waiting for the witness"
						    : werr);
			log_err("remus backup: %s", res->err);
			ha_witness_free(w);
			return;
		}
	}
	rc = rst_session_resume(b->rs, b->o->xenstore, b->o->xs_opaque, false);
	if (!rc && b->o->takeover)
		rc = b->o->takeover(b->o->opaque, domid);
	if (!rc)
		rc = hyp_domain_unpause(b->h, domid);
	if (rc) {
		if (w) {
			ha_witness_release(w);
			ha_witness_free(w);
		}
		res->outcome = HA_BACKUP_BROKEN;
		snprintf(res->err, sizeof(res->err), "%s; resuming epoch %llu failed: %s", why,
			 (unsigned long long)res->committed,
			 rst_session_error(b->rs)[0] ? rst_session_error(b->rs)
						     : ferry_strerror(rc));
		log_err("remus backup: %s", res->err);
		return;
	}
	res->resumed_at = ferry_now_s();
	res->outcome = how;
	res->domid = domid;
	res->failover_ms = (ferry_now_s() - b->last_heard) * 1e3;
	if (w) {
		/* It runs here alone now: an older copy anywhere must never. */
		char st[160];

		snprintf(st, sizeof(st), "taken over by %.100s",
			 b->o->witness_me ? b->o->witness_me : "the backup");
		if (ha_witness_set_state(w, st))
			log_warn("d%u: remus backup: could not record the takeover at the witness: "
				 "%s",
				 domid, ha_witness_error(w));
		ha_witness_release(w);
		ha_witness_free(w);
	}
	snprintf(res->err, sizeof(res->err), "%s", why);
	log_info("d%u: remus backup: %s: runs from epoch %llu, %.1f ms after the primary was last "
		 "heard",
		 domid, why, (unsigned long long)res->committed, res->failover_ms);
}

/*
 * After an ACK could not be sent (the primary closed the link): what it sent
 * before closing is still to be read. A primary that gave up on a stalled
 * backup, or ended the pair, said BYE stop first, and this copy must then
 * not run (without a witness nothing else says so). Whole epochs found on
 * the way are committed. Returns the BYE's value, or 0 for none (the
 * primary died).
 */
static int last_word(struct backup *b)
{
	char why[256];
	struct ha_msg m;

	if (strm_io_keep_reading(b->link))
		return 0;
	for (;;) {
		if (ha_link_recv(b->link, 100, b->buf, &m, why, sizeof(why)) <= 0)
			return 0;
		if (m.type == HA_MSG_BYE)
			return (int)m.value;
		if (m.type == HA_MSG_DATA && rst_session_feed(b->rs, m.data, m.len))
			return 0; /* a damaged tail: the last whole epoch stands */
	}
}

/* Feeds a DATA message and acknowledges what it committed: 0, -errno for
 * a bad stream (the copy is dropped), 1 when the ack could not be sent (the
 * primary's connection ended). res->err says what. */
static int take_data(struct backup *b, const struct ha_msg *m)
{
	struct ha_backup_result *res = b->res;
	uint64_t c;
	int rc;

	rc = rst_session_feed(b->rs, m->data, m->len);
	if (rc) {
		snprintf(res->err, sizeof(res->err), "the stream from the primary: %s",
			 rst_session_error(b->rs));
		return rc;
	}
	c = rst_session_committed(b->rs);
	if (c == b->acked)
		return 0;
	b->acked = c;
	if (ha_link_send_u64(b->link, HA_MSG_ACK, c)) {
		snprintf(res->err, sizeof(res->err), "acknowledging epoch %llu: %s",
			 (unsigned long long)c, strm_io_error(b->link));
		return 1; /* the link broke, not the stream */
	}
	return 0;
}

void ha_backup_run(struct hyp *h, struct strm_io *link, const struct ha_backup_opts *o,
		   struct ha_backup_result *res)
{
	struct rst_session_opts so = {
		.config = o->config,
		.opaque = o->opaque,
		.epoch = o->epoch,
		.epoch_opaque = o->opaque,
		.max_epoch_bytes = o->max_epoch_bytes,
	};
	struct backup b = {.h = h, .link = link, .o = o, .res = res};
	char why[sizeof(res->err)];
	struct ha_msg m;
	int rc;

	memset(res, 0, sizeof(*res));
	b.timeout_s = (o->timeout_ms ? o->timeout_ms : HA_DEFAULT_TIMEOUT_MS) / 1e3;
	b.hb_s = ha_hb_period(b.timeout_s);
	b.buf = malloc(HA_DATA_MAX);
	rc = b.buf ? rst_session_new(h, &so, &b.rs) : -ENOMEM;
	if (!rc)
		rc = strm_io_set_cancel(link, o->cancel, (int)(b.timeout_s * 1e3));
	if (rc) {
		res->outcome = HA_BACKUP_BROKEN;
		snprintf(res->err, sizeof(res->err), "cannot start: %s", ferry_strerror(rc));
		log_err("remus backup: %s", res->err);
		goto out;
	}
	b.last_heard = b.next_hb = ferry_now_s();
	for (;;) {
		double now = ferry_now_s(), wake;

		if (strm_cancel_fired(o->cancel)) {
			res->outcome = HA_BACKUP_BROKEN;
			snprintf(res->err, sizeof(res->err), "cancelled here: the copy is dropped");
			log_info("remus backup: %s", res->err);
			break;
		}
		/* Beats only once the pair stands: before, the primary is busy
		 * with the pre-copy and reads nothing. */
		if (b.acked && now >= b.next_hb) {
			if (ha_link_send_u64(link, HA_MSG_HB, b.echo)) {
				snprintf(why, sizeof(why), "the link to the primary broke: %s",
					 strm_io_error(link));
				take_over(&b, HA_BACKUP_FAILED_OVER, why);
				break;
			}
			b.next_hb = now + b.hb_s;
		}
		wake = fmin(b.acked ? b.next_hb : now + 0.1, b.last_heard + b.timeout_s + 0.001);
		rc = ha_link_recv(link, (int)ceil((wake - now) * 1e3), b.buf, &m, why, sizeof(why));
		if (rc == 0) {
			/* Silence is judged only with nothing left to read: a
			 * primary that gave up on a stalled backup said so (BYE)
			 * before closing, and that must be read first. */
			now = ferry_now_s();
			if (now - b.last_heard <= b.timeout_s)
				continue;
			snprintf(why, sizeof(why), "nothing from the primary for %.0f ms",
				 (now - b.last_heard) * 1e3);
			take_over(&b, HA_BACKUP_FAILED_OVER, why);
			break;
		}
		if (rc < 0 && strm_cancel_fired(o->cancel))
			continue; /* the check above ends it */
		if (rc < 0 && rc != -EPROTO) {
			/* The primary's connection ended: its host or daemon
			 * died (a partition without a witness ends here too). */
			take_over(&b, HA_BACKUP_FAILED_OVER, why);
			break;
		}
		if (rc < 0) {
			snprintf(res->err, sizeof(res->err), "%s", why);
			log_err("remus backup: %s: the copy is dropped", why);
			res->outcome = HA_BACKUP_BROKEN;
			break;
		}
		b.last_heard = ferry_now_s();
		if (m.type == HA_MSG_DATA) {
			rc = take_data(&b, &m);
			if (rc > 0) {
				snprintf(why, sizeof(why), "%s", res->err);
				res->err[0] = '\0';
				rc = last_word(&b);
				if (rc == HA_BYE_STOP) {
					res->outcome = HA_BACKUP_STOPPED;
					log_info("remus backup: the primary gave up on this backup "
						 "before it closed the link: the copy is dropped");
					break;
				}
				/* It died after sending this epoch whole (or handed the
				 * domain over): it is committed, and the copy runs. */
				take_over(&b, HA_BACKUP_FAILED_OVER, why);
				break;
			}
			if (rc) {
				log_err("remus backup: %s: the copy is dropped", res->err);
				res->outcome = HA_BACKUP_BROKEN;
				break;
			}
		} else if (m.type == HA_MSG_HB) {
			/* Echoed at once: the primary runs on this word while
			 * the witness is away, and a stale one runs out. */
			b.echo = m.value;
			b.next_hb = 0;
		} else if (m.type == HA_MSG_BYE && m.value == HA_BYE_HANDOVER) {
			take_over(&b, HA_BACKUP_HANDED_OVER, "the primary handed the domain over");
			break;
		} else if (m.type == HA_MSG_BYE) {
			res->outcome = HA_BACKUP_STOPPED;
			log_info("remus backup: the primary ended protection: the copy is dropped");
			break;
		}
	}
out:
	/* Its last word, best effort: the primary names the reason. */
	if (res->outcome == HA_BACKUP_BROKEN && res->err[0] && !strm_cancel_fired(o->cancel))
		ha_link_send(link, HA_MSG_ERR, res->err,
			     (uint32_t)strnlen(res->err, HA_ERR_MAX - 1));
	/* Destroys the copy unless it was resumed. */
	rst_session_free(b.rs);
	free(b.buf);
}
