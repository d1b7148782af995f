// SPDX-License-Identifier: MIT
/* xl's verbs with Xen's descriptions, usage lines and options. */
#include <stdio.h>
#include <string.h>

#include "migrate/defaults.h"
#include "xl.h"

const struct xlm_cmd xlm_cmds[] = {
	{ "create", xlm_cmd_create,
	  "Create a domain from config file <filename>",
	  "<ConfigFile> [options] [vars]",
	  "-h                      Print this help.\n"
	  "-p                      Leave the domain paused after\n"
	  "                        it is created.\n"
	  "-n, --dryrun            Dry run - prints the resulting configuration.\n"
	  "-c                      Connect to the console after the domain is created.\n"
	  "vars                    KEY=VALUE lines that override the file,\n"
	  "                        e.g. 'memory=512' 'extra=\"workload=idle\"'." },
	{ "list", xlm_cmd_list,
	  "List information about all/some domains",
	  "[options] [Domain]",
	  "-l, --long              Output all VM details" },
	{ "destroy", xlm_cmd_destroy,
	  "Terminate a domain immediately",
	  "<Domain>", NULL },
	{ "shutdown", xlm_cmd_shutdown,
	  "Issue a shutdown signal to a domain",
	  "[options] <Domain>",
	  "-h                      Print this help.\n"
	  "-w, --wait              Wait for guest to shutdown." },
	{ "reboot", xlm_cmd_reboot,
	  "Issue a reboot signal to a domain",
	  "[options] <Domain>",
	  "-h                      Print this help." },
	{ "pause", xlm_cmd_pause,
	  "Pause execution of a domain",
	  "<Domain>", NULL },
	{ "unpause", xlm_cmd_unpause,
	  "Unpause a paused domain",
	  "<Domain>", NULL },
	{ "console", xlm_cmd_console,
	  "Attach to domain's console",
	  "[options] <Domain>",
	  "-t <type>       console type, pv (the only one)\n"
	  "-n <number>     console number (0, the only one)\n"
	  "On a terminal, Ctrl-] detaches." },
	{ "save", xlm_cmd_save,
	  "Save a domain state to restore later",
	  "[options] <Domain> <CheckpointFile> [--compress none|lz4|zstd]",
	  "-h                      Print this help.\n"
	  "-c                      Leave domain running after creating the snapshot.\n"
	  "-p                      Leave domain paused after creating the snapshot.\n"
	  "--compress C            none (default: a plain Xen v2 stream), lz4 or zstd\n"
	  "                        (compressed, checksummed frames; Ferry only)." },
	{ "restore", xlm_cmd_restore,
	  "Restore a domain from a saved state",
	  "[options] <CheckpointFile> [<ConfigFile>]",
	  "-h                      Print this help.\n"
	  "-p                      Do not unpause domain after restoring it.\n"
	  "-e                      Do not wait in the background for the death of the\n"
	  "                        domain (xl never waits; accepted for Xen's sake).\n"
	  "-n NAME                 Restore under this name (restoring a file twice\n"
	  "                        needs a second name).\n"
	  "--lazy                  Run before the memory is read: pages come from FILE\n"
	  "                        as the guest touches them, the rest in the\n"
	  "                        background (an uncompressed save only).\n"
	  "ConfigFile              replaces the saved config (same memory and backend)." },
	{ "stream-dump", xlm_cmd_stream_dump,
	  "Print and check the records of a saved stream",
	  "[options] <CheckpointFile>",
	  "-h                      Print this help.\n"
	  "-v                      Also list HVM_CONTEXT entries.\n"
	  "Exits non-zero at the first error, naming its byte offset." },
	{ "migrate", xlm_cmd_migrate,
	  "Migrate a domain to another host",
	  "[options] <Domain> <Host>[:port]",
	  "-h                      Print this help.\n"
	  "--downtime MS           Most downtime allowed at the switchover (default "
	  XL_STR(MIG_DEFAULT_DOWNTIME_MS) "):\n"
	  "                        once the prediction fits, rounds go on while they\n"
	  "                        still halve the dirty pages.\n"
	  "--no-converge MODE      When rounds stop converging: throttle (default:\n"
	  "                        cap the guest's CPU stepwise), abort (the domain\n"
	  "                        keeps running here) or force (switch over anyway).\n"
	  "--max-rounds N          Live rounds before the switchover (default "
	  XL_STR(MIG_DEFAULT_MAX_ROUNDS) ").\n"
	  "--bandwidth RATE        Cap the link use, bytes/s (e.g. 100M).\n"
	  "--compress C            none (default), lz4, zstd or auto.\n"
	  "--channels N            Send the pages over N connections besides the\n"
	  "                        main one, each with a thread per side (2 to 8;\n"
	  "                        default 1: pages on the main connection).\n"
	  "--json                  Print the report as JSON on stdout.\n"
	  "--insecure              Plain TCP, no TLS (the target's ferryd must run\n"
	  "                        with --insecure too).\n"
	  "The target is the migration listener of the other ferryd (port 8002 by\n"
	  "default). On a terminal a progress line is shown; Ctrl-C cancels (before\n"
	  "the switchover only)." },
	{ "remus", xlm_cmd_remus,
	  "Enable Remus HA for domain (COLO is not supported)",
	  "[options] <Domain> [<host>[:port]]",
	  "-i MS                   Checkpoint domain memory every MS milliseconds,\n"
	  "                        start to start (default 200, at least 10; Xen arms\n"
	  "                        the next one only after the last commit).\n"
	  "-b                      Replicate memory checkpoints to /dev/null\n"
	  "                        (blackhole; no host). Works only in unsafe mode.\n"
	  "-n                      Disable output buffering (console). Works only\n"
	  "                        in unsafe mode.\n"
	  "-F                      Enable unsafe configurations [-b|-n flags]. Use\n"
	  "                        this option with caution as failover may not work\n"
	  "                        as intended.\n"
	  "--witness URL           etcd://HOST:PORT (or http://, https://): a lease\n"
	  "                        there decides which copy may run, so a cut link\n"
	  "                        never leaves two (etcd with --election-timeout 500\n"
	  "                        for its 1 s leases).\n"
	  "--timeout MS            Silence from the peer that means it is dead\n"
	  "                        (default 500): the backup then resumes the last\n"
	  "                        acknowledged epoch.\n"
	  "--json                  Print the report as JSON on stdout.\n"
	  "--insecure              Plain TCP, no TLS (both ferryds with --insecure).\n"
	  "The backup is the migration listener of the other ferryd (port 8002 by\n"
	  "default); its copy shows as <Domain>--backup, paused, until it takes over.\n"
	  "Returns once the pair is protected. Without --witness a cut link with\n"
	  "both hosts up leaves two running copies, as in Xen." },
	{ "remus-status", xlm_cmd_remus_status,
	  "Show a replication pair's state and figures",
	  "[--json] <Domain>", NULL },
	{ "remus-stop", xlm_cmd_remus_stop,
	  "End a domain's protection: the backup destroys its copy",
	  "<Domain>", NULL },
	{ "migrate-cancel", xlm_cmd_migrate_cancel,
	  "Cancel a running migration (before the switchover)",
	  "<Domain>", NULL },
	{ "migrate-resolve", xlm_cmd_migrate_resolve,
	  "Decide the fate of a domain fenced by a migration whose outcome is unknown",
	  "[options] <Domain>",
	  "-h                      Print this help.\n"
	  "(no option)             Ask the target again (for up to 30 s): running\n"
	  "                        there -> destroy the copy here; absent -> resume it.\n"
	  "--resume                Resume the copy here (make sure the target does not\n"
	  "                        run it).\n"
	  "--destroy               Destroy the copy here (the target runs it)." },
	{ "tls-setup", xlm_cmd_tls_setup,
	  "Create a migration CA and host certificates",
	  "--dir DIR [--host NAME]... [--days N]",
	  "-h                      Print this help.\n"
	  "--dir DIR               Where: ca.pem/ca.key (kept if present), NAME.pem,\n"
	  "                        NAME.key; give ferryd --tls-dir DIR.\n"
	  "--host NAME             A host certificate for NAME (an address or a DNS\n"
	  "                        name), repeatable.\n"
	  "--days N                Validity (default 365)." },
	{ "info", xlm_cmd_info,
	  "Get information about the host",
	  "", NULL },
	{ "dmesg", xlm_cmd_dmesg,
	  "Read dmesg buffer",
	  "", NULL },
	{ "xenstore-ls", xlm_cmd_xenstore_ls,
	  "List a xenstore subtree (default /), like Xen's xenstore-ls",
	  "[options] [Path]",
	  "-h                      Print this help.\n"
	  "-p                      Show each node's permissions.\n"
	  "Talks to ferryd's xenstore socket: $XENSTORED_PATH, else\n"
	  "xenstored/socket next to the control socket." },
	{ "xenstore-read", xlm_cmd_xenstore_read,
	  "Read xenstore values, one line each",
	  "<Path>...", NULL },
	{ "xenstore-write", xlm_cmd_xenstore_write,
	  "Write xenstore values (parents are created)",
	  "<Path> <Value> [<Path> <Value>]...", NULL },
	{ "xenstore-rm", xlm_cmd_xenstore_rm,
	  "Remove xenstore nodes and everything below them",
	  "<Path>...", NULL },
	{ "sched-credit2", xlm_cmd_sched_credit2,
	  "Get/set credit2 scheduler parameters",
	  "[-d <Domain> [-w[=WEIGHT]|-c[=CAP]]]",
	  "-d DOMAIN, --domain=DOMAIN     Domain to modify\n"
	  "-w WEIGHT, --weight=WEIGHT     Weight (int, 1..65535)\n"
	  "-c CAP, --cap=CAP              Cap (int, % of one pCPU for the domain)" },
	{ "vcpu-pin", xlm_cmd_vcpu_pin,
	  "Set which CPUs a VCPU can use",
	  "<Domain> <VCPU|all> <Hard affinity|-|all> <Soft affinity|-|all>",
	  "CPU lists: \"all\", \"3\", \"0-1,4\"; \"-\" keeps that affinity." },
	{ "vcpu-list", xlm_cmd_vcpu_list,
	  "List the VCPUs for all/some domains",
	  "[Domain, ...]", NULL },
	{ "cpupool-create", xlm_cmd_cpupool_create,
	  "Create a new CPU pool",
	  "[name=]<Name> [sched=credit2|null] [cpus=LIST]",
	  "KEY=VALUE arguments instead of a config file. cpus must be free\n"
	  "pCPUs or Pool-0's (which keeps at least one)." },
	{ "cpupool-list", xlm_cmd_cpupool_list,
	  "List CPU pools on host",
	  "[-c|--cpus] [<CPU Pool>]",
	  "-c, --cpus                     Output list of CPUs used by a pool" },
	{ "cpupool-destroy", xlm_cmd_cpupool_destroy,
	  "Deactivates a CPU pool",
	  "<CPU Pool>", NULL },
	{ "cpupool-migrate", xlm_cmd_cpupool_migrate,
	  "Moves a domain into a CPU pool",
	  "<Domain> <CPU Pool>", NULL },
	{ "mem-set", xlm_cmd_mem_set,
	  "Set the current memory usage for a domain",
	  "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>",
	  "Writes memory/target; the guest's balloon driver gets there on its own." },
	{ "mem-max", xlm_cmd_mem_max,
	  "Set the maximum amount reservation for a domain",
	  "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>",
	  "Refused below what the domain holds now, and above the memory it was\n"
	  "created with: Ferry cannot grow a domain's physmap (ballooning refills\n"
	  "its holes), so a maxmem above it could never be reached. Saves and\n"
	  "migrations carry it." },
	{ "snapshot-create", xlm_cmd_snapshot_create,
	  "Take a live snapshot of a domain into the host's snapshot repository",
	  "[options] <Domain>",
	  "-h                      Print this help.\n"
	  "-n NAME                 The snapshot's name (default: the time, UTC, as\n"
	  "                        20261206-034500); no '/', control byte or leading '.'.\n"
	  "-p, --pause             Leave the domain paused afterwards (xl unpause\n"
	  "                        resumes it), like save -p.\n"
	  "--json                  Print the report as JSON on stdout.\n"
	  "The guest keeps running but for a short final pause. After the first, a\n"
	  "snapshot stores only the pages changed since the last one (its parent).\n"
	  "On a terminal a progress line is shown." },
	{ "snapshot-list", xlm_cmd_snapshot_list,
	  "List the snapshots of all/some domains",
	  "[options] [<Domain>]",
	  "-h                      Print this help.\n"
	  "-l, --long              Also show each domain's UUID.\n"
	  "--json                  Print {\"snapshots\": [...], \"schedules\": [...]}\n"
	  "                        as JSON on stdout (the schedules as\n"
	  "                        snapshot-schedule --json shows them).\n"
	  "The list ends with the domain's (or every) snapshot schedule: its last,\n"
	  "next and missed runs.\n"
	  "Domain may be a domain that is gone, by the name it had at its last\n"
	  "snapshot or by its UUID: snapshots belong to the UUID." },
	{ "snapshot-delete", xlm_cmd_snapshot_delete,
	  "Delete a snapshot (its children keep what they inherit from it)",
	  "<Domain> <Name>", NULL },
	{ "snapshot-verify", xlm_cmd_snapshot_verify,
	  "Re-read and check every stored page of a domain's snapshots",
	  "[--json] <Domain> [<Name>]",
	  "Exits non-zero on damage, naming the snapshot, the file and the pfn." },
	{ "snapshot-export", xlm_cmd_snapshot_export,
	  "Write a snapshot as a standalone saved domain",
	  "<Domain> <Name> <File>",
	  "The file is a plain Xen v2 stream: 'xl restore FILE' on any host." },
	{ "snapshot-revert", xlm_cmd_snapshot_revert,
	  "Bring a domain back to a snapshot",
	  "[options] <Domain> <Name>",
	  "-h                      Print this help.\n"
	  "-p                      Leave the domain paused after the revert.\n"
	  "-n NEWNAME              Start a new domain NEWNAME (a new UUID) from the\n"
	  "                        snapshot beside the running one.\n"
	  "--lazy                  Run before the memory is read: pages come from the\n"
	  "                        repository as the guest touches them, the rest in\n"
	  "                        the background.\n"
	  "--json                  Print the result as JSON on stdout.\n"
	  "Without -n the running domain is replaced: the snapshot is restored paused\n"
	  "beside it, then the old one is destroyed and the new one takes its name and\n"
	  "runs; if the restore fails the old domain is untouched. Domain may be gone\n"
	  "(its name at its last snapshot, or its UUID): it is created again." },
	{ "snapshot-schedule", xlm_cmd_snapshot_schedule,
	  "Take snapshots of a domain periodically, keeping the newest",
	  "<Domain> --every INTERVAL --keep COUNT | <Domain> --off | [--json] [<Domain>]",
	  "-h                      Print this help.\n"
	  "--every INTERVAL        How often: 30s, 5m, 2h, 1d (the first at once).\n"
	  "--keep COUNT            How many of the schedule's snapshots to keep; the\n"
	  "                        oldest beyond it are deleted (the others stay whole).\n"
	  "--off                   Stop the schedule (its snapshots are kept).\n"
	  "--json                  Show the schedules as JSON.\n"
	  "Without options: every schedule (or the domain's), its last and next run\n"
	  "and the runs missed (skipped: the domain was busy or the disk full, or\n"
	  "due while ferryd was down). Its snapshots are named auto-YYYYMMDD-HHMMSS\n"
	  "(UTC); only those are pruned. xl.cfg: snapshot_interval, snapshot_keep.\n"
	  "A schedule belongs to the domain's UUID: it waits while the domain is not\n"
	  "here (give the UUID to change it then) and resumes when it comes back." },
	{ "help", xlm_cmd_help,
	  "Print help for a command, or the list of commands",
	  "[<command>]", NULL },
};

