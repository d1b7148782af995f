// SPDX-License-Identifier: MIT
/*
 * Xenstore: the node tree, permissions, watches, transactions and quotas,
 * and the execution of wire requests (xenstore/xenstore.h).
 *
 * Like xenstored, nodes live in one table keyed by full path; each node
 * holds its value, its permissions (entry 0: owner and the default for
 * everyone else; further entries per domid) and its children's names as
 * NUL-terminated strings in creation order. Every change to a node gives it
 * a new generation from a store-wide counter.
 *
 * A transaction is an overlay table of the nodes it touched: a copy made at
 * first access (or a "deleted" entry for a path found absent) remembering
 * the generation it saw. Reads and writes inside go to the overlay. The
 * commit fails with EAGAIN if any touched node's generation changed since
 * (so reads conflict too, as in xenstored); otherwise the modified entries
 * replace their nodes and the transaction's watch events fire.
 *
 * Differences from Xen's xenstored, on purpose or for now:
 * - Special watches (@introduceDomain, @releaseDomain) go to privileged
 *   connections only; SET_PERMS on "@..." paths is refused (EINVAL).
 * - The node-size quota counts the value only (Xen counts children names and
 *   permissions too); quotas are not re-checked at transaction commit.
 * - No memory quota, no per-domain write-rate limit, no live update, no
 *   XS_PERM_IGNORE for dead domids, no event timeouts; INTRODUCE records
 *   the ring frame and port but maps nothing (the server does that).
 * - CONTROL knows check, help, log and print.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "xenstore/xenstore.h"

#define PERM_OWNER 4u
#define DOMID_FIRST_RESERVED 0x7ff0u
#define PATHBUF (XS_ABS_PATH_MAX + 1)
#define DOMAIN_PREFIX "/local/domain/"

struct xs_perm {
	uint32_t domid;
	uint32_t perm; /* XS_PERM_* */
};

struct node {
	struct node *hnext;
	char *path;
	uint8_t *value;
	uint32_t vlen;
	uint32_t nperms;
	struct xs_perm *perms;
	char *children; /* names, each NUL-terminated */
	uint32_t clen;
	uint64_t gen;
	/* Transaction entries only. */
	uint64_t seen;	/* generation seen at first access; 0: absent */
	bool modified;	/* to be written back at commit */
	bool deleted;	/* the path does not exist in this transaction */
};

struct table {
	struct node **b;
	size_t nb, n;
};

struct dom {
	uint32_t domid;
	uint32_t target; /* UINT32_MAX: none */
	long nodes;	 /* nodes owned in the main tree */
	bool introduced;
	uint64_t mfn;
	uint32_t port;
};

struct event {
	char *path;
	bool recurse;
	uint32_t nperms;
	struct xs_perm *perms;
};

struct tx {
	struct tx *next;
	uint32_t id;
	bool failed; /* an allocation failed: the overlay is incomplete */
	long ndelta; /* change in nodes owned by the connection's domid */
	struct table t;
	struct event *ev;
	size_t nev, capev;
};

struct watch {
	struct watch *next;
	char *path;  /* absolute, or "@..." */
	char *token;
	bool rel;    /* registered relative: events are relative too */
};

struct xs_conn {
	struct xs_store *s;
	struct xs_conn *next, *prev;
	uint32_t domid;
	xs_out_fn *out;
	void *opaque;
	bool dead;
	struct watch *watches;
	unsigned nwatches;
	struct tx *txs;
	unsigned ntx;
	uint32_t next_tx;
	/* Reply being built by the current request. */
	uint32_t rlen;
	bool rbig;
	struct watch *initial; /* WATCH's first event, sent after the ack */
	uint8_t rbuf[XS_PAYLOAD_MAX];
	uint8_t obuf[XS_MSG_MAX];
	struct xs_wire_rx rx;
};

struct xs_store {
	struct xs_quota q;
	struct table t;
	uint64_t gen;
	struct dom *doms;
	size_t ndoms, capdoms;
	struct xs_conn *conns;
};

/* Who is asking, and through which transaction. */
struct view {
	struct xs_store *s;
	struct tx *tx;
	uint32_t domid;
	bool priv;
	int err; /* sticky -ENOMEM */
};

/* ---- nodes and the table ---- */

static uint64_t hash(const char *p)
{
	uint64_t h = 1469598103934665603ull;

	while (*p)
		h = (h ^ (uint8_t)*p++) * 1099511628211ull;
	return h;
}

static void node_clear(struct node *n)
{
	free(n->value);
	free(n->perms);
	free(n->children);
	n->value = NULL;
	n->perms = NULL;
	n->children = NULL;
	n->vlen = n->nperms = n->clen = 0;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	node_clear(n);
	free(n->path);
	free(n);
}

static struct node *node_new(const char *path)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	return n;
}

static void *memdup(const void *p, size_t len)
{
	void *q;

	if (!len)
		return NULL;
	q = malloc(len);
	if (q)
		memcpy(q, p, len);
	return q;
}

/* Copies value, perms and children of src into dst (cleared first). */
static int node_copy_body(struct node *dst, const struct node *src)
{
	node_clear(dst);
	dst->value = memdup(src->value, src->vlen);
	dst->perms = memdup(src->perms, src->nperms * sizeof(*src->perms));
	dst->children = memdup(src->children, src->clen);
	if ((src->vlen && !dst->value) || (src->nperms && !dst->perms) ||
	    (src->clen && !dst->children)) {
		node_clear(dst);
		return -ENOMEM;
	}
	dst->vlen = src->vlen;
	dst->nperms = src->nperms;
	dst->clen = src->clen;
	dst->gen = src->gen;
	return 0;
}

static struct node *tbl_find(const struct table *t, const char *path)
{
	struct node *n;

	if (!t->nb)
		return NULL;
	for (n = t->b[hash(path) & (t->nb - 1)]; n; n = n->hnext)
		if (!strcmp(n->path, path))
			return n;
	return NULL;
}

