/* SPDX-License-Identifier: MIT */
/*
 * xl internals: the verb table (cmdtable.c), one xlm_cmd_<verb>() per
 * cmd-<verb>.c, and the helpers in xl.c. Commands return the exit status;
 * only main() exits.
 */
#ifndef XL_XL_H
#define XL_XL_H

#include <stdbool.h>
#include <stddef.h>
#include <unistd.h> /* getopt, optind, optarg */

#include "common/compiler.h"

/* A macro's value as a string literal, for help texts. */
#define XL_STR_(x) #x
#define XL_STR(x) XL_STR_(x)
#include "toolstack/proto.h"

/* Exit statuses: Xen's xl uses 1 for failures and 2 for usage errors. */
#define XL_EXIT_FAIL 1
#define XL_EXIT_USAGE 2

struct xlm_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *desc;    /* one line, no full stop */
	const char *usage;   /* after "xl <verb> " */
	const char *options; /* may be NULL */
};

extern const struct xlm_cmd xlm_cmds[];
extern const size_t xlm_ncmds;
extern const char *xlm_socket_path;

const struct xlm_cmd *xlm_cmd_find(const char *name);
/* Prints a verb's help to stdout (or stderr when usage is wrong). */
void xlm_cmd_usage(const char *verb, bool to_stderr);

/* "xl: <message>" on stderr; returns XL_EXIT_FAIL. */
int xlm_fail(const char *fmt, ...) PRINTF_FMT(1, 2);
/* Parses a verb's options with getopt: -h/--help prints help (returns 0
 * through *done); a bad option or too few arguments prints usage. Returns
 * the option character, -1 at the end, or -2 with *status set. */
int xlm_getopt(int argc, char **argv, const char *verb, const char *opts,
	       int min_args, int *status);

/* Connects to xlm_socket_path; prints the error. */
int xlm_connect(struct xlm_client *c);
/* Calls op with args {"domain": domain} (domain may be NULL: no args).
 * Prints "xl: <error>" on failure. */
int xlm_call_domain(struct xlm_client *c, const char *op, const char *domain,
		    yajl_val *root, yajl_val *result);
/* xlm_client_call that prints "xl: <error>" on failure. */
int xlm_call(struct xlm_client *c, const char *op, xlm_args_fn args, void *opaque,
	     yajl_val *root, yajl_val *result);

/* v as one line of JSON on stdout (--json). */
void xlm_print_json(yajl_val v);

/* Streams a domain's console to stdout until it is destroyed (or Ctrl-]
 * on a terminal). The client is attached already when attached is true. */
int xlm_console_run(struct xlm_client *c, const char *domain);

int xlm_cmd_create(int argc, char **argv);
int xlm_cmd_list(int argc, char **argv);
int xlm_cmd_destroy(int argc, char **argv);
int xlm_cmd_pause(int argc, char **argv);
int xlm_cmd_unpause(int argc, char **argv);
int xlm_cmd_shutdown(int argc, char **argv);
int xlm_cmd_reboot(int argc, char **argv);
int xlm_cmd_console(int argc, char **argv);
int xlm_cmd_info(int argc, char **argv);
int xlm_cmd_save(int argc, char **argv);
int xlm_cmd_restore(int argc, char **argv);
int xlm_cmd_stream_dump(int argc, char **argv);
int xlm_cmd_dmesg(int argc, char **argv);
int xlm_cmd_migrate(int argc, char **argv);
int xlm_cmd_migrate_cancel(int argc, char **argv);
int xlm_cmd_migrate_resolve(int argc, char **argv);
int xlm_cmd_remus(int argc, char **argv);
int xlm_cmd_remus_status(int argc, char **argv);
int xlm_cmd_remus_stop(int argc, char **argv);
int xlm_cmd_tls_setup(int argc, char **argv);
int xlm_cmd_xenstore_ls(int argc, char **argv);
int xlm_cmd_xenstore_read(int argc, char **argv);
int xlm_cmd_xenstore_write(int argc, char **argv);
int xlm_cmd_xenstore_rm(int argc, char **argv);
int xlm_cmd_sched_credit2(int argc, char **argv);
int xlm_cmd_vcpu_pin(int argc, char **argv);
int xlm_cmd_vcpu_list(int argc, char **argv);
int xlm_cmd_cpupool_create(int argc, char **argv);
int xlm_cmd_cpupool_list(int argc, char **argv);
int xlm_cmd_cpupool_destroy(int argc, char **argv);
int xlm_cmd_cpupool_migrate(int argc, char **argv);
int xlm_cmd_mem_set(int argc, char **argv);
int xlm_cmd_mem_max(int argc, char **argv);
int xlm_cmd_snapshot_create(int argc, char **argv);
int xlm_cmd_snapshot_list(int argc, char **argv);
int xlm_cmd_snapshot_delete(int argc, char **argv);
int xlm_cmd_snapshot_verify(int argc, char **argv);
int xlm_cmd_snapshot_export(int argc, char **argv);
int xlm_cmd_snapshot_revert(int argc, char **argv);
int xlm_cmd_snapshot_schedule(int argc, char **argv);
/* The snapshot-schedule op's array of domain's schedules (NULL: all); a
 * domain that is gone is looked up by the UUID of snaps (its snapshot-list
 * array). 0 with *root to free, or -errno. */
int xlm_snapshot_schedules(const char *domain, yajl_val snaps, yajl_val *root, yajl_val *result);
/* After xl snapshot-list: a line per schedule of domain (NULL: all), its
 * last, next and missed runs; nothing if none or ferryd cannot say. */
void xlm_snapshot_schedule_note(const char *domain, yajl_val snaps);
int xlm_cmd_help(int argc, char **argv);

#endif
