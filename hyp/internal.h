/* SPDX-License-Identifier: MIT */
/* Private to hyp/: the structures behind the opaque handles. */
#ifndef HYP_INTERNAL_H
#define HYP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "abi/guest.h"
#include "formats/hvm-context.h"
#include "hyp/context.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"
#include "hyp/uffd.h"

#define CONSOLE_RING 65536

/* ---- machine memory (mem.c) ------------------------------------------- */

#define M2P_INVALID UINT64_MAX
#define MFN_INVALID UINT32_MAX

struct hyp_mem {
	/* the pool: a sparse memfd, or a file on tmpfs (--pool-file), one
	 * frame per 4 KiB */
	int memfd;
	uint64_t nframes;
	uint64_t nfree;
	uint64_t *free_map;	/* bit set = frame free */
	/* bit set = a free frame holding a host page with stale contents,
	 * kept from a destroyed domain for the next restore (hyp__mem_release) */
	uint64_t *warm_map;
	uint64_t nwarm_free;
	uint64_t warm_cursor;	/* hyp__mem_swap_warm's search start */
	uint64_t cursor;	/* next-fit search start */
	uint64_t *m2p;		/* frame -> (domid << 48 | gfn), lazily touched */
	pthread_mutex_t lock;
	/* touches the M2P's pages once, in the background (mem.c) */
	pthread_t toucher;
	bool toucher_on;
	volatile int toucher_stop;
	/* --prealloc: gives the free holes of the pool's top half a host
	 * page once, in the background (mem.c); the frames it holds meanwhile are not free in
	 * free_map but are counted in nfree, and prealloc_done is signalled
	 * when they are back */
	pthread_t prealloc;
	bool prealloc_on;
	volatile int prealloc_stop;
	uint64_t prealloc_held;
	pthread_cond_t prealloc_done;
};

/* --prealloc leaves the last frame of every 64 MiB a hole (mem.c). */
#define HYP_MEM_PREALLOC_GAP 16384

/* prealloc: start the populator (hyp_params.prealloc); pool_file: keep
 * the pool there (hyp_params.pool_file), NULL for a memfd. */
int hyp__mem_init(struct hyp_mem *m, uint64_t bytes, bool prealloc, const char *pool_file);
void hyp__mem_fini(struct hyp_mem *m);
/* Allocates frames for gfns [gfn, gfn + n) of domid, filling p2m[] and
 * mapping each extent at hva + gfn * 4 KiB. All or nothing. They read as
 * zeros. */
int hyp__mem_populate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva, uint64_t gfn,
		      uint64_t n);
/* The same for a lazy restore's domain: warm frames are taken as they are,
 * their old contents never reaching the guest (hyp_domain_create_lazy). */
int hyp__mem_populate_unscrubbed(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva,
				 uint64_t n);
/*
 * Restore, about to write gfns [gfn, gfn + n) whole, every one populated
 * and never written: gives them warm frames in place of theirs, as far as
 * there are any (the first so many gfns). Their host pages are allocated
 * already, so the write is only a copy.
 */
void hyp__mem_swap_warm(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva,
			uint64_t gfn,
			uint64_t n);
/*
 * The first run of frames holding data (not holes) in [from, end): 1 and
 * [*first, *last), 0 when there is none, or -errno from SEEK_DATA; on
 * those the run is empty ([end, end)).
 */
int hyp__mem_next_data(struct hyp_mem *m, uint64_t from, uint64_t end, uint64_t *first,
		       uint64_t *last);
/* A run of consecutive frames [mfn, mfn + len) at gfns [gfn, gfn + len). */
struct hyp__run {
	uint64_t mfn, gfn, len;
};
/* The runs of p2m[0, n) (its MFN_INVALID entries skipped), sorted by
 * frame: 0 and *runs to free, or -ENOMEM. */
int hyp__mem_runs(const uint32_t *p2m, uint64_t n, struct hyp__run **runs, size_t *nruns);
/*
 * Calls fn for every part [first, last) of the sorted runs that holds
 * data, in one sweep of the pool's extents: 0 or -errno from SEEK_DATA.
 * A SEEK_DATA/SEEK_HOLE pair per run scans from the run to the end of its
 * extent: the 100k runs of a 1 GiB domain restored onto scattered frames
 * took 21-27 s that way (to release, or to list what a save sends).
 */
