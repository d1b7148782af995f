// SPDX-License-Identifier: MIT
/* xl info: Xen's "key : value" host summary. */
#include <stdio.h>

#include "xl.h"

int xlm_cmd_info(int argc, char **argv)
{
	static const char *const keys[] = {
		"host", "release", "version", "machine", "nr_cpus", "total_memory",
		"free_memory", "nr_domains", "backend", "kvm_version", "ferry_version",
		"run_dir", "state_dir",
	};
	struct xlm_client c;
	yajl_val root, info;
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "info", "", 0, &status)) != -1)
		if (opt == -2)
			return status;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	if (xlm_call_domain(&c, "info", NULL, &root, &info)) {
		xlm_client_close(&c);
		return XL_EXIT_FAIL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *s = xlm_json_str(info, keys[i]);
		long long n;

		if (s)
			printf("%-23s: %s\n", keys[i], s);
		else if (xlm_json_int(info, keys[i], &n))
			printf("%-23s: %lld\n", keys[i], n);
	}
	printf("%-23s: %s\n", "xl_socket", xlm_socket_path);
	yajl_tree_free(root);
	xlm_client_close(&c);
	return 0;
}
