// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the domain configuration readers on hostile bytes.
 *
 *  1. The whole input as an xl.cfg file (xlm_cfg_parse, the buffer exactly
 *     len bytes long so an over-read trips ASan).
 *  2. The input split at NUL bytes: the first piece as a file, the rest as
 *     `xl create` KEY=VALUE overrides layered on top (xlm_cfg_parse_override).
 *  3. The input as JSON: xlm_cfg_from_json() on it and, when it is an
 *     object, on its "args" member, as ferryd does with a create request.
 *
 * Every config that parses and finishes must survive struct -> JSON ->
 * struct unchanged (xlm_cfg_to_json, yajl_tree_parse, xlm_cfg_from_json):
 * that is what `xl create` sends ferryd and what the save header holds.
 * A mismatch or a rejected round trip is a bug: abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "toolstack/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void quiet(void *opaque, const char *msg)
{
	(void)opaque;
	if (strlen(msg) >= XLM_CFG_ERR_MAX)
		abort();
}

static char *dup_str(const void *p, size_t len)
{
	char *s = malloc(len + 1);

	if (!s)
		abort();
	memcpy(s, p, len);
	s[len] = 0;
	return s;
}

static void bug(const char *what, const struct hyp_dom_config *d, const char *json,
		const char *err)
{
	char uuid[37];

	xlm_uuid_format(d->uuid, uuid);
	fprintf(stderr, "fuzz-config: %s\n  name='%s' uuid=%s mem=%llu max=%llu vcpus=%u\n"
		"  json=%s\n  err=%s\n", what, d->name, uuid,
		(unsigned long long)d->memory_mb, (unsigned long long)d->maxmem_mb, d->vcpus,
		json ? json : "(none)", err ? err : "");
	abort();
}

/* Field-wise: bytes after a string's NUL are not part of the config. */
static int dom_eq(const struct hyp_dom_config *a, const struct hyp_dom_config *b)
{
	return !strcmp(a->name, b->name) && !memcmp(a->uuid, b->uuid, 16) &&
	       a->memory_mb == b->memory_mb && a->maxmem_mb == b->maxmem_mb &&
	       a->max_kb == b->max_kb && a->vcpus == b->vcpus && !strcmp(a->kernel, b->kernel) &&
	       !strcmp(a->cmdline, b->cmdline) && !strcmp(a->backend, b->backend) &&
	       !strcmp(a->logdirty, b->logdirty) && a->on_poweroff == b->on_poweroff &&
	       a->on_reboot == b->on_reboot && a->on_crash == b->on_crash;
}

/* What every accepted config must satisfy, whichever reader produced it. */
static void check_dom(const struct hyp_dom_config *d)
{
	if (!memchr(d->name, 0, sizeof(d->name)) || !memchr(d->kernel, 0, sizeof(d->kernel)) ||
	    !memchr(d->cmdline, 0, sizeof(d->cmdline)) ||
	    !memchr(d->backend, 0, sizeof(d->backend)) ||
	    !memchr(d->logdirty, 0, sizeof(d->logdirty)))
		bug("unterminated string field", d, NULL, NULL);
	if (!d->name[0] || d->memory_mb == 0 || d->memory_mb > d->maxmem_mb ||
	    d->max_kb > d->maxmem_mb << 10 || d->vcpus < 1 || d->vcpus > HYP_MAX_VCPUS)
		bug("accepted an invalid config", d, NULL, NULL);
	if ((unsigned)d->on_poweroff > HYP_ON_RESTART || (unsigned)d->on_reboot > HYP_ON_RESTART ||
	    (unsigned)d->on_crash > HYP_ON_RESTART)
		bug("bad on_* event", d, NULL, NULL);
}

static void roundtrip(const struct hyp_dom_config *d)
{
	struct hyp_dom_config back;
	char perr[256] = "", err[XLM_CFG_ERR_MAX] = "";
	char *json = NULL;
	yajl_val v;

	check_dom(d);
	if (xlm_cfg_to_json(d, &json))
		bug("xlm_cfg_to_json failed", d, NULL, NULL);
	v = yajl_tree_parse(json, perr, sizeof(perr));
	if (!v)
		bug("xlm_cfg_to_json wrote JSON that does not parse", d, json, perr);
	memset(&back, 0xa5, sizeof(back));
	if (xlm_cfg_from_json(v, &back, err, sizeof(err)))
		bug("xlm_cfg_from_json refused xlm_cfg_to_json's output", d, json, err);
	if (!dom_eq(d, &back))
		bug("struct -> JSON -> struct changed the config", d, json, NULL);
	yajl_tree_free(v);
	free(json);
}

static void finish(struct xlm_cfg *c, int rc)
{
	struct hyp_dom_config d;

	if (rc != 0 && rc != -FERRY_EBADCFG)
		abort();
	if (rc && (!c->err[0] || !memchr(c->err, 0, sizeof(c->err))))
		abort(); /* a failure without its message */
	if (rc)
		return;
	if (xlm_cfg_finish(c, &d))
		return;
	roundtrip(&d);
}

static void from_json(yajl_val v)
{
	struct hyp_dom_config d;
	char err[XLM_CFG_ERR_MAX] = "";

	memset(&d, 0x5a, sizeof(d));
	if (xlm_cfg_from_json(v, &d, err, sizeof(err))) {
		if (!err[0] || !memchr(err, 0, sizeof(err)))
			abort();
		return;
	}
	roundtrip(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const char *args_path[] = { "args", NULL };
	static bool init;
	struct xlm_cfg c;
	char *text, *str, perr[256];
	yajl_val root;

	if (!init) {
		log_set_stderr(0);
		init = true;
	}

	/* 1. A file: exactly len bytes, no terminator to lean on. */
	text = malloc(len ? len : 1);
	if (!text)
		abort();
	memcpy(text, data, len);
	xlm_cfg_init(&c);
	c.warn = quiet;
	finish(&c, xlm_cfg_parse(&c, "fuzz.cfg", text, len));
	free(text);

	/* 2. FILE \0 OVERRIDE \0 OVERRIDE ...: xl create FILE KEY=VALUE ... */
	str = dup_str(data, len);
	if (memchr(data, 0, len)) {
		size_t first = strlen(str);
		int rc;

		xlm_cfg_init(&c);
		c.warn = quiet;
		rc = xlm_cfg_parse(&c, "fuzz.cfg", str, first);
		for (size_t off = first + 1; !rc && off <= len; off += strlen(str + off) + 1)
			rc = xlm_cfg_parse_override(&c, str + off);
		finish(&c, rc);
	}

	/* 3. JSON, as the create request's args or the save header's config. */
	root = yajl_tree_parse(str, perr, sizeof(perr));
	if (root) {
		from_json(root);
		if (YAJL_IS_OBJECT(root))
			from_json(yajl_tree_get(root, args_path, yajl_t_any));
		yajl_tree_free(root);
	}
	free(str);
	return 0;
}