int hyp__mem_runs_data(struct hyp_mem *m, const struct hyp__run *runs, size_t nruns,
		       void (*fn)(void *opaque, const struct hyp__run *r, uint64_t first,
				  uint64_t last),
		       void *opaque);
/* Returns every frame in p2m[0..n) to the pool, keeping the host pages of
 * those that have them (warm frames, for the next restore). */
void hyp__mem_release(struct hyp_mem *m, uint32_t *p2m, uint64_t n);
/* Balloon: gives the frames of gfns [gfn, gfn + n) (every one populated)
 * back to the pool; the view there reads as zeros afterwards. */
int hyp__mem_unpopulate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m,
			uint8_t *hva, uint64_t gfn, uint64_t n);
/* balloon.c: XENMEM_{decrease_reservation,populate_physmap,
 * current_reservation,maximum_reservation}, a Xen result. */
int64_t hyp__balloon_memory_op(struct hyp_domain *d, uint64_t op, uint64_t arg);
/* p2m.c: gfns [gfn, gfn + n) become type t. Under p2m_lock. */
void hyp__p2m_set_locked(struct hyp_domain *d, uint64_t gfn, uint64_t n, enum hyp_p2m_type t);
/* Restore: gives frames to the holes among [pfn, pfn + npages). */
int hyp__gmem_fill_holes(struct hyp_domain *d, uint64_t pfn, uint64_t npages);

/* ---- execution backends (exec-kvm/, exec-soft/) ------------------------ */

struct hyp_vcpu;
struct hyp_domain;

enum hyp_exit_kind {
	HYP_EXIT_NONE,	    /* nothing to do (kicked, slice done) */
	HYP_EXIT_HCALL,	    /* hypercall in hc */
	HYP_EXIT_CRASH,	    /* the guest is beyond saving; reason logged */
	HYP_EXIT_STOPPED,   /* this vCPU is done (soft: guest shut down) */
};

struct hyp_exit {
	enum hyp_exit_kind kind;
	uint64_t nr;
	uint64_t arg[5];
};

/*
 * An execution backend, chosen once per domain. Every hook is mandatory.
 * dom_init runs once the guest memory is populated and loaded; vcpu_*
 * hooks run on the vCPU's own thread except vcpu_kick (any thread).
 */
#define HYP_PROBE_WHY_MAX 192 /* hyp_exec_ops.probe's why, with its NUL */

struct hyp_exec_ops {
	const char *name;
	/* 0 if the backend can run here, else -errno with why not in why.
	 * A missing /dev/kvm is not logged (under --backend auto it is no
	 * error): the caller logs why at the level that fits. */
	int (*probe)(char *why, size_t len);
	int (*dom_init)(struct hyp_domain *d);
	void (*dom_fini)(struct hyp_domain *d);
	/* Create vCPU state and set its boot registers (none when
	 * d->restoring: the loaded context brings them). Runs on the creating
	 * thread, before the vCPU thread starts. */
	int (*vcpu_init)(struct hyp_vcpu *v);
	void (*vcpu_fini)(struct hyp_vcpu *v);
	/* Run until something needs ferryd; fills *ex. */
	int (*vcpu_run)(struct hyp_vcpu *v, struct hyp_exit *ex);
	/* Completes a hypercall reported by vcpu_run with its result. */
	void (*vcpu_hcall_done)(struct hyp_vcpu *v, int64_t ret);
	/* Makes a running vcpu_run return soon (any thread). */
	void (*vcpu_kick)(struct hyp_vcpu *v);
	/* Guest system time in ns (the clock set_timer_op deadlines use). */
	uint64_t (*now_ns)(struct hyp_domain *d);
	/* The guest mapped shared_info at gpa (vcpu_info time records). */
	void (*shared_info_mapped)(struct hyp_domain *d, uint64_t gpa);
	/* Whether the guest ELF and page tables are needed (soft: no). */
	bool loads_kernel;

