// SPDX-License-Identifier: MIT
/* xl.cfg parser and the config JSON form. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "toolstack/config.h"

struct warnings {
	char text[2048];
	int n;
};

static void capture_warn(void *opaque, const char *msg)
{
	struct warnings *w = opaque;

	snprintf(w->text + strlen(w->text), sizeof(w->text) - strlen(w->text), "%s\n", msg);
	w->n++;
}

static int parse(struct xlm_cfg *c, struct warnings *w, const char *text)
{
	xlm_cfg_init(c);
	if (w) {
		memset(w, 0, sizeof(*w));
		c->warn = capture_warn;
		c->warn_opaque = w;
	}
	return xlm_cfg_parse(c, "t.cfg", text, strlen(text));
}

static const char good_cfg[] =
	"# A domain for the tests\n"
	"\n"
	"name = \"vm1\"\n"
	"uuid = '01234567-89ab-cdef-0123-456789abcdef'\n"
	"memory = 256   # MiB\n"
	"maxmem = 0x200\n"
	"vcpus=2;\n"
	"kernel = \"/boot/guest.elf\"\n"
	"extra = \"workload=verify ws=8M rate=4M \\\"q\\\"\"\n"
	"on_poweroff = 'preserve'\n"
	"on_reboot = \"destroy\"\n"
	"on_crash = \"restart\"\n"
	"backend = \"soft\"\n"
	"logdirty = \"ring\"\n";

Test(xlm_cfg, parses_every_key)
{
	struct xlm_cfg c;
	struct warnings w;
	struct hyp_dom_config d;
	char uuid[37];

	cr_assert_eq(parse(&c, &w, good_cfg), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_expect_str_eq(d.name, "vm1");
	xlm_uuid_format(d.uuid, uuid);
	cr_expect_str_eq(uuid, "01234567-89ab-cdef-0123-456789abcdef");
	cr_expect_eq(d.memory_mb, 256);
	cr_expect_eq(d.maxmem_mb, 512);
	cr_expect_eq(d.vcpus, 2);
	cr_expect_str_eq(d.kernel, "/boot/guest.elf");
	cr_expect_str_eq(d.cmdline, "workload=verify ws=8M rate=4M \"q\"");
	cr_expect_eq(d.on_poweroff, HYP_ON_PRESERVE);
	cr_expect_eq(d.on_reboot, HYP_ON_DESTROY);
	cr_expect_eq(d.on_crash, HYP_ON_RESTART);
	cr_expect_str_eq(d.backend, "soft");
	cr_expect_str_eq(d.logdirty, "ring");
	cr_expect_eq(w.n, 0, "unexpected warnings: %s", w.text);
}

Test(xlm_cfg, defaults)
{
	struct xlm_cfg c;
	struct hyp_dom_config d, d2;
	static const uint8_t zero[16];

	cr_assert_eq(parse(&c, NULL, "name = 'a'\ncmdline = \"x=1\"\n"), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_expect_eq(d.memory_mb, XLM_CFG_DEFAULT_MEMORY_MB);
	cr_expect_eq(d.maxmem_mb, d.memory_mb, "maxmem defaults to memory");
	cr_expect_eq(d.vcpus, 1);
	cr_expect_str_eq(d.cmdline, "x=1", "cmdline is an alias of extra");
	cr_expect_eq(d.on_poweroff, HYP_ON_DESTROY);
	cr_expect_eq(d.on_reboot, HYP_ON_RESTART);
	cr_expect_eq(d.on_crash, HYP_ON_DESTROY);
	cr_expect_str_eq(d.backend, "");
	cr_expect_neq(memcmp(d.uuid, zero, 16), 0, "uuid generated");
	cr_expect_eq(d.uuid[6] >> 4, 4, "a version 4 uuid");
	/* A second config gets a different uuid. */
	cr_assert_eq(parse(&c, NULL, "name = 'a'\n"), 0);
	cr_assert_eq(xlm_cfg_finish(&c, &d2), 0);
	cr_expect_neq(memcmp(d.uuid, d2.uuid, 16), 0);
}

