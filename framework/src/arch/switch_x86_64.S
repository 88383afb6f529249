/*
 * switch_x86_64.S - fiber context switch for x86-64 System V.
 *
 * petrel__ctx_switch(void **save_sp, void *load_sp): pushes the callee-saved
 * registers and the floating-point control state (MXCSR, x87 control word) on
 * the current stack, stores the stack pointer in *save_sp, loads load_sp and
 * pops the same frame from it. Caller-saved registers need no saving: the
 * switch is an ordinary function call for the compiler.
 *
 * A new fiber's stack is prepared by fiber.c with the frame this function
 * pops: fp control, r15, r14, r13 (entry fn), r12 (arg), rbx, rbp, and
 * petrel__ctx_trampoline as the return address.
 */
    .text
    .globl petrel__ctx_switch
    .hidden petrel__ctx_switch
    .type petrel__ctx_switch, @function
petrel__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size petrel__ctx_switch, .-petrel__ctx_switch

/* First code a new fiber runs: call entry(arg); the entry never returns. */
    .globl petrel__ctx_trampoline
    .hidden petrel__ctx_trampoline
    .type petrel__ctx_trampoline, @function
petrel__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size petrel__ctx_trampoline, .-petrel__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
