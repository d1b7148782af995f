/* SPDX-License-Identifier: MIT */
/*
 * The built-in guest's workloads as the soft backend's guest code
 * (struct hyp_soft_guest_ops, hyp/hyp.h): what ferryd, the tests and the
 * benches pass as hyp_params.soft_guest. A hosted library of its own
 * (ferry_soft_guest), the one place where the guest meets hyp's interface;
 * hyp itself links no guest code.
 */
#ifndef GUESTS_SOFT_H
#define GUESTS_SOFT_H

#include "hyp/hyp.h"

extern const struct hyp_soft_guest_ops wl_soft_guest_ops;

#endif
