/* SPDX-License-Identifier: MIT */
/*
 * The defaults of live migration, for every caller (xl's help, ferryd,
 * tests). Plain literals with no includes, so xl can show them without
 * linking the engine.
 */
#ifndef MIGRATE_DEFAULTS_H
#define MIGRATE_DEFAULTS_H

#define MIG_DEFAULT_DOWNTIME_MS 300
#define MIG_DEFAULT_MAX_ROUNDS 30

#endif
