// SPDX-License-Identifier: MIT
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"

static const char *const ferry_msgs[] = {
	[FERRY_ENOKVM - FERRY_EBASE] = "KVM unavailable or lacking a required feature",
	[FERRY_EBADCFG - FERRY_EBASE] = "bad domain configuration",
	[FERRY_ENOMEMPOOL - FERRY_EBASE] = "machine memory pool exhausted",
	[FERRY_EBADIMAGE - FERRY_EBASE] = "unusable guest kernel image",
	[FERRY_EPROTO - FERRY_EBASE] = "control protocol error",
};

const char *ferry_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err > FERRY_EBASE && err < FERRY_EMAX)
		return ferry_msgs[err - FERRY_EBASE];
	return strerror(err);
}
