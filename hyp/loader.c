/* SPDX-License-Identifier: MIT */
/*
 * Guest kernel loader. The image is read whole (it is small)
 * and checked before anything is copied, so a bad file leaves guest
 * memory untouched.
 */
/* O_CLOEXEC under -std=c11 */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <abi/guest.h>

#include "common/log.h"
#include "loader.h"

#define LOADER_MAX_IMAGE (64u << 20)
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull	/* the built-in guest runs its workloads at CPL3 */
#define PTE_PS 0x80ull
#define GIB (1ull << 30)
#define MIB2 (2ull << 20)

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	struct stat sb;
	uint8_t *p = NULL;
	size_t done = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		log_err("loader: %s: open: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fd, &sb) < 0) {
		err = -errno;
		log_err("loader: %s: stat: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size < (off_t)sizeof(Elf64_Ehdr) ||
	    sb.st_size > (off_t)LOADER_MAX_IMAGE) {
		err = -ENOEXEC;
		log_err("loader: %s: not a regular file of %zu to %u "
			"bytes", path, sizeof(Elf64_Ehdr), LOADER_MAX_IMAGE);
		goto out_close;
	}
	p = malloc((size_t)sb.st_size);
	if (!p) {
		err = -ENOMEM;
		goto out_close;
	}
	while (done < (size_t)sb.st_size) {
		ssize_t n = read(fd, p + done, (size_t)sb.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			log_err("loader: %s: read: %s", path,
				n < 0 ? strerror(errno) : "short file");
			goto out_free;
		}
		done += (size_t)n;
	}
	close(fd);
	*buf = p;
	*len = done;
	return 0;

out_free:
	free(p);
out_close:
	close(fd);
	return err;
}

