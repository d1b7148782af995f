/* SPDX-License-Identifier: MIT */
/* The pair's link messages (formats/SPEC.md 11), shared by both sides. */
#ifndef HA_INTERNAL_H
#define HA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ha/ha.h"

#define HA_MAGIC 0x31414846u /* "FHA1" little-endian */

enum ha_msg_type {
	HA_MSG_DATA = 1, /* stream bytes (a piece of the checkpointed stream) */
	HA_MSG_ACK = 2,	 /* u64: the epoch the backup committed */
	HA_MSG_HB = 3,	 /* u64: the sender's last epoch sent / committed */
	HA_MSG_BYE = 4,	 /* u32: HA_BYE_* */
	HA_MSG_ERR = 5,	 /* text: why the backup gives up (its last word) */
};

enum { HA_BYE_STOP = 1, HA_BYE_HANDOVER = 2 };

/* A DATA payload's bound, and every other's. The primary sends pieces of
 * HA_DATA_PIECE: the backup heartbeats between messages, so one message
 * must cross the link well within the timeout (64 KiB: 0.5 s at 1 Mbit/s). */
#define HA_DATA_MAX   (1u << 20)
#define HA_DATA_PIECE (64u << 10)
#define HA_CTL_MAX  64u
#define HA_ERR_MAX  512u

struct ha_msg {
	uint32_t type;
	uint32_t len;
	uint64_t value;	  /* ACK, HB, BYE */
	const void *data; /* DATA, ERR: the payload, valid until the next receive;
			   * ERR's is NUL-terminated */
};

/* One message; 0 or -errno (the io's error). */
int ha_link_send(struct strm_io *link, uint32_t type, const void *payload, uint32_t len);
int ha_link_send_u64(struct strm_io *link, uint32_t type, uint64_t v);
/*
 * Waits up to timeout_ms for a message: 1 with *m filled, 0 when none came,
 * or -errno with err saying what (a bad header names the link offset).
 * buf (HA_DATA_MAX bytes) receives DATA payloads.
 */
int ha_link_recv(struct strm_io *link, int timeout_ms, void *buf, struct ha_msg *m, char *err,
		 size_t errlen);
const char *ha_msg_name(uint32_t type);

/* Heartbeats: five per timeout, so one lost beat never looks like death,
 * from every 5 ms to every 100 ms. Both sides use it. */
static inline double ha_hb_period(double timeout_s)
{
	double hb = timeout_s / 5;

	return hb < 0.005 ? 0.005 : hb > 0.1 ? 0.1 : hb;
}

/* The pair's state at the witness says the primary ran on without its
 * backup, ended the pair, or a backup took over: a backup's copy is then
 * older than what the world saw, and the old primary's lease is gone for
 * good. "" (never written) and "protected" do not. */
static inline bool ha_witness_moved_on(const char *state)
{
	return state[0] && strcmp(state, "protected");
}

/* The primary's lease keeper (fence.c): renews w's lease from ok_sent on,
 * fences domid (an op pause) when it could expire unrenewed; event says
 * so from the keeper's thread. */
struct ha_fence;
int ha_fence_start(struct hyp *h, uint32_t domid, struct ha_witness *w, double ok_sent,
		   void (*event)(void *opaque, bool fenced, const char *why), void *opaque,
		   struct ha_fence **out);
/* The lease expired: the fence stays. */
bool ha_fence_lost(struct ha_fence *f);
/*
 * The backup's word: it cannot resume its copy before `until` (ferry_now_s
 * time). A backup resumes only after the timeout without hearing the
 * primary, so its heartbeat echoing the primary's stamp t (formats/SPEC.md
 * 11) gives until = t + timeout. While its word holds, the domain may run
 * without a renewed lease: the pair keeps running while the witness is
 * away, and stops only when neither vouches for it.
 */
void ha_fence_backup_word(struct ha_fence *f, double until);
/* "held", "away" or "lost": see struct ha_stats. */
const char *ha_fence_witness(struct ha_fence *f);
/* Ends the keeper. With may_lift, lifts its fence unless the lease was
 * lost; without, the domain is fenced now if it was not (the caller could
 * not prove the lease is still its own). Returns true when the domain
 * stays fenced. NULL-safe. */
bool ha_fence_stop(struct ha_fence *f, bool may_lift);

#endif
