/* Reset and fault handling for the edgekd firmware harness (Cortex-M4F / Cortex-M7 on QEMU's mps2 boards).
 * No CMSIS and no newlib start files: the vector table, the .data copy and the .bss zeroing are here so the
 * firmware's flash and RAM are only what the linker script places. */
#include <stdint.h>
#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

/* Only the core's own exceptions: the harness enables no interrupt, so a vector past SysTick never fires. */
__attribute__((section(".isr_vector"), used)) void (*const edgekd_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0;
#if defined(__ARM_FP)
    /* CP10/CP11 full access: a hard-float build faults on its first VFP instruction otherwise. */
    *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
    __asm volatile("dsb\n\tisb");
#endif
    semihost_exit(main() == 0);
}

void Fault_Handler(void)
{
    /* A crash in the model must end the emulator with a message, not spin until the host's timeout. */
    semihost_write0("EDGEKD_FAULT hard fault or unexpected exception\n");
    semihost_exit(0);
}
