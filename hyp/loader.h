/* SPDX-License-Identifier: MIT */
/*
 * Boot loader for the built-in guest, used by both execution backends:
 * copies the kernel ELF into guest RAM and writes the boot-time structures
 * of the guest-physical layout in <abi/guest.h>.
 */
#ifndef HYP_LOADER_H
#define HYP_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Loads the ELF64 x86-64 executable at path into guest RAM: every PT_LOAD
 * segment is copied to its physical address (p_paddr) and its bss zeroed.
 * Segments must lie within [FERRY_KERNEL_GPA, FERRY_ARENA_GPA) and within
 * mem_size, and the entry point within a loaded segment.
 * mem: host mapping of guest-physical 0, mem_size bytes; borrowed.
 * *entry: the ELF entry point (direct 64-bit entry) on success.
 * Returns 0, or -ENOENT/-EIO/... from the file, -ENOEXEC for a malformed or
 * foreign ELF, -E2BIG when a segment does not fit; the reason is logged.
 */
int hyp_loader_load_elf(void *mem, uint64_t mem_size, const char *path,
			uint64_t *entry);

/*
 * The same from an image in memory (img: len bytes, 8-byte aligned,
 * borrowed); what names it in messages. Fuzzed by tests/fuzz/fuzz-elf.c.
 */
int hyp_loader_load_elf_image(void *mem, uint64_t mem_size, const uint8_t *img,
			      size_t len, const char *what, uint64_t *entry);

/*
 * Writes the boot structures: hvm_start_info at FERRY_START_INFO_GPA
 * (version 1, one RAM memmap entry [0, mem_size)) followed by the memmap
 * and the command line; struct ferry_ctl at FERRY_CTL_GPA (magic set, the
 * rest zero); and, if page_tables, the identity map at FERRY_PGTABLE_GPA
 * (PML4, one PDPT, one PD per GiB; 2 MiB pages, user-accessible) covering
 * all of RAM. Leaves the shared_info page alone.
 * mem, mem_size: as above; cmdline: copied, may be NULL.
 * Returns 0, -EINVAL if mem_size is not a multiple of 4 KiB or leaves no
 * arena, -E2BIG if the command line or the page tables do not fit.
 */
int hyp_loader_setup_boot(void *mem, uint64_t mem_size, const char *cmdline,
			  bool page_tables);

#endif
