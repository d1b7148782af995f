/* SPDX-License-Identifier: MIT */
/*
 * Entry points. Two ways in, one 64-bit path:
 *  - _start (ELF e_entry): Ferry's direct 64-bit entry, long mode and the
 *    loader's identity map already on, rbx = hvm_start_info, rsi = vCPU id.
 *  - pvh_entry32 (Xen PVH note): 32-bit protected mode, paging off,
 *    ebx = hvm_start_info; builds its own identity map and joins _start.
 * Everything here runs at CPL0, which kvm_pvm emulates one instruction at
 * a time: keep it short.
 */
#include "kernel.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define SI_VERSION 4
#define SI_MEMMAP_PADDR 40
#define SI_MEMMAP_ENTRIES 48
#define MM_ENTRY_SIZE 24

	/* p_align 4: QEMU pads the note name to the segment alignment. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_entry32

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	cld
	cmp $MAX_VCPUS, %rsi
	jae 9f
	lea 1(%rsi), %rax
	shl $KSTACK_SHIFT, %rax
	lea kstacks(%rax), %rsp
	mov %rbx, %rdi
	call cpl0_main
9:	hlt
	jmp 9b

	.code32
	.globl pvh_entry32
pvh_entry32:
	cli
	cld
	mov %ebx, %edi

	/* ebp = GiB to map: highest end of RAM in the memmap, rounded up. */
	mov $PVH_MIN_GIB, %ebp
	cmpl $1, SI_VERSION(%edi)
	jb 3f
	mov SI_MEMMAP_PADDR(%edi), %esi
	mov SI_MEMMAP_ENTRIES(%edi), %ecx
	test %ecx, %ecx
	jz 3f
1:	cmpl $1, 16(%esi)		/* RAM */
	jne 2f
	mov 0(%esi), %eax
	mov 4(%esi), %edx
	add 8(%esi), %eax
	adc 12(%esi), %edx
	add $0x3fffffff, %eax
	adc $0, %edx
	cmp $(PVH_MAX_GIB >> 2), %edx	/* beyond the cap: take the cap */
	jae 4f
	shrd $30, %edx, %eax
	cmp %ebp, %eax
	jbe 2f
	mov %eax, %ebp
2:	add $MM_ENTRY_SIZE, %esi
	dec %ecx
	jnz 1b
	jmp 3f
4:	mov $PVH_MAX_GIB, %ebp
3:
	/* PML4[0] -> PDPT, PDPT[i] -> PD i, PD entries 2 MiB pages. U/S is
	 * set at every level because the workloads run at CPL3. */
	movl $(pvh_pdpt + PTE_P + PTE_RW + PTE_US), pvh_pml4
	xor %ecx, %ecx
	mov $(pvh_pd + PTE_P + PTE_RW + PTE_US), %eax
5:	mov %eax, pvh_pdpt(, %ecx, 8)
	add $4096, %eax
	inc %ecx
	cmp %ebp, %ecx
	jb 5b
	mov %ebp, %ecx
	shl $9, %ecx
	xor %edx, %edx
6:	mov %edx, %eax
	shl $21, %eax
	or $(PTE_P + PTE_RW + PTE_US + PTE_PS), %eax
	mov %eax, pvh_pd(, %edx, 8)
	mov %edx, %eax
	shr $11, %eax
	mov %eax, pvh_pd + 4(, %edx, 8)
	inc %edx
	cmp %ecx, %edx
	jb 6b

	mov $pvh_pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	mov %eax, %cr4
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov $(CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE), %eax
	mov %eax, %cr0
	lgdt boot_gdtr
	ljmp $GDT_KCODE, $pvh_entry64

	.code64
pvh_entry64:
	mov $GDT_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %edi, %ebx
	xor %esi, %esi			/* PVH starts only the BSP */
	jmp _start

/* enter_user(rip, rsp, arg0, arg1): iretq to CPL3 with IOPL 3. */
	.globl enter_user
enter_user:
	pushq $(GDT_UDATA | 3)
	pushq %rsi
	pushq $USER_RFLAGS
	pushq $(GDT_UCODE | 3)
	pushq %rdi
	mov %rdx, %rdi
	mov %rcx, %rsi
	iretq

/* Exception stubs, 16 bytes apart so cpl0.c can compute their addresses.
 * Vectors without an error code push a zero to keep one frame layout. */
	.macro EXC vec, err
	.balign 16
	.if \err == 0
	pushq $0
	.endif
	pushq $\vec
	jmp exc_common
	.endm

	.balign 16
	.globl exc_stubs
exc_stubs:
	EXC 0, 0
	EXC 1, 0
	EXC 2, 0
	EXC 3, 0
	EXC 4, 0
	EXC 5, 0
	EXC 6, 0
	EXC 7, 0
	EXC 8, 1
	EXC 9, 0
	EXC 10, 1
	EXC 11, 1
	EXC 12, 1
	EXC 13, 1
	EXC 14, 1
	EXC 15, 0
	EXC 16, 0
	EXC 17, 1
	EXC 18, 0
	EXC 19, 0
	EXC 20, 0
	EXC 21, 1
	EXC 22, 0
	EXC 23, 0
	EXC 24, 0
	EXC 25, 0
	EXC 26, 0
	EXC 27, 0
	EXC 28, 0
	EXC 29, 1
	EXC 30, 1
	EXC 31, 0

exc_common:
	mov %rsp, %rdi
	and $-16, %rsp
	call exc_handler
7:	hlt
	jmp 7b

	.section .rodata
	.balign 8
boot_gdt:
	.quad 0
	.quad 0x00af9b000000ffff	/* 64-bit code */
	.quad 0x00cf93000000ffff	/* data */
boot_gdtr:
	.word 3 * 8 - 1
	.long boot_gdt

	.section .bss
	.balign 4096
	.globl kstacks
kstacks:
	.skip MAX_VCPUS * KSTACK_SIZE
pvh_pml4:
	.skip 4096
pvh_pdpt:
	.skip 4096
pvh_pd:
	.skip PVH_MAX_GIB * 4096

	.section .note.GNU-stack, "", @progbits
