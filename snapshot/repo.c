// SPDX-License-Identifier: MIT
/*
 * The repository: its FORMAT file and lock, the snapshots' manifests and
 * indices, recovery at open, list and delete (formats/SPEC.md 10).
 */
#define _FILE_OFFSET_BITS 64
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "internal.h"

int snap_name_check(const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);

	if (!len || len > SNAP_NAME_MAX || name[0] == '.')
		return snap_fail(-EINVAL, err, errlen,
				 "snapshot name \"%.*s\": must be 1 to %d bytes, not starting "
				 "with '.'", SNAP_NAME_MAX, name, SNAP_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || (unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return snap_fail(-EINVAL, err, errlen,
					 "snapshot name \"%.*s\": '/' and control characters "
					 "are not allowed", SNAP_NAME_MAX, name);
	return 0;
}

static int parse_uuid(const char *s, uint8_t u[16])
{
	int n = 0;

	if (strlen(s) != 36 ||
	    sscanf(s,
		   "%2hhx%2hhx%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx%2hhx%2hhx"
		   "%2hhx%2hhx%n", &u[0], &u[1], &u[2], &u[3], &u[4], &u[5], &u[6], &u[7], &u[8],
		   &u[9], &u[10], &u[11], &u[12], &u[13], &u[14], &u[15], &n) != 16 || n != 36)
		return -EINVAL;
	return 0;
}

void snap_meta_path(const struct snap_repo *r, const struct snap_meta *m, const char *what,
		    char *out, size_t len)
{
	char u[37];

	snap_uuid_str(m->uuid, u);
	if (!strcmp(what, "index"))
		snprintf(out, len, "%s/snaps/%s/%s.%" PRIu64 ".idx", r->dir, u, m->name, m->gen);
	else if (!strcmp(what, "dir"))
		snprintf(out, len, "%s/snaps/%s", r->dir, u);
	else if (!strcmp(what, "state"))
		snprintf(out, len, "%s/snaps/%s/%s.state", r->dir, u, m->name);
	else
		snprintf(out, len, "%s/snaps/%s/%s.manifest", r->dir, u, m->name);
}

int snap_meta_write(struct snap_repo *r, const struct snap_meta *m, char *err, size_t errlen)
{
	char path[PATH_MAX], text[1024], u[37], pack[16], hex[2 * SNAP_HASH_LEN + 1];
	struct afile *f;
	int n, rc;

	snap_uuid_str(m->uuid, u);
	snprintf(pack, sizeof(pack), m->pack == SNAP_PACK_NONE ? "none" : "%08x", m->pack);
	n = snprintf(text, sizeof(text),
		     "ferry-snapshot-manifest %d\nname %s\n%s%s%suuid %s\ntime %" PRId64
		     "\nmemory-pages %" PRIu64 "\nstate %s\npack %s\nindex-gen %" PRIu64 "\n",
		     SNAP_FORMAT_VERSION, m->name, m->parent[0] ? "parent " : "", m->parent,
		     m->parent[0] ? "\n" : "", u, m->time, m->memory_pages,
		     m->complete ? "complete" : "writing", pack, m->gen);
	if (m->has_state) {
		for (int i = 0; i < SNAP_HASH_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", m->state_hash[i]);
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      "domain-state-bytes %" PRIu64 "\ndomain-state-sha256 %s\n",
			      m->state_len, hex);
	}
	snap_meta_path(r, m, "manifest", path, sizeof(path));
	rc = afile_open(path, &f, err, errlen);
	if (rc)
		return rc;
	if (write(afile_fd(f), text, (size_t)n) != n) {
		rc = snap_fail(errno ? -errno : -EIO, err, errlen, "writing %s: %s",
			       afile_tmp_path(f), ferry_strerror(errno ? errno : EIO));
		afile_abort(f);
		return rc;
	}
	return afile_commit(f, err, errlen);
}

/* One "key value" line of a manifest into m; -EINVAL for anything else. */
/* 64 lower-case hex digits into a SHA-256. */
static int parse_hash(const char *s, uint8_t out[SNAP_HASH_LEN])
{
	if (strlen(s) != 2 * SNAP_HASH_LEN)
		return -EINVAL;
	for (int i = 0; i < SNAP_HASH_LEN; i++) {
		int n = 0;

		if (sscanf(s + 2 * i, "%2hhx%n", &out[i], &n) != 1 || n != 2)
			return -EINVAL;
	}
	return 0;
}

static int meta_line(struct snap_meta *m, const char *key, const char *val)
{
	unsigned pack;

	if (!strcmp(key, "domain-state-sha256")) {
		m->has_state = true;
		return parse_hash(val, m->state_hash);
	}

	if (!strcmp(key, "name") && strlen(val) <= SNAP_NAME_MAX)
		strcpy(m->name, val);
	else if (!strcmp(key, "parent") && strlen(val) <= SNAP_NAME_MAX)
		strcpy(m->parent, val);
	else if (!strcmp(key, "uuid"))
		return parse_uuid(val, m->uuid);
	else if (!strcmp(key, "time"))
		return sscanf(val, "%" SCNd64, &m->time) == 1 ? 0 : -EINVAL;
	else if (!strcmp(key, "memory-pages"))
		return sscanf(val, "%" SCNu64, &m->memory_pages) == 1 ? 0 : -EINVAL;
	else if (!strcmp(key, "index-gen"))
		return sscanf(val, "%" SCNu64, &m->gen) == 1 ? 0 : -EINVAL;
	else if (!strcmp(key, "domain-state-bytes"))
		return sscanf(val, "%" SCNu64, &m->state_len) == 1 ? 0 : -EINVAL;
	else if (!strcmp(key, "state") && (!strcmp(val, "complete") || !strcmp(val, "writing")))
		m->complete = !strcmp(val, "complete");
	else if (!strcmp(key, "pack") && !strcmp(val, "none"))
		m->pack = SNAP_PACK_NONE;
	else if (!strcmp(key, "pack") && sscanf(val, "%8x", &pack) == 1 && pack <= SNAP_PACK_MAXID)
		m->pack = pack;
	else
		return -EINVAL;
	return 0;
}

static int meta_parse(const char *path, struct snap_meta *m, char *err, size_t errlen)
{
	char *text, *line, *save = NULL;
	unsigned version;
	int rc, n = 0;

	rc = snap_read_text(path, &text, err, errlen);
	if (rc)
		return rc;
	if (sscanf(text, "ferry-snapshot-manifest %u\n%n", &version, &n) != 1 || !n) {
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt manifest: no header line", path);
		goto out;
	}
	if (version > SNAP_FORMAT_VERSION) {
		rc = snap_fail(-EPROTONOSUPPORT, err, errlen,
			       "%s: manifest format version %u is newer than this Ferry's %u",
			       path, version, SNAP_FORMAT_VERSION);
		goto out;
	}
	for (line = strtok_r(text + n, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (sp)
			*sp = 0;
		if (!sp || meta_line(m, line, sp + 1)) {
			rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt manifest: bad line \"%s\"",
				       path, line);
			goto out;
		}
	}
	if (!m->name[0] || snap_name_check(m->name, err, errlen))
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt manifest: bad or no name", path);
	else if (!m->memory_pages || !m->gen)
		rc = snap_fail(-EINVAL, err, errlen,
			       "%s: corrupt manifest: no memory-pages or index-gen", path);
	else if (m->has_state != (m->state_len != 0) || m->state_len > SNAP_STATE_MAX)
		rc = snap_fail(-EINVAL, err, errlen,
			       "%s: corrupt manifest: domain-state-bytes (1 to 256 MiB) and "
			       "domain-state-sha256 come together",
			       path);
out:
	free(text);
	return rc;
}

struct snap_meta *snap_meta_find(struct snap_repo *r, const uint8_t *uuid, const char *name)
{
	for (size_t i = 0; i < r->n_snaps; i++)
		if (!memcmp(r->snaps[i]->uuid, uuid, 16) && !strcmp(r->snaps[i]->name, name))
			return r->snaps[i];
	return NULL;
}

int snap_meta_add(struct snap_repo *r, struct snap_meta *m)
{
	if (snap_ptrs_grow((void ***)&r->snaps, r->n_snaps, &r->cap_snaps))
		return -ENOMEM;
	r->snaps[r->n_snaps++] = m;
	return 0;
}

/* Forgets m (files untouched), keeping the list in creation order. */
void snap_meta_drop(struct snap_repo *r, struct snap_meta *m)
{
	for (size_t i = 0; i < r->n_snaps; i++)
		if (r->snaps[i] == m) {
			memmove(&r->snaps[i], &r->snaps[i + 1],
				(r->n_snaps - i - 1) * sizeof(*r->snaps));
			r->n_snaps--;
			break;
		}
	free(m->ents);
	free(m);
}

int snap_index_write(struct snap_repo *r, const struct snap_meta *m, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snap_meta_path(r, m, "index", path, sizeof(path));
	return snap_file_write(path, "FRSNIDX1", m->uuid, m->n_ents, m->ents,
			       m->n_ents * sizeof(*m->ents), err, errlen);
}

static int index_load(struct snap_repo *r, struct snap_meta *m, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct snap_fhdr h;
	void *body;
	int rc;

	snap_meta_path(r, m, "index", path, sizeof(path));
	rc = snap_file_read(path, "FRSNIDX1", &h, &body, sizeof(struct snap_entry), err, errlen);
	if (rc)
		return rc;
	m->ents = body;
	m->n_ents = h.count;
	for (uint64_t i = 0; i < m->n_ents; i++) {
		const struct snap_entry *e = &m->ents[i];
		const struct snap_pack *p = snap_pack_find(r, e->pack);

		if ((i && e->pfn <= m->ents[i - 1].pfn) ||
		    (e->pack < SNAP_PACK_HOLE && (!p || e->slot >= p->count)))
			return snap_fail(-EINVAL, err, errlen,
					 "%s: corrupt index: entry %" PRIu64 " (pfn %#" PRIx64
					 ") is out of order or names a missing page (pack %08x "
					 "slot %u)", path, i, e->pfn, e->pack, e->slot);
	}
	return 0;
}

/* A manifest at open: complete ones are kept, partial ones removed. */
static int meta_load(struct snap_repo *r, const char *dir, const uint8_t *uuid,
		     const char *file, char *err, size_t errlen)
{
	struct snap_meta *m = calloc(1, sizeof(*m));
	char path[PATH_MAX];
	size_t len = strlen(file) - strlen(".manifest");
	int rc;

	if (!m)
		return snap_fail(-ENOMEM, err, errlen, "out of memory");
	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
		free(m);
		return snap_fail(-ENAMETOOLONG, err, errlen, "%s/%s: path too long", dir, file);
	}
	rc = meta_parse(path, m, err, errlen);
	if (!rc && (strlen(m->name) != len || strncmp(m->name, file, len)))
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt manifest: names \"%s\"", path,
			       m->name);
	if (!rc && memcmp(m->uuid, uuid, 16))
		rc = snap_fail(-EINVAL, err, errlen,
			       "%s: corrupt manifest: its uuid is not its directory's", path);
	if (!rc && !m->complete) {
		/* A crash while writing: its pages go with the sweep. */
		char idx[PATH_MAX];

		snap_meta_path(r, m, "index", idx, sizeof(idx));
		unlink(idx);
		snap_meta_path(r, m, "state", idx, sizeof(idx));
		unlink(idx);
		rc = unlink(path) < 0 ? snap_fail(-errno, err, errlen, "cannot remove %s: %s",
						  path, ferry_strerror(errno)) : 0;
		free(m);
		return rc;
	}
	if (!rc)
		rc = snap_meta_add(r, m);
	if (rc)
		free(m);
	else if (m->pack != SNAP_PACK_NONE && m->pack >= r->next_pack)
		r->next_pack = m->pack + 1; /* its pack may be gone: never reuse it */
	return rc;
}

