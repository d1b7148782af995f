/* SPDX-License-Identifier: MIT */
/*
 * A snapshot as a standalone plain Xen v2 stream (formats/SPEC.md 10.8),
 * made on the fly from the repository: its state up to STATIC_DATA_END,
 * PAGE_DATA records of every pfn that holds data (up to 1024 pfns each, as
 * Xen writes them; zero pages left out, restore's fresh memory being zero),
 * its holes as XTAB entries, then the rest of its state. Restore takes it
 * as it takes an uncompressed `xl save` file.
 */
#ifndef SNAPSHOT_STREAM_H
#define SNAPSHOT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/repo.h"
#include "stream/io.h"

/* Only the XTAB entries, no page data: for a lazy restore, which fetches
 * the pages from the repository. */
#define SNAP_STREAM_NO_DATA (1u << 0)

/*
 * A reader of snapshot name's stream. -ENOENT for no such snapshot or one
 * without a state, -EIO for a damaged state, -EINVAL for a state that is
 * not a plain stream without pages; err says which. A page found damaged
 * while reading fails the read with -EIO, strm_io_error naming the
 * snapshot, the pack file and the pfn. The io holds a view of r (the repo
 * is used by one thread at a time): close the io before r, and before
 * deleting the snapshot.
 */
int snap_stream_open(struct snap_repo *r, const uint8_t uuid[16], const char *name, unsigned flags,
		     struct strm_io **out, char *err, size_t errlen);

/*
 * Writes that stream (with its pages) to fd, fsyncing it when it is a
 * regular file; *bytes (may be NULL) gets the count written. -errno with
 * err naming the snapshot, the page or the write that failed.
 */
int snap_export(struct snap_repo *r, const uint8_t uuid[16], const char *name, int fd,
		uint64_t *bytes, char *err, size_t errlen);

#endif