Test(xlm_cfg, lists_and_unknown_keys_warn)
{
	struct xlm_cfg c;
	struct warnings w;
	struct hyp_dom_config d;

	cr_assert_eq(parse(&c, &w,
			   "name = \"vm1\"\n"
			   "disk = [ 'phy:/dev/vg/a,xvda,w',\n"
			   "         \"b\", # comment in a list\n"
			   "       ]\n"
			   "foo = 3\n"
			   "vif = []\n"),
		     0, "%s", c.err);
	cr_assert_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_expect_eq(w.n, 3);
	cr_expect_str_eq(w.text,
			 "t.cfg:2: unknown key 'disk' ignored\n"
			 "t.cfg:5: unknown key 'foo' ignored\n"
			 "t.cfg:6: unknown key 'vif' ignored\n");
}

struct bad_case {
	const char *text;
	const char *err;
};

static const struct bad_case bad_cases[] = {
	{ "name = \"vm1\"\nmemory\n", "t.cfg:2: expected '=' after 'memory'" },
	{ "name = \"vm1\"\nmemory 512\n", "t.cfg:2: expected '=' after 'memory'" },
	{ "memory =\n", "t.cfg:1: expected a value (a quoted string, an integer or a list) for 'memory'" },
	{ "kernel = /boot/x\n", "t.cfg:1: expected a value (a quoted string, an integer or a list) for 'kernel'" },
	{ "\n\nname = \"vm1\n", "t.cfg:3: expected a closing \" for the value of 'name'" },
	{ "name = 'vm1\n", "t.cfg:1: expected a closing ' for the value of 'name'" },
	{ "= 3\n", "t.cfg:1: expected a key (KEY = VALUE)" },
	{ "\"name\" = 3\n", "t.cfg:1: expected a key (KEY = VALUE)" },
	{ "memory = 12abc\n", "t.cfg:1: expected an integer or a quoted string for 'memory'" },
	{ "memory = 99999999999999999999999\n", "t.cfg:1: expected an integer that fits in 64 bits for 'memory'" },
	{ "name = \"a\" \"b\"\n", "t.cfg:1: expected the end of the line after the value of 'name'" },
	{ "disk = [ 'a'\n 'b' ]\n", "t.cfg:2: expected ',' or ']' in the list for 'disk'" },
	{ "disk = [ 'a',\n", "t.cfg:2: expected a value (a quoted string, an integer or a list) for 'disk'" },
	{ "memory = \"lots\"\n", "t.cfg:1: expected an integer for 'memory'" },
	{ "memory = 0\n", "t.cfg:1: expected a positive number of MiB for 'memory'" },
	{ "name = 5\n", "t.cfg:1: expected a quoted string for 'name'" },
	{ "name = \"\"\n", "t.cfg:1: expected a non-empty string for 'name'" },
	{ "name = [ 'a' ]\n", "t.cfg:1: expected a quoted string for 'name'" },
	{ "vcpus = 0\n", "t.cfg:1: expected 1 to 32 for 'vcpus'" },
	{ "vcpus = 33\n", "t.cfg:1: expected 1 to 32 for 'vcpus'" },
	{ "on_crash = \"explode\"\n", "t.cfg:1: expected destroy, restart or preserve for 'on_crash'" },
	{ "backend = \"xen\"\n", "t.cfg:1: expected kvm or soft for 'backend'" },
	{ "logdirty = 1\n", "t.cfg:1: expected bitmap or ring for 'logdirty'" },
	{ "uuid = \"1234\"\n", "t.cfg:1: expected a uuid like \"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" for 'uuid'" },
	{ "name = \"0123456789012345678901234567890123456789012345678901234567890123\"\n",
	  "t.cfg:1: expected 'name' to be at most 63 bytes long" },
};

Test(xlm_cfg, malformed_lines_name_file_and_line)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct xlm_cfg c;
		int rc = parse(&c, NULL, bad_cases[i].text);

		cr_expect_eq(rc, -FERRY_EBADCFG, "case %zu accepted: %s", i, bad_cases[i].text);
		cr_expect_str_eq(c.err, bad_cases[i].err, "case %zu", i);
	}
}