/* A state file of no snapshot that has one (a crash in delete). */
static void stray_state(struct snap_repo *r, const char *path, const char *file,
			const uint8_t *uuid)
{
	size_t n = strlen(file) - strlen(".state");

	for (size_t i = 0; i < r->n_snaps; i++) {
		const struct snap_meta *m = r->snaps[i];

		if (m->has_state && !memcmp(m->uuid, uuid, 16) && strlen(m->name) == n &&
		    !strncmp(file, m->name, n))
			return;
	}
	unlink(path);
}

/* An index or state file no complete manifest names (a crash in delete or
 * commit), or an afile temporary: removed. */
static void stray_remove(struct snap_repo *r, const char *dir, const char *file,
			 const uint8_t *uuid)
{
	char path[PATH_MAX];
	uint64_t gen;
	const char *dot;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return;
	if (file[0] == '.') {
		if (strstr(file, ".tmp-"))
			unlink(path);
		return;
	}
	if (strlen(file) > 6 && !strcmp(file + strlen(file) - 6, ".state")) {
		stray_state(r, path, file, uuid);
		return;
	}
	if (strlen(file) < 5 || strcmp(file + strlen(file) - 4, ".idx"))
		return;
	for (size_t i = 0; i < r->n_snaps; i++) {
		const struct snap_meta *m = r->snaps[i];
		size_t n = strlen(m->name);

		dot = file + n;
		if (!memcmp(m->uuid, uuid, 16) && !strncmp(file, m->name, n) && *dot == '.' &&
		    sscanf(dot + 1, "%" SCNu64, &gen) == 1 && gen == m->gen)
			return;
	}
	unlink(path);
}