static int check_ehdr(const char *path, const Elf64_Ehdr *eh, size_t len)
{
	const char *why = NULL;

	if (memcmp(eh->e_ident, ELFMAG, SELFMAG))
		why = "not an ELF file";
	else if (eh->e_ident[EI_CLASS] != ELFCLASS64 ||
		 eh->e_ident[EI_DATA] != ELFDATA2LSB)
		why = "not ELF64 little-endian";
	else if (eh->e_machine != EM_X86_64)
		why = "not x86-64";
	else if (eh->e_type != ET_EXEC)
		why = "not an executable (ET_EXEC)";
	else if (eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_phnum)
		why = "bad program header size or count";
	else if (eh->e_phoff % 8)
		why = "misaligned program headers";
	else if (eh->e_phoff > len ||
		 (len - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
		why = "program headers beyond the end of the file";
	if (why) {
		log_err("loader: %s: %s", path, why);
		return -ENOEXEC;
	}
	return 0;
}

int hyp_loader_load_elf(void *mem, uint64_t mem_size, const char *path,
			uint64_t *entry)
{
	uint8_t *img = NULL;
	size_t len = 0;
	int err;

	err = read_file(path, &img, &len);
	if (err)
		return err;
	err = hyp_loader_load_elf_image(mem, mem_size, img, len, path, entry);
	free(img);
	return err;
}

int hyp_loader_load_elf_image(void *mem, uint64_t mem_size, const uint8_t *img,
			      size_t len, const char *path, uint64_t *entry)
{
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	bool entry_ok = false;
	unsigned i;
	int err;

	if (len < sizeof(Elf64_Ehdr) || (uintptr_t)img % 8) {
		log_err("loader: %s: too short or misaligned for an ELF header", path);
		return -ENOEXEC;
	}
	eh = (const Elf64_Ehdr *)img;
	err = check_ehdr(path, eh, len);
	if (err)
		goto out;
	ph = (const Elf64_Phdr *)(img + eh->e_phoff);

	/* Validate everything first: a bad image must not half-load. */
	for (i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		/* The xenstore and console ring pages follow the kernel. */
		uint64_t lim = mem_size < FERRY_XENSTORE_GPA ? mem_size :
								 FERRY_XENSTORE_GPA;

		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > len ||
		    p->p_filesz > len - p->p_offset) {
			log_err("loader: %s: segment %u: bad file "
				"range", path, i);
			err = -ENOEXEC;
			goto out;
		}
		if (p->p_paddr < FERRY_KERNEL_GPA || p->p_paddr > lim ||
		    p->p_memsz > lim - p->p_paddr) {
			log_err("loader: %s: segment %u "
				"[0x%llx, +0x%llx) outside [0x%x, 0x%llx)",
				path, i, (unsigned long long)p->p_paddr,
				(unsigned long long)p->p_memsz,
				FERRY_KERNEL_GPA, (unsigned long long)lim);
			err = -E2BIG;
			goto out;
		}
		if (eh->e_entry >= p->p_paddr &&
		    eh->e_entry - p->p_paddr < p->p_memsz)
			entry_ok = true;
	}
	if (!entry_ok) {
		log_err("loader: %s: entry 0x%llx not in a loaded "
			"segment", path, (unsigned long long)eh->e_entry);
		err = -ENOEXEC;
		goto out;
	}

	for (i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		dst = (uint8_t *)mem + p->p_paddr;
		memcpy(dst, img + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}
	*entry = eh->e_entry;
	err = 0;
out:
	return err;
}

/* PML4 + PDPT + one PD per GiB, from FERRY_PGTABLE_GPA up. */
static int write_page_tables(uint8_t *mem, uint64_t mem_size)
{
	uint64_t nr_pd = (mem_size + GIB - 1) / GIB;
	uint64_t nr_2m = (mem_size + MIB2 - 1) / MIB2;
	uint64_t pml4 = FERRY_PGTABLE_GPA, pdpt = pml4 + PAGE_SIZE;
	uint64_t pd = pdpt + PAGE_SIZE, i;
	uint64_t *e;

	/* One PDPT maps 512 GiB, far beyond what fits below the kernel. */
	if (pd + nr_pd * PAGE_SIZE > FERRY_KERNEL_GPA) {
		log_err("loader: identity map for %llu MiB does not "
			"fit below 0x%x",
			(unsigned long long)(mem_size >> 20), FERRY_KERNEL_GPA);
		return -E2BIG;
	}
	memset(mem + pml4, 0, (size_t)((2 + nr_pd) * PAGE_SIZE));
	e = (uint64_t *)(mem + pml4);
	e[0] = pdpt | PTE_P | PTE_RW | PTE_US;
	e = (uint64_t *)(mem + pdpt);
	for (i = 0; i < nr_pd; i++)
		e[i] = (pd + i * PAGE_SIZE) | PTE_P | PTE_RW | PTE_US;
	e = (uint64_t *)(mem + pd);
	for (i = 0; i < nr_2m; i++)
		e[i] = (i * MIB2) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	return 0;
}

int hyp_loader_setup_boot(void *mem, uint64_t mem_size, const char *cmdline,
			  bool page_tables)
{
	uint8_t *m = mem;
	struct hvm_start_info *si;
	struct hvm_memmap_table_entry *mm;
	struct ferry_ctl *ctl;
	uint64_t mm_gpa, cl_gpa;
	size_t cl_len = cmdline ? strlen(cmdline) : 0;
	int err;

	if (mem_size % PAGE_SIZE || mem_size <= FERRY_ARENA_GPA) {
		log_err("loader: guest RAM of %llu bytes: need a "
			"multiple of 4 KiB above %u MiB",
			(unsigned long long)mem_size, FERRY_ARENA_GPA >> 20);
		return -EINVAL;
	}
	mm_gpa = FERRY_START_INFO_GPA + sizeof(*si);
	cl_gpa = mm_gpa + sizeof(*mm);
	if (cl_gpa + cl_len + 1 > FERRY_CTL_GPA) {
		log_err("loader: command line of %zu bytes too long "
			"(max %llu)", cl_len,
			(unsigned long long)(FERRY_CTL_GPA - cl_gpa - 1));
		return -E2BIG;
	}
	if (page_tables) {
		err = write_page_tables(m, mem_size);
		if (err)
			return err;
	}

	memset(m + FERRY_START_INFO_GPA, 0, PAGE_SIZE);
	si = (struct hvm_start_info *)(m + FERRY_START_INFO_GPA);
	si->magic = XEN_HVM_START_MAGIC_VALUE;
	si->version = 1;
	si->cmdline_paddr = cl_gpa;
	si->memmap_paddr = mm_gpa;
	si->memmap_entries = 1;
	mm = (struct hvm_memmap_table_entry *)(m + mm_gpa);
	mm->addr = 0;
	mm->size = mem_size;
	mm->type = XEN_HVM_MEMMAP_TYPE_RAM;
	if (cl_len)
		memcpy(m + cl_gpa, cmdline, cl_len);

	memset(m + FERRY_CTL_GPA, 0, PAGE_SIZE);
	ctl = (struct ferry_ctl *)(m + FERRY_CTL_GPA);
	ctl->magic = FERRY_CTL_MAGIC;
	return 0;
}
