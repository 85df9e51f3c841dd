/* The kernels `--by-kernel` times (edgekd.ccompile's, each with at most four word-sized arguments); the host's
 * build.py passes -Wl,--wrap for the same names (KERNELS there). */
#ifndef EDGEKD_KERNEL_TIMING_H
#define EDGEKD_KERNEL_TIMING_H
#include <stdint.h>

#define EDGEKD_KERNELS(X)                                                                                      \
    X(0, edgekd_conv2d_s8) X(1, edgekd_dwconv2d_s8) X(2, edgekd_fc_s8) X(3, edgekd_add_s8) X(4, edgekd_mul_s8) \
    X(5, edgekd_min_s8) X(6, edgekd_max_s8) X(7, edgekd_requant_s8) X(8, edgekd_lut_s8)                        \
    X(9, edgekd_hard_swish_s8) X(10, edgekd_logistic_s8) X(11, edgekd_softmax_s8) X(12, edgekd_avgpool_s8)     \
    X(13, edgekd_maxpool_s8) X(14, edgekd_mean_s8) X(15, edgekd_pad_s8) X(16, edgekd_concat_s8)
#define EDGEKD_KERNEL_COUNT 17

extern uint32_t edgekd_kernel_ticks[EDGEKD_KERNEL_COUNT];
extern uint32_t edgekd_kernel_calls[EDGEKD_KERNEL_COUNT];
extern const char *const edgekd_kernel_names[EDGEKD_KERNEL_COUNT];
#endif
