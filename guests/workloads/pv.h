/* SPDX-License-Identifier: MIT */
/*
 * Private to guests/workloads: the guest's side of Xen's PV services in our
 * own words. Event channels and grant tables through hypercalls
 * (abi/guest.h), the console ring (Xen's struct xencons_interface), the
 * xenstore ring (struct xenstore_domain_interface) and its wire messages
 * (struct xsd_sockmsg), and the small client the workloads use.
 *
 * Everything the hypervisor reads is in guest memory and named by gpa, so
 * the same code runs in the guest kernel (mem_base 0) and hosted (ferryd's
 * soft backend, the tests) as long as the platform offers hypercalls.
 * Freestanding.
 */
#ifndef GUESTS_WORKLOADS_PV_H
#define GUESTS_WORKLOADS_PV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <abi/guest.h>

#include "internal.h"

/* ---- the contract with ferryd (abi/guest.h) ---------------------------- */

/* ferryd puts the rings at FERRY_XENSTORE_GPA and FERRY_CONSOLE_GPA (the
 * guest still takes the pfns from the HVM params); the pages this guest
 * uses for its own PV state sit just below them. The kernel image must end
 * before PV_LOW_GPA (linker.ld). */
#define PV_GNTTAB_GPA 0x3fd000u	/* grant frame 0 */
#define PV_SHARE_GPA 0x3fc000u	/* pingpong: the granted / local page */
#define PV_SCRATCH_GPA 0x3fb000u	/* hypercall arguments */
#define PV_STATE_GPA 0x3f8000u	/* struct pv_state, 3 pages at most */
#define PV_LOW_GPA 0x3f8000u
_Static_assert(PV_GNTTAB_GPA + 4096 <= FERRY_XENSTORE_GPA, "pv pages");

#define PV_CONS_IN_SIZE 1024u
#define PV_CONS_OUT_SIZE 2048u
_Static_assert(sizeof(((struct xencons_interface *)0)->in) == PV_CONS_IN_SIZE &&
	       sizeof(((struct xencons_interface *)0)->out) == PV_CONS_OUT_SIZE,
	       "console ring sizes");

/* ---- xenstore wire (Xen's io/xs_wire.h, in our words) ------------------- */

enum pv_xs_type {
	PV_XS_DIRECTORY = 1,
	PV_XS_READ = 2,
	PV_XS_WATCH = 4,
	PV_XS_UNWATCH = 5,
	PV_XS_WRITE = 11,
	PV_XS_MKDIR = 12,
	PV_XS_RM = 13,
	PV_XS_SET_PERMS = 14,
	PV_XS_WATCH_EVENT = 15,
	PV_XS_ERROR = 16,
};

struct pv_xs_hdr {		/* struct xsd_sockmsg */
	uint32_t type;
	uint32_t req_id;
	uint32_t tx_id;
	uint32_t len;		/* payload bytes that follow */
};
#define PV_XS_PAYLOAD_MAX XENSTORE_PAYLOAD_MAX
#define PV_XS_RING_SIZE XENSTORE_RING_SIZE

/* ---- ring and message code (pvring.c: no hypercalls, unit-tested) ------ */

/* Bytes used / free in a ring of size (a power of two) with free-running
 * indices; a producer that ran more than size ahead is corrupt (-1). */
int64_t pv_ring_used(uint32_t cons, uint32_t prod, uint32_t size);

/* Copies up to len bytes in at prod (of a ring of size, cons being the
 * consumer's index); returns the bytes copied. The caller publishes the
 * new prod after a write barrier. */
size_t pv_ring_put(char *ring, uint32_t size, uint32_t cons, uint32_t prod,
		   const void *src, size_t len);
/* Copies up to len bytes out from cons; returns the bytes copied. */
size_t pv_ring_get(const char *ring, uint32_t size, uint32_t cons,
		   uint32_t prod, void *dst, size_t len);

/* Assembles xenstore messages from a byte stream. */
struct pv_xs_rx {
	uint32_t have;		/* bytes of hdr + payload gathered */
	struct pv_xs_hdr hdr;
	char body[PV_XS_PAYLOAD_MAX + 1];	/* NUL after the payload */
};
/* Feeds bytes; returns how many it took. *done is set once a whole message
 * is in rx (take it, then pv_xs_rx_reset). -1: a header announced more
 * than PV_XS_PAYLOAD_MAX (the connection is unusable). */
int64_t pv_xs_rx_feed(struct pv_xs_rx *rx, const void *p, size_t len,
		      bool *done);
void pv_xs_rx_reset(struct pv_xs_rx *rx);

/* Frames a request: header, then the parts, each followed by a NUL when
 * nul[i] (paths, tokens), into buf. Returns the total length or -1 when it
 * does not fit in buflen or in PV_XS_PAYLOAD_MAX. */
int64_t pv_xs_frame(void *buf, size_t buflen, uint32_t type, uint32_t req_id,
		    const char *const *parts, const size_t *lens,
		    const bool *nul, unsigned nparts);

/* Splits a XS_WATCH_EVENT payload "path\0token\0" (the last NUL may be
 * missing). Returns 0 with pointers into body, -1 if malformed. */
int pv_xs_parse_watch(const char *body, uint32_t len, const char **path,
		      const char **token);

/* XS_ERROR payload ("ENOENT\0") to a Xen errno (XEN_E*); unknown: EINVAL. */
int pv_xs_errno(const char *body, uint32_t len);