Test(xlm_cfg, missing_name_is_an_error)
{
	struct xlm_cfg c;
	struct hyp_dom_config d;

	cr_assert_eq(parse(&c, NULL, "memory = 64\n"), 0);
	cr_assert_eq(xlm_cfg_finish(&c, &d), -FERRY_EBADCFG);
	cr_expect_str_eq(c.err, "t.cfg: expected a 'name'");
}

Test(xlm_cfg, numeric_name_is_an_error)
{
	struct xlm_cfg c;
	struct hyp_dom_config d;

	cr_assert_eq(parse(&c, NULL, "name = '42'\n"), 0);
	cr_assert_eq(xlm_cfg_finish(&c, &d), -FERRY_EBADCFG);
	cr_expect_str_eq(c.err, "t.cfg: expected a name that is not a number, not '42'");
}

/* Xen's dom0 name, the suffixes ferryd gives its own copies and names xl
 * would read as options are refused, from a file and from JSON alike. */
Test(xlm_cfg, reserved_names_are_refused)
{
	static const char *const names[] = {
		"Domain-0", "x--incoming", "x--migratedaway", "x--backup", "--incoming", "-p", "-"};
	static const char *const fine[] = {"Domain-01", "domain-0", "x--incomingx",
					   "x-backup",	"a-p",	    "x--"};
	struct hyp_dom_config d;
	char text[128], err[512];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct xlm_cfg c;
		yajl_val tree;

		snprintf(text, sizeof(text), "name = '%s'\n", names[i]);
		cr_assert_eq(parse(&c, NULL, text), 0, "%s", c.err);
		cr_expect_eq(xlm_cfg_finish(&c, &d), -FERRY_EBADCFG, "'%s' accepted", names[i]);
		cr_expect(strstr(c.err, "t.cfg: the name '") && strstr(c.err, "is reserved"),
			  "%s: %s", names[i], c.err);
		snprintf(text, sizeof(text), "{\"name\":\"%s\"}", names[i]);
		tree = yajl_tree_parse(text, err, sizeof(err));
		cr_assert_not_null(tree);
		err[0] = '\0';
		cr_expect_eq(xlm_cfg_from_json(tree, &d, err, sizeof(err)), -FERRY_EBADCFG,
			     "'%s' accepted from JSON", names[i]);
		cr_expect(strstr(err, "is reserved"), "%s: %s", names[i], err);
		yajl_tree_free(tree);
		cr_expect_eq(xlm_name_check(names[i], err, sizeof(err)), -FERRY_EBADCFG);
	}
	cr_expect_eq(xlm_name_check("Domain-0", err, sizeof(err)), -FERRY_EBADCFG);
	cr_expect(strstr(err, "dom0"), "%s", err);
	cr_expect_eq(xlm_name_check("vm--backup", err, sizeof(err)), -FERRY_EBADCFG);
	cr_expect(strstr(err, "NAME--incoming, NAME--migratedaway and NAME--backup"), "%s", err);
	cr_expect_eq(xlm_name_check("-p", err, sizeof(err)), -FERRY_EBADCFG);
	cr_expect(strstr(err, "starting with '-'"), "%s", err);
	for (size_t i = 0; i < ARRAY_SIZE(fine); i++)
		cr_expect_eq(xlm_name_check(fine[i], err, sizeof(err)), 0, "'%s': %s", fine[i],
			     err);
}

/* What ferryd checks before it builds a domain: soft takes no kernel, and
 * the built-in guest's command line must be one the guest would start with. */
