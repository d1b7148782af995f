/* SPDX-License-Identifier: MIT */
/*
 * Grant tables (Xen's v1 entries) for ferryd's own backends: access to a
 * page a guest granted, with the same checks Xen makes for a grantee.
 *
 * A guest's table lives in its own RAM (see abi/guest.h: XENMAPSPACE_grant_table).
 * A grant is usable by for_domid when its entry has type GTF_permit_access,
 * its domid is for_domid and, for writes, GTF_readonly is clear. While a
 * grant is mapped or being copied, GTF_reading (and GTF_writing for write
 * access) is set in the entry, as Xen does; the guest must not reuse the
 * entry until they clear. A guest that clears GTF_permit_access under a
 * mapping does not end it: the mapping stays valid until gnttab_unmap, and
 * the reading/writing flags stay set until then (Xen's rule).
 *
 * Every function takes a domain reference the caller holds. Errors:
 * -EINVAL no table or ref out of range, -EPERM not granted to for_domid
 * (or not GTF_permit_access), -EROFS a write to a read-only grant, -EFAULT
 * the granted frame is outside the granter's RAM, -ESRCH the domain is
 * being destroyed.
 */
#ifndef HYP_GNTTAB_H
#define HYP_GNTTAB_H

#include <stdbool.h>
#include <stdint.h>

struct hyp_domain;

/* ferryd's backends map grants as domain 0. */
#define GNTTAB_DOMID_FERRYD 0

struct gnttab_mapping {
	struct hyp_domain *d; /* the granter; a reference is held while mapped */
	uint32_t ref;
	uint32_t gfn;	      /* the granted frame, pinned at first map */
	bool write;
	uint8_t *ptr;	      /* 4096 bytes, valid until gnttab_unmap */
};

/*
 * Maps ref of granter for for_domid. Writes through m->ptr are not seen by
 * KVM's dirty log: gnttab_unmap marks the page dirty for a write mapping
 * (call gnttab_mark_dirty after writes that must be seen earlier). Takes a
 * domain reference of its own, dropped by gnttab_unmap.
 */
int gnttab_map(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid, bool write,
	       struct gnttab_mapping *m);
void gnttab_unmap(struct gnttab_mapping *m);
void gnttab_mark_dirty(struct gnttab_mapping *m);

/* One-shot copies within one granted page (offset + len <= 4096). */
int gnttab_copy_from(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid,
		     uint16_t offset, void *dst, uint16_t len);
int gnttab_copy_to(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid,
		   uint16_t offset, const void *src, uint16_t len);

/* Grant frames the domain has set up (0 before any). */
unsigned gnttab_nr_frames(struct hyp_domain *d);

#endif
