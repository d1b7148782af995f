// SPDX-License-Identifier: MIT
/* xl dmesg: ferryd's log ring. */
#include <stdio.h>
#include <string.h>

#include "xl.h"

int xlm_cmd_dmesg(int argc, char **argv)
{
	struct xlm_client c;
	yajl_val root, result;
	const char *text;
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "dmesg", "", 0, &status)) != -1)
		if (opt == -2)
			return status;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	if (xlm_call_domain(&c, "dmesg", NULL, &root, &result)) {
		xlm_client_close(&c);
		return XL_EXIT_FAIL;
	}
	text = xlm_json_str(result, "text");
	if (text)
		fwrite(text, 1, strlen(text), stdout);
	yajl_tree_free(root);
	xlm_client_close(&c);
	return 0;
}
