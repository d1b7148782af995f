/* SPDX-License-Identifier: MIT */
/*
 * Xenstore: Xen's hierarchical key/value store with permissions, watches
 * and transactions, as a sans-I/O core. ferryd owns one struct xs_store;
 * every client (the xenstored-compatible unix socket, later each guest's
 * ring) is a struct xs_conn with an identity (domid 0 is the privileged
 * toolstack; any other domid is a guest). Bytes a client sends go to
 * xs_conn_feed(); replies and watch events leave through the connection's
 * out_fn. ferryd itself uses the direct calls (xs_write, xs_domain_create..),
 * which act as dom0 and fire watches like a client's request.
 *
 * Semantics follow docs/misc/xenstore.txt and xenstored; see
 * xenstore/xenstore.c for the differences. Single-threaded: the caller
 * serialises every call on one store (ferryd's loop thread).
 */
#ifndef XENSTORE_XENSTORE_H
#define XENSTORE_XENSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "xenstore/xs-wire.h"

struct xs_store;
struct xs_conn;

/* Quotas for unprivileged (guest) connections; zero fields take the
 * defaults (Xen's xenstored defaults). dom0 is not limited except by the
 * wire limits. */
struct xs_quota {
	unsigned nodes_per_domain;   /* 1000: nodes owned by one domain (ENOSPC) */
	unsigned node_size;	     /* 2048: bytes of value per node (ENOSPC) */
	unsigned watches_per_conn;   /* 128 (E2BIG) */
	unsigned transactions_per_conn; /* 10 (ENOSPC) */
	unsigned perms_per_node;     /* 5: entries in a guest's set_perms (ENOSPC) */
};

/* A new store holding "/", "/local", "/local/domain" and "/tool", all
 * owned by dom0 with no access for others. quota may be NULL. */
int xs_store_new(const struct xs_quota *quota, struct xs_store **out);
/* Frees the store and every node. Connections must be freed first. */
void xs_store_free(struct xs_store *s);
/* Checks the store's invariants (every child listed exists and every node
 * is listed by its parent; ownership counts agree). 0 or -EIO. For tests
 * and the fuzzer; cost is linear in the number of nodes. */
int xs_store_check(struct xs_store *s);
/* Number of nodes in the store (tests, stats). */
size_t xs_store_nodes(const struct xs_store *s);

/*
 * out_fn receives each complete message for the connection (header and
 * payload, at most XS_MSG_MAX bytes; the buffer is only valid during the
 * call). Return 0 if the message was taken, or negative if the server's
 * buffer for this client is full: a watch event is then dropped (as
 * xenstored drops events over a domain's quota) and a reply is lost, so a
 * server should stop feeding a client whose output it cannot take.
 * out_fn must not call back into the store.
 */
typedef int xs_out_fn(void *opaque, const void *msg, size_t len);

/* A connection acting as domid. The store keeps it on its list until
 * xs_conn_free(), which drops its watches and aborts its transactions. */
int xs_conn_new(struct xs_store *s, uint32_t domid, xs_out_fn *out_fn,
		void *opaque, struct xs_conn **out);
void xs_conn_free(struct xs_conn *c);
uint32_t xs_conn_domid(const struct xs_conn *c);
/*
 * Bytes from the client, split anywhere. Each complete request is executed
 * and answered through out_fn before this returns. Returns 0, or -E2BIG
 * when a header announces more than XS_PAYLOAD_MAX bytes (nothing is
 * allocated for it): the connection is then dead, every later feed returns
 * -EPIPE and the server should close it, as xenstored does.
 */
int xs_conn_feed(struct xs_conn *c, const void *data, size_t len);

/* Direct calls for ferryd, acting as dom0. Paths are absolute. All return 0
 * or a negative errno (-EINVAL bad path, -ENOENT, -E2BIG value over
 * XS_PAYLOAD_MAX, -ENOMEM). */
int xs_write(struct xs_store *s, const char *path, const void *value,
	     size_t len);
/* *value is malloc'd (caller frees), NUL-terminated past *len. */
int xs_read(struct xs_store *s, const char *path, char **value, size_t *len);
int xs_mkdir(struct xs_store *s, const char *path);
int xs_rm(struct xs_store *s, const char *path); /* recursive; ENOENT ok */
/* perms: n strings in Xen's form, "n0", "r5", "b7": owner first. */
int xs_set_perms(struct xs_store *s, const char *path,
		 const char *const *perms, unsigned n);

/*
 * Makes /local/domain/<domid> as libxl does: the directory and name, domid,
 * memory/target (mem_target_kib), control/, console/, device/ readable by
 * the guest and owned by dom0; control/shutdown, data/, error/, drivers/,
 * attr/, feature/ owned by the guest. Marks the domain introduced and fires
 * @introduceDomain. -EEXIST if the directory exists.
 */
int xs_domain_create(struct xs_store *s, uint32_t domid, const char *name,
		     uint64_t mem_target_kib);
/* Removes /local/domain/<domid>, forgets the domain and fires
 * @releaseDomain. 0 even if nothing was there. */
int xs_domain_release(struct xs_store *s, uint32_t domid);
/* 1 if introduced (by xs_domain_create or XS_INTRODUCE), else 0. */
int xs_domain_introduced(struct xs_store *s, uint32_t domid);

/*
 * The subtree as a stream carries it (Xen's EMULATOR_XENSTORE_DATA body after
 * its emulator header, formats/SPEC.md 6.1): "key NUL value NUL" for every
 * node under /local/domain/<domid> with a value, keys relative to it. Values
 * holding NUL bytes cannot be written so and are left out (logged).
 */
int xs_export_pairs(struct xs_store *s, uint32_t domid, char **buf, size_t *len);
/* Writes the pairs under /local/domain/<domid> as dom0 would (new nodes take
 * their parent's permissions), except the keys the receiving side owns
 * (name, domid); checked in full first with xs_check_pairs: -EINVAL for a
 * malformed buffer (logged, naming the pair). */
int xs_import_pairs(struct xs_store *s, uint32_t domid, const char *buf, size_t len);

/*
 * Checks pairs as xs_import_pairs takes them, without a store: each key
 * NUL-terminated, non-empty, relative, of xenstore's characters and within
 * its path limits; each value NUL-terminated and at most XS_PAYLOAD_MAX
 * bytes. 0, or -EINVAL with why set to "pair N at byte B of the pairs (key 'K'): REASON"
 * (N counts from 0, B from the buffer's start; K with non-printable bytes
 * as \xNN and cut after 40 bytes). why fits in XS_PAIRS_WHY_MAX.
 */
#define XS_PAIRS_WHY_MAX 320
int xs_check_pairs(const char *buf, size_t len, char *why, size_t whylen);

#endif