	/* ---- save and restore (context.c) ----
	 * On the vCPU's own thread, as it parks: complete whatever exit the
	 * backend last reported (kvm: the pending port I/O, after
	 * vcpu_hcall_done wrote the result) so the vCPU's state read from
	 * another thread is exactly the state to resume from. */
	void (*vcpu_quiesce)(struct hyp_vcpu *v);
	/* The domain is paused and every vCPU parked: emit the backend's
	 * per-vCPU and per-VM entries. Any thread. */
	int (*save_context)(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
	/* Check and buffer one entry of this backend's (typecode in the
	 * backend's range); -EINVAL logged, naming the entry. */
	int (*load_entry)(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
			  const void *data, uint32_t len);
	/* Every entry given and the domain paused, parked, d's generic fields
	 * (shared_info_gpa, callback_vector, entry) restored: check that
	 * every required entry arrived (-EINVAL naming the missing one) and
	 * write the state; the guest's system time continues from
	 * dom->system_time_ns. The load buffers are gone afterwards. */
	int (*load_done)(struct hyp_domain *d, const struct ferry_hvm_domain *dom);
	/* TSC frequency the guest sees, kHz. */
	uint32_t (*tsc_khz)(struct hyp_domain *d);
	/* Event-channel upcall (evtchn.c): raise vector in the vCPU, any
	 * thread. Dropped when the guest cannot take it (kvm: LAPIC off). */
	void (*inject_vector)(struct hyp_vcpu *v, uint8_t vector);
};

extern const struct hyp_exec_ops hyp_exec_ops_kvm;
extern const struct hyp_exec_ops hyp_exec_ops_soft;
/* NULL for an unknown name. */
const struct hyp_exec_ops *hyp_backend_by_name(const char *name);

/* ---- domains ----------------------------------------------------------- */

struct hyp_vcpu {
	struct hyp_domain *d;
	unsigned id;
	pthread_t thread;
	bool thread_started;
	bool parked;		/* waiting while paused (under d->lock) */
	bool blocked;		/* in SCHEDOP_block */
	bool kicked;		/* wake a block early (under d->lock) */
	bool exited;		/* the thread has left its loop */
	uint64_t timer_ns;	/* set_timer_op deadline, 0 = none */
	uint64_t cpu_ns_done;	/* CPU time of the finished thread */
	/* scheduler (sched-*.c, cpupool.c), under h->sched->lock */
	struct hyp_vcpu *sched_next, *sched_prev; /* the pool's vCPU list */
	bool sched_listed;	/* on pool sched_pool_in's list */
	bool sched_waiting;	/* in sched_acquire */
	bool sched_running;	/* holds sched_cpu1 - 1 */
	bool sched_kicked;	/* the ticker kicked this run */
	unsigned sched_pool_in;
	unsigned sched_cpu1;	/* pCPU + 1 held (null: assigned), 0 = none */
	unsigned sched_last_cpu1;
	int64_t sched_credit;	/* ns */
	uint64_t sched_seq;	/* wait order, ties */
	uint64_t sched_hard, sched_soft; /* affinity, 0 = all */
	uint64_t sched_run_cpu_ns, sched_run_wall_ns; /* at the run's start */
	clockid_t cpu_clock;
	void *exec;		/* backend-private */
};

struct hyp_domain {
	struct hyp *h;
	uint32_t domid;
	struct hyp_dom_config cfg;
	const struct hyp_exec_ops *ops;
	void *exec;		/* backend-private */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;		/* under h->lock */
	enum hyp_dom_state state;
	unsigned shutdown_reason;
	/* Pausing (domain.c), under lock: the vCPUs park while paused, which
	 * is pause_ctl || pause_op || fenced. */
	bool paused;
	bool run_said;		/* the last ev.run said the vCPUs may run */
	unsigned pause_ctl;	/* the toolstack's count (Xen's controller) */
	unsigned pause_op;	/* the operations' count */
	bool stopping;		/* vCPU threads must exit */
	bool listed;		/* still in h->domains */
	bool fenced;		/* migrated away, fate unknown: unpause refused */
	bool mem_lost;		/* hyp_domain_mem_lost: paused for good */
	/* The owner operation (hyp_domain_claim), under lock. */
	enum hyp_op op;
	char op_detail[HYP_OP_DETAIL_MAX];
	unsigned cap;		/* cap.c: % of one pCPU for the domain, 0 = none
				 * (under h->sched->lock) */
	/* scheduler, under h->sched->lock */
	unsigned sched_weight;	/* 0 = SCHED_DEFAULT_WEIGHT */
	unsigned sched_cap_user; /* the cap set by sched_credit2_set: cap may
				  * be migration's throttle, which never travels */
	unsigned sched_pool;	/* cpupool id */
	int64_t sched_budget_ns; /* cap budget left in this period */
	uint64_t sched_period_end_ns;
	/* Built by hyp_domain_create_restore: no boot state, must not run
	 * before hyp_domain_resume_restored. Backends read it in dom_init and
	 * vcpu_init. */
	bool restoring;
	/* context.c: the FERRY_HVM_DOMAIN entry of a load in progress */
	bool ctx_have_dom;
	bool ctx_have_console; /* a CONSOLE entry came in this load */
	struct ferry_hvm_domain ctx_dom;
	/* cpupool.c: the SCHED / SCHED_VCPU entries of a load in progress */
	bool ctx_have_sched;
	struct ferry_hvm_sched ctx_sched;
	uint32_t ctx_sched_vcpus; /* bit per vCPU whose SCHED_VCPU arrived */
	struct ferry_hvm_sched_vcpu ctx_sched_vcpu[HYP_MAX_VCPUS];