static void tbl_grow(struct table *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->nb; i++) {
		struct node *n = t->b[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			n->hnext = b[hash(n->path) & (nb - 1)];
			b[hash(n->path) & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

/* Inserting cannot fail once the table has buckets (tbl_init). */
static void tbl_insert(struct table *t, struct node *n)
{
	size_t i;

	if (t->n >= t->nb)
		tbl_grow(t);
	i = hash(n->path) & (t->nb - 1);
	n->hnext = t->b[i];
	t->b[i] = n;
	t->n++;
}

static struct node *tbl_unlink(struct table *t, const char *path)
{
	struct node **pp, *n;

	if (!t->nb)
		return NULL;
	for (pp = &t->b[hash(path) & (t->nb - 1)]; (n = *pp); pp = &n->hnext)
		if (!strcmp(n->path, path)) {
			*pp = n->hnext;
			t->n--;
			return n;
		}
	return NULL;
}

static int tbl_init(struct table *t)
{
	t->nb = 16;
	t->n = 0;
	t->b = calloc(t->nb, sizeof(*t->b));
	return t->b ? 0 : -ENOMEM;
}

static void tbl_free(struct table *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct node *n = t->b[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			node_free(n);
		}
	}
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

static int children_add(struct node *n, const char *name, size_t len)
{
	char *c = realloc(n->children, n->clen + len + 1);

	if (!c)
		return -ENOMEM;
	memcpy(c + n->clen, name, len);
	c[n->clen + len] = 0;
	n->children = c;
	n->clen += (uint32_t)len + 1;
	return 0;
}

static void children_del(struct node *n, const char *name)
{
	uint32_t off = 0, l;

	while (off < n->clen) {
		l = (uint32_t)strlen(n->children + off) + 1;
		if (!strcmp(n->children + off, name)) {
			memmove(n->children + off, n->children + off + l,
				n->clen - off - l);
			n->clen -= l;
			return;
		}
		off += l;
	}
}

/* Length of path's parent ("/" for a top-level node). */
static size_t parent_len(const char *path, size_t len)
{
	while (len > 1 && path[len - 1] != '/')
		len--;
	return len > 1 ? len - 1 : 1;
}

/* child is parent or below it. Special paths only match themselves. */
static bool is_child(const char *child, const char *parent)
{
	size_t l;

	if (!strcmp(parent, "/"))
		return child[0] == '/';
	l = strlen(parent);
	return !strncmp(child, parent, l) && (child[l] == 0 || child[l] == '/');
}

/* ---- domains: ownership counts, introduction, targets ---- */

static struct dom *dom_get(struct xs_store *s, uint32_t domid, bool create)
{
	for (size_t i = 0; i < s->ndoms; i++)
		if (s->doms[i].domid == domid)
			return &s->doms[i];
	if (!create)
		return NULL;
	if (s->ndoms == s->capdoms) {
		size_t cap = s->capdoms ? s->capdoms * 2 : 16;
		struct dom *d = realloc(s->doms, cap * sizeof(*d));

		if (!d)
			return NULL;
		s->doms = d;
		s->capdoms = cap;
	}
	s->doms[s->ndoms] = (struct dom){ .domid = domid, .target = UINT32_MAX };
	return &s->doms[s->ndoms++];
}

static long dom_nodes(struct xs_store *s, uint32_t domid)
{
	struct dom *d = dom_get(s, domid, false);

	return d ? d->nodes : 0;
}

static void acct(struct xs_store *s, const struct node *n, long delta)
{
	struct dom *d;

	if (!n->nperms)
		return;
	d = dom_get(s, n->perms[0].domid, true);
	if (d)
		d->nodes += delta;
}

static unsigned perm_for(struct xs_store *s, uint32_t domid,
			 const struct xs_perm *p, uint32_t np)
{
	struct dom *d;
	uint32_t target = UINT32_MAX;

	if (domid == 0)
		return XS_PERM_BOTH | PERM_OWNER;
	if (!np)
		return XS_PERM_NONE;
	d = dom_get(s, domid, false);
	if (d)
		target = d->target;
	if (p[0].domid == domid || p[0].domid == target)
		return XS_PERM_BOTH | PERM_OWNER;
	for (uint32_t i = 1; i < np; i++)
		if (p[i].domid == domid || p[i].domid == target)
			return p[i].perm & XS_PERM_BOTH;
	return p[0].perm & XS_PERM_BOTH;
}

/* ---- watches ---- */

static int emit(struct xs_conn *c, uint32_t type, uint32_t req_id,
		uint32_t tx_id, const struct xs_iov *parts, unsigned n)
{
	long len = xs_wire_build(c->obuf, type, req_id, tx_id, parts, n);

	if (len < 0)
		return (int)len;
	if (!c->out)
		return 0;
	return c->out(c->opaque, c->obuf, (size_t)len);
}

static void send_event(struct xs_conn *c, const struct watch *w,
		       const char *path)
{
	char base[sizeof(DOMAIN_PREFIX) + 16];
	size_t bl;

	if (c->dead)
		return;
	if (w->rel) {
		bl = (size_t)snprintf(base, sizeof(base), DOMAIN_PREFIX "%u/",
				      c->domid);
		if (strncmp(path, base, bl))
			return;
		path += bl;
	}
	struct xs_iov iov[2] = { { path, strlen(path) + 1 },
				 { w->token, strlen(w->token) + 1 } };
	/* Too long or refused by the server: dropped, as in xenstored. */
	emit(c, XS_WATCH_EVENT, 0, 0, iov, 2);
}

/* A change at path (the removal of path's subtree if recurse), visible to
 * those who can read a node with perms. */
static void fire(struct xs_store *s, const char *path, bool recurse,
		 const struct xs_perm *perms, uint32_t nperms)
{
	for (struct xs_conn *c = s->conns; c; c = c->next) {
		if (path[0] == '@') {
			if (c->domid != 0)
				continue;
		} else if (!(perm_for(s, c->domid, perms, nperms) & XS_PERM_READ)) {
			continue;
		}
		for (struct watch *w = c->watches; w; w = w->next) {
			if (is_child(path, w->path))
				send_event(c, w, path);
			else if (recurse && is_child(w->path, path))
				send_event(c, w, w->path);
		}
	}
}

static void watch_free(struct watch *w)
{
	free(w->path);
	free(w->token);
	free(w);
}

/* ---- transactions ---- */

static void tx_free(struct tx *t)
{
	tbl_free(&t->t);
	for (size_t i = 0; i < t->nev; i++) {
		free(t->ev[i].path);
		free(t->ev[i].perms);
	}
	free(t->ev);
	free(t);
}

/* ---- the view: main tree or a transaction's overlay ---- */

/* The node at path, or NULL. Inside a transaction the first access records
 * a copy (or an absent entry) in the overlay; the pointer returned is the
 * overlay's and may be modified (then v_touch). */
static struct node *v_get(struct view *v, const char *path)
{
	struct node *n, *e;

	if (!v->tx)
		return tbl_find(&v->s->t, path);
	e = tbl_find(&v->tx->t, path);
	if (e)
		return e->deleted ? NULL : e;
	n = tbl_find(&v->s->t, path);
	e = node_new(path);
	if (!e || (n && node_copy_body(e, n))) {
		node_free(e);
		v->err = -ENOMEM;
		v->tx->failed = true;
		return NULL; /* the request fails with ENOMEM */
	}
	e->seen = n ? n->gen : 0;
	e->deleted = !n;
	tbl_insert(&v->tx->t, e);
	return n ? e : NULL;
}

static void v_touch(struct view *v, struct node *n)
{
	if (v->tx)
		n->modified = true;
	else
		n->gen = ++v->s->gen;
}

/* Puts a new node (not in any table) in place; returns the node now at
 * path (n itself, or the overlay entry n's body moved into). */
static struct node *v_insert(struct view *v, struct node *n)
{
	struct node *e;

	if (!v->tx) {
		n->gen = ++v->s->gen;
		tbl_insert(&v->s->t, n);
		acct(v->s, n, 1);
		return n;
	}
	if (n->nperms && n->perms[0].domid == v->domid)
		v->tx->ndelta++;
	e = tbl_find(&v->tx->t, n->path);
	if (!e) {
		struct node *m = tbl_find(&v->s->t, n->path);

		n->seen = m ? m->gen : 0;
		n->modified = true;
		tbl_insert(&v->tx->t, n);
		return n;
	}
	node_clear(e);
	e->value = n->value;
	e->vlen = n->vlen;
	e->perms = n->perms;
	e->nperms = n->nperms;
	e->children = n->children;
	e->clen = n->clen;
	e->deleted = false;
	e->modified = true;
	n->value = NULL;
	n->perms = NULL;
	n->children = NULL;
	node_free(n);
	return e;
}

static void v_remove(struct view *v, struct node *n)
{
	if (!v->tx) {
		tbl_unlink(&v->s->t, n->path);
		acct(v->s, n, -1);
		node_free(n);
		return;
	}
	if (n->nperms && n->perms[0].domid == v->domid)
		v->tx->ndelta--;
	node_clear(n);
	n->deleted = true;
	n->modified = true;
}

/* Replaces n's permissions with perms (taken over). */
static void v_set_perms(struct view *v, struct node *n, struct xs_perm *perms,
			uint32_t np)
{
	if (!v->tx) {
		acct(v->s, n, -1);
	} else {
		if (n->nperms && n->perms[0].domid == v->domid)
			v->tx->ndelta--;
		if (perms[0].domid == v->domid)
			v->tx->ndelta++;
	}
	free(n->perms);
	n->perms = perms;
	n->nperms = np;
	if (!v->tx)
		acct(v->s, n, 1);
	v_touch(v, n);
}

static void v_event(struct view *v, const char *path, bool recurse,
		    const struct xs_perm *perms, uint32_t np)
{
	struct tx *t = v->tx;
	struct event *e;

	if (!t) {
		fire(v->s, path, recurse, perms, np);
		return;
	}
	if (t->nev == t->capev) {
		size_t cap = t->capev ? t->capev * 2 : 8;

		e = realloc(t->ev, cap * sizeof(*e));
		if (!e)
			goto nomem;
		t->ev = e;
		t->capev = cap;
	}
	e = &t->ev[t->nev];
	e->path = strdup(path);
	e->perms = memdup(perms, np * sizeof(*perms));
	if (!e->path || (np && !e->perms)) {
		free(e->path);
		free(e->perms);
		goto nomem;
	}
	e->recurse = recurse;
	e->nperms = np;
	t->nev++;
	return;
nomem:
	v->err = -ENOMEM;
	t->failed = true;
}

/* ---- paths and permission checks ---- */

static bool valid_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '/' || ch == '_' || ch == '@';
}

static bool valid_chars(const char *p)
{
	for (; *p; p++)
		if (!valid_char(*p))
			return false;
	return true;
}

/* Canonical absolute path for in, as seen by domid, into out (PATHBUF).
 * *rel tells whether in was relative. */
static int canon(uint32_t domid, const char *in, bool special, char *out,
		 bool *rel)
{
	size_t len;

	if (!in || !valid_chars(in))
		return -EINVAL;
	len = strlen(in);
	*rel = false;
	if (in[0] == '@') {
		if (!special || len > XS_ABS_PATH_MAX)
			return -EINVAL;
		memcpy(out, in, len + 1);
		return 0;
	}
	if (in[0] != '/') {
		if (len > XS_REL_PATH_MAX)
			return -EINVAL;
		*rel = true;
		len = (size_t)snprintf(out, PATHBUF, DOMAIN_PREFIX "%u/%s",
				       domid, in);
	} else {
		if (len > XS_ABS_PATH_MAX)
			return -EINVAL;
		memcpy(out, in, len + 1);
	}
	if (len > XS_ABS_PATH_MAX || strstr(out, "//") ||
	    (len > 1 && out[len - 1] == '/'))
		return -EINVAL;
	return 0;
}

/* The node at path if the caller has every permission in want; otherwise
 * NULL and *err: EACCES, or ENOENT when the node is missing and the caller
 * has want on its nearest existing ancestor (Xen does not reveal more). */
static struct node *get_node(struct view *v, const char *path, unsigned want,
			     int *err)
{
	char buf[PATHBUF];
	size_t len = strlen(path);
	struct node *n = v_get(v, path), *a = NULL;

	if (n && (perm_for(v->s, v->domid, n->perms, n->nperms) & want) == want)
		return n;
	*err = n ? -EACCES : -ENOENT;
	memcpy(buf, path, len + 1);
	while (len > 1 && !a) {
		len = parent_len(buf, len);
		buf[len] = 0;
		a = v_get(v, buf);
	}
	if (!a || !(perm_for(v->s, v->domid, a->perms, a->nperms) & want))
		*err = -EACCES;
	return NULL;
}

/* Creates path and any missing ancestors, each inheriting its parent's
 * permissions, owned by the caller if unprivileged (Xen's rule). */
static int create_path(struct view *v, const char *path, struct node **out)
{
	char buf[PATHBUF];
	size_t len = strlen(path), plen = len, start, end;
	struct node *parent = NULL, *n;
	long missing = 0;

	memcpy(buf, path, len + 1);
	while (!parent) {
		if (plen == 1)
			return -EIO; /* no root */
		plen = parent_len(path, plen);
		buf[plen] = 0;
		parent = v_get(v, buf);
		buf[plen] = path[plen];
		missing++;
	}
	if (!v->priv &&
	    dom_nodes(v->s, v->domid) + (v->tx ? v->tx->ndelta : 0) + missing >
		    (long)v->s->q.nodes_per_domain)
		return -ENOSPC;
	while (plen < len) {
		start = plen == 1 ? 1 : plen + 1;
		end = start;
		while (end < len && path[end] != '/')
			end++;
		buf[end] = 0;
		n = node_new(buf);
		buf[end] = path[end];
		if (!n)
			return -ENOMEM;
		n->perms = memdup(parent->perms,
				  parent->nperms * sizeof(*parent->perms));
		if (parent->nperms && !n->perms) {
			node_free(n);
			return -ENOMEM;
		}
		n->nperms = parent->nperms;
		if (!v->priv && n->nperms)
			n->perms[0].domid = v->domid;
		if (children_add(parent, path + start, end - start)) {
			node_free(n);
			return -ENOMEM;
		}
		v_touch(v, parent);
		parent = v_insert(v, n);
		plen = end;
	}
	*out = parent;
	return 0;
}

/* ---- operations, on canonical paths ---- */

static int op_write(struct view *v, const char *path, const void *val,
		    size_t len)
{
	struct node *n;
	uint8_t *copy = NULL;
	int err = 0;

	if (!v->priv && len > v->s->q.node_size)
		return -ENOSPC;
	if (len > XS_PAYLOAD_MAX)
		return -E2BIG;
	if (len && !(copy = memdup(val, len)))
		return -ENOMEM;
	n = get_node(v, path, XS_PERM_WRITE, &err);
	if (!n && err == -ENOENT)
		err = create_path(v, path, &n);
	if (err) {
		free(copy);
		return err;
	}
	free(n->value);
	n->value = copy;
	n->vlen = (uint32_t)len;
	v_touch(v, n);
	v_event(v, path, false, n->perms, n->nperms);
	return v->err;
}

static int op_mkdir(struct view *v, const char *path)
{
	struct node *n;
	int err = 0;

	n = get_node(v, path, XS_PERM_WRITE, &err);
	if (n)
		return v->err;
	if (err != -ENOENT)
		return err;
	err = create_path(v, path, &n);
	if (err)
		return err;
	v_event(v, path, false, n->perms, n->nperms);
	return v->err;
}

static int rm_tree(struct view *v, struct node *n)
{
	size_t pl = strlen(n->path);
	uint32_t off = 0;
	int err = 0;

	while (off < n->clen) {
		const char *name = n->children + off;
		size_t nl = strlen(name);
		char *cp = malloc(pl + nl + 2);
		struct node *c;

		if (!cp)
			return -ENOMEM;
		snprintf(cp, pl + nl + 2, "%s/%s", pl == 1 ? "" : n->path, name);
		c = v_get(v, cp);
		free(cp);
		if (c && (err = rm_tree(v, c)))
			return err;
		off += (uint32_t)nl + 1;
	}
	v_remove(v, n);
	return 0;
}

static int op_rm(struct view *v, const char *path)
{
	char pbuf[PATHBUF];
	size_t len = strlen(path), plen;
	struct xs_perm *perms;
	uint32_t np;
	struct node *n, *parent;
	int err = 0;

	if (path[0] != '/' || len == 1)
		return -EINVAL;
	plen = parent_len(path, len);
	memcpy(pbuf, path, plen);
	pbuf[plen] = 0;
	n = get_node(v, path, XS_PERM_WRITE, &err);
	if (!n) {
		if (err == -ENOENT && !v_get(v, pbuf))
			return -ENOENT;
		return err == -ENOENT ? v->err : err;
	}
	np = n->nperms;
	perms = memdup(n->perms, np * sizeof(*perms));
	if (np && !perms)
		return -ENOMEM;
	parent = v_get(v, pbuf);
	err = rm_tree(v, n);
	if (parent) {
		children_del(parent, path + (plen == 1 ? 1 : plen + 1));
		v_touch(v, parent);
	}
	if (!err)
		v_event(v, path, true, perms, np);
	free(perms);
	return err ? err : v->err;
}

static int op_set_perms(struct view *v, const char *path,
			struct xs_perm *perms, uint32_t np)
{
	struct node *n;
	int err = 0;

	if (!v->priv && np > v->s->q.perms_per_node)
		return -ENOSPC;
	n = get_node(v, path, XS_PERM_WRITE | PERM_OWNER, &err);
	if (!n)
		return err;
	/* Unprivileged domains may not give their nodes away (EPERM in
	 * xenstored, which the wire reports as EINVAL). */
	if (!v->priv && perms[0].domid != n->perms[0].domid)
		return -EPERM;
	struct xs_perm *copy = memdup(perms, np * sizeof(*perms));

	if (!copy)
		return -ENOMEM;
	v_set_perms(v, n, copy, np);
	v_event(v, path, false, n->perms, n->nperms);
	return v->err;
}

/* ---- permission strings ---- */

static int parse_uint(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/* "r5" and friends; self (or UINT32_MAX) stands for "@" in exports. */
static int parse_perm(const char *s, uint32_t self, struct xs_perm *p)
{
	switch (s[0]) {
	case 'n': p->perm = XS_PERM_NONE; break;
	case 'r': p->perm = XS_PERM_READ; break;
	case 'w': p->perm = XS_PERM_WRITE; break;
	case 'b': p->perm = XS_PERM_BOTH; break;
	default: return -EINVAL;
	}
	if (self != UINT32_MAX && !strcmp(s + 1, "@")) {
		p->domid = self;
		return 0;
	}
	return parse_uint(s + 1, 65535, &p->domid);
}

static int perm_str(const struct xs_perm *p, uint32_t self, char *out,
		    size_t cap)
{
	static const char letters[] = "nrwb";

	if (p->domid == self)
		return snprintf(out, cap, "%c@", letters[p->perm & 3]);
	return snprintf(out, cap, "%c%" PRIu32, letters[p->perm & 3], p->domid);
}

/* ---- the store ---- */

static struct node *root_node(const char *path)
{
	struct node *n = node_new(path);

	if (n && !(n->perms = calloc(1, sizeof(*n->perms)))) {
		node_free(n);
		return NULL;
	}
	if (n)
		n->nperms = 1; /* n0 */
	return n;
}

int xs_store_new(const struct xs_quota *quota, struct xs_store **out)
{
	static const char *const base[] = { "/local", "/local/domain", "/tool" };
	struct xs_store *s = calloc(1, sizeof(*s));
	struct view v = { .s = s, .priv = true };
	struct node *n;

	if (!s)
		return -ENOMEM;
	if (quota)
		s->q = *quota;
	if (!s->q.nodes_per_domain)
		s->q.nodes_per_domain = 1000;
	if (!s->q.node_size)
		s->q.node_size = 2048;
	if (!s->q.watches_per_conn)
		s->q.watches_per_conn = 128;
	if (!s->q.transactions_per_conn)
		s->q.transactions_per_conn = 10;
	if (!s->q.perms_per_node)
		s->q.perms_per_node = 5;
	if (tbl_init(&s->t) || !(n = root_node("/")))
		goto fail;
	v_insert(&v, n);
	for (size_t i = 0; i < ARRAY_SIZE(base); i++)
		if (op_mkdir(&v, base[i]))
			goto fail;
	*out = s;
	return 0;
fail:
	xs_store_free(s);
	return -ENOMEM;
}

void xs_store_free(struct xs_store *s)
{
	if (!s)
		return;
	while (s->conns)
		xs_conn_free(s->conns);
	tbl_free(&s->t);
	free(s->doms);
	free(s);
}

size_t xs_store_nodes(const struct xs_store *s)
{
	return s->t.n;
}

int xs_store_check(struct xs_store *s)
{
	char buf[PATHBUF + 8];
	size_t count = 0;
	long *owned = calloc(s->ndoms + 1, sizeof(*owned));
	int rc = 0;

	if (!owned)
		return -ENOMEM;
	if (!tbl_find(&s->t, "/"))
		rc = -EIO;
	for (size_t i = 0; i < s->t.nb; i++)
		for (struct node *n = s->t.b[i]; n; n = n->hnext) {
			size_t len = strlen(n->path), pl, d;
			struct node *p;
			bool found = false;

			count++;
			if (!n->nperms || n->deleted || n->modified) {
				rc = -EIO;
				continue;
			}
			for (d = 0; d < s->ndoms; d++)
				if (s->doms[d].domid == n->perms[0].domid)
					break;
			owned[d]++;
			for (uint32_t off = 0; off < n->clen;) {
				const char *c = n->children + off;

				snprintf(buf, sizeof(buf), "%s/%s",
					 len == 1 ? "" : n->path, c);
				if (!*c || !tbl_find(&s->t, buf))
					rc = -EIO;
				off += (uint32_t)strlen(c) + 1;
			}
			if (len == 1)
				continue;
			pl = parent_len(n->path, len);
			memcpy(buf, n->path, pl);
			buf[pl] = 0;
			p = tbl_find(&s->t, buf);
			for (uint32_t off = 0; p && off < p->clen;) {
				const char *c = p->children + off;

				if (!strcmp(c, n->path + (pl == 1 ? 1 : pl + 1)))
					found = true;
				off += (uint32_t)strlen(c) + 1;
			}
			if (!found)
				rc = -EIO;
		}
	if (count != s->t.n || owned[s->ndoms])
		rc = -EIO;
	for (size_t d = 0; d < s->ndoms; d++)
		if (owned[d] != s->doms[d].nodes)
			rc = -EIO;
	free(owned);
	if (rc)
		log_err("xenstore: store check failed");
	return rc;
}

/* ---- connections ---- */

int xs_conn_new(struct xs_store *s, uint32_t domid, xs_out_fn *out_fn,
		void *opaque, struct xs_conn **out)
{
	struct xs_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->domid = domid;
	c->out = out_fn;
	c->opaque = opaque;
	c->next_tx = 1;
	xs_wire_rx_init(&c->rx);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	*out = c;
	return 0;
}

static void conn_reset(struct xs_conn *c)
{
	while (c->watches) {
		struct watch *w = c->watches;

		c->watches = w->next;
		watch_free(w);
	}
	c->nwatches = 0;
	while (c->txs) {
		struct tx *t = c->txs;

		c->txs = t->next;
		tx_free(t);
	}
	c->ntx = 0;
}

void xs_conn_free(struct xs_conn *c)
{
	if (!c)
		return;
	conn_reset(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

uint32_t xs_conn_domid(const struct xs_conn *c)
{
	return c->domid;
}

static void reply(struct xs_conn *c, const void *p, size_t len)
{
	if (len > sizeof(c->rbuf) - c->rlen) {
		c->rbig = true;
		return;
	}
	if (!len)
		return;
	memcpy(c->rbuf + c->rlen, p, len);
	c->rlen += (uint32_t)len;
}

static void reply_str(struct xs_conn *c, const char *s)
{
	reply(c, s, strlen(s) + 1);
}

/* The payload is exactly one string. */
static const char *onearg(const char *p, uint32_t len)
{
	if (!len || memchr(p, 0, len) != p + len - 1)
		return NULL;
	return p;
}

static int parse_domid(const char *s, uint32_t *domid)
{
	return s ? parse_uint(s, 65535, domid) : -EINVAL;
}

static struct tx *tx_find(struct xs_conn *c, uint32_t id)
{
	for (struct tx *t = c->txs; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static int tx_commit(struct xs_store *s, struct tx *t)
{
	struct node *m, *e, **pp;

	if (t->failed)
		return -EAGAIN;
	for (size_t i = 0; i < t->t.nb; i++)
		for (e = t->t.b[i]; e; e = e->hnext) {
			m = tbl_find(&s->t, e->path);
			if ((m ? m->gen : 0) != e->seen)
				return -EAGAIN;
		}
	/* No failure past this point: entries move into the main table. */
	for (size_t i = 0; i < t->t.nb; i++)
		for (pp = &t->t.b[i]; (e = *pp);) {
			if (!e->modified) {
				pp = &e->hnext;
				continue;
			}
			m = tbl_unlink(&s->t, e->path);
			if (m) {
				acct(s, m, -1);
				node_free(m);
			}
			*pp = e->hnext;
			t->t.n--;
			if (e->deleted) {
				node_free(e);
				continue;
			}
			e->modified = false;
			e->seen = 0;
			e->gen = ++s->gen;
			tbl_insert(&s->t, e);
			acct(s, e, 1);
		}
	for (size_t i = 0; i < t->nev; i++)
		fire(s, t->ev[i].path, t->ev[i].recurse, t->ev[i].perms,
		     t->ev[i].nperms);
	return 0;
}

static void tx_unlink(struct xs_conn *c, struct tx *t)
{
	for (struct tx **pp = &c->txs; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			c->ntx--;
			return;
		}
}

static int do_perms_reply(struct xs_conn *c, const struct node *n)
{
	char s[16];

	for (uint32_t i = 0; i < n->nperms; i++) {
		perm_str(&n->perms[i], UINT32_MAX, s, sizeof(s));
		reply_str(c, s);
	}
	return 0;
}

static int do_directory_part(struct xs_conn *c, const struct node *n,
			     const char *offs)
{
	char gen[24];
	uint32_t off, len = 0, maxlen;
	size_t genlen;

	if (parse_uint(offs, UINT32_MAX, &off))
		return -EINVAL;
	genlen = (size_t)snprintf(gen, sizeof(gen), "%" PRIu64, n->gen) + 1;
	reply(c, gen, genlen);
	if (off >= n->clen) {
		reply(c, "", 1);
		return 0;
	}
	maxlen = XS_PAYLOAD_MAX - (uint32_t)genlen - 1;
	while (off + len < n->clen) {
		uint32_t l = (uint32_t)strlen(n->children + off + len);

		if (len + l >= maxlen)
			break;
		len += l + 1;
	}
	reply(c, n->children + off, len);
	if (off + len == n->clen)
		reply(c, "", 1);
	return 0;
}

static int do_watch(struct xs_conn *c, const char *p, uint32_t plen, bool add)
{
	const char *vec[2];
	char path[PATHBUF];
	struct watch *w, **pp;
	bool rel;
	int err;

	if (xs_wire_strings(p, plen, vec, 2) < 2)
		return -EINVAL;
	err = canon(c->domid, vec[0], true, path, &rel);
	if (err)
		return err;
	for (pp = &c->watches; (w = *pp); pp = &w->next)
		if (!strcmp(w->path, path) && !strcmp(w->token, vec[1]))
			break;
	if (!add) {
		if (!w)
			return -ENOENT;
		*pp = w->next;
		watch_free(w);
		c->nwatches--;
		return 0;
	}
	if (w)
		return -EEXIST;
	if (c->domid != 0 && c->nwatches >= c->s->q.watches_per_conn)
		return -E2BIG;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path)) || !(w->token = strdup(vec[1]))) {
		if (w)
			watch_free(w);
		return -ENOMEM;
	}
	w->rel = rel;
	/* Appended, so events go out in registration order. */
	*pp = w;
	c->nwatches++;
	c->initial = w;
	return 0;
}

static int do_introduce(struct xs_conn *c, const char *p, uint32_t plen)
{
	const char *vec[3];
	uint32_t domid, port;
	struct dom *d;
	char *end;
	long long mfn;

	if (xs_wire_strings(p, plen, vec, 3) < 3 || parse_domid(vec[0], &domid) ||
	    domid == 0 || domid >= DOMID_FIRST_RESERVED ||
	    parse_uint(vec[2], UINT32_MAX, &port))
		return -EINVAL;
	errno = 0;
	mfn = strtoll(vec[1], &end, 10);
	if (errno || end == vec[1] || *end)
		return -EINVAL;
	d = dom_get(c->s, domid, true);
	if (!d)
		return -ENOMEM;
	d->mfn = (uint64_t)mfn;
	d->port = port;
	if (!d->introduced) {
		d->introduced = true;
		fire(c->s, "@introduceDomain", false, NULL, 0);
	}
	return 0;
}

/* Executes one request from the connection, filling the reply buffer. */
/* Privileged requests from a guest are refused; a request in a transaction
 * finds it (vp->tx). */
static int exec_check(struct xs_conn *c, const struct xs_msg_hdr *h, struct view *vp)
{
	switch (h->type) {
	case XS_INTRODUCE:
	case XS_RELEASE:
	case XS_IS_DOMAIN_INTRODUCED:
	case XS_RESUME:
	case XS_SET_TARGET:
	case XS_CONTROL:
		if (!vp->priv)
			return -EACCES;
		break;
	case XS_READ:
	case XS_WRITE:
	case XS_MKDIR:
	case XS_RM:
	case XS_DIRECTORY:
	case XS_DIRECTORY_PART:
	case XS_GET_PERMS:
	case XS_SET_PERMS:
	case XS_TRANSACTION_END:
		if (h->tx_id && !(vp->tx = tx_find(c, h->tx_id)))
			return -ENOENT;
		break;
	default:
		break;
	}
	return 0;
}

/* XS_READ, XS_DIRECTORY, XS_GET_PERMS, XS_MKDIR, XS_RM: one path. */
static int exec_path(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
		     struct view *vp)
{
	char path[PATHBUF];
	struct node *n;
	bool rel;
	int err = canon(c->domid, onearg(p, h->len), false, path, &rel);

	if (err)
		return err;
	if (h->type == XS_MKDIR)
		return op_mkdir(vp, path);
	if (h->type == XS_RM)
		return op_rm(vp, path);
	n = get_node(vp, path, XS_PERM_READ, &err);
	if (!n)
		return err;
	if (h->type == XS_READ)
		reply(c, n->value, n->vlen);
	else if (h->type == XS_DIRECTORY)
		reply(c, n->children, n->clen);
	else
		do_perms_reply(c, n);
	return 0;
}

static int exec_directory_part(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
			       struct view *vp)
{
	const char *vec[2];
	char path[PATHBUF];
	struct node *n;
	bool rel;
	int err;

	if (xs_wire_strings(p, h->len, vec, 2) != 2)
		return -EINVAL;
	err = canon(c->domid, vec[0], false, path, &rel);
	if (err)
		return err;
	n = get_node(vp, path, XS_PERM_READ, &err);
	if (!n)
		return err;
	return do_directory_part(c, n, vec[1]);
}

static int exec_write(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
		      struct view *vp)
{
	const char *nul = memchr(p, 0, h->len);
	char path[PATHBUF];
	size_t off;
	bool rel;
	int err;

	if (!nul)
		return -EINVAL;
	off = (size_t)(nul - p) + 1;
	err = canon(c->domid, p, false, path, &rel);
	if (err)
		return err;
	return op_write(vp, path, p + off, h->len - off);
}

static int exec_set_perms(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
			  struct view *vp)
{
	unsigned np = xs_wire_strings(p, h->len, NULL, 0);
	char path[PATHBUF];
	struct xs_perm *perms;
	const char *s;
	bool rel;
	int err;

	if (np < 2)
		return -EINVAL;
	np--;
	err = canon(c->domid, p, false, path, &rel);
	if (err)
		return err;
	if (!vp->priv && np > c->s->q.perms_per_node)
		return -ENOSPC;
	perms = calloc(np, sizeof(*perms));
	if (!perms)
		return -ENOMEM;
	s = p + strlen(p) + 1;
	for (unsigned i = 0; i < np && !err; i++) {
		err = parse_perm(s, UINT32_MAX, &perms[i]);
		s += strlen(s) + 1;
	}
	if (!err)
		err = op_set_perms(vp, path, perms, np);
	free(perms);
	return err;
}

static int exec_tx_start(struct xs_conn *c, const struct xs_msg_hdr *h, struct view *vp)
{
	struct tx *t;
	char id[16];

	if (h->tx_id)
		return -EBUSY;
	if (!vp->priv && c->ntx >= c->s->q.transactions_per_conn)
		return -ENOSPC;
	t = calloc(1, sizeof(*t));
	if (!t || tbl_init(&t->t)) {
		free(t);
		return -ENOMEM;
	}
	do {
		t->id = c->next_tx++;
	} while (!t->id || tx_find(c, t->id));
	t->next = c->txs;
	c->txs = t;
	c->ntx++;
	snprintf(id, sizeof(id), "%" PRIu32, t->id);
	reply_str(c, id);
	return 0;
}

static int exec_tx_end(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
		       struct view *vp)
{
	const char *arg = onearg(p, h->len);
	int err;

	if (!vp->tx)
		return -ENOENT;
	if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
		return -EINVAL;
	tx_unlink(c, vp->tx);
	err = arg[0] == 'T' ? tx_commit(c->s, vp->tx) : 0;
	tx_free(vp->tx);
	return err;
}

/* XS_RELEASE, XS_RESUME, XS_IS_DOMAIN_INTRODUCED: one domid. */
static int exec_domain(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p)
{
	uint32_t domid;
	struct dom *d;

	if (parse_domid(onearg(p, h->len), &domid))
		return -EINVAL;
	d = dom_get(c->s, domid, false);
	if (h->type == XS_IS_DOMAIN_INTRODUCED) {
		reply_str(c, domid == 0 || (d && d->introduced) ? "T" : "F");
		return 0;
	}
	if (!d || !d->introduced)
		return -ENOENT;
	if (h->type == XS_RELEASE) {
		d->introduced = false;
		fire(c->s, "@releaseDomain", false, NULL, 0);
	}
	return 0;
}

static int exec_set_target(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p)
{
	const char *vec[2];
	uint32_t domid, tdomid;
	struct dom *d;

	if (xs_wire_strings(p, h->len, vec, 2) < 2 ||
	    parse_domid(vec[0], &domid) || parse_domid(vec[1], &tdomid))
		return -EINVAL;
	d = dom_get(c->s, domid, false);
	if (!d || !d->introduced)
		return -ENOENT;
	d->target = tdomid;
	return 0;
}

static int exec_control(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p)
{
	const char *vec[2];

	if (xs_wire_strings(p, h->len, vec, 2) < 1)
		return -EINVAL;
	if (!strcmp(vec[0], "print")) {
		if (xs_wire_strings(p, h->len, vec, 2) < 2)
			return -EINVAL;
		log_info("xenstore: %s", vec[1]);
		return 0;
	}
	if (!strcmp(vec[0], "log"))
		return 0;
	if (!strcmp(vec[0], "check"))
		return xs_store_check(c->s) ? -EIO : 0;
	if (!strcmp(vec[0], "help")) {
		reply_str(c, "check\nhelp\nlog [on|off]\nprint <string>\n");
		return 0;
	}
	return -EINVAL;
}

static int exec(struct xs_conn *c, const struct xs_msg_hdr *h, const char *p,
		struct view *vp)
{
	char path[PATHBUF];
	uint32_t domid;
	int err = exec_check(c, h, vp);

	if (err)
		return err;
	switch (h->type) {
	case XS_READ:
	case XS_DIRECTORY:
	case XS_GET_PERMS:
	case XS_MKDIR:
	case XS_RM:
		return exec_path(c, h, p, vp);
	case XS_DIRECTORY_PART:
		return exec_directory_part(c, h, p, vp);
	case XS_WRITE:
		return exec_write(c, h, p, vp);
	case XS_SET_PERMS:
		return exec_set_perms(c, h, p, vp);
	case XS_WATCH:
	case XS_UNWATCH:
		return do_watch(c, p, h->len, h->type == XS_WATCH);
	case XS_TRANSACTION_START:
		return exec_tx_start(c, h, vp);
	case XS_TRANSACTION_END:
		return exec_tx_end(c, h, p, vp);
	case XS_GET_DOMAIN_PATH:
		if (parse_domid(onearg(p, h->len), &domid))
			return -EINVAL;
		snprintf(path, sizeof(path), DOMAIN_PREFIX "%" PRIu32, domid);
		reply_str(c, path);
		return 0;
	case XS_INTRODUCE:
		return do_introduce(c, p, h->len);
	case XS_RELEASE:
	case XS_RESUME:
	case XS_IS_DOMAIN_INTRODUCED:
		return exec_domain(c, h, p);
	case XS_SET_TARGET:
		return exec_set_target(c, h, p);
	case XS_RESET_WATCHES:
		conn_reset(c);
		return 0;
	case XS_CONTROL:
		return exec_control(c, h, p);
	default:
		return -ENOSYS;
	}
}

static int dispatch(struct xs_conn *c, const struct xs_msg_hdr *h,
		    const char *p)
{
	struct view v = { .s = c->s, .domid = c->domid, .priv = c->domid == 0 };
	int err = exec(c, h, p, &v);

	return v.err ? v.err : err;
}

static void handle(struct xs_conn *c)
{
	const struct xs_msg_hdr *h = &c->rx.hdr;
	static const char ok[] = "OK";
	struct xs_iov iov;
	int err;

	c->rlen = 0;
	c->rbig = false;
	c->initial = NULL;
	err = dispatch(c, h, xs_wire_rx_payload(&c->rx));
	if (!err && c->rbig)
		err = -E2BIG;
	if (err) {
		const char *name = xs_wire_errname(err);

		iov = (struct xs_iov){ name, strlen(name) + 1 };
		emit(c, XS_ERROR, h->req_id, h->tx_id, &iov, 1);
		return;
	}
	if (c->rlen || h->type == XS_READ || h->type == XS_DIRECTORY)
		iov = (struct xs_iov){ c->rbuf, c->rlen };
	else
		iov = (struct xs_iov){ ok, sizeof(ok) };
	emit(c, h->type, h->req_id, h->tx_id, &iov, 1);
	/* We fire once up front, as xenstored does: with the path as given. */
	if (c->initial) {
		struct watch *w = c->initial;
		const char *vec[1];

		xs_wire_strings(xs_wire_rx_payload(&c->rx), h->len, vec, 1);
		struct xs_iov ev[2] = { { vec[0], strlen(vec[0]) + 1 },
					{ w->token, strlen(w->token) + 1 } };
		emit(c, XS_WATCH_EVENT, 0, 0, ev, 2);
	}
}

int xs_conn_feed(struct xs_conn *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (c->dead)
		return -EPIPE;
	while (len) {
		long n = xs_wire_rx_feed(&c->rx, p, len);

		if (n < 0) {
			log_warn("xenstore: d%u sent a %u-byte payload; closing",
				 c->domid, c->rx.hdr.len);
			c->dead = true;
			return (int)n;
		}
		p += n;
		len -= (size_t)n;
		if (c->rx.complete) {
			handle(c);
			xs_wire_rx_next(&c->rx);
		}
	}
	return 0;
}

/* ---- direct calls for ferryd ---- */

static int abs_path(const char *in, char *out)
{
	bool rel;

	if (!in || in[0] != '/')
		return -EINVAL;
	return canon(0, in, false, out, &rel);
}

#define DOM0_VIEW(s) { .s = (s), .domid = 0, .priv = true }

int xs_write(struct xs_store *s, const char *path, const void *value,
	     size_t len)
{
	struct view v = DOM0_VIEW(s);
	char p[PATHBUF];
	int err = abs_path(path, p);

	return err ? err : op_write(&v, p, value, len);
}

int xs_read(struct xs_store *s, const char *path, char **value, size_t *len)
{
	char p[PATHBUF];
	struct node *n;
	int err = abs_path(path, p);

	if (err)
		return err;
	n = tbl_find(&s->t, p);
	if (!n)
		return -ENOENT;
	*value = malloc(n->vlen + 1);
	if (!*value)
		return -ENOMEM;
	if (n->vlen)
		memcpy(*value, n->value, n->vlen);
	(*value)[n->vlen] = 0;
	*len = n->vlen;
	return 0;
}

int xs_mkdir(struct xs_store *s, const char *path)
{
	struct view v = DOM0_VIEW(s);
	char p[PATHBUF];
	int err = abs_path(path, p);

	return err ? err : op_mkdir(&v, p);
}

int xs_rm(struct xs_store *s, const char *path)
{
	struct view v = DOM0_VIEW(s);
	char p[PATHBUF];
	int err = abs_path(path, p);

	if (!err)
		err = op_rm(&v, p);
	return err == -ENOENT ? 0 : err;
}

static int set_perms_parsed(struct xs_store *s, const char *path,
			    const char *const *strs, unsigned n, uint32_t self)
{
	struct view v = DOM0_VIEW(s);
	struct xs_perm *perms;
	char p[PATHBUF];
	int err = abs_path(path, p);

	if (err)
		return err;
	if (!n)
		return -EINVAL;
	perms = calloc(n, sizeof(*perms));
	if (!perms)
		return -ENOMEM;
	for (unsigned i = 0; i < n && !err; i++)
		err = parse_perm(strs[i], self, &perms[i]);
	if (!err)
		err = op_set_perms(&v, p, perms, n);
	free(perms);
	return err;
}

int xs_set_perms(struct xs_store *s, const char *path,
		 const char *const *perms, unsigned n)
{
	return set_perms_parsed(s, path, perms, n, UINT32_MAX);
}

int xs_domain_introduced(struct xs_store *s, uint32_t domid)
{
	struct dom *d = dom_get(s, domid, false);

	return domid == 0 || (d && d->introduced);
}

int xs_domain_create(struct xs_store *s, uint32_t domid, const char *name,
		     uint64_t mem_target_kib)
{
	static const char *const ro_dirs[] = { "control", "console", "device",
					       "memory" };
	static const char *const rw_dirs[] = { "control/shutdown", "data",
					       "error", "drivers", "attr",
					       "feature" };
	char base[64], p[PATHBUF], val[32], ro1[16], rw0[16];
	const char *ro[2] = { "n0", ro1 }, *rw[1] = { rw0 };
	struct dom *d;
	int err;

	if (domid == 0 || domid >= DOMID_FIRST_RESERVED || !name)
		return -EINVAL;
	snprintf(base, sizeof(base), DOMAIN_PREFIX "%" PRIu32, domid);
	if (tbl_find(&s->t, base))
		return -EEXIST;
	snprintf(ro1, sizeof(ro1), "r%" PRIu32, domid);
	snprintf(rw0, sizeof(rw0), "n%" PRIu32, domid);
	/* Children inherit the directory's perms: owned by dom0, readable
	 * by the guest. */
	if ((err = xs_mkdir(s, base)) || (err = xs_set_perms(s, base, ro, 2)))
		goto fail;
	snprintf(p, sizeof(p), "%s/name", base);
	if ((err = xs_write(s, p, name, strlen(name))))
		goto fail;
	snprintf(p, sizeof(p), "%s/domid", base);
	snprintf(val, sizeof(val), "%" PRIu32, domid);
	if ((err = xs_write(s, p, val, strlen(val))))
		goto fail;
	for (size_t i = 0; i < ARRAY_SIZE(ro_dirs); i++) {
		snprintf(p, sizeof(p), "%s/%s", base, ro_dirs[i]);
		if ((err = xs_mkdir(s, p)))
			goto fail;
	}
	snprintf(p, sizeof(p), "%s/memory/target", base);
	snprintf(val, sizeof(val), "%" PRIu64, mem_target_kib);
	if ((err = xs_write(s, p, val, strlen(val))))
		goto fail;
	for (size_t i = 0; i < ARRAY_SIZE(rw_dirs); i++) {
		snprintf(p, sizeof(p), "%s/%s", base, rw_dirs[i]);
		if ((err = xs_mkdir(s, p)) || (err = xs_set_perms(s, p, rw, 1)))
			goto fail;
	}
	d = dom_get(s, domid, true);
	if (!d) {
		err = -ENOMEM;
		goto fail;
	}
	if (!d->introduced) {
		d->introduced = true;
		fire(s, "@introduceDomain", false, NULL, 0);
	}
	return 0;
fail:
	log_err("xenstore: creating %s for d%u: %s", base, domid,
		ferry_strerror(-err));
	xs_rm(s, base);
	return err;
}

int xs_domain_release(struct xs_store *s, uint32_t domid)
{
	char base[64];
	struct dom *d = dom_get(s, domid, false);
	int err;

	snprintf(base, sizeof(base), DOMAIN_PREFIX "%" PRIu32, domid);
	err = xs_rm(s, base);
	if (d)
		d->introduced = false;
	fire(s, "@releaseDomain", false, NULL, 0);
	return err;
}

/* ---- export and import ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void sb_put(struct sbuf *b, const void *p, size_t len)
{
	if (b->err)
		return;
	if (len > b->cap - b->len) {
		size_t cap = MAX(b->cap * 2, b->len + len + 256);
		char *q = realloc(b->p, cap);

		if (!q) {
			b->err = -ENOMEM;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

/* Pairs of the nodes under n that hold a value without NUL bytes. */
static void export_pairs(struct xs_store *s, const struct node *n, size_t bl, struct sbuf *b,
			 unsigned *skipped)
{
	size_t pl = strlen(n->path);

	if (pl > bl && n->vlen) {
		if (memchr(n->value, 0, n->vlen)) {
			(*skipped)++;
		} else {
			sb_put(b, n->path + bl + 1, pl - bl);
			sb_put(b, n->value, n->vlen);
			sb_put(b, "", 1);
		}
	}
	for (uint32_t off = 0; off < n->clen && !b->err;) {
		const char *c = n->children + off;
		char cp[PATHBUF];
		const struct node *cn;

		snprintf(cp, sizeof(cp), "%s/%s", n->path, c);
		cn = tbl_find(&s->t, cp);
		if (cn)
			export_pairs(s, cn, bl, b, skipped);
		off += (uint32_t)strlen(c) + 1;
	}
}

int xs_export_pairs(struct xs_store *s, uint32_t domid, char **buf, size_t *len)
{
	char base[64];
	struct sbuf b = { 0 };
	const struct node *n;
	unsigned skipped = 0;

	snprintf(base, sizeof(base), DOMAIN_PREFIX "%" PRIu32, domid);
	n = tbl_find(&s->t, base);
	if (!n)
		return -ENOENT;
	export_pairs(s, n, strlen(base), &b, &skipped);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	if (skipped)
		log_warn("xenstore: d%u: %u values holding NUL bytes are not carried", domid,
			 skipped);
	*buf = b.p;
	*len = b.len;
	return 0;
}

/* The receiving toolstack's own keys for the domain: never imported. */
static bool managed_key(const char *key)
{
	return !strcmp(key, "name") || !strcmp(key, "domid");
}

#define KEY_SHOWN 40 /* bytes of a bad key a message shows */

/* A key for a message: printable ASCII as is, anything else (and the
 * quote and backslash) as \xNN, at most KEY_SHOWN bytes of it. */
static void key_show(const char *k, size_t klen, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < klen && i < KEY_SHOWN && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)k[i];

		if (ch < 0x20 || ch > 0x7e || ch == '\'' || ch == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = 0;
	if (klen > KEY_SHOWN)
		snprintf(out + o, size - o, "...");
}

/* What is wrong with a NUL-terminated key of klen bytes and its value of
 * vlen bytes, into why; false if nothing. */
static bool pair_problem(const char *k, size_t klen, size_t vlen, char *why, size_t size)
{
	char p[PATHBUF];
	bool rel;

	if (k[0] == '/') {
		snprintf(why, size, "the key is absolute (keys are relative to the domain's path)");
		return true;
	}
	if (k[0] == '@') {
		snprintf(why, size, "the key is a special path ('@...'), not a node");
		return true;
	}
	for (size_t i = 0; i < klen; i++) {
		if (!valid_char(k[i])) {
			snprintf(why, size,
				 "key byte %zu (0x%02x) is not one xenstore allows "
				 "(A-Z a-z 0-9 - / _ @)",
				 i, (unsigned char)k[i]);
			return true;
		}
	}
	if (klen > XS_REL_PATH_MAX) {
		snprintf(why, size, "the key is %zu bytes, over xenstore's %u for a relative path",
			 klen, XS_REL_PATH_MAX);
		return true;
	}
	if (strstr(k, "//")) {
		snprintf(why, size, "the key has an empty component ('//')");
		return true;
	}
	if (k[klen - 1] == '/') {
		snprintf(why, size, "the key ends in '/'");
		return true;
	}
	if (vlen > XS_PAYLOAD_MAX) {
		snprintf(why, size, "the value is %zu bytes, over xenstore's %u", vlen,
			 XS_PAYLOAD_MAX);
		return true;
	}
	/* The longest domid prefix: whatever domain the pairs go to. */
	if (canon(DOMID_FIRST_RESERVED - 1, k, false, p, &rel)) {
		snprintf(why, size, "the key is not a valid xenstore path");
		return true;
	}
	return false;
}

int xs_check_pairs(const char *buf, size_t len, char *why, size_t whylen)
{
	char shown[KEY_SHOWN * 4 + 4], reason[128];
	unsigned i = 0;

	for (size_t off = 0; off < len; i++) {
		const char *k = buf + off, *kn = memchr(k, 0, len - off), *vn = NULL;
		size_t klen = kn ? (size_t)(kn - k) : len - off;

		if (!kn)
			snprintf(reason, sizeof(reason), "the key is not NUL-terminated");
		else if (!klen)
			snprintf(reason, sizeof(reason), "the key is empty");
		else if (kn + 1 == buf + len)
			snprintf(reason, sizeof(reason), "no value follows the key");
		else if (!(vn = memchr(kn + 1, 0, (size_t)(buf + len - (kn + 1)))))
			snprintf(reason, sizeof(reason), "the value is not NUL-terminated");
		else if (!pair_problem(k, klen, (size_t)(vn - (kn + 1)), reason, sizeof(reason)))
			reason[0] = 0;
		if (!vn || reason[0]) {
			key_show(k, klen, shown, sizeof(shown));
			snprintf(why, whylen, "pair %u at byte %zu of the pairs (key '%s'): %s", i,
				 off, shown, reason);
			return -EINVAL;
		}
		off = (size_t)(vn + 1 - buf);
	}
	return 0;
}

int xs_import_pairs(struct xs_store *s, uint32_t domid, const char *buf, size_t len)
{
	struct view v = DOM0_VIEW(s);
	char p[PATHBUF], why[XS_PAIRS_WHY_MAX];
	unsigned i = 0;
	bool rel;
	int err;

	if (domid == 0 || domid >= DOMID_FIRST_RESERVED) {
		log_err("xenstore: importing pairs into d%u: not a guest's domid", domid);
		return -EINVAL;
	}
	/* Check everything before changing anything. */
	err = xs_check_pairs(buf, len, why, sizeof(why));
	if (err) {
		log_err("xenstore: importing d%u: %s", domid, why);
		return err;
	}
	for (size_t off = 0; off < len; i++) {
		const char *k = buf + off, *val = k + strlen(k) + 1;

		off = (size_t)(val + strlen(val) + 1 - buf);
		if (managed_key(k))
			continue;
		canon(domid, k, false, p, &rel);
		err = op_write(&v, p, val, strlen(val));
		if (err) {
			key_show(k, strlen(k), why, sizeof(why));
			log_err("xenstore: importing d%u: pair %u (key '%s'): %s", domid, i, why,
				ferry_strerror(-err));
			return err;
		}
	}
	return 0;
}
