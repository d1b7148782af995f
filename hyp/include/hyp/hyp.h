/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor core: machine memory and P2M, domains and their vCPUs run
 * by an execution backend (kvm or soft), hypercalls, console.
 *
 * Threading: struct hyp is shared by ferryd's event loop and the vCPU
 * threads. All hyp_* calls below are safe from any thread unless noted.
 * Events (console output, domain state changes) are reported through the
 * struct hyp_events callbacks, from whatever thread noticed them.
 */
#ifndef HYP_HYP_H
#define HYP_HYP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hyp;
struct hyp_domain;

#define HYP_NAME_MAX 64
#define HYP_CMDLINE_MAX 1024
#define HYP_PATH_MAX 4096
#define HYP_MAX_VCPUS 32

enum hyp_dom_state {
	HYP_DOM_RUNNING,  /* r */
	HYP_DOM_BLOCKED,  /* b: every vCPU blocked */
	HYP_DOM_PAUSED,   /* p */
	HYP_DOM_SHUTDOWN, /* s: guest shut down, not yet cleaned up */
	HYP_DOM_CRASHED,  /* c: crashed and preserved (on_crash=preserve) */
	HYP_DOM_DYING,    /* d */
};

enum hyp_on_event { HYP_ON_DESTROY, HYP_ON_PRESERVE, HYP_ON_RESTART };

struct hyp_dom_config {
	char name[HYP_NAME_MAX];
	uint8_t uuid[16];
	uint64_t memory_mb; /* the physmap: a domain never holds more */
	uint64_t maxmem_mb; /* address space reserved, >= memory_mb */
	/* The most it may hold (Xen's max_pages, xl mem-max), KiB, at most
	 * maxmem_mb; 0: maxmem_mb. hyp_domain_config reports the domain's
	 * current one, so a save carries it as Xen's config carries max_memkb. */
	uint64_t max_kb;
	unsigned vcpus;
	char kernel[HYP_PATH_MAX]; /* empty: the built-in guest */
	char cmdline[HYP_CMDLINE_MAX];
	char backend[8];  /* "kvm", "soft", or "" for ferryd's default */
	char logdirty[8]; /* kvm only: "bitmap" (default) or "ring" */
	enum hyp_on_event on_poweroff, on_reboot, on_crash;
};

/* Called from any thread; must not call back into hyp with locks held. */
struct hyp_events {
	void (*console)(void *opaque, uint32_t domid, const char *buf, size_t len);
	void (*state)(void *opaque, uint32_t domid, enum hyp_dom_state state);
	void (*gone)(void *opaque, uint32_t domid); /* destroyed */
	void *opaque;
};

/*
 * The soft backend's guest: hyp runs no guest code of its own, whoever
 * creates the hyp hands it in (ferryd: the built-in guest's workloads,
 * guests/soft.h's wl_soft_guest_ops; a test may give a fake). vCPU 0's
 * thread calls it with the platform below, Xen's hypercalls and the guest
 * mapping. The members mean what guests/workload.h's struct wl_platform's
 * mean.
 */
struct hyp_soft_platform {
	uint64_t (*now_ns)(void *opaque); /* guest system time */
	void (*console)(void *opaque, const char *s, size_t len);
	void (*block_until)(void *opaque, uint64_t deadline_ns); /* may return early */
	void (*shutdown)(void *opaque, unsigned reason); /* SHUTDOWN_*; returns */
	void *opaque;
};

/* A Xen hypercall on the calling vCPU (pointers are gpas); returns rax. */
typedef long (*hyp_soft_hypercall_fn)(void *opaque, unsigned long nr, unsigned long a1,
				      unsigned long a2, unsigned long a3);

struct hyp_soft_guest_ops {
	size_t ctx_size; /* hyp gives each vCPU this many zeroed bytes */
	/*
	 * Attach ctx to guest memory (mem_size bytes at host address
	 * mem_base): a first boot parses cmdline, a restored guest finds its
	 * state in memory. plat lives as long as ctx; hypercall is NULL when
	 * the guest has no PV services (called with plat->opaque). Returns 0
	 * or a negative errno (the guest says why on its console). Called
	 * again after every state load.
	 */
	int (*attach)(void *ctx, const struct hyp_soft_platform *plat,
		      hyp_soft_hypercall_fn hypercall, uintptr_t mem_base, uint64_t mem_size,
		      const char *cmdline);
	void (*run_slice)(void *ctx); /* about 10 ms of work at most */
};

