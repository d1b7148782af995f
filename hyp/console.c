// SPDX-License-Identifier: MIT
/*
 * The console ferryd captures per domain: a ring of the recent output that
 * `xl console` replays, a log file in the state dir, and an event per write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "internal.h"

static int console_open_log(struct hyp_domain *d)
{
	char path[HYP_PATH_MAX + HYP_NAME_MAX + 32];
	int fd;

	if (!d->h->state_dir[0])
		return -1;
	/* Xen's name for it: guest-NAME.log. */
	snprintf(path, sizeof(path), "%s/console/guest-%s.log", d->h->state_dir, d->cfg.name);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		log_warn("d%u: cannot open console log %s: %s", d->domid, path, strerror(errno));
	return fd;
}

int hyp__console_init(struct hyp_domain *d)
{
	d->con_ring = malloc(CONSOLE_RING);
	if (!d->con_ring)
		return -ENOMEM;
	d->con_log_fd = console_open_log(d);
	return 0;
}

void hyp__console_rename(struct hyp_domain *d)
{
	int fd = console_open_log(d), old;

	pthread_mutex_lock(&d->con_lock);
	old = d->con_log_fd;
	d->con_log_fd = fd;
	pthread_mutex_unlock(&d->con_lock);
	if (old >= 0)
		close(old);
}

void hyp__console_fini(struct hyp_domain *d)
{
	free(d->con_held);
	d->con_held = NULL;
	pthread_mutex_destroy(&d->con_order);
	if (d->con_log_fd >= 0)
		close(d->con_log_fd);
	d->con_log_fd = -1;
	free(d->con_ring);
	d->con_ring = NULL;
	pthread_mutex_destroy(&d->con_lock);
}

/* Into the ring and the log. Under con_lock and con_order; the caller
 * sends the event after dropping con_lock, still under con_order. */
static void deliver_locked(struct hyp_domain *d, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		d->con_ring[(d->con_head + i) % CONSOLE_RING] = buf[i];
	d->con_head += len;
	if (d->con_log_fd >= 0 && write(d->con_log_fd, buf, len) < 0) {
		/* the ring still has it */
	}
}

/* Takes up to len bytes (all of them when !bounded); 0 when the gate is
 * full. */
static size_t put(struct hyp_domain *d, const char *buf, size_t len, bool bounded)
{
	pthread_mutex_lock(&d->con_order);
	pthread_mutex_lock(&d->con_lock);
	if (d->con_gated) {
		size_t room = d->con_held_len < HYP_CONSOLE_GATE_MAX
				      ? HYP_CONSOLE_GATE_MAX - d->con_held_len
				      : 0;
		char *held;

		if (bounded && len > room)
			len = room;
		held = len ? realloc(d->con_held, d->con_held_len + len) : d->con_held;
		if (!held) {
			len = 0; /* stays in the guest's ring, as when full */
		} else {
			memcpy(held + d->con_held_len, buf, len);
			d->con_held = held;
			d->con_held_len += len;
		}
		d->con_produced += len;
		pthread_mutex_unlock(&d->con_lock);
		pthread_mutex_unlock(&d->con_order);
		return len;
	}
	deliver_locked(d, buf, len);
	d->con_produced += len;
	pthread_mutex_unlock(&d->con_lock);
	if (d->h->ev.console)
		d->h->ev.console(d->h->ev.opaque, d->domid, buf, len);
	pthread_mutex_unlock(&d->con_order);
	return len;
}

void hyp__console_put(struct hyp_domain *d, const char *buf, size_t len)
{
	put(d, buf, len, false);
}

size_t hyp_console_offer(struct hyp_domain *d, const char *buf, size_t len)
{
	return put(d, buf, len, true);
}

/* ---- the output gate ----------------------------------------------------- */

int hyp_console_gate_hold(struct hyp *h, uint32_t domid)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->con_order);
	pthread_mutex_lock(&d->con_lock);
	if (!d->con_gated) {
		d->con_gated = true;
		d->con_held_at = d->con_produced;
		d->con_held_len = 0;
	}
	pthread_mutex_unlock(&d->con_lock);
	pthread_mutex_unlock(&d->con_order);
	hyp_domain_put(d);
	return 0;
}

int hyp_console_gate_mark(struct hyp *h, uint32_t domid, uint64_t *mark)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->con_lock);
	*mark = d->con_produced;
	pthread_mutex_unlock(&d->con_lock);
	hyp_domain_put(d);
	return 0;
}

/* Lets out the held bytes before upto; open: all of them, and stops
 * holding. con_held changes only under con_order, which is held here: the
 * event is sent from it after con_lock is dropped. */
static int gate_release(struct hyp *h, uint32_t domid, uint64_t upto, bool open)
{
	struct hyp_domain *d;
	size_t n = 0;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->con_order);
	pthread_mutex_lock(&d->con_lock);
	if (!open && upto > d->con_produced) {
		log_err("d%u: console gate: release up to %llu, past the output's end %llu",
			d->domid, (unsigned long long)upto,
			(unsigned long long)d->con_produced);
		pthread_mutex_unlock(&d->con_lock);
		err = -EINVAL;
		goto out;
	}
	if (d->con_gated) {
		n = d->con_held_len;
		if (!open && upto < d->con_held_at + n)
			n = upto > d->con_held_at ? (size_t)(upto - d->con_held_at) : 0;
		deliver_locked(d, d->con_held, n);
	}
	pthread_mutex_unlock(&d->con_lock);
	if (n && d->h->ev.console)
		d->h->ev.console(d->h->ev.opaque, d->domid, d->con_held, n);
	pthread_mutex_lock(&d->con_lock);
	if (d->con_gated && n) {
		memmove(d->con_held, d->con_held + n, d->con_held_len - n);
		d->con_held_at += n;
		d->con_held_len -= n;
	}
	if (d->con_gated && open) {
		d->con_gated = false;
		free(d->con_held);
		d->con_held = NULL;
	}
	pthread_mutex_unlock(&d->con_lock);