static int uuid_dir_load(struct snap_repo *r, const char *name, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	uint8_t uuid[16];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (parse_uuid(name, uuid))
		return 0; /* not ours */
	snprintf(dir, sizeof(dir), "%s/snaps/%s", r->dir, name);
	d = opendir(dir);
	if (!d)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", dir, ferry_strerror(errno));
	while (!rc && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (e->d_name[0] != '.' && n > 9 && !strcmp(e->d_name + n - 9, ".manifest"))
			rc = meta_load(r, dir, uuid, e->d_name, err, errlen);
	}
	rewinddir(d);
	while (!rc && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			stray_remove(r, dir, e->d_name, uuid);
	closedir(d);
	if (!rc)
		rc = snap_fsync_dir(dir, err, errlen);
	return rc;
}

static int by_time(const void *a, const void *b)
{
	const struct snap_meta *x = *(struct snap_meta *const *)a;
	const struct snap_meta *y = *(struct snap_meta *const *)b;

	/* pack numbers are handed out in creation order: ties within a second */
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->pack != y->pack ? (x->pack < y->pack ? -1 : 1) : strcmp(x->name, y->name);
}

static int snaps_load(struct snap_repo *r, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/snaps", r->dir);
	d = opendir(path);
	if (!d)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", path, ferry_strerror(errno));
	while (!rc && (e = readdir(d)))
		if (e->d_name[0] != '.')
			rc = uuid_dir_load(r, e->d_name, err, errlen);
	closedir(d);
	if (r->n_snaps)
		qsort(r->snaps, r->n_snaps, sizeof(*r->snaps), by_time);
	for (size_t i = 0; !rc && i < r->n_snaps; i++) {
		struct snap_meta *m = r->snaps[i];

		rc = index_load(r, m, err, errlen);
		if (!rc && m->parent[0] && !snap_meta_find(r, m->uuid, m->parent)) {
			snap_meta_path(r, m, "manifest", path, sizeof(path));
			rc = snap_fail(-EINVAL, err, errlen,
				       "%s: corrupt manifest: parent \"%s\" does not exist", path,
				       m->parent);
		}
	}
	return rc;
}

static int format_write(struct snap_repo *r, char *err, size_t errlen)
{
	char path[PATH_MAX], text[128];
	struct afile *f;
	int n, rc;

	snprintf(path, sizeof(path), "%s/FORMAT", r->dir);
	n = snprintf(text, sizeof(text), "ferry-snapshot-repository %d\ncross-domain-dedup %d\n",
		     SNAP_FORMAT_VERSION, r->xdedup);
	rc = afile_open(path, &f, err, errlen);
	if (rc)
		return rc;
	if (write(afile_fd(f), text, (size_t)n) != n) {
		rc = snap_fail(-EIO, err, errlen, "writing %s", afile_tmp_path(f));
		afile_abort(f);
		return rc;
	}
	return afile_commit(f, err, errlen);
}

static int format_read(struct snap_repo *r, bool create, char *err, size_t errlen)
{
	char path[PATH_MAX], *text;
	unsigned version;
	int xdedup, n = 0, rc;

	snprintf(path, sizeof(path), "%s/FORMAT", r->dir);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (create)
			return format_write(r, err, errlen);
		return snap_fail(-ENOENT, err, errlen, "%s: no snapshot repository (no FORMAT file)",
				 r->dir);
	}
	rc = snap_read_text(path, &text, err, errlen);
	if (rc)
		return rc;
	if (sscanf(text, "ferry-snapshot-repository %u\n%n", &version, &n) != 1 || !n)
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt: not a Ferry snapshot repository",
			       path);
	else if (version > SNAP_FORMAT_VERSION)
		rc = snap_fail(-EPROTONOSUPPORT, err, errlen,
			       "%s: repository format version %u is newer than this Ferry's %u "
			       "(a newer Ferry wrote it)", path, version, SNAP_FORMAT_VERSION);
	else if (sscanf(text + n, "cross-domain-dedup %d\n", &xdedup) != 1 ||
		 (xdedup != 0 && xdedup != 1))
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt: no cross-domain-dedup 0|1", path);
	else
		r->xdedup = xdedup;
	free(text);
	return rc;
}