Test(xlm_cfg, create_checks_kernel_and_workload)
{
	static const struct {
		const char *extra, *kernel, *backend, *why;
		unsigned memory_mb;
	} cases[] = {
		{"workload=verify ws=8M", "", "soft", NULL, 128},
		{"", "", "soft", NULL, 128},
		{"workload=nonesuch", "", "soft", "bad value 'nonesuch' for workload", 128},
		{"workload=nonesuch", "", "kvm", "bad value 'nonesuch' for workload", 128},
		{"workload=verify ws=256M", "", "soft", "ws=256M does not fit in the arena", 128},
		{"workload=verify ws=256M", "", "soft", NULL, 512},
		{"workload=dirty pattern=zigzag", "", "soft", "bad value 'zigzag' for pattern",
		 128},
		{"workload=pingpong role=pong", "", "soft", "needs role=ping|pong and peer", 128},
		{"workload=pingpong role=pong peer=0", "", "soft", "bad value '0' for peer", 128},
		{"workload=idle fill=1G", "", "soft", "fill=1G does not fit", 128},
		{"", "/nonexistent", "soft", "'kernel' is for kvm", 128},
		{"", "/boot/guest.elf", "soft", "'kernel' is for kvm", 128},
		/* a kernel of one's own takes any command line */
		{"workload=nonesuch root=/dev/xvda", "/boot/guest.elf", "kvm", NULL, 128},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct hyp_dom_config d = {.memory_mb = cases[i].memory_mb};
		char err[512] = "";
		int rc;

		snprintf(d.name, sizeof(d.name), "vm");
		snprintf(d.cmdline, sizeof(d.cmdline), "%s", cases[i].extra);
		snprintf(d.kernel, sizeof(d.kernel), "%s", cases[i].kernel);
		rc = xlm_cfg_check_create(&d, cases[i].backend, err, sizeof(err));
		if (!cases[i].why) {
			cr_expect_eq(rc, 0, "case %zu: %s", i, err);
			continue;
		}
		cr_expect_eq(rc, -FERRY_EBADCFG, "case %zu accepted", i);
		cr_expect(strstr(err, cases[i].why) && !strncmp(err, "vm: ", 4),
			  "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].why);
	}
}

Test(xlm_cfg, memory_above_maxmem_is_an_error)
{
	struct xlm_cfg c;
	struct hyp_dom_config d;

	cr_assert_eq(parse(&c, NULL, "name = 'a'\nmemory = 1024\nmaxmem = 512\n"), 0);
	cr_assert_eq(xlm_cfg_finish(&c, &d), -FERRY_EBADCFG);
	cr_expect_str_eq(c.err, "t.cfg: expected memory (1024 MiB) not above maxmem (512 MiB)");
}

Test(xlm_cfg, overrides_win)
{
	struct xlm_cfg c;
	struct hyp_dom_config d;

	cr_assert_eq(parse(&c, NULL, "name = 'a'\nmemory = 128\nextra = \"workload=verify\"\n"), 0);
	cr_assert_eq(xlm_cfg_parse_override(&c, "memory=512"), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_parse_override(&c, "extra=\"workload=idle\""), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_parse_override(&c, "name = 'b'"), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_expect_eq(d.memory_mb, 512);
	cr_expect_eq(d.maxmem_mb, 512, "maxmem follows the overridden memory");
	cr_expect_str_eq(d.cmdline, "workload=idle");
	cr_expect_str_eq(d.name, "b");
}

Test(xlm_cfg, bad_override_names_the_command_line)
{
	struct xlm_cfg c;

	cr_assert_eq(parse(&c, NULL, "name = 'a'\n"), 0);
	cr_assert_eq(xlm_cfg_parse_override(&c, "memory=512M"), -FERRY_EBADCFG);
	cr_expect_str_eq(c.err, "command line:1: expected an integer or a quoted string for 'memory'");
}

Test(xlm_cfg, missing_file)
{
	struct xlm_cfg c;

	xlm_cfg_init(&c);
	cr_assert_eq(xlm_cfg_parse_file(&c, "/nonexistent/vm.cfg"), -ENOENT);
	cr_expect_str_eq(c.err, "/nonexistent/vm.cfg: No such file or directory");
}

Test(xlm_cfg, file_on_disk)
{
	char path[] = "/tmp/xlm-cfg-XXXXXX";
	int fd = mkstemp(path);
	struct xlm_cfg c;
	struct hyp_dom_config d;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, good_cfg, strlen(good_cfg)), (ssize_t)strlen(good_cfg));
	close(fd);
	xlm_cfg_init(&c);
	cr_expect_eq(xlm_cfg_parse_file(&c, path), 0, "%s", c.err);
	cr_expect_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_expect_str_eq(d.logdirty, "ring");
	unlink(path);
}

