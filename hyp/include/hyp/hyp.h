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
struct hyp_pv_backend_ops;
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

/*
 * The operation that owns a domain (hyp_domain_claim): one at a time, so a
 * save, a migration, a snapshot or a remus pair never run over each other.
 */
enum hyp_op {
	HYP_OP_NONE,
	HYP_OP_SAVE,
	HYP_OP_MIGRATE, /* outgoing, or incoming until the target runs it */
	HYP_OP_SNAPSHOT,
	HYP_OP_REMUS,
};

#define HYP_OP_DETAIL_MAX 256

/* Who holds a domain: the operation and the detail its claimer gave (e.g.
 * "being migrated to 10.0.0.2"), for messages. */
struct hyp_op_holder {
	enum hyp_op op;
	char detail[HYP_OP_DETAIL_MAX];
};

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
	/*
	 * The domain's vCPUs may run from mono_ns (CLOCK_MONOTONIC) on, or
	 * none runs from then on. The times bound the truth from outside: a
	 * start is stamped before any vCPU can run, a stop once every one is
	 * parked or gone, so two hosts' logs on one clock that do not
	 * overlap prove the copies never ran at once. Calls for one domain
	 * may arrive out of order from different threads: order by mono_ns.
	 */
	void (*run)(void *opaque, uint32_t domid, bool running, uint64_t mono_ns);
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
	/* A pause or stop is pending: end the slice now. Cheap (one load);
	 * the guest calls it between batches of pages. */
	bool (*preempted)(void *opaque);
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
	/* About 10 ms of work at most; returns within about 100 us once
	 * plat->preempted says so, its state consistent in guest memory. */
	void (*run_slice)(void *ctx);
};

struct hyp_params {
	const char *backend;   /* "kvm", "soft" or "auto" */
	unsigned pcpus;        /* 0: the host's */
	uint64_t memory_bytes; /* the machine-memory pool */
	/* Back the free frames of the pool's top half with host pages in the
	 * background from the start (ferryd --prealloc): that memory is held
	 * from then on, and the first restore writes into warm frames. */
	bool prealloc;
	/* NULL: the pool is a memfd, gone with ferryd. Else a file on tmpfs
	 * that outlives it (ferryd --pool-file): the next ferryd finds what
	 * the last one's domains held backed, as warm frames. */
	const char *pool_file;
	const char *state_dir; /* console logs go to <state_dir>/console/ */
	const char *guest_elf; /* the built-in guest image */
	/* Soft domains' guest code; NULL: creating a soft domain fails. */
	const struct hyp_soft_guest_ops *soft_guest;
	struct hyp_events events;
	/* The dom0-side backends of the PV console and xenstore rings
	 * (hyp/pv.h; devices/ has them). NULL: domains get no PV rings. */
	const struct hyp_pv_backend_ops *pv_backend;
	void *pv_backend_opaque;
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
	unsigned pause_count;	 /* the toolstack's (hyp_domain_pause) */
	unsigned op_pause_count; /* operations' (hyp_domain_op_pause) */
	enum hyp_op op;		 /* the owner operation, HYP_OP_NONE: none */
	bool restoring;		 /* a restore is still loading it */
	bool mem_lost;		 /* hyp_domain_mem_lost: paused for good */
};

/* Constructor: *out is owned by the caller, freed by hyp_destroy(). */
int hyp_create(const struct hyp_params *p, struct hyp **out);
/* Destroys every domain and waits for outstanding domain references
 * (hyp_domain_get) and shutdown actions to finish before freeing. */
void hyp_destroy(struct hyp *h);
int hyp_get_info(struct hyp *h, struct hyp_info *out);

/*
 * Create a domain from cfg. It is built paused (the toolstack's pause count
 * at 1, as Xen's); unless start_paused it is then unpaused. Returns its
 * domid (>= 1, never reused) through *domid.
 */
int hyp_domain_create(struct hyp *h, const struct hyp_dom_config *cfg,
		      bool start_paused, uint32_t *domid);
