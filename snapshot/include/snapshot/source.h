/* SPDX-License-Identifier: MIT */
/*
 * A snapshot as a lazy restore's page source (restore/lazy.h).
 *
 * The repository is used by one thread at a time, and a lazy restore reads
 * pages from its fault thread and its fetcher while ferryd goes on using
 * the repository (snapshots of the restored domain among them). So the
 * source does not keep a view: snap_source_open, called under the
 * repository's lock, resolves the snapshot through its parents once (per
 * pfn the pack and slot holding the page) and opens read fds of its own
 * on the packs' data and index files (the index, replaced only by rename,
 * gives each page's SHA-256 as the page is read). From then on it never
 * touches the repository. Every page read is checked against
 * its SHA-256: a pack file damaged, or a page reclaimed because the
 * snapshot was deleted meanwhile, fails the read (-EIO, the snapshot, file
 * and pfn named) and so pauses the lazily restored domain, never runs it
 * on wrong data. A second repository handle was not an option:
 * snap_repo_open takes the repository's lock file, and reclaims pages.
 */
#ifndef SNAPSHOT_SOURCE_H
#define SNAPSHOT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "restore/lazy.h"
#include "snapshot/repo.h"

struct snap_source;
extern const struct rst_page_source_ops snap_page_source_ops;

/*
 * The pages of snapshot name of uuid in r (borrowed for the call only).
 * -ENOENT / -EBUSY as snap_view_open, -EIO when a pack file cannot be
 * opened, err naming it. *out: hand it to rst_lazy_restore with
 * snap_page_source_ops, which closes it.
 */
int snap_source_open(struct snap_repo *r, const uint8_t uuid[16], const char *name,
		     struct snap_source **out, char *err, size_t errlen);
/*
 * The same, and in *state the snapshot's state as snap_stream_open with
 * SNAP_STREAM_NO_DATA gives it, made from the source's resolution of the
 * chain rather than a second one (which cost 3 ms for 1 GiB here, a third
 * of a lazy restore's budget). *state reads from *out: read it before the
 * source is closed (rst_lazy_restore reads it whole before it returns);
 * closing it afterwards is safe.
 */
struct strm_io;
int snap_source_open_with_state(struct snap_repo *r, const uint8_t uuid[16], const char *name,
				struct snap_source **out, struct strm_io **state, char *err,
				size_t errlen);

#endif
