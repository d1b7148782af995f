/* SPDX-License-Identifier: MIT */
/*
 * Private to guests/workloads: the state kept in guest memory, the command
 * line parameters and the small formatting helpers. Freestanding, like the
 * public header; <stdarg.h> is one of the headers a freestanding C
 * implementation provides.
 */
#ifndef GUESTS_WORKLOADS_INTERNAL_H
#define GUESTS_WORKLOADS_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guests/workload.h>

#define WL_PAGE_SIZE 4096u
#define WL_PAGE_SHIFT 12
#define WL_NSEC_PER_SEC 1000000000ull

#define WL_STATE_MAGIC 0x54534c5759525246ull /* "FRRYWLST" */
#define WL_STATE_VERSION 1

enum wl_pattern { WL_SEQ = 1, WL_RANDOM = 2 };
/* What written pages hold: 0 (plain) keeps states saved before data=. */
enum wl_data { WL_DATA_PLAIN = 0, WL_DATA_MIX = 1 };

struct wl_params {
	uint32_t kind;		/* enum wl_kind */
	uint32_t pattern;	/* enum wl_pattern */
	uint64_t ws_bytes;	/* working set, rounded up to whole pages */
	uint64_t rate;		/* bytes per second; 0 writes nothing */
	uint64_t fill_bytes;	/* idle: write this much once, then idle */
	uint32_t data;		/* enum wl_data */
	/* pingpong: role=ping|pong peer=DOMID [port=N gref=M] */
	uint32_t pp_role;	/* enum wl_pp_role */
	uint32_t pp_peer;	/* 0: not given */
	uint32_t pp_port;	/* ping: pong's port, 0: from xenstore */
	uint32_t pp_gref;	/* ping: pong's grant, UINT32_MAX: xenstore */
};

enum wl_pp_role { WL_PP_PING = 1, WL_PP_PONG = 2 };

/* Pages (or other units of work) between two looks at wl_preempted: a
 * pending pause then waits for about 16 pages' work at most (~10 us). */
#define WL_PREEMPT_BATCH 16

/* The platform wants the vCPU back (soft: a pause or stop is pending): end
 * the slice now, with the state in guest memory whole. */
static inline bool wl_preempted(const struct wl_ctx *ctx)
{
	return ctx->plat->preempted && ctx->plat->preempted(ctx->plat->opaque);
}

/*
 * Lives at FERRY_ARENA_GPA and is saved, restored and migrated with the
 * rest of guest memory: it holds only guest-physical addresses and plain
 * numbers, never host pointers. Followed by the per-page uint32_t
 * generation table (gen_gpa) and then the page-aligned working set.
 */
struct wl_state {
	uint64_t magic;
	uint32_t version;
	uint32_t kind;
	uint32_t pattern;
	uint32_t resume_seen;	/* ferry_ctl.resume_count last acted on */
	uint64_t ws_bytes;
	uint64_t rate;
	uint64_t gen_gpa;	/* uint32_t gen[ws_pages] */
	uint64_t ws_gpa;
	uint64_t ws_pages;
	uint64_t rng;		/* xorshift64 state, never 0 */
	uint64_t cursor;	/* next page for pattern=seq */
	uint64_t writes;	/* page writes since boot */

	/* Pacing: writes are accounted up to pace_ns of guest time. */
	uint64_t ns_per_page;
	uint64_t pace_ns;

	/* Once-a-second report (dirty) and heartbeat (idle). */
	uint64_t report_ns;
	uint64_t report_writes;
	uint64_t heartbeats;

	/* verify: a sweep walks the working set over several slices. */
	uint64_t sweep_next_ns;	/* when the next sweep starts */
	uint64_t sweep_pos;	/* next page to check; ws_pages = idle */
	uint64_t sweep_mismatches;
	uint64_t sweeps;
	uint64_t resume_checks;

	/* spin: loop iterations since boot, and at the last report. */
	uint64_t spins;
	uint64_t report_spins;

	/* pingpong (appended: zero in states written before it existed) */
	uint32_t pp_role;
	uint32_t pp_peer;
	uint32_t pp_phase;	/* 0 set-up, 1 running */
	uint32_t pp_port;	/* our port */
	uint32_t pp_rport;	/* the peer's port (ping) */
	uint32_t pp_gref;	/* the grant pong made */
	uint64_t pp_seq;	/* ping: the counter in flight */
	uint64_t pp_sent_ns;	/* ping: when it was sent */
	uint64_t pp_rounds;
	uint64_t pp_report_rounds;
	uint64_t pp_wait_ns;	/* ping: next xenstore look-up */
	uint32_t pp_waiting_said;
	uint32_t pp_pad;

	/* balloon.c (appended): memory/target, the pages given back (the
	 * top bl_out pages of RAM) and whether it is still moving */
	uint64_t bl_target_kib;
	uint64_t bl_out;
	uint32_t bl_state;
	uint32_t bl_pad;

	/* data= (appended): enum wl_data */
	uint32_t data;
	uint32_t data_pad;
};

/* Formatting, printf-like; supports %s %c %d %u %ld %lu %lld %llu %x %lx
 * %llx %p with optional 0-padding and width. Always NUL-terminates when
 * size > 0; returns the length the full output would have had. */
int wl_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int wl_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parses the command line into p (defaults first); on error writes a
 * message to err and returns -22. */
int wl_parse_cmdline(const char *cmdline, struct wl_params *p, char *err,
		     size_t errlen);
/* "64M", "4K", "123" (the shortest exact form) into buf. */
void wl_format_size(char *buf, size_t size, uint64_t bytes);
const char *wl_kind_name(uint32_t kind);

struct wl_ctx;
/* balloon.c: a new memory/target (KiB); the next slices move toward it. */
void wl_balloon_set_target(struct wl_ctx *ctx, uint64_t kib);
void wl_balloon_slice(struct wl_ctx *ctx);
const char *wl_pattern_name(uint32_t pattern);

/* mix.c: data=mix contents of page pfn at generation gen (research/
 * limits.md's "mix"), and whether page holds them. */
void wl_mix_page(void *page, uint64_t pfn, uint32_t gen);
bool wl_mix_matches(const void *page, uint64_t pfn, uint32_t gen);

#endif
