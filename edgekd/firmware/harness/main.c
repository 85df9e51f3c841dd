/* The edgekd firmware harness: runs the compiled model on every eval sample built into the image and prints,
 * through semihosting, one line per sample: its status, the timer ticks the inference took, the stack it used
 * and every output byte in hex. The host (edgekd.firmware.emulate) parses these lines.
 *
 * Ticks are read from the CMSDK APB timer 0 at 0x40000000 (a 32-bit down counter on the 25 MHz system clock
 * of the mps2 boards). Under QEMU's -icount shift=0 virtual time advances 1 ns per instruction, so ticks
 * count instructions, not cycles; a calibration loop of a known instruction count printed first gives the
 * host the instructions-per-tick ratio instead of trusting the board's clock figure. */
#include <stdint.h>
#include <string.h>
#include "edgekd_model.h"
#include "semihost.h"
#ifdef EDGEKD_KERNEL_TIMING
#include "kernel_timing.h"
#endif

extern const int8_t edgekd_samples[][EDGEKD_MODEL_INPUT_SIZE];
extern const uint32_t edgekd_sample_count;
extern uint32_t _sstack;

#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL (*(volatile uint32_t *)(TIMER0_BASE + 0x0))
#define TIMER_VALUE (*(volatile uint32_t *)(TIMER0_BASE + 0x4))
#define TIMER_RELOAD (*(volatile uint32_t *)(TIMER0_BASE + 0x8))
#define STACK_PAINT 0xC5AC5AC5u
#define CAL_LOOPS 1000000u

#ifdef EDGEKD_HARNESS_ONLY
/* The harness without a model, built to subtract its flash from the full firmware's. */
int edgekd_model_invoke(const int8_t *input, int8_t *output)
{
    memcpy(output, input, EDGEKD_MODEL_OUTPUT_SIZE < EDGEKD_MODEL_INPUT_SIZE ? EDGEKD_MODEL_OUTPUT_SIZE : EDGEKD_MODEL_INPUT_SIZE);
    return 0;
}
#endif

static int8_t output[EDGEKD_MODEL_OUTPUT_SIZE];
static char line[64 + 2 * EDGEKD_MODEL_OUTPUT_SIZE];

static char *put_str(char *p, const char *s)
{
    while (*s) *p++ = *s++;
    return p;
}

static char *put_u32(char *p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) *p++ = digits[--n];
    return p;
}

static inline uint32_t stack_pointer(void)
{
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static void timer_start(void)
{
    TIMER_CTRL = 0;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1; /* enable, system clock, no interrupt */
}

/* A loop of exactly 2 * CAL_LOOPS instructions (subs + bne), timed like an inference. */
static uint32_t calibration_ticks(void)
{
    uint32_t n = CAL_LOOPS, t0, t1;
    t0 = TIMER_VALUE;
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    t1 = TIMER_VALUE;
    return t0 - t1;
}

int main(void)
{
    char *p = line;
    uint32_t i, k, worst_stack = 0;
    int failures = 0;
    static const char hex[] = "0123456789abcdef";

    timer_start();
    p = put_str(p, "EDGEKD_FW 1 samples=");
    p = put_u32(p, edgekd_sample_count);
    p = put_str(p, " input=");
    p = put_u32(p, EDGEKD_MODEL_INPUT_SIZE);
    p = put_str(p, " output=");
    p = put_u32(p, EDGEKD_MODEL_OUTPUT_SIZE);
    p = put_str(p, "\n");
    *p = 0;
    semihost_write0(line);

    p = put_str(line, "CAL insns=");
    p = put_u32(p, 2u * CAL_LOOPS);
    p = put_str(p, " ticks=");
    p = put_u32(p, calibration_ticks());
    p = put_str(p, "\n");
    *p = 0;
    semihost_write0(line);

    for (i = 0; i < edgekd_sample_count; ++i) {
        /* main's frame is above sp and the painting loop keeps to registers, so every painted word below sp that
         * changed was written by the model's invoke (or the exception frame of a fault). */
        uint32_t sp = stack_pointer(), t0, t1, used = 0;
        volatile uint32_t *w;
        int rc;
        for (w = &_sstack; (uint32_t)w < sp; ++w) *w = STACK_PAINT;
        t0 = TIMER_VALUE;
        rc = edgekd_model_invoke(edgekd_samples[i], output);
        t1 = TIMER_VALUE;
        for (w = &_sstack; (uint32_t)w < sp && *w == STACK_PAINT; ++w) {
        }
        used = sp - (uint32_t)w;
        if (used > worst_stack) worst_stack = used;
        if (rc != 0) failures++;
        p = put_str(line, "S ");
        p = put_u32(p, i);
        p = put_str(p, rc == 0 ? " 0 " : " 1 ");
        p = put_u32(p, t0 - t1);
        *p++ = ' ';
        p = put_u32(p, used);
        *p++ = ' ';
        for (k = 0; k < EDGEKD_MODEL_OUTPUT_SIZE; ++k) {
            *p++ = hex[((uint8_t)output[k]) >> 4];
            *p++ = hex[((uint8_t)output[k]) & 15];
        }
        *p++ = '\n';
        *p = 0;
        semihost_write0(line);
    }
#ifdef EDGEKD_KERNEL_TIMING
    for (k = 0; k < EDGEKD_KERNEL_COUNT; ++k) {
        if (!edgekd_kernel_calls[k]) continue;
        p = put_str(line, "K ");
        p = put_str(p, edgekd_kernel_names[k]);
        *p++ = ' ';
        p = put_u32(p, edgekd_kernel_calls[k]);
        *p++ = ' ';
        p = put_u32(p, edgekd_kernel_ticks[k]);
        *p++ = '\n';
        *p = 0;
        semihost_write0(line);
    }
#endif
    p = put_str(line, "DONE stack=");
    p = put_u32(p, worst_stack);
    p = put_str(p, " failures=");
    p = put_u32(p, (uint32_t)failures);
    p = put_str(p, "\n");
    *p = 0;
    semihost_write0(line);
    return failures ? 1 : 0;
}