Test(xlm_cfg, json_round_trip)
{
	struct xlm_cfg c;
	struct hyp_dom_config d, back;
	char *json, err[256];
	yajl_val tree;

	cr_assert_eq(parse(&c, NULL, good_cfg), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_finish(&c, &d), 0, "%s", c.err);
	cr_assert_eq(xlm_cfg_to_json(&d, &json), 0);
	tree = yajl_tree_parse(json, err, sizeof(err));
	cr_assert_not_null(tree, "%s: %s", json, err);
	memset(&back, 0, sizeof(back));
	cr_assert_eq(xlm_cfg_from_json(tree, &back, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(&d, &back, sizeof(d)), 0, "round trip differs: %s", json);
	yajl_tree_free(tree);
	free(json);
}

Test(xlm_cfg, json_rejects_bad_fields)
{
	static const struct bad_case cases[] = {
		{ "[1]", "config: expected a JSON object" },
		{ "{\"memory_mb\":64}", "config: expected a 'name'" },
		{ "{\"name\":5}", "config: expected a string for 'name'" },
		{ "{\"name\":\"a\",\"memory_mb\":\"64\"}",
		  "config: expected an integer from 1 to 17592186044415 for 'memory_mb'" },
		{ "{\"name\":\"a\",\"vcpus\":64}", "config: expected an integer from 1 to 32 for 'vcpus'" },
		{ "{\"name\":\"a\",\"backend\":\"xen\"}", "config: unexpected value 'xen' for 'backend'" },
		{ "{\"name\":\"a\",\"on_crash\":\"boom\"}",
		  "config: expected destroy, restart or preserve for 'on_crash'" },
		{ "{\"name\":\"a\",\"uuid\":\"nope\"}", "config: expected a uuid, not 'nope'" },
		{ "{\"name\":\"a\",\"memory_mb\":256,\"maxmem_mb\":128}",
		  "config: expected memory (256 MiB) not above maxmem (128 MiB)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hyp_dom_config d;
		char err[256] = "", perr[64];
		yajl_val tree = yajl_tree_parse(cases[i].text, perr, sizeof(perr));

		cr_assert_not_null(tree, "case %zu", i);
		cr_expect_eq(xlm_cfg_from_json(tree, &d, err, sizeof(err)), -FERRY_EBADCFG,
			     "case %zu", i);
		cr_expect_str_eq(err, cases[i].err, "case %zu", i);
		yajl_tree_free(tree);
	}
}

Test(xlm_cfg, json_defaults_and_extra_keys)
{
	struct hyp_dom_config d;
	char err[256];
	yajl_val tree = yajl_tree_parse("{\"name\":\"a\",\"paused\":true}", err, sizeof(err));

	cr_assert_not_null(tree);
	cr_assert_eq(xlm_cfg_from_json(tree, &d, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(d.memory_mb, XLM_CFG_DEFAULT_MEMORY_MB);
	cr_expect_eq(d.maxmem_mb, XLM_CFG_DEFAULT_MEMORY_MB);
	cr_expect_eq(d.on_reboot, HYP_ON_RESTART);
	yajl_tree_free(tree);
}
