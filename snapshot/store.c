// SPDX-License-Identifier: MIT
/*
 * The page store: append-only pack files of 4 KiB pages, each with an
 * index of the pages' SHA-256 (formats/SPEC.md 10.3), the dedup table
 * over them and the mark-and-sweep that reclaims what no snapshot uses.
 */
#define _FILE_OFFSET_BITS 64
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/afile.h"
#include "common/err.h"
#include "internal.h"

int snap_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}
#endif

/*
 * SHA-256 by OpenSSL (SHA-NI where the CPU has it). OpenSSL 3 looks
 * EVP_sha256() up in its providers on every call: fetched once instead,
 * hashing a page goes about 20 % faster here.
 */
void snap_sha256(const void *data, size_t len, uint8_t out[SNAP_HASH_LEN])
{
	unsigned int n = SNAP_HASH_LEN;
	const EVP_MD *md = EVP_sha256();

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sha256_fetch);
	if (sha256_md)
		md = sha256_md;
#endif
	/* Cannot fail for SHA-256 on a built-in provider. */
	EVP_Digest(data, len, out, &n, md, NULL);
}

void snap_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

int snap_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int snap_file_write(const char *path, const char *magic, const uint8_t *uuid, uint64_t count,
		    const void *body, size_t len, char *err, size_t errlen)
{
	struct snap_fhdr h = { .version = SNAP_FORMAT_VERSION, .count = count };
	uint8_t sum[SNAP_HASH_LEN];
	unsigned int n = SNAP_HASH_LEN;
	struct afile *f;
	EVP_MD_CTX *md;
	int rc;

	memcpy(h.magic, magic, sizeof(h.magic));
	if (uuid)
		memcpy(h.uuid, uuid, sizeof(h.uuid));
	md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, &h, sizeof(h)) || !EVP_DigestUpdate(md, body, len) ||
	    !EVP_DigestFinal_ex(md, sum, &n)) {
		EVP_MD_CTX_free(md);
		return snap_fail(-ENOMEM, err, errlen, "%s: cannot hash", path);
	}
	EVP_MD_CTX_free(md);
	rc = afile_open(path, &f, err, errlen);
	if (rc)
		return rc;
	rc = snap_write_all(afile_fd(f), &h, sizeof(h));
	if (!rc)
		rc = snap_write_all(afile_fd(f), body, len);
	if (!rc)
		rc = snap_write_all(afile_fd(f), sum, sizeof(sum));
	if (rc) {
		snap_fail(rc, err, errlen, "writing %s: %s", afile_tmp_path(f),
			  ferry_strerror(-rc));
		/* what reached the file, not what was to */
		afile_nospace_hint(f, rc, (uint64_t)lseek(afile_fd(f), 0, SEEK_CUR), err, errlen);
		afile_abort(f);
		return rc;
	}
	return afile_commit(f, err, errlen);
}

/* Reads a whole file (at most max bytes) into *out (malloc'd) and *len. */
static int slurp(const char *path, size_t max, char **out, size_t *len, char *err,
		 size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", path, ferry_strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		close(fd);
		return snap_fail(-EINVAL, err, errlen, "%s: corrupt: size %lld", path,
				 (long long)st.st_size);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return snap_fail(-ENOMEM, err, errlen, "reading %s: out of memory", path);
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return snap_fail(n < 0 ? -errno : -EIO, err, errlen, "reading %s: short read",
				 path);
	}
	buf[n] = 0;
	*out = buf;
	*len = (size_t)n;
	return 0;
}

int snap_read_text(const char *path, char **out, char *err, size_t errlen)
{
	size_t len = 0;

	return slurp(path, 1 << 16, out, &len, err, errlen);
}