	uint8_t *hva;		/* guest-physical view, maxmem bytes reserved */
	uint64_t mem_bytes;	/* the physmap: [0, mem_bytes), holes where
				 * the balloon took frames (p2m MFN_INVALID) */
	uint64_t maxmem_bytes;
	uint32_t *p2m;		/* gfn -> mfn */
	uint8_t *p2m_type;	/* p2m.c: gfn -> enum hyp_p2m_type, under
				 * p2m_lock; HOLE exactly where p2m[] has no
				 * frame */
	/* balloon.c, under p2m_lock: frames held (Xen's tot_pages) and the
	 * most it may hold (max_pages) */
	pthread_mutex_t p2m_lock;
	uint64_t p2m_gen; /* bumped by every change of a type (atomic reads) */
	uint64_t nr_pages, max_pages;
	/* A restore's, until libxc END: the gfns the stream has not written
	 * yet, whose frames warm ones may replace (hyp__mem_swap_warm). */
	uint64_t *unwritten;
	uint64_t *host_dirty;	/* pages ferryd wrote, see hyp_gmem_write */
	/* uffd.c: the one userfaultfd owner of [hva, hva + mem_bytes); every
	 * remap there goes between hyp__uffd_remap_begin and _end */
	struct hyp_uffd *uffd;
	uint64_t shared_info_gpa;
	uint64_t entry;		/* kernel entry point (kvm) */
	uint64_t callback_vector;
	struct evtchn_state *evtchn; /* evtchn.c */
	struct gnttab_state *gnttab; /* gnttab.c */
	/* pv.c: the PV rings: their ports in this domain, and the backend's
	 * state (hyp_pv_backend_ops); pv_on once the backend took them */
	uint32_t pv_con_port, pv_xs_port;
	void *pv_priv;
	bool pv_on;

	hyp_ring_full_fn ring_full;
	void *ring_full_opaque;
	unsigned ring_full_busy;	/* hook calls in flight, under lock */

	unsigned nvcpus;
	struct hyp_vcpu vcpus[HYP_MAX_VCPUS];

	/* console (console.c), under con_lock */
	pthread_mutex_t con_lock;
	char *con_ring;
	uint64_t con_head;
	int con_log_fd;
	/* The output gate (hyp_console_gate_*): while con_gated, output goes
	 * to con_held (con_held_len bytes from position con_held_at) instead
	 * of the ring, the log and the events. con_produced counts every byte
	 * the guest wrote, held or not. */
	bool con_gated;
	char *con_held;
	size_t con_held_len;
	uint64_t con_held_at, con_produced;
	/* Held across a delivery (ring, log, event) so that events come in
	 * the order of the output; taken before con_lock. */
	pthread_mutex_t con_order;