static int mkdir_in(const char *dir, const char *sub, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s%s", dir, sub[0] ? "/" : "", sub);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return snap_fail(-errno, err, errlen, "cannot create %s: %s", path,
				 ferry_strerror(errno));
	return 0;
}

static int repo_lock(struct snap_repo *r, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/lock", r->dir);
	r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->lock_fd < 0)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", path, ferry_strerror(errno));
	if (flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return snap_fail(errno == EWOULDBLOCK ? -EBUSY : -errno, err, errlen,
				 "%s: another process holds the repository", path);
	return 0;
}

/*
 * The repository's own entry (in its parent) and those of packs/ and
 * snaps/ durable before any snapshot's files go into them: a commit
 * syncs only the directories its files are in.
 */
static int dirs_sync(const struct snap_repo *r, char *err, size_t errlen)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(r->dir, '/');
	int rc = snap_fsync_dir(r->dir, err, errlen);

	if (rc)
		return rc;
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else
		snprintf(parent, sizeof(parent), "%.*s", slash == r->dir ? 1 : (int)(slash - r->dir),
			 r->dir);
	return snap_fsync_dir(parent, err, errlen);
}

int snap_repo_open(const char *dir, const struct snap_repo_opts *o, struct snap_repo **out,
		   char *err, size_t errlen)
{
	struct snap_repo *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return snap_fail(-ENOMEM, err, errlen, "%s: out of memory", dir);
	r->lock_fd = -1;
	r->xdedup = o && o->cross_domain_dedup;
	if (snprintf(r->dir, sizeof(r->dir), "%s", dir) >= (int)sizeof(r->dir)) {
		rc = snap_fail(-ENAMETOOLONG, err, errlen, "%s: path too long", dir);
		goto err;
	}
	rc = o && o->create ? mkdir_in(dir, "", err, errlen) : 0;
	if (!rc)
		rc = format_read(r, o && o->create, err, errlen);
	if (!rc)
		rc = repo_lock(r, err, errlen);
	if (!rc)
		rc = mkdir_in(dir, "packs", err, errlen);
	if (!rc)
		rc = mkdir_in(dir, "snaps", err, errlen);
	if (!rc)
		rc = dirs_sync(r, err, errlen);
	if (!rc)
		rc = snap_packs_load(r, err, errlen);
	if (!rc)
		rc = snaps_load(r, err, errlen);
	if (!rc)
		rc = snap_sweep(r, err, errlen);
	if (rc)
		goto err;
	*out = r;
	return 0;
err:
	snap_repo_close(r);
	return rc;
}