int snap_file_read(const char *path, const char *magic, struct snap_fhdr *h, void **body,
		   size_t elem, char *err, size_t errlen)
{
	uint8_t sum[SNAP_HASH_LEN];
	size_t len = 0, blen;
	char *buf = NULL;
	int rc;

	rc = slurp(path, (size_t)1 << 34, &buf, &len, err, errlen);
	if (rc)
		return rc;
	rc = -EINVAL;
	if (len < sizeof(*h) + SNAP_HASH_LEN) {
		snap_fail(rc, err, errlen, "%s: corrupt: truncated (%zu bytes)", path, len);
		goto out;
	}
	memcpy(h, buf, sizeof(*h));
	if (memcmp(h->magic, magic, sizeof(h->magic))) {
		snap_fail(rc, err, errlen, "%s: corrupt: bad magic", path);
		goto out;
	}
	if (h->version > SNAP_FORMAT_VERSION) {
		rc = snap_fail(-EPROTONOSUPPORT, err, errlen,
			       "%s: format version %u is newer than this Ferry's %u", path,
			       h->version, SNAP_FORMAT_VERSION);
		goto out;
	}
	blen = len - sizeof(*h) - SNAP_HASH_LEN;
	snap_sha256(buf, len - SNAP_HASH_LEN, sum);
	if (memcmp(sum, buf + len - SNAP_HASH_LEN, SNAP_HASH_LEN) ||
	    h->count > blen / elem || h->count * elem != blen) {
		snap_fail(rc, err, errlen, "%s: corrupt: checksum or length mismatch", path);
		goto out;
	}
	*body = malloc(blen ? blen : 1);
	if (!*body) {
		rc = snap_fail(-ENOMEM, err, errlen, "reading %s: out of memory", path);
		goto out;
	}
	memcpy(*body, buf + sizeof(*h), blen);
	rc = 0;
out:
	free(buf);
	return rc;
}

int snap_fsync_dir(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", dir, ferry_strerror(errno));
	rc = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
	close(fd);
	if (rc)
		snap_fail(rc, err, errlen, "syncing %s: %s", dir, ferry_strerror(-rc));
	return rc;
}

void snap_pack_path(const struct snap_repo *r, uint32_t id, const char *ext, char *out,
		    size_t len)
{
	snprintf(out, len, "%s/packs/%08x.%s", r->dir, id, ext);
}

/*
 * Lookups come in runs on one pack (a snapshot's entries, a chain's dedup
 * hits), so the last one's place is tried first: the scan, once per page
 * over every pack, was most of a 1 GiB sweep. An index checked against
 * the bounds and the id, never a pointer, so it cannot go stale; per
 * thread, as a repository may be used from any one thread at a time.
 */
struct snap_pack *snap_pack_find(struct snap_repo *r, uint32_t id)
{
	static _Thread_local size_t hint;

	if (hint < r->n_packs && r->packs[hint]->id == id)
		return r->packs[hint];
	for (size_t i = 0; i < r->n_packs; i++)
		if (r->packs[i]->id == id) {
			hint = i;
			return r->packs[i];
		}
	return NULL;
}

int snap_ptrs_grow(void ***v, size_t n, size_t *cap)
{
	size_t want = *cap ? 2 * *cap : 16;
	void **nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, want * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = want;
	return 0;
}

int snap_pack_add(struct snap_repo *r, struct snap_pack *p)
{
	if (snap_ptrs_grow((void ***)&r->packs, r->n_packs, &r->cap_packs))
		return -ENOMEM;
	r->packs[r->n_packs++] = p;
	if (p->id >= r->next_pack)
		r->next_pack = p->id + 1;
	return 0;
}

void snap_pack_free(struct snap_pack *p)
{
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	free(p->hash);
	free(p->state);
	free(p);
}

int snap_pack_grow(struct snap_pack *p)
{
	uint32_t cap = p->cap ? 2 * p->cap : 1024;
	void *h = realloc(p->hash, (size_t)cap * SNAP_HASH_LEN);
	void *s;

	if (!h)
		return -ENOMEM;
	p->hash = h;
	s = realloc(p->state, cap);
	if (!s)
		return -ENOMEM;
	p->state = s;
	memset(p->state + p->cap, SLOT_DEAD, cap - p->cap);
	p->cap = cap;
	return 0;
}

