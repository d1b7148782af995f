// SPDX-License-Identifier: MIT
/* The hypervisor instance: machine memory, the backend default, domains. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "internal.h"

static const struct hyp_exec_ops *const backends[] = {
	&hyp_exec_ops_kvm,
	&hyp_exec_ops_soft,
};

const struct hyp_exec_ops *hyp_backend_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

int hyp_create(const struct hyp_params *p, struct hyp **out)
{
	struct hyp *h;
	const char *want = p->backend && *p->backend ? p->backend : "auto";
	char why[HYP_PROBE_WHY_MAX];
	long ncpu;
	int err;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->next_domid = 1;
	h->ev = p->events;
	snprintf(h->state_dir, sizeof(h->state_dir), "%s",
		 p->state_dir ? p->state_dir : "");
	snprintf(h->guest_elf, sizeof(h->guest_elf), "%s",
		 p->guest_elf ? p->guest_elf : "");
	h->soft_guest = p->soft_guest;
	h->pv_backend = p->pv_backend;
	h->pv_backend_opaque = p->pv_backend_opaque;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	h->pcpus = p->pcpus ? p->pcpus : (unsigned)(ncpu > 0 ? ncpu : 1);

	if (!strcmp(want, "auto")) {
		/* No KVM here is what auto is for: info, not an error. */
		if (hyp_exec_ops_kvm.probe(why, sizeof(why))) {
			h->default_ops = &hyp_exec_ops_soft;
			log_info("backend auto: using soft, as kvm cannot run here: %s", why);
		} else {
			h->default_ops = &hyp_exec_ops_kvm;
			log_info("backend auto: using kvm");
		}
	} else {
		h->default_ops = hyp_backend_by_name(want);
		if (!h->default_ops) {
			log_err("unknown backend '%s' (expected kvm, soft or auto)", want);
			err = -EINVAL;
			goto err_free;
		}
		err = h->default_ops->probe(why, sizeof(why));
		if (err) {
			log_err("%s backend: %s", want, why);
			goto err_free;
		}
	}
	err = hyp__mem_init(&h->mem, p->memory_bytes, p->prealloc, p->pool_file);
	if (err)
		goto err_free;
	err = sched_init(h);
	if (err) {
		hyp__mem_fini(&h->mem);
		goto err_free;
	}
	if (*h->state_dir) {
		char dir[HYP_PATH_MAX + 16];

		snprintf(dir, sizeof(dir), "%s/console", h->state_dir);
		mkdir(h->state_dir, 0700);
		mkdir(dir, 0700);
	}
	*out = h;
	return 0;

err_free:
	pthread_mutex_destroy(&h->lock);
	free(h);
	return err;
}

void hyp_destroy(struct hyp *h)
{
	uint32_t ids[256];
	int n;

	pthread_mutex_lock(&h->lock);
	h->closing = true;
	pthread_mutex_unlock(&h->lock);
	while ((n = hyp_domain_list(h, ids, 256)) > 0)
		for (int i = 0; i < n; i++)
			hyp_domain_destroy(h, ids[i]);
	/* Reapers and holders of domain references finish before the pool
	 * and the domains' memory go. */
	pthread_mutex_lock(&h->lock);
	while (h->nalive || h->nreapers)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	sched_fini(h);
	hyp__mem_fini(&h->mem);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int hyp_get_info(struct hyp *h, struct hyp_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&h->lock);
	out->pcpus = h->pcpus;
	out->total_bytes = h->mem.nframes << 12;
	pthread_mutex_lock(&h->mem.lock);
	out->free_bytes = h->mem.nfree << 12;
	pthread_mutex_unlock(&h->mem.lock);
	out->backend = h->default_ops->name;
	out->ndomains = h->ndomains;
	pthread_mutex_unlock(&h->lock);
	snprintf(out->kvm_version, sizeof(out->kvm_version), "%s",
		 h->default_ops == &hyp_exec_ops_kvm ? "KVM API 12" : "none");
	return 0;
}

const char *hyp_state_name(enum hyp_dom_state s)
{
	static const char *const names[] = { "running", "blocked", "paused",
					     "shutdown", "crashed", "dying" };
	return (unsigned)s < 6 ? names[s] : "unknown";
}

char hyp_state_letter(enum hyp_dom_state s)
{
	return (unsigned)s < 6 ? "rbpscd"[s] : '?';
}
