/* Instructions per kernel, for `edgekd firmware --by-kernel`: that build links with -Wl,--wrap=K for each kernel K
 * below, so the model's calls of K land in __wrap_K, which reads the timer around the real kernel. Only calls from
 * the model's invoke are timed (depth 0): the kernels themselves run unchanged. Every kernel here takes at most four
 * word-sized arguments, all passed in r0-r3, so one forwarding signature serves them all. */
#include <stdint.h>
#include "kernel_timing.h"

#define TIMER_VALUE (*(volatile uint32_t *)0x40000004u)

uint32_t edgekd_kernel_ticks[EDGEKD_KERNEL_COUNT];
uint32_t edgekd_kernel_calls[EDGEKD_KERNEL_COUNT];
static int depth;

/* Weak: a model that never uses a kernel links without it, and its wrapper is never called. */
#define WRAP(index, name)                                                                   \
    extern void __real_##name(void *a, void *b, void *c, void *d) __attribute__((weak));  \
    void __wrap_##name(void *a, void *b, void *c, void *d);                                 \
    void __wrap_##name(void *a, void *b, void *c, void *d)                                  \
    {                                                                                       \
        uint32_t t0;                                                                        \
        if (depth++) {                                                                      \
            __real_##name(a, b, c, d);                                                      \
        } else {                                                                            \
            t0 = TIMER_VALUE;                                                               \
            __real_##name(a, b, c, d);                                                      \
            edgekd_kernel_ticks[index] += t0 - TIMER_VALUE;                                 \
            edgekd_kernel_calls[index]++;                                                   \
        }                                                                                   \
        depth--;                                                                            \
    }

EDGEKD_KERNELS(WRAP)

#define NAME(index, name) #name,
const char *const edgekd_kernel_names[EDGEKD_KERNEL_COUNT] = {EDGEKD_KERNELS(NAME)};
