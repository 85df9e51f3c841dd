/* ARM semihosting (bkpt 0xAB on M-profile): QEMU with -semihosting-config enable=on,target=native answers these. */
#ifndef EDGEKD_SEMIHOST_H
#define EDGEKD_SEMIHOST_H
#include <stdint.h>

#define SEMIHOST_SYS_WRITE0 0x04
#define SEMIHOST_SYS_EXIT 0x18
/* Reason codes: QEMU exits 0 for ApplicationExit and 1 for anything else. */
#define SEMIHOST_ADP_APPLICATION_EXIT 0x20026
#define SEMIHOST_ADP_RUNTIME_ERROR 0x20023

static inline int semihost_call(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void semihost_write0(const char *text) { semihost_call(SEMIHOST_SYS_WRITE0, text); }

static inline __attribute__((noreturn)) void semihost_exit(int ok)
{
    semihost_call(SEMIHOST_SYS_EXIT, (const void *)(uintptr_t)(ok ? SEMIHOST_ADP_APPLICATION_EXIT : SEMIHOST_ADP_RUNTIME_ERROR));
    for (;;) {
    }
}
#endif