	struct hyp_domain *next;
};

struct hyp {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* nalive or nreapers changed */
	unsigned nalive;	/* domains allocated and not yet freed */
	unsigned nreapers;	/* shutdown actions in flight */
	bool closing;		/* hyp_destroy has begun: no new domains */
	struct hyp_mem mem;
	const struct hyp_exec_ops *default_ops;
	unsigned pcpus;
	struct sched *sched;	/* cpupool.c */
	char state_dir[HYP_PATH_MAX];
	char guest_elf[HYP_PATH_MAX];
	const struct hyp_soft_guest_ops *soft_guest; /* NULL: no soft domains */
	struct hyp_events ev;
	/* pv.c: the PV rings' backends (hyp/pv.h; NULL: no PV rings) */
	const struct hyp_pv_backend_ops *pv_backend;
	void *pv_backend_opaque;
	uint32_t next_domid;
	struct hyp_domain *domains; /* in domid order */
	unsigned ndomains;
};

/* domain.c */
void hyp__dom_set_state(struct hyp_domain *d, enum hyp_dom_state s);
/* The guest asked to stop with reason (SHUTDOWN_*): apply on_* action. */
void hyp__dom_guest_shutdown(struct hyp_domain *d, unsigned reason);
/* Crash from a backend (message already logged). */
void hyp__dom_crash(struct hyp_domain *d);
/* Waits until every vCPU thread is parked or gone; false if the domain is
 * not paused (then nothing is waited for). */
bool hyp__dom_wait_parked(struct hyp_domain *d);

/* vcpu.c */
int hyp__vcpu_start(struct hyp_vcpu *v);
/* Sleep in SCHEDOP_block until the timer, a kick, pause or stop. */
void hyp__vcpu_block(struct hyp_vcpu *v);

/* ---- scheduler (cpupool.c, sched-credit2.c, sched-null.c, cap.c) ------ */

#include "hyp/sched.h"

enum sched_kind { SCHED_CREDIT2, SCHED_NULL };

struct sched_pool {
	bool used;
	char name[SCHED_POOL_NAME_MAX];
	enum sched_kind kind;
	uint64_t cpus;
	pthread_cond_t cond;	/* a pCPU of the pool was released */
	struct hyp_vcpu *vcpus;	/* every started vCPU of the pool's domains */
	uint64_t seq;
};

struct sched {
	struct hyp *h;
	pthread_mutex_t lock;
	unsigned npcpus;
	struct hyp_vcpu *owner[SCHED_MAX_PCPUS]; /* holder (null: assignee) */
	int cpu_pool[SCHED_MAX_PCPUS];		 /* -1: free */
	struct sched_pool pools[SCHED_MAX_POOLS];
	pthread_t ticker;
	pthread_cond_t tick_cond;
	bool stop;
	uint64_t switches;
};

#define SCHED_TIMESLICE_NS 10000000ULL	 /* 10 ms */
#define SCHED_CREDIT_INIT_NS 10000000LL	 /* credit2's CSCHED2_CREDIT_INIT */
#define SCHED_CAP_PERIOD_NS 100000000ULL /* cap budget refill */
#define SCHED_TICK_NS 2000000ULL

int sched_init(struct hyp *h);
void sched_fini(struct hyp *h);
/* On the vCPU's thread before a run: waits for a pCPU. False when the
 * domain is paused or stopping (nothing held). */
bool sched_acquire(struct hyp_vcpu *v);
/* After a run: charges it, gives the pCPU back (null: keeps the
 * assignment), and stays queued for the next one. */
void sched_release(struct hyp_vcpu *v);
/* Blocking (SCHEDOP_block): the same, not queued. */
void sched_block(struct hyp_vcpu *v);
/* The vCPU thread ends: leaves its pool. */
void sched_vcpu_exit(struct hyp_vcpu *v);
uint64_t sched_thread_ns(struct hyp_vcpu *v);
/* Under s->lock. */
void sched_list_add(struct sched *s, struct hyp_vcpu *v, unsigned pool);
void sched_list_del(struct sched *s, struct hyp_vcpu *v);
bool hyp__credit2_acquire_locked(struct sched *s, struct hyp_vcpu *v);
void hyp__credit2_release_locked(struct sched *s, struct hyp_vcpu *v, bool runnable);
/* Any vCPU of the pool queued for a pCPU. */
bool hyp__credit2_has_waiter_locked(struct sched_pool *p);
bool hyp__null_acquire_locked(struct sched *s, struct hyp_vcpu *v);
void hyp__null_release_locked(struct sched *s, struct hyp_vcpu *v);
/* Drops the null assignment of v (exit, pool change). */
void hyp__null_unassign_locked(struct sched *s, struct hyp_vcpu *v);
/* Waits on the pool's condvar at most ns (pause and stop are polled). */
void sched_wait_locked(struct sched *s, struct sched_pool *p, uint64_t ns);
/* cap.c: refills d's budget when its period ended; true if d may run. */
bool hyp__cap_may_run_locked(struct hyp_domain *d, uint64_t now);
/* cap.c: charges ns of CPU to the domain's budget. */
void hyp__cap_charge_locked(struct hyp_domain *d, uint64_t ns);
/* cpupool.c: the SCHED and SCHED_VCPU entries (context.c). apply falls
 * back (target's default pool, its pCPUs) with a warning, never fails. */
int sched_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
int sched_ctx_load(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
		   const void *data, uint32_t len);
void sched_ctx_apply(struct hyp_domain *d);

/* hypercall.c: dispatch one hypercall, returns the value for rax. */
int64_t hyp_hypercall(struct hyp_vcpu *v, uint64_t nr, const uint64_t *arg);

/* evtchn.c: the domain's port table. close_all (at destroy, vCPUs stopped)
 * closes every port so interdomain peers become unbound; fini frees. */
int evtchn_dom_init(struct hyp_domain *d);
void evtchn_dom_close_all(struct hyp_domain *d);
void evtchn_dom_fini(struct hyp_domain *d);
int64_t hyp__hc_event_channel_op(struct hyp_vcpu *v, const uint64_t *arg);
/* SCHEDOP_block: Xen's do_block (unmask, sleep unless an event is pending),
 * then the timer check. */
void evtchn_block(struct hyp_vcpu *v);
/* On the vCPU's thread: a passed set_timer_op deadline raises VIRQ_TIMER
 * (one-shot) when the vCPU has it bound. */
void evtchn_timer_poll(struct hyp_vcpu *v);
/* The EVTCHN entries (context.c): save emits one per bound port; load
 * checks one and keeps it; apply (load_done) builds the table from the
 * kept ones. -EINVAL naming the entry and field for a bad one. */
int evtchn_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
int evtchn_ctx_load(struct hyp_domain *d, uint16_t port, const void *data, uint32_t len);
int evtchn_ctx_apply(struct hyp_domain *d);

/* gnttab.c */
int gnttab_dom_init(struct hyp_domain *d);
void gnttab_dom_fini(struct hyp_domain *d);
int64_t hyp__hc_grant_table_op(struct hyp_vcpu *v, const uint64_t *arg);
/* XENMEM_add_to_physmap(XENMAPSPACE_grant_table): gpfn becomes frame idx. */
int64_t gnttab_add_to_physmap(struct hyp_domain *d, uint64_t idx, uint64_t gpfn);
/* The GNTTAB entry (context.c), as for evtchn_ctx_*. */
int gnttab_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
int gnttab_ctx_load(struct hyp_domain *d, uint16_t instance, const void *data,
		    uint32_t len);
void gnttab_ctx_apply(struct hyp_domain *d);

/* pv.c: the PV rings' ports, handed to the backend (hyp/pv.h). init at
 * create before the vCPUs start; stop (the backend stops touching the
 * domain) before the ports close at destroy; fini frees (stops first). */
int hyp__pv_dom_init(struct hyp_domain *d);
void hyp__pv_dom_stop(struct hyp_domain *d);
void hyp__pv_dom_fini(struct hyp_domain *d);
/* HVMOP_get_param of the ring params; -XEN_EINVAL for other indices. */
int64_t hyp__pv_hvm_param(struct hyp_domain *d, uint32_t index, uint64_t *value);
/* Whether guest RAM holds both ring pages. */
bool hyp__pv_rings_present(struct hyp_domain *d);

/* console.c */
int hyp__console_init(struct hyp_domain *d);
void hyp__console_fini(struct hyp_domain *d);
void hyp__console_put(struct hyp_domain *d, const char *buf, size_t len);
/* hyp__console_put within the gate's bound: returns the bytes taken (fewer than
 * len, maybe 0, when the gate holds HYP_CONSOLE_GATE_MAX bytes); the rest
 * stays in the guest's ring. */
size_t hyp_console_offer(struct hyp_domain *d, const char *buf, size_t len);
/* The CONSOLE entry (context.c): save emits the history ferryd holds; load
 * checks one and puts its bytes back in the ring (ferryd's record, not
 * the guest's: nothing to wait for). -EINVAL naming the field if bad. */
int hyp__console_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
int hyp__console_ctx_load(struct hyp_domain *d, uint16_t instance, const void *data, uint32_t len);
/* Reopens the console log under the domain's current name. */
void hyp__console_rename(struct hyp_domain *d);

/* Under p2m_lock: gfn has no frame (a ballooned hole). */
static inline bool hyp__p2m_hole(const struct hyp_domain *d, uint64_t gfn)
{
	return d->p2m_type[gfn] == HYP_P2M_HOLE;
}

/* loader.c (built-in guest and ELF kernels) */
#include "loader.h"

#endif