int hyp_domain_destroy(struct hyp *h, uint32_t domid);
/*
 * Pausing. A domain has two pause counts, as Xen's has: the toolstack's
 * (Xen's controller pause count: xl pause and unpause, and a new domain's
 * first unpause) and the operations' (a save or a migration holding the
 * domain still while it reads it). Its vCPUs run only when both are zero
 * and it is not fenced, so an unpause by the user never resumes a domain an
 * operation holds paused, and an operation that pauses and unpauses leaves
 * the toolstack's pause exactly as it found it.
 *
 * hyp_domain_pause: +1 on the toolstack's count (-EOVERFLOW past 255, as
 * Xen; -EINVAL when the guest has shut down or crashed). Returns once every
 * vCPU is parked, if the domain is now paused. hyp_domain_unpause: -1 on it;
 * at zero it is a no-op returning 0 when the domain is not held paused, and
 * -EBUSY (logged) when an operation holds it paused; -EPERM (logged) when
 * fenced; -EINVAL while a restore has not loaded its context, or once the
 * guest shut down.
 */
int hyp_domain_pause(struct hyp *h, uint32_t domid);
int hyp_domain_unpause(struct hyp *h, uint32_t domid);
/*
 * The operations' count: every op_pause is matched by one op_unpause by the
 * same operation (-EINVAL, logged, below zero). op_unpause also works on a
 * guest that shut down meanwhile, so an operation can always let go.
 */
int hyp_domain_op_pause(struct hyp *h, uint32_t domid);
int hyp_domain_op_unpause(struct hyp *h, uint32_t domid);
/*
 * A lazy restore whose page source failed: part of the domain's memory can
 * never be read, and a vCPU (or any reader) stopped on such a page stays
 * stopped, so it can never park. The domain is paused for good at once,
 * without waiting for its vCPUs (an operations' pause never given back);
 * from then on pauses do not wait for them either, and unpause is refused
 * with -EIO. What is left to do with it is to destroy it.
 */
int hyp_domain_mem_lost(struct hyp *h, uint32_t domid);
/*
 * One owner operation per domain. claim: 0 and the domain is op's, or
 * -EBUSY and *holder (if not NULL) says who holds it; detail (may be NULL)
 * is what refusals say the domain is doing ("being saved to /x"). release:
 * -EINVAL (logged) if op does not hold it, -ENOENT if the domain is gone
 * (an operation may end by destroying it). Claims do not look at the fence:
 * what a fenced domain may do is the toolstack's policy.
 */
int hyp_domain_claim(struct hyp *h, uint32_t domid, enum hyp_op op, const char *detail,
		     struct hyp_op_holder *holder);
int hyp_domain_release(struct hyp *h, uint32_t domid, enum hyp_op op);
/* The holder of domid (op HYP_OP_NONE when none). */
int hyp_domain_holder(struct hyp *h, uint32_t domid, struct hyp_op_holder *out);
/* "save", "migration", "snapshot", "remus", "none". */
const char *hyp_op_name(enum hyp_op op);
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
 * A fenced domain stays paused, whatever its pause counts: unpause is
 * refused with -EPERM until the fence is lifted, and lifting it lets the
 * domain run when both counts are zero. Migration fences the source after
 * "go" until it knows the target's state, so two copies never run.
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

/*
 * The console's output gate, for HA's output commit: while held, what the
 * guest writes reaches neither the ring hyp_console_read returns, nor the
 * console log, nor hyp_events.console; it is kept, in order, until
 * released. Positions count every byte the guest wrote since it was
 * created. hold starts holding (nothing if already held); mark gives the
 * current position (the end of an epoch); release lets out what was
 * written before upto, in order, exactly once, and keeps holding; open
 * lets out everything and stops holding. At most HYP_CONSOLE_GATE_MAX bytes
 * are held: then the backend stops taking output from the guest's console
 * ring, which fills and backs up the guest, as a slow xenconsoled does;
 * nothing is dropped. (Output the soft backend writes itself, a line at
 * boot, is always taken.) The events callback must not call these.
 */
#define HYP_CONSOLE_GATE_MAX (1u << 20)
int hyp_console_gate_hold(struct hyp *h, uint32_t domid);
int hyp_console_gate_mark(struct hyp *h, uint32_t domid, uint64_t *mark);
int hyp_console_gate_release(struct hyp *h, uint32_t domid, uint64_t upto);
int hyp_console_gate_open(struct hyp *h, uint32_t domid);

/* Restore from a stream with the older FERRY_CONSOLE record (newer ones
 * carry the history in HVM_CONTEXT): puts saved output back in the ring
 * (not the log, no events). */
int hyp_console_seed(struct hyp *h, uint32_t domid, const char *buf, size_t len,
		     uint64_t total);

const char *hyp_state_name(enum hyp_dom_state s); /* "running", ... */
char hyp_state_letter(enum hyp_dom_state s);      /* Xen's r b p s c d */

#endif