void snap_repo_close(struct snap_repo *r)
{
	if (!r)
		return;
	while (r->n_snaps)
		snap_meta_drop(r, r->snaps[r->n_snaps - 1]);
	for (size_t i = 0; i < r->n_packs; i++)
		snap_pack_free(r->packs[i]);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	free(r->snaps);
	free(r->packs);
	free(r->tab);
	free(r);
}

int snap_list(struct snap_repo *r, const uint8_t *uuid, struct snap_info **out, size_t *n)
{
	struct snap_info *v = calloc(r->n_snaps ? r->n_snaps : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < r->n_snaps; i++) {
		const struct snap_meta *m = r->snaps[i];
		struct snap_info *s = &v[*n];

		if (uuid && memcmp(uuid, m->uuid, 16))
			continue;
		strcpy(s->name, m->name);
		strcpy(s->parent, m->parent);
		memcpy(s->uuid, m->uuid, 16);
		s->time = m->time;
		s->memory_pages = m->memory_pages;
		s->own_entries = m->n_ents;
		s->complete = m->complete;
		(*n)++;
	}
	*out = v;
	return 0;
}

/* child's own entries over its parent's (both sorted by pfn) into child. */
static int merge_into(struct snap_meta *child, const struct snap_meta *parent)
{
	struct snap_entry *v = malloc((child->n_ents + parent->n_ents + 1) * sizeof(*v));
	uint64_t i = 0, j = 0, n = 0;

	if (!v)
		return -ENOMEM;
	while (i < child->n_ents || j < parent->n_ents) {
		if (j == parent->n_ents ||
		    (i < child->n_ents && child->ents[i].pfn <= parent->ents[j].pfn)) {
			if (j < parent->n_ents && child->ents[i].pfn == parent->ents[j].pfn)
				j++;
			v[n++] = child->ents[i++];
		} else {
			v[n++] = parent->ents[j++];
		}
	}
	free(child->ents);
	child->ents = v;
	child->n_ents = n;
	return 0;
}