/* The line "console: input '<text>'" for a completed input line: the
 * accumulator takes in-ring bytes and calls back per line. */
struct pv_line {
	uint32_t len;
	uint32_t last_cr;	/* the LF of a CRLF ends nothing */
	char buf[120];
};
/* Adds c; returns true when a line (CR or LF) is complete, with the text
 * NUL-terminated in l->buf; the next call starts a new line. Control
 * characters other than CR/LF are dropped, overlong lines truncated. */
bool pv_line_add(struct pv_line *l, char c);

/* ---- the client (pv.c) -------------------------------------------------- */

#define PV_XS_WATCHES 4

/* Lives at PV_STATE_GPA in guest memory. */
struct pv_state {
	uint64_t magic;
	uint32_t domid;		/* from xenstore "domid"; 0 unknown */
	uint32_t gnttab_ok;	/* grant frame 0 at PV_GNTTAB_GPA */
	/* console ring */
	uint64_t cons_gpa;	/* 0: console_io */
	uint32_t cons_port;
	uint32_t pad0;
	struct pv_line cons_line;
	/* xenstore ring */
	uint64_t xs_gpa;	/* 0: no xenstore */
	uint32_t xs_port;
	uint32_t xs_req_id;
	uint32_t xs_broken;	/* ring error: stop using it */
	uint32_t watch_fired;	/* bit per watch token index */
	uint32_t xs_probing;	/* first contact: short timeout, then give up */
	uint32_t pad1;
	struct pv_xs_rx rx;
	/* the last reply to xs_req_id */
	uint32_t reply_ready;
	uint32_t reply_type;
	uint32_t reply_len;
	char reply[PV_XS_PAYLOAD_MAX + 1];
	/* balloon */
	uint64_t target_kib;
	/* ports the workload polls besides ours (pingpong) */
	uint32_t extra_port;
	uint32_t extra_pending;
};

/* Watch tokens (index in watch_fired). */
enum { PV_W_SHUTDOWN = 0, PV_W_TARGET = 1 };

bool pv_available(const struct wl_ctx *ctx);
/* Finds the rings and connects; prints what it found. Safe without
 * hypercalls (does nothing). */
void pv_init(struct wl_ctx *ctx);
/* After a restore or migration (ferry_ctl.resume_count moved): finds the
 * rings again and re-registers the watches on the new connection. */
void pv_resume(struct wl_ctx *ctx);
/* Console output through the ring when there is one; false: use the
 * platform's console. */
bool pv_console_write(const struct wl_ctx *ctx, const char *s, size_t len);
/* Harvests pending events, services console input and xenstore watches;
 * may shut the domain down (returns true then). */
bool pv_poll(struct wl_ctx *ctx);

long pv_hypercall(const struct wl_ctx *ctx, unsigned long nr, unsigned long a1,
		  unsigned long a2, unsigned long a3);
void *pv_gpa(const struct wl_ctx *ctx, uint64_t gpa);

/* Event channels. */
int pv_evtchn_send(const struct wl_ctx *ctx, uint32_t port);
int pv_evtchn_unmask(const struct wl_ctx *ctx, uint32_t port);
/* Tests and clears port's pending bit in shared_info. */
bool pv_evtchn_test_clear(const struct wl_ctx *ctx, uint32_t port);
long pv_evtchn_alloc_unbound(const struct wl_ctx *ctx, uint32_t remote,
			     uint32_t *port);
long pv_evtchn_bind_interdomain(const struct wl_ctx *ctx, uint32_t remote,
				uint32_t rport, uint32_t *port);
/* Grant table: frame 0 at PV_GNTTAB_GPA. */
long pv_gnttab_setup(struct wl_ctx *ctx);
void pv_gnttab_grant(const struct wl_ctx *ctx, uint32_t ref, uint32_t domid,
		     uint64_t gfn, bool readonly);
/* One GNTTABOP_copy between our gfn and a peer's grant; returns GNTST_*. */
int pv_gnttab_copy(const struct wl_ctx *ctx, bool to_peer, uint32_t peer,
		   uint32_t ref, uint16_t offset, uint64_t our_gpa, uint16_t len);

/* xenstore: synchronous requests (events that arrive meanwhile are kept).
 * Return 0 or a negative XEN_E*. */
int pv_xs_read(struct wl_ctx *ctx, const char *path, char *out, size_t outlen);
int pv_xs_write(struct wl_ctx *ctx, const char *path, const char *val);
int pv_xs_set_perms(struct wl_ctx *ctx, const char *path,
		    const char *const *perms, unsigned n);

/* Blocks until deadline or an event on one of our ports. */
void pv_block(struct wl_ctx *ctx, uint64_t deadline);
bool pv_evtchn_is_pending(const struct wl_ctx *ctx, uint32_t port);

/* Console output for the workloads: the ring, else the platform's. */
void wl_console(const struct wl_ctx *ctx, const char *s, size_t len);
__attribute__((format(printf, 2, 3)))
void wl_printf(const struct wl_ctx *ctx, const char *fmt, ...);

/* pingpong.c */
/* 0, or -22 (said on the console) without Xen hypercalls; the parameters
 * were checked with the command line (wl_check_cmdline). */
int wl_pp_start(struct wl_ctx *ctx);
void wl_pp_slice(struct wl_ctx *ctx, uint64_t now);

#endif