static int pack_load(struct snap_repo *r, uint32_t id, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct snap_fhdr h;
	struct snap_pack *p;
	void *body;
	int rc;

	snap_pack_path(r, id, "idx", path, sizeof(path));
	rc = snap_file_read(path, "FRSNPAK1", &h, &body, SNAP_HASH_LEN, err, errlen);
	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p || h.count > SNAP_PACK_MAXID) {
		free(p);
		free(body);
		return snap_fail(-ENOMEM, err, errlen, "loading %s: out of memory", path);
	}
	p->id = id;
	p->fd = -1;
	memcpy(p->uuid, h.uuid, sizeof(p->uuid));
	p->hash = body;
	p->count = p->cap = (uint32_t)h.count;
	p->state = calloc(p->cap ? p->cap : 1, 1);
	if (!p->state || snap_pack_add(r, p)) {
		snap_pack_free(p);
		return snap_fail(-ENOMEM, err, errlen, "loading %s: out of memory", path);
	}
	return 0;
}

/* A pack's data without its index is a crash before commit: removed. */
static int pack_entry(struct snap_repo *r, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX], idx[PATH_MAX];
	unsigned id;
	char ext[8];

	snprintf(path, sizeof(path), "%s/packs/%s", r->dir, name);
	if (name[0] == '.' || sscanf(name, "%8x.%4s", &id, ext) != 2 || id > SNAP_PACK_MAXID) {
		/* afile's stray temporaries, and nothing we wrote otherwise */
		if (name[0] == '.' && strstr(name, ".tmp-"))
			unlink(path);
		return 0;
	}
	if (!strcmp(ext, "idx"))
		return pack_load(r, id, err, errlen);
	snap_pack_path(r, id, "idx", idx, sizeof(idx));
	if (!strcmp(ext, "pack") && access(idx, F_OK) < 0 && errno == ENOENT)
		unlink(path);
	if (id >= r->next_pack)
		r->next_pack = id + 1;
	return 0;
}

