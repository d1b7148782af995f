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

int console_init(struct hyp_domain *d)
{
	d->con_ring = malloc(CONSOLE_RING);
	if (!d->con_ring)
		return -ENOMEM;
	d->con_log_fd = console_open_log(d);
	return 0;
}

void console_rename(struct hyp_domain *d)
{
	int fd = console_open_log(d), old;

	pthread_mutex_lock(&d->con_lock);
	old = d->con_log_fd;
	d->con_log_fd = fd;
	pthread_mutex_unlock(&d->con_lock);
	if (old >= 0)
		close(old);
}

void console_fini(struct hyp_domain *d)
{
	if (d->con_log_fd >= 0)
		close(d->con_log_fd);
	d->con_log_fd = -1;
	free(d->con_ring);
	d->con_ring = NULL;
	pthread_mutex_destroy(&d->con_lock);
}

void console_put(struct hyp_domain *d, const char *buf, size_t len)
{
	pthread_mutex_lock(&d->con_lock);
	for (size_t i = 0; i < len; i++)
		d->con_ring[(d->con_head + i) % CONSOLE_RING] = buf[i];
	d->con_head += len;
	if (d->con_log_fd >= 0 && write(d->con_log_fd, buf, len) < 0) {
		/* the ring still has it */
	}
	pthread_mutex_unlock(&d->con_lock);
	if (d->h->ev.console)
		d->h->ev.console(d->h->ev.opaque, d->domid, buf, len);
}

int hyp_console_state(struct hyp *h, uint32_t domid, char *buf, size_t len,
		      size_t *got, uint64_t *total)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->con_lock);
	*total = d->con_head;
	pthread_mutex_unlock(&d->con_lock);
	hyp_domain_put(d);
	return hyp_console_read(h, domid, buf, len, got);
}

int hyp_console_seed(struct hyp *h, uint32_t domid, const char *buf, size_t len,
		     uint64_t total)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
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
	pthread_mutex_unlock(&d->con_lock);
	hyp_domain_put(d);
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
