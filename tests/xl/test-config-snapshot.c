// SPDX-License-Identifier: MIT
/* xl.cfg's snapshot_interval and snapshot_keep, parsed and in JSON. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "toolstack/config.h"

static struct xlm_cfg c;
static struct hyp_dom_config d;

static int parse_finish(const char *text)
{
	int rc;

	xlm_cfg_init(&c);
	rc = xlm_cfg_parse(&c, "t.cfg", text, strlen(text));
	return rc ?: xlm_cfg_finish(&c, &d);
}

Test(xlm_cfg_snapshot, keys_parse)
{
	cr_assert_eq(parse_finish("name='a'\nsnapshot_interval = \"5m\"\nsnapshot_keep = 12\n"), 0,
		     "%s", c.err);
	cr_assert_eq(c.snapshot.every_s, 300);
	cr_assert_eq(c.snapshot.keep, 12);
	cr_assert_eq(parse_finish("name='a'\nsnapshot_interval = 90\nsnapshot_keep = '3'\n"), 0,
		     "%s", c.err);
	cr_assert_eq(c.snapshot.every_s, 90, "a bare number is seconds");
	cr_assert_eq(c.snapshot.keep, 3);
	cr_assert_eq(parse_finish("name='a'\n"), 0, "%s", c.err);
	cr_assert_eq(c.snapshot.every_s + c.snapshot.keep, 0, "no keys: no schedule");
}

static void refused(const char *text, const char *msg)
{
	cr_assert_eq(parse_finish(text), -FERRY_EBADCFG, "accepted: %s", text);
	cr_assert_not_null(strstr(c.err, msg), "\"%s\" lacks \"%s\"", c.err, msg);
}

Test(xlm_cfg_snapshot, bad_keys_refused)
{
	refused("name='a'\nsnapshot_interval = \"0s\"\nsnapshot_keep = 1\n",
		"t.cfg:2: interval \"0s\": an interval of 0");
	refused("name='a'\nsnapshot_interval = 0\nsnapshot_keep = 1\n", "interval of 0");
	refused("name='a'\nsnapshot_interval = \"often\"\nsnapshot_keep = 1\n",
		"unit s, m, h or d (30s, 5m, 2h, 1d) for 'snapshot_interval'");
	refused("name='a'\nsnapshot_interval = \"999999999999d\"\nsnapshot_keep = 1\n",
		"longer than");
	refused("name='a'\nsnapshot_interval = [\"5m\"]\nsnapshot_keep = 1\n",
		"expected an interval like \"5m\"");
	refused("name='a'\nsnapshot_interval = \"5m\"\nsnapshot_keep = 0\n",
		"t.cfg:3: expected 1 to");
	refused("name='a'\nsnapshot_interval = \"5m\"\nsnapshot_keep = \"many\"\n",
		"expected an integer for 'snapshot_keep'");
	refused("name='a'\nsnapshot_interval = \"5m\"\n", "snapshot_keep together");
	refused("name='a'\nsnapshot_keep = 4\n", "snapshot_keep together");
}

static int from_json(const char *json, struct xlm_cfg_snapshot *s, char *err, size_t errlen)
{
	char perr[128];
	yajl_val tree = yajl_tree_parse(json, perr, sizeof(perr));
	int rc;

	cr_assert_not_null(tree, "%s: %s", json, perr);
	rc = xlm_cfg_snapshot_from_json(tree, s, err, errlen);
	yajl_tree_free(tree);
	return rc;
}

Test(xlm_cfg_snapshot, json_round_trip)
{
	struct xlm_cfg_snapshot in = { .every_s = 7200, .keep = 24 }, back = { 1, 1 };
	const unsigned char *buf;
	char json[256], err[256];
	size_t len;
	yajl_gen g = yajl_gen_alloc(NULL);

	cr_assert_eq(yajl_gen_map_open(g), yajl_gen_status_ok);
	cr_assert_eq(xlm_cfg_gen_snapshot(g, &in), 0);
	cr_assert_eq(yajl_gen_map_close(g), yajl_gen_status_ok);
	yajl_gen_get_buf(g, &buf, &len);
	snprintf(json, sizeof(json), "%.*s", (int)len, buf);
	yajl_gen_free(g);
	cr_assert_str_eq(json, "{\"snapshot_interval\":\"2h\",\"snapshot_keep\":24}");
	cr_assert_eq(from_json(json, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(back.every_s, in.every_s);
	cr_assert_eq(back.keep, in.keep);
	cr_assert_eq(from_json("{\"name\":\"a\"}", &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(back.every_s + back.keep, 0, "absent: no schedule");
}

Test(xlm_cfg_snapshot, json_bad_refused)
{
	struct xlm_cfg_snapshot s = { 0 };
	char err[256];

	cr_assert_eq(from_json("{\"snapshot_interval\":\"0m\",\"snapshot_keep\":2}", &s, err,
			       sizeof(err)),
		     -FERRY_EBADCFG);
	cr_assert_not_null(strstr(err, "interval of 0"), "%s", err);
	cr_assert_eq(
		from_json("{\"snapshot_interval\":300,\"snapshot_keep\":2}", &s, err, sizeof(err)),
		-FERRY_EBADCFG);
	cr_assert_eq(from_json("{\"snapshot_interval\":\"5m\",\"snapshot_keep\":0}", &s, err,
			       sizeof(err)),
		     -FERRY_EBADCFG);
	cr_assert_eq(from_json("{\"snapshot_interval\":\"5m\"}", &s, err, sizeof(err)),
		     -FERRY_EBADCFG);
	cr_assert_not_null(strstr(err, "together"), "%s", err);
}