const size_t xlm_ncmds = ARRAY_SIZE(xlm_cmds);

const struct xlm_cmd *xlm_cmd_find(const char *name)
{
	for (size_t i = 0; i < xlm_ncmds; i++)
		if (!strcmp(xlm_cmds[i].name, name))
			return &xlm_cmds[i];
	return NULL;
}

void xlm_cmd_usage(const char *verb, bool to_stderr)
{
	FILE *f = to_stderr ? stderr : stdout;
	const struct xlm_cmd *cmd = verb ? xlm_cmd_find(verb) : NULL;

	if (!cmd) {
		fprintf(f, "Usage xl [-S SOCKET] <subcommand> [args]\n\n");
		fprintf(f, "xl full list of subcommands:\n\n");
		for (size_t i = 0; i < xlm_ncmds; i++)
			fprintf(f, " %-19s %s\n", xlm_cmds[i].name, xlm_cmds[i].desc);
		fprintf(f, "\nThe daemon is ferryd at -S SOCKET, else $FERRY_SOCKET, else %s.\n",
			XLM_SOCKET_DEFAULT);
		return;
	}
	fprintf(f, "Usage: xl [-S SOCKET] %s %s\n\n%s.\n\n", cmd->name, cmd->usage, cmd->desc);
	if (cmd->options)
		fprintf(f, "Options:\n\n%s\n", cmd->options);
}

int xlm_cmd_help(int argc, char **argv)
{
	if (argc > 1 && !xlm_cmd_find(argv[1]))
		return xlm_fail("unknown command '%s'", argv[1]);
	xlm_cmd_usage(argc > 1 ? argv[1] : NULL, false);
	return 0;
}
