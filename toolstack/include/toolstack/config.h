/* SPDX-License-Identifier: MIT */
/*
 * Domain configuration: the xl.cfg file syntax, parsed into a
 * struct hyp_dom_config, and that struct's JSON form (the create request on
 * the control socket, `xl list -l`, the xl save header).
 *
 * xl.cfg syntax: one `KEY = VALUE` per line; VALUE is a "string" or
 * 'string', an integer (decimal or 0x hex) or a list [ VALUE, ... ] that
 * may span lines; `#` starts a comment; a trailing `;` is allowed.
 * Keys: name, uuid, memory, maxmem (MiB), vcpus, kernel, extra (alias
 * cmdline), on_poweroff, on_reboot, on_crash (destroy|restart|preserve),
 * backend (kvm|soft), logdirty (bitmap|ring), snapshot_interval ("5m",
 * snapshot/schedule.h's intervals) and snapshot_keep (a count; both or
 * neither). Unknown keys are ignored with a warning.
 */
#ifndef TOOLSTACK_CONFIG_H
#define TOOLSTACK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "hyp/hyp.h"

#define XLM_CFG_DEFAULT_MEMORY_MB 128
#define XLM_CFG_ERR_MAX 512

/*
 * xl.cfg's snapshot_interval and snapshot_keep: the periodic snapshot
 * schedule ferryd sets when it creates the domain. Not part of struct
 * hyp_dom_config: the schedule, once set, is ferryd's (kept by UUID), and
 * neither saves nor migrations carry it.
 */
struct xlm_cfg_snapshot {
	uint64_t every_s; /* 0: no schedule */
	uint32_t keep;
};

/* Receives one warning line (no trailing newline). */
typedef void (*xlm_cfg_warn_fn)(void *opaque, const char *msg);

/*
 * A configuration being parsed: caller-provided storage, xlm_cfg_init()
 * first; no fini needed (it owns no memory).
 */
struct xlm_cfg {
	/* public */
	xlm_cfg_warn_fn warn; /* NULL: warnings go to stderr */
	void *warn_opaque;
	char err[XLM_CFG_ERR_MAX]; /* the message of the last failure */
	struct xlm_cfg_snapshot snapshot; /* checked by xlm_cfg_finish */
	/* private */
	struct hyp_dom_config dom;
	bool has_name, has_uuid, has_maxmem;
	char fname[256]; /* the first file parsed, for whole-file errors */
};

void xlm_cfg_init(struct xlm_cfg *c);

/*
 * Parses xl.cfg text (len bytes, need not be NUL-terminated) named fname
 * in messages. Later assignments override earlier ones, so several calls
 * layer files and overrides. Returns 0 or -FERRY_EBADCFG with c->err set to
 * "FNAME:LINE: expected ...".
 */
int xlm_cfg_parse(struct xlm_cfg *c, const char *fname, const char *text,
		  size_t len);
/* Reads and parses a file; -errno (with c->err) when it cannot be read. */
int xlm_cfg_parse_file(struct xlm_cfg *c, const char *path);
/* One command-line override "KEY=VALUE", named "command line" in errors. */
int xlm_cfg_parse_override(struct xlm_cfg *c, const char *kv);

/*
 * Applies defaults (uuid generated, maxmem = memory, ...), validates the
 * whole (name present, memory <= maxmem) and copies the result to *out.
 * Returns 0 or -FERRY_EBADCFG with c->err set.
 */
int xlm_cfg_finish(struct xlm_cfg *c, struct hyp_dom_config *out);

/*
 * Checks that ferryd runs before it builds a new domain (not a restore),
 * once the backend is known (cfg's, else ferryd's default): soft refuses a
 * 'kernel' (it runs the built-in guest's workloads, not an ELF), and the
 * built-in guest's command line ('extra') must be one it would start with
 * (guests' own parser: a known workload, values in range, the working set
 * fitting in memory). Returns 0 or -FERRY_EBADCFG with the reason in err.
 */
int xlm_cfg_check_create(const struct hyp_dom_config *d, const char *backend, char *err,
			 size_t errlen);

/*
 * A domain name a user may give: not empty, not a number, printable without
 * '/', and not reserved: "Domain-0", a name starting with '-' (xl would
 * take it for an option), or ending in "--incoming", "--migratedaway"
 * (ferryd's names for a migration's two copies) or "--backup" (HA's).
 * Returns 0 or -FERRY_EBADCFG with the reason in err. Every config, file or
 * JSON, is held to it.
 */
int xlm_name_check(const char *name, char *err, size_t errlen);

/*
 * JSON form: an object with the fields of struct hyp_dom_config: name,
 * uuid ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"), memory_mb, maxmem_mb,
 * max_memkb (max_kb, written when non-zero), vcpus, kernel, cmdline,
 * backend, logdirty, on_poweroff, on_reboot, on_crash ("destroy",
 * "restart", "preserve").
 *
 * xlm_cfg_gen_fields() writes the key/value pairs into an open map of g
 * (so callers can add their own keys); xlm_cfg_to_json() returns a whole
 * object as a NUL-terminated malloc()ed string the caller frees.
 */
int xlm_cfg_gen_fields(yajl_gen g, const struct hyp_dom_config *d);
int xlm_cfg_to_json(const struct hyp_dom_config *d, char **out);

/*
 * JSON object -> struct. Absent optional fields take the parser's
 * defaults; unknown keys are ignored; wrong types and invalid values fail
 * with -FERRY_EBADCFG and a message in err.
 */
int xlm_cfg_from_json(yajl_val obj, struct hyp_dom_config *out, char *err,
		      size_t errlen);
/* The same from JSON text (a stream's config): -EPROTO if it does not
 * parse, "malformed JSON config: ..." in err. */
int xlm_cfg_from_json_text(const char *json, struct hyp_dom_config *out, char *err, size_t errlen);

/*
 * The schedule keys in JSON (the create request): "snapshot_interval"
 * ("5m") and "snapshot_keep", written only when s->every_s is set; read
 * back (absent: every_s 0) with the parser's checks, -FERRY_EBADCFG and err
 * otherwise.
 */
int xlm_cfg_gen_snapshot(yajl_gen g, const struct xlm_cfg_snapshot *s);
int xlm_cfg_snapshot_from_json(yajl_val obj, struct xlm_cfg_snapshot *out, char *err,
			       size_t errlen);

const char *xlm_on_event_name(enum hyp_on_event e);
void xlm_uuid_format(const uint8_t uuid[16], char out[37]);
int xlm_uuid_parse(const char *s, uint8_t uuid[16]);

#endif
