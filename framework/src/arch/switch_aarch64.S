/*
 * switch_aarch64.S - fiber context switch for AArch64 (AAPCS64).
 *
 * petrel__ctx_switch(void **save_sp, void *load_sp): saves x19-x30, d8-d15
 * and FPCR in a 176-byte frame on the current stack, stores sp in *save_sp,
 * loads load_sp and restores the same frame. fiber.c prepares a new fiber's
 * frame with x19 = arg, x20 = entry, x30 = petrel__ctx_trampoline.
 */
    .text
    .globl petrel__ctx_switch
    .hidden petrel__ctx_switch
    .type petrel__ctx_switch, %function
    .p2align 2
petrel__ctx_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldr x9, [sp, #160]
    msr fpcr, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size petrel__ctx_switch, .-petrel__ctx_switch

    .globl petrel__ctx_trampoline
    .hidden petrel__ctx_trampoline
    .type petrel__ctx_trampoline, %function
    .p2align 2
petrel__ctx_trampoline:
    mov x0, x19
    blr x20
    brk #0
    .size petrel__ctx_trampoline, .-petrel__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