struct hyp_params {
	const char *backend;   /* "kvm", "soft" or "auto" */
	unsigned pcpus;        /* 0: the host's */
	uint64_t memory_bytes; /* the machine-memory pool */
	const char *state_dir; /* console logs go to <state_dir>/console/ */
	const char *guest_elf; /* the built-in guest image */
	/* Soft domains' guest code; NULL: creating a soft domain fails. */
	const struct hyp_soft_guest_ops *soft_guest;
	struct hyp_events events;
};

struct hyp_info {
	unsigned pcpus;
	uint64_t total_bytes, free_bytes;
	const char *backend; /* the default backend */
	char kvm_version[32];
	unsigned ndomains;
};

struct hyp_dom_info {
	uint32_t domid;
	char name[HYP_NAME_MAX];
	uint64_t memory_kb; /* populated frames */
	uint64_t maxmem_kb;
	unsigned vcpus;
	enum hyp_dom_state state;
	double cpu_time_s;
	const char *backend;
	unsigned shutdown_reason; /* SHUTDOWN_* when state is SHUTDOWN/CRASHED */
	unsigned cap;		  /* scheduler cap, 0 = none */
	bool fenced;
};

/* Constructor: *out is owned by the caller, freed by hyp_destroy(). */
int hyp_create(const struct hyp_params *p, struct hyp **out);
/* Destroys every domain and waits for outstanding domain references
 * (hyp_domain_get) and shutdown actions to finish before freeing. */
void hyp_destroy(struct hyp *h);
int hyp_get_info(struct hyp *h, struct hyp_info *out);

/*
 * Create a domain from cfg. It is built paused; unless start_paused it is
 * then unpaused. Returns its domid (>= 1, never reused) through *domid.
 */
int hyp_domain_create(struct hyp *h, const struct hyp_dom_config *cfg,
		      bool start_paused, uint32_t *domid);
int hyp_domain_destroy(struct hyp *h, uint32_t domid);
int hyp_domain_pause(struct hyp *h, uint32_t domid);
int hyp_domain_unpause(struct hyp *h, uint32_t domid);
/* Ask the guest to shut down or reboot (guest cooperates). */
int hyp_domain_shutdown(struct hyp *h, uint32_t domid, bool reboot);
/*
 * Scheduler cap in percent of one pCPU per vCPU (Xen's credit2 cap):
 * 0 = none. Migration's auto-converge throttles a guest through it.
 */
int hyp_domain_set_cap(struct hyp *h, uint32_t domid, unsigned pct);
/*
 * xl mem-max: the most memory the domain may hold (Xen's max_pages), in
 * KiB. -EINVAL (logged) below what it holds now; -ERANGE (logged) above
 * its physmap (the memory it was created with), since the physmap never
 * grows: ballooning refills its holes, and that is all a domain can hold.
 */
int hyp_domain_set_maxmem(struct hyp *h, uint32_t domid, uint64_t max_kb);
/* Renames a domain (migration: NAME--incoming -> NAME). -EEXIST if taken. */
int hyp_domain_rename(struct hyp *h, uint32_t domid, const char *name);
/*
 * A fenced domain stays paused: unpause is refused with -EPERM until the
 * fence is lifted. Migration fences the source after "go" until it knows
 * the target's state, so two copies never run.
 */
int hyp_domain_set_fenced(struct hyp *h, uint32_t domid, bool fenced);
/* Looks a domain up by name or numeric id string; -ENOENT if none. */
int hyp_domain_lookup(struct hyp *h, const char *name_or_id, uint32_t *domid);
int hyp_domain_info(struct hyp *h, uint32_t domid, struct hyp_dom_info *out);
/* Copies the config the domain was created with, max_kb its current. */
int hyp_domain_config(struct hyp *h, uint32_t domid, struct hyp_dom_config *out);
/* Fills ids[] (up to max) in domid order; returns the count or -errno. */
int hyp_domain_list(struct hyp *h, uint32_t *ids, unsigned max);
/* The recent console output ferryd holds (up to len bytes, the newest). */
int hyp_console_read(struct hyp *h, uint32_t domid, char *buf, size_t len,
		     size_t *got);

/* Restore from a stream with the older FERRY_CONSOLE record (newer ones
 * carry the history in HVM_CONTEXT): puts saved output back in the ring
 * (not the log, no events). */
int hyp_console_seed(struct hyp *h, uint32_t domid, const char *buf, size_t len,
		     uint64_t total);

const char *hyp_state_name(enum hyp_dom_state s); /* "running", ... */
char hyp_state_letter(enum hyp_dom_state s);      /* Xen's r b p s c d */

#endif
