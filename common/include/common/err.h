/* SPDX-License-Identifier: MIT */
/*
 * Errors: functions return 0 or a negative errno. Project-specific codes
 * live above the errno range so one strerror covers both.
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

enum ferry_err {
	FERRY_EBASE = 1000,
	FERRY_ENOKVM,	   /* /dev/kvm missing or lacking a required feature */
	FERRY_EBADCFG,	   /* malformed domain configuration */
	FERRY_ENOMEMPOOL,  /* machine-memory pool exhausted */
	FERRY_EBADIMAGE,   /* guest kernel image unusable */
	FERRY_EPROTO,	   /* control protocol violation */
	FERRY_EMAX,
};

/* Message for a negative (or positive) errno or ferry_err. */
const char *ferry_strerror(int err);

#endif