int snap_packs_load(struct snap_repo *r, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/packs", r->dir);
	d = opendir(path);
	if (!d)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", path, ferry_strerror(errno));
	while (!rc && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = pack_entry(r, e->d_name, err, errlen);
	closedir(d);
	return rc;
}

static uint64_t tab_key(const uint8_t *hash)
{
	uint64_t k;

	memcpy(&k, hash, sizeof(k)); /* a SHA-256 is uniform already */
	return k;
}

static bool same_scope(const struct snap_repo *r, const struct snap_pack *p, const uint8_t *uuid)
{
	return r->xdedup || !memcmp(p->uuid, uuid, sizeof(p->uuid));
}

int64_t snap_dedup_find(struct snap_repo *r, const uint8_t *uuid, const uint8_t *hash)
{
	size_t mask = r->tab_cap - 1;

	if (!r->tab_cap)
		return -1;
	for (size_t i = tab_key(hash) & mask;; i = (i + 1) & mask) {
		uint64_t v = r->tab[i];
		struct snap_pack *p;

		if (!v)
			return -1;
		v--;
		p = snap_pack_find(r, (uint32_t)(v >> 32));
		if (p && same_scope(r, p, uuid) &&
		    !memcmp(p->hash[(uint32_t)v], hash, SNAP_HASH_LEN))
			return (int64_t)v;
	}
}

static void tab_insert(struct snap_repo *r, uint64_t v, const uint8_t *hash)
{
	size_t mask = r->tab_cap - 1, i = tab_key(hash) & mask;

	while (r->tab[i])
		i = (i + 1) & mask;
	r->tab[i] = v + 1;
	r->tab_used++;
}

static int tab_reset(struct snap_repo *r, size_t want)
{
	size_t cap = 1024;

	while (cap < 2 * want)
		cap *= 2;
	free(r->tab);
	r->tab = calloc(cap, sizeof(*r->tab));
	r->tab_cap = r->tab ? cap : 0;
	r->tab_used = 0;
	return r->tab ? 0 : -ENOMEM;
}

int snap_dedup_add(struct snap_repo *r, uint32_t pack, uint32_t slot)
{
	struct snap_pack *p = snap_pack_find(r, pack);

	if (2 * (r->tab_used + 1) > r->tab_cap) {
		uint64_t *old = r->tab;
		size_t old_cap = r->tab_cap;

		r->tab = NULL;
		if (tab_reset(r, r->tab_used + 1)) {
			r->tab = old;
			r->tab_cap = old_cap;
			return -ENOMEM;
		}
		for (size_t i = 0; i < old_cap; i++)
			if (old[i]) {
				struct snap_pack *q = snap_pack_find(r, (uint32_t)((old[i] - 1) >> 32));

				tab_insert(r, old[i] - 1, q->hash[(uint32_t)(old[i] - 1)]);
			}
		free(old);
	}
	tab_insert(r, (uint64_t)pack << 32 | slot, p->hash[slot]);
	return 0;
}

static void mark(struct snap_repo *r)
{
	for (size_t i = 0; i < r->n_packs; i++)
		for (uint32_t s = 0; s < r->packs[i]->count; s++)
			if (r->packs[i]->state[s] != SLOT_PUNCHED)
				r->packs[i]->state[s] = SLOT_DEAD;
	for (size_t i = 0; i < r->n_snaps; i++) {
		const struct snap_meta *m = r->snaps[i];

		for (uint64_t e = 0; m->complete && e < m->n_ents; e++) {
			struct snap_pack *p;

			if (m->ents[e].pack >= SNAP_PACK_HOLE)
				continue;
			/* entries were checked against the packs when loaded */
			p = snap_pack_find(r, m->ents[e].pack);
			p->state[m->ents[e].slot] = SLOT_LIVE;
		}
	}
}

/* Frees a pack's dead slots (a hole punched per run), or the whole pack
 * when nothing in it lives (index first: a pack without one is partial). */
static int reclaim(struct snap_repo *r, size_t i, char *err, size_t errlen)
{
	struct snap_pack *p = r->packs[i];
	char path[PATH_MAX];
	uint32_t s = 0, live = 0;
	int fd;

	for (uint32_t k = 0; k < p->count; k++)
		live += p->state[k] == SLOT_LIVE;
	if (!live) {
		snap_pack_path(r, p->id, "idx", path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
			return snap_fail(-errno, err, errlen, "cannot remove %s: %s", path,
					 ferry_strerror(errno));
		snap_pack_path(r, p->id, "pack", path, sizeof(path));
		unlink(path);
		snap_pack_free(p);
		r->packs[i] = r->packs[--r->n_packs];
		return 1;
	}
	snap_pack_path(r, p->id, "pack", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(-errno, err, errlen, "cannot open %s: %s", path, ferry_strerror(errno));
	while (s < p->count) {
		uint32_t e = s;

		while (e < p->count && p->state[e] == SLOT_DEAD)
			p->state[e++] = SLOT_PUNCHED;
		/* No punching on this file system: the space stays, reads do too. */
		if (e > s)
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)s * SNAP_PAGE_SIZE, (off_t)(e - s) * SNAP_PAGE_SIZE);
		s = e + 1;
	}
	close(fd);
	return 0;
}

int snap_sweep(struct snap_repo *r, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t live = 0;
	int rc;

	mark(r);
	for (size_t i = 0; i < r->n_packs;) {
		rc = reclaim(r, i, err, errlen);
		if (rc < 0)
			return rc;
		i += rc == 0;
	}
	snprintf(path, sizeof(path), "%s/packs", r->dir);
	rc = snap_fsync_dir(path, err, errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < r->n_packs; i++)
		for (uint32_t s = 0; s < r->packs[i]->count; s++)
			live += r->packs[i]->state[s] == SLOT_LIVE;
	if (tab_reset(r, live))
		return snap_fail(-ENOMEM, err, errlen, "dedup table: out of memory");
	for (size_t i = 0; i < r->n_packs; i++)
		for (uint32_t s = 0; s < r->packs[i]->count; s++)
			if (r->packs[i]->state[s] == SLOT_LIVE)
				tab_insert(r, (uint64_t)r->packs[i]->id << 32 | s,
					   r->packs[i]->hash[s]);
	return 0;
}

int snap_repo_stats(struct snap_repo *r, struct snap_repo_stats *st)
{
	char path[PATH_MAX];
	struct stat sb;

	memset(st, 0, sizeof(*st));
	st->packs = r->n_packs;
	for (size_t i = 0; i < r->n_packs; i++) {
		for (uint32_t s = 0; s < r->packs[i]->count; s++)
			st->live_pages += r->packs[i]->state[s] == SLOT_LIVE;
		snap_pack_path(r, r->packs[i]->id, "pack", path, sizeof(path));
		if (stat(path, &sb) < 0)
			return -errno;
		st->disk_bytes += (uint64_t)sb.st_blocks * 512;
	}
	return 0;
}