/*
 * A child of a deleted snapshot takes over its entries: the merged index
 * goes to a new file (next gen), then the manifest names it and the new
 * parent in one rename. A crash before that leaves the child as it was.
 */
static int adopt(struct snap_repo *r, struct snap_meta *c, const struct snap_meta *m,
		 char *err, size_t errlen)
{
	char old[PATH_MAX], parent[SNAP_NAME_MAX + 1];
	int rc;

	snap_meta_path(r, c, "index", old, sizeof(old));
	strcpy(parent, c->parent);
	if (merge_into(c, m))
		return snap_fail(-ENOMEM, err, errlen, "deleting %s: out of memory", m->name);
	c->gen++;
	rc = snap_index_write(r, c, err, errlen);
	if (!rc) {
		snap_failpoint_at(SNAP_STEP_ADOPT_INDEX);
		strcpy(c->parent, m->parent);
		rc = snap_meta_write(r, c, err, errlen);
	}
	if (rc) {
		/* The old files still hold the child; its merged entries read the
		 * same while m stays its parent. */
		c->gen--;
		strcpy(c->parent, parent);
		return rc;
	}
	snap_failpoint_at(SNAP_STEP_ADOPT_MANIFEST);
	unlink(old);
	return 0;
}

int snap_delete(struct snap_repo *r, const uint8_t uuid[16], const char *name, char *err,
		size_t errlen)
{
	struct snap_meta *m = snap_meta_find(r, uuid, name);
	char path[PATH_MAX], u[37];
	int rc;

	snap_uuid_str(uuid, u);
	if (!m || !m->complete)
		return snap_fail(m ? -EBUSY : -ENOENT, err, errlen,
				 "snapshot %s/%s: %s", u, name,
				 m ? "being written" : "no such snapshot");
	if (r->writer)
		return snap_fail(-EBUSY, err, errlen,
				 "deleting %s/%s: a snapshot is being written", u, name);
	for (size_t i = 0; i < r->n_snaps; i++) {
		struct snap_meta *c = r->snaps[i];

		if (c->complete && !memcmp(c->uuid, uuid, 16) && !strcmp(c->parent, name)) {
			rc = adopt(r, c, m, err, errlen);
			if (rc)
				return rc;
		}
	}
	snap_meta_path(r, m, "manifest", path, sizeof(path));
	if (unlink(path) < 0)
		return snap_fail(-errno, err, errlen, "cannot remove %s: %s", path,
				 ferry_strerror(errno));
	snap_meta_path(r, m, "index", path, sizeof(path));
	unlink(path);
	snap_meta_path(r, m, "state", path, sizeof(path));
	unlink(path);
	snap_meta_path(r, m, "dir", path, sizeof(path));
	rc = snap_fsync_dir(path, err, errlen);
	if (!rc)
		snap_failpoint_at(SNAP_STEP_UNLISTED);
	snap_meta_drop(r, m);
	return rc ? rc : snap_sweep(r, err, errlen);
}
