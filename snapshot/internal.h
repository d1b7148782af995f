/* SPDX-License-Identifier: MIT */
/* The snapshot repository's private parts (formats/SPEC.md section 10). */
#ifndef SNAPSHOT_INTERNAL_H
#define SNAPSHOT_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "snapshot/repo.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the repository's binary files are little-endian; add byte swaps for this host"
#endif

#define SNAP_HASH_LEN 32
#define SNAP_PACK_NONE 0xffffffffu /* a snapshot that stored no page */
#define SNAP_PACK_ZERO 0xffffffffu /* index entry: all zero, not stored */
#define SNAP_PACK_HOLE 0xfffffffeu /* index entry: no frame */
#define SNAP_PACK_MAXID 0xfffffff0u
/* A state blob is a few records (config, CPU and device state, xenstore);
 * the cap keeps a corrupt manifest from sizing an allocation. */
#define SNAP_STATE_MAX (256ull << 20)

/* Header of both binary files (packs/ID.idx, snaps/UUID/NAME.GEN.idx);
 * a SHA-256 of everything before it ends the file. */
struct snap_fhdr {
	char magic[8];
	uint32_t version;
	uint32_t reserved;
	uint8_t uuid[16];
	uint64_t count;
};

/* One pfn of a snapshot's own index (sorted by pfn, unique). */
struct snap_entry {
	uint64_t pfn;
	uint32_t pack;
	uint32_t slot;
};

enum snap_slot_state { SLOT_DEAD, SLOT_LIVE, SLOT_PUNCHED };

struct snap_pack {
	uint32_t id;
	uint8_t uuid[16];
	uint32_t count, cap;
	uint8_t (*hash)[SNAP_HASH_LEN];
	uint8_t *state; /* enum snap_slot_state per slot */
	int fd;		/* read fd, opened on first read; -1 */
	bool writing;	/* the open writer's */
};

struct snap_meta {
	char name[SNAP_NAME_MAX + 1];
	char parent[SNAP_NAME_MAX + 1];
	uint8_t uuid[16];
	int64_t time;
	uint64_t memory_pages;
	uint64_t gen;	/* of its index file */
	uint32_t pack;	/* the pack it wrote, or SNAP_PACK_NONE */
	bool complete;
	bool has_state; /* NAME.state holds the non-page records */
	uint64_t state_len;
	uint8_t state_hash[SNAP_HASH_LEN];
	struct snap_entry *ents;
	uint64_t n_ents;
};

struct snap_repo {
	char dir[PATH_MAX / 2];
	int lock_fd;
	bool xdedup;
	struct snap_pack **packs;
	size_t n_packs, cap_packs;
	struct snap_meta **snaps;
	size_t n_snaps, cap_snaps;
	/* Dedup: open addressing, (pack << 32 | slot) + 1, 0 empty. */
	uint64_t *tab;
	size_t tab_cap, tab_used;
	uint32_t next_pack;
	struct snap_writer *writer;
};

/* write.c: where a commit or a delete stands, for tests that crash it at
 * each step (a hook called, when set, right after each step is durable). */
enum snap_commit_step {
	SNAP_STEP_PAGES,       /* pack data fsynced */
	SNAP_STEP_PACK_INDEX,  /* pack index renamed in */
	SNAP_STEP_INDEX,       /* snapshot index renamed in */
	SNAP_STEP_MANIFEST,    /* manifest says complete */
	SNAP_STEP_COUNT,
	/* snap_delete, for each child, then once */
	SNAP_STEP_ADOPT_INDEX = SNAP_STEP_COUNT, /* the child's merged index in */
	SNAP_STEP_ADOPT_MANIFEST,		 /* the child's manifest names it */
	SNAP_STEP_UNLISTED,			 /* the deleted one's manifest gone */
	SNAP_STEP_DELETE_END,
};
extern void (*snap_failpoint)(enum snap_commit_step step);
void snap_failpoint_at(enum snap_commit_step step);

/* store.c */
int snap_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void snap_sha256(const void *data, size_t len, uint8_t out[SNAP_HASH_LEN]);
void snap_uuid_str(const uint8_t uuid[16], char out[37]);
/* All of buf, through EINTR and short writes: 0 or -errno. */
int snap_write_all(int fd, const void *buf, size_t len);
int snap_file_write(const char *path, const char *magic, const uint8_t *uuid, uint64_t count,
		    const void *body, size_t len, char *err, size_t errlen);
int snap_read_text(const char *path, char **out, char *err, size_t errlen);
int snap_file_read(const char *path, const char *magic, struct snap_fhdr *h, void **body,
		   size_t elem, char *err, size_t errlen);
/* Room for one more in a growing array of n pointers (*cap of them). */
int snap_ptrs_grow(void ***v, size_t n, size_t *cap);
int snap_fsync_dir(const char *dir, char *err, size_t errlen);
struct snap_pack *snap_pack_find(struct snap_repo *r, uint32_t id);
int snap_pack_add(struct snap_repo *r, struct snap_pack *p);
void snap_pack_free(struct snap_pack *p);
int snap_pack_grow(struct snap_pack *p);
void snap_pack_path(const struct snap_repo *r, uint32_t id, const char *ext, char *out,
		    size_t len);
int snap_packs_load(struct snap_repo *r, char *err, size_t errlen);
/* The slot holding hash in uuid's dedup scope, or -1. */
int64_t snap_dedup_find(struct snap_repo *r, const uint8_t *uuid, const uint8_t *hash);
int snap_dedup_add(struct snap_repo *r, uint32_t pack, uint32_t slot);
/* Marks what complete snapshots reference, frees the rest (whole packs
 * removed, dead slots punched) and rebuilds the dedup table. */
int snap_sweep(struct snap_repo *r, char *err, size_t errlen);

/* read.c: what pfn (< snap_view_pages) holds, without reading it. */
enum snap_page_kind snap_view_kind(const struct snap_view *v, uint64_t pfn);
/* read.c: the same, and for SNAP_PAGE_DATA the pack and slot holding it
 * (snapshot/source.c reads them with fds of its own). */
enum snap_page_kind snap_view_where(const struct snap_view *v, uint64_t pfn, uint32_t *pack,
				    uint32_t *slot);
/* snap_stream_open's stream made from view v, which it borrows: v must
 * outlive the stream's reads (snapshot/source.c). */
struct strm_io;
int snap_stream_of_view(struct snap_view *v, const char *label, unsigned flags,
			struct strm_io **out, char *err, size_t errlen);
/* read.c: the page in slot of the pack file fd (path) into buf, checked
 * against its SHA-256 want; -EIO naming label (UUID/NAME), pfn and path. */
int snap_slot_read(int fd, const char *path, uint32_t slot, const uint8_t *want,
		   const char *label, uint64_t pfn, void *buf, char *err, size_t errlen);

/* repo.c */
struct snap_meta *snap_meta_find(struct snap_repo *r, const uint8_t *uuid, const char *name);
void snap_meta_path(const struct snap_repo *r, const struct snap_meta *m, const char *what,
		    char *out, size_t len);
int snap_meta_write(struct snap_repo *r, const struct snap_meta *m, char *err, size_t errlen);
int snap_meta_add(struct snap_repo *r, struct snap_meta *m);
void snap_meta_drop(struct snap_repo *r, struct snap_meta *m);
int snap_index_write(struct snap_repo *r, const struct snap_meta *m, char *err, size_t errlen);

#endif