out:
	pthread_mutex_unlock(&d->con_order);
	hyp_domain_put(d);
	return err;
}

int hyp_console_gate_release(struct hyp *h, uint32_t domid, uint64_t upto)
{
	return gate_release(h, domid, upto, false);
}

int hyp_console_gate_open(struct hyp *h, uint32_t domid)
{
	return gate_release(h, domid, 0, true);
}

/* Puts saved output back in the ring (not the log, no events). */
static void seed(struct hyp_domain *d, const char *buf, size_t len, uint64_t total)
{
	if (len > CONSOLE_RING) {
		buf += len - CONSOLE_RING;
		len = CONSOLE_RING;
	}
	pthread_mutex_lock(&d->con_lock);
	/* Positions continue where they were: the seeded bytes end at total. */
	if (total >= len && total - len > d->con_head)
		d->con_head = total - len;
	for (size_t i = 0; i < len; i++)
		d->con_ring[(d->con_head + i) % CONSOLE_RING] = buf[i];
	d->con_head += len;
	if (d->con_produced < d->con_head)
		d->con_produced = d->con_head;
	pthread_mutex_unlock(&d->con_lock);
}

int hyp_console_seed(struct hyp *h, uint32_t domid, const char *buf, size_t len,
		     uint64_t total)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	seed(d, buf, len, total);
	hyp_domain_put(d);
	return 0;
}

int hyp__console_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	struct ferry_hvm_console c = { .version = 1 };
	uint8_t *buf = malloc(sizeof(c) + CONSOLE_RING);
	int err;

	if (!buf) {
		log_err("d%u: no memory for the console history", d->domid);
		return -ENOMEM;
	}
	/* Everything the guest wrote, what the gate still holds included: a
	 * copy resumed from this state (HA's backup) has printed it, and the
	 * gate's bytes exist nowhere else. While gated, con_head is where the
	 * held bytes begin. */
	pthread_mutex_lock(&d->con_lock);
	{
		uint64_t total = d->con_head + (d->con_gated ? d->con_held_len : 0);

		c.total_written = total;
		c.length = (uint32_t)(total < CONSOLE_RING ? total : CONSOLE_RING);
		for (uint32_t i = 0; i < c.length; i++) {
			uint64_t pos = total - c.length + i;

			buf[sizeof(c) + i] =
				(uint8_t)(pos < d->con_head
						  ? d->con_ring[pos % CONSOLE_RING]
						  : d->con_held[pos - d->con_head]);
		}
	}
	pthread_mutex_unlock(&d->con_lock);
	memcpy(buf, &c, sizeof(c));
	err = emit(opaque, FERRY_HVM_CONSOLE, 0, buf, (uint32_t)sizeof(c) + c.length);
	free(buf);
	return err;
}

int hyp__console_ctx_load(struct hyp_domain *d, uint16_t instance, const void *data, uint32_t len)
{
	struct ferry_hvm_console c;

	if (instance != 0 || len < sizeof(c)) {
		log_err("d%u: HVM context entry CONSOLE/%u: instance must be 0 and length at "
			"least %zu, got length %u",
			d->domid, instance, sizeof(c), len);
		return -EINVAL;
	}
	memcpy(&c, data, sizeof(c));
	if (c.version != 1 || c.reserved || c.reserved2) {
		log_err("d%u: HVM context entry CONSOLE: version %u reserved %u %u, expected 1, "
			"0 and 0",
			d->domid, c.version, c.reserved, c.reserved2);
		return -EINVAL;
	}
	if (c.length != len - sizeof(c) || c.length > c.total_written) {
		log_err("d%u: HVM context entry CONSOLE: length %u, expected the %zu bytes that "
			"follow, at most total_written %llu",
			d->domid, c.length, len - sizeof(c), (unsigned long long)c.total_written);
		return -EINVAL;
	}
	if (d->ctx_have_console) {
		log_err("d%u: HVM context entry CONSOLE: a second one", d->domid);
		return -EINVAL;
	}
	d->ctx_have_console = true;
	seed(d, (const char *)data + sizeof(c), c.length, c.total_written);
	return 0;
}

int hyp_console_read(struct hyp *h, uint32_t domid, char *buf, size_t len,
		     size_t *got)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);
	size_t n;

	if (err)
		return err;
	pthread_mutex_lock(&d->con_lock);
	n = d->con_head < CONSOLE_RING ? d->con_head : CONSOLE_RING;
	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		buf[i] = d->con_ring[(d->con_head - n + i) % CONSOLE_RING];
	pthread_mutex_unlock(&d->con_lock);
	*got = n;
	hyp_domain_put(d);
	return 0;
}
