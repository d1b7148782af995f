/* SPDX-License-Identifier: MIT */
/*
 * Saving a domain as a Xen migration stream v2 (formats/SPEC.md): the same
 * writer serves `xl save` now and live migration and checkpoints later.
 */
#ifndef MIGRATE_SAVE_H
#define MIGRATE_SAVE_H

#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "stream/io.h"

/*
 * Reads domain domid's xenstore subtree as "key NUL value NUL" pairs
 * (formats/SPEC.md 6.1) into *pairs (malloc'd, caller frees; NULL/0 when
 * empty). Called once per stream, with the domain paused.
 */
typedef int (*mig_xenstore_fn)(void *opaque, uint32_t domid, char **pairs, size_t *len);

struct mig_xenstore {
	mig_xenstore_fn read; /* NULL: no subtree in the stream */
	void *opaque;
};

struct mig_save_opts {
	/* STRM_CODEC_NONE writes a plain, Xen-conformant stream; lz4 or zstd
	 * cut it into compressed, checksummed frames. */
	enum strm_codec codec;
	const char *config_json; /* the domain config for the xl header */
	struct mig_xenstore xenstore; /* optional: the domain's subtree travels */
};

struct mig_save_stats {
	uint64_t pages;	     /* pages sent */
	uint64_t bytes;	     /* bytes written to the io */
	double seconds;
};

/*
 * Writes paused domain domid to io, which it owns and closes (a frame layer
 * is stacked on it when compressing). On failure err (errlen bytes) says
 * what went wrong; the domain is untouched either way.
 */
int mig_save_domain(struct hyp *h, uint32_t domid, struct strm_io *io,
		    const struct mig_save_opts *o, struct mig_save_stats *st,
		    char *err, size_t errlen);

#endif
