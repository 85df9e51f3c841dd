/* edgekd C engine: int8 kernels with TFLite's integer arithmetic (generated models call these).
 *
 * Every kernel reproduces tflite-micro's reference kernel bit for bit: the same fixed-point multiply
 * (SaturatingRoundingDoublingHighMul), the same rounding shift (RoundingDivideByPOT), the same order of
 * operations. Parameters are computed at generation time by edgekd.ccompile and stored as const structs.
 * C99, no allocation, no libm; memcpy/memset only. Batch 1, NHWC layout.
 */
#ifndef EDGEKD_KERNELS_H
#define EDGEKD_KERNELS_H

#include <stdint.h>
#include <string.h>

typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *filter;       /* conv: [out_c][k_h][k_w][in_c]; depthwise: [k_h][k_w][out_c] */
  const int32_t *bias;        /* per output channel */
  const int32_t *folded_bias; /* bias + in_offset * sum(filter): windows wholly inside the input */
  const int32_t *mult;
  const int8_t *shift;
} edgekd_conv_params;

typedef struct {
  int32_t rows, depth, units, per_channel;
  int32_t out_offset, act_min, act_max;
  const int8_t *filter;       /* [units][depth] */
  const int32_t *folded_bias; /* bias + in_offset * sum(filter row) */
  const int32_t *mult;
  const int8_t *shift;
} edgekd_fc_params;

/* Element-wise binary ops over 4-D shapes; stride 0 where an input is broadcast. */
typedef struct {
  int32_t flat, size;
  int32_t dims[4], s1[4], s2[4];
} edgekd_bcast;

typedef struct {
  edgekd_bcast b;
  int32_t in1_offset, in2_offset, out_offset, left_shift;
  int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} edgekd_add_params;

typedef struct {
  edgekd_bcast b;
  int32_t in1_offset, in2_offset, out_offset, out_mult, out_shift, act_min, act_max;
} edgekd_mul_params;

typedef struct {
  int32_t size, in_zp, out_zp, mult, shift, act_min, act_max;
} edgekd_requant_params;

typedef struct {
  int32_t size, in_zp, out_zp;
  int32_t reluish_mult, reluish_exp, out_mult, out_exp;
} edgekd_hard_swish_params;

typedef struct {
  int32_t size, in_zp, radius, mult, left_shift;
} edgekd_logistic_params;

typedef struct {
  int32_t rows, depth, mult, left_shift, diff_min;
} edgekd_softmax_params;

typedef struct {
  int32_t in_h, in_w, c, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} edgekd_pool_params;

typedef struct {
  int32_t outer, reduce, inner;
  int32_t same_quant;          /* 1: the plain integer mean tflite-micro uses when in/out quantization match */
  int32_t in_zp, out_zp, mult, shift; /* otherwise QuantizedMeanOrSum: 1/count folded into the multiplier */
} edgekd_mean_params;

typedef struct {
  int32_t in_dims[4], before[4], after[4];
  int32_t value;
} edgekd_pad_params;

typedef struct {
  int32_t count, outer;
  int32_t inner[8];            /* bytes each input contributes per outer step */
} edgekd_concat_params;

/* ---- TFLite / gemmlowp fixed point, exactly ---- */

/* SaturatingRoundingDoublingHighMul. The reference's (ab + nudge) / 2^31, with its sign-dependent nudge and
 * truncating division, equals floor((ab + 2^30) / 2^31) for every ab: one multiply, an add and a shift. */
static inline int32_t edgekd_srdhm_nosat(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t edgekd_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return edgekd_srdhm_nosat(a, b);
}

static inline int32_t edgekd_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier (double rounding, TFLite's default build). A quantized multiplier is never
 * INT32_MIN, so the saturating case of the high multiply cannot arise. */
static inline int32_t edgekd_mbqm(int32_t x, int32_t mult, int shift) {
  if (shift > 0) return edgekd_srdhm_nosat(x * (1 << shift), mult);
  return edgekd_rdbpot(edgekd_srdhm_nosat(x, mult), -shift);
}

static inline int32_t edgekd_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- kernels ---- */
void edgekd_conv2d_s8(const int8_t *in, int8_t *out, const edgekd_conv_params *p);
void edgekd_dwconv2d_s8(const int8_t *in, int8_t *out, const edgekd_conv_params *p);
void edgekd_fc_s8(const int8_t *in, int8_t *out, const edgekd_fc_params *p);
void edgekd_add_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_add_params *p);
void edgekd_mul_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_mul_params *p);
void edgekd_min_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_bcast *p);
void edgekd_max_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_bcast *p);
void edgekd_requant_s8(const int8_t *in, int8_t *out, const edgekd_requant_params *p);
void edgekd_lut_s8(const int8_t *in, int8_t *out, int32_t size, const int8_t *table);
void edgekd_clip_s8(const int8_t *in, int8_t *out, int32_t size, int32_t lo, int32_t hi);
void edgekd_hard_swish_s8(const int8_t *in, int8_t *out, const edgekd_hard_swish_params *p);
void edgekd_logistic_s8(const int8_t *in, int8_t *out, const edgekd_logistic_params *p);
void edgekd_softmax_s8(const int8_t *in, int8_t *out, const edgekd_softmax_params *p);
void edgekd_avgpool_s8(const int8_t *in, int8_t *out, const edgekd_pool_params *p);
void edgekd_maxpool_s8(const int8_t *in, int8_t *out, const edgekd_pool_params *p);
void edgekd_mean_s8(const int8_t *in, int8_t *out, const edgekd_mean_params *p);
void edgekd_pad_s8(const int8_t *in, int8_t *out, const edgekd_pad_params *p);
void edgekd_concat_s8(const int8_t *const *ins, int8_t *out, const edgekd_concat_params *p);

#endif /* EDGEKD_KERNELS_H */
