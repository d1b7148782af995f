/* SPDX-License-Identifier: MIT */
/*
 * Restoring a domain from a Xen migration stream v2 (formats/SPEC.md), for
 * `xl restore` now and the receiving side of migration later.
 */
#ifndef RESTORE_RESTORE_H
#define RESTORE_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "stream/io.h"

/*
 * Turns the stream's JSON config into the config to restore with (the
 * caller applies its overrides: a new name, a replacement config). Return
 * 0, or -errno with a message in err.
 */
typedef int (*rst_config_fn)(void *opaque, const char *json, struct hyp_dom_config *cfg,
			     char *err, size_t errlen);

/*
 * Gives the new domain domid the xenstore subtree the stream carried
 * ("key NUL value NUL" pairs, formats/SPEC.md 6.1; NULL, 0 when it carried
 * none). Called once, after the state is loaded and before the domain may
 * run, so its entries and ring exist when the guest looks.
 */
typedef int (*rst_xenstore_fn)(void *opaque, uint32_t domid, const char *pairs, size_t len);

struct rst_opts {
	bool paused;	   /* leave the domain paused */
	rst_config_fn config;
	void *opaque;
	rst_xenstore_fn xenstore; /* optional */
	void *xenstore_opaque;
};

struct rst_stats {
	uint64_t pages;
	uint64_t bytes;	 /* read from the io */
	double seconds;
};

/*
 * Reads a whole stream from io (borrowed; not closed) and builds a domain
 * from it, unpaused unless o->paused. Everything is checked before the
 * domain is created (format versions, the backend the stream was made on,
 * free memory); on any failure after that the half-built domain is
 * destroyed, so nothing stays behind. err names what went wrong and where.
 */
int rst_restore_domain(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       uint32_t *domid, struct rst_stats *st, char *err, size_t errlen);

#endif
