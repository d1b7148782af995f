// SPDX-License-Identifier: MIT
/*
 * The balloon driver: obeys memory/target (KiB, Xen's unit) by giving
 * pages back to the hypervisor (XENMEM_decrease_reservation) or taking
 * them again (XENMEM_populate_physmap), a batch per slice so the workload
 * keeps running meanwhile.
 *
 * It only ever gives away RAM above the workload's arena (the state, the
 * generation table and the working set verify checks), from the top of
 * RAM down: the ballooned pages are always [top - out, top), so the state
 * is one number, kept in guest memory (struct wl_state) to travel with the
 * domain. A target below what it can give stops at the arena and says so.
 * Like Linux's balloon it counts its own current size (RAM less what it
 * gave back) and writes nothing to xenstore: Xen's toolstack reads the
 * domain's pages from the hypervisor (xl list).
 */
#include "internal.h"
#include "pv.h"

#define BL_EXTENTS 256u	/* gfns per hypercall (one scratch page) */
#define BL_CALLS 16u	/* hypercalls per slice: 16 MiB */
#define BL_RES_OFF 0u
#define BL_EXT_OFF 64u
_Static_assert(BL_EXT_OFF + BL_EXTENTS * 8 <= WL_PAGE_SIZE, "scratch page");
_Static_assert(sizeof(struct xen_memory_reservation) <= BL_EXT_OFF, "scratch");

enum { BL_IDLE, BL_ACTIVE }; /* wl_state.bl_state */

/* The first page it may give: above the arena's working set. */
static uint64_t bl_low(const struct wl_ctx *ctx)
{
	const struct wl_state *st = ctx->st;

	return ((st->ws_gpa + (st->ws_pages << WL_PAGE_SHIFT)) + WL_PAGE_SIZE - 1) >>
	       WL_PAGE_SHIFT;
}

static uint64_t bl_top(const struct wl_ctx *ctx)
{
	return ctx->mem_size >> WL_PAGE_SHIFT;
}

/* n gfns from first up, through one reservation call; returns done. */
static long bl_call(struct wl_ctx *ctx, unsigned op, uint64_t first, uint64_t n)
{
	uint8_t *s = pv_gpa(ctx, PV_SCRATCH_GPA);
	struct xen_memory_reservation *r = (void *)(s + BL_RES_OFF);
	uint64_t *ext = (void *)(s + BL_EXT_OFF);

	for (uint64_t i = 0; i < n; i++)
		ext[i] = first + i;
	*r = (struct xen_memory_reservation){
		.extent_start = PV_SCRATCH_GPA + BL_EXT_OFF,
		.nr_extents = n,
		.domid = DOMID_SELF,
	};
	return pv_hypercall(ctx, __HYPERVISOR_memory_op, op, PV_SCRATCH_GPA + BL_RES_OFF, 0);
}

static void bl_say(struct wl_ctx *ctx, const char *why)
{
	struct wl_state *st = ctx->st;

	wl_printf(ctx, "balloon: target %llu KiB, current %llu KiB%s\n",
		  (unsigned long long)st->bl_target_kib,
		  (unsigned long long)((bl_top(ctx) - st->bl_out) << 2), why);
	st->bl_state = BL_IDLE;
}

void wl_balloon_set_target(struct wl_ctx *ctx, uint64_t kib)
{
	struct wl_state *st = ctx->st;

	if (!st)
		return;
	st->bl_target_kib = kib;
	st->bl_state = BL_ACTIVE;
}

void wl_balloon_slice(struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	uint64_t top, want, cur;

	if (!st || st->bl_state != BL_ACTIVE)
		return;
	top = bl_top(ctx);
	want = st->bl_target_kib >> 2;
	for (unsigned c = 0; c < BL_CALLS; c++) {
		uint64_t n, first;
		long done;

		if (c && wl_preempted(ctx))
			return; /* still BL_ACTIVE: the next slice goes on */
		cur = top - st->bl_out;
		if (cur == want) {
			bl_say(ctx, "");
			return;
		}
		if (cur > want) {
			uint64_t room = top - st->bl_out - bl_low(ctx);

			if (bl_low(ctx) >= top - st->bl_out || !room) {
				bl_say(ctx, " (the rest is the workload's: it ends at "
					    "the arena)");
				return;
			}
			n = cur - want < room ? cur - want : room;
			n = n < BL_EXTENTS ? n : BL_EXTENTS;
			first = top - st->bl_out - n;
			done = bl_call(ctx, XENMEM_decrease_reservation, first, n);
			if (done > 0 && (uint64_t)done == n)
				st->bl_out += n;
			else if (done > 0) /* the lowest went: take them back, so
					    * what is out stays one range */
				bl_call(ctx, XENMEM_populate_physmap, first, (uint64_t)done);
		} else {
			n = want - cur < st->bl_out ? want - cur : st->bl_out;
			if (!n) {
				bl_say(ctx, " (all of RAM is in)");
				return;
			}
			n = n < BL_EXTENTS ? n : BL_EXTENTS;
			first = top - st->bl_out;
			done = bl_call(ctx, XENMEM_populate_physmap, first, n);
			if (done > 0) /* the lowest came back first */
				st->bl_out -= (uint64_t)done;
		}
		if (done < 0 || (uint64_t)done < n) {
			wl_printf(ctx, "balloon: %s stopped after %ld of %llu pages (%ld)\n",
				  cur > want ? "decrease_reservation" : "populate_physmap",
				  done > 0 ? done : 0, (unsigned long long)n, done);
			bl_say(ctx, cur > want ? " (the hypervisor took no more)"
					       : " (refused: maxmem reached)");
			return;
		}
	}
}
