/* edgekd C engine: element-wise int8 ops (ADD, MUL, MINIMUM, MAXIMUM, requantize/RELU, RELU6, HARD_SWISH,
 * LOGISTIC, SOFTMAX) with tflite-micro's reference arithmetic. Output i depends on input i alone (or on a broadcast
 * input), so the generator may run them in place. */
#include "edgekd_kernels.h"

#define EDGEKD_BCAST_LOOP(P, BODY)                                                    \
  do {                                                                                \
    int32_t i0, i1, i2, i3, n = 0;                                                    \
    if ((P)->flat) {                                                                  \
      for (n = 0; n < (P)->size; ++n) {                                               \
        const int32_t ia = n, ib = n;                                                 \
        BODY;                                                                         \
      }                                                                               \
      break;                                                                          \
    }                                                                                 \
    for (i0 = 0; i0 < (P)->dims[0]; ++i0)                                             \
      for (i1 = 0; i1 < (P)->dims[1]; ++i1)                                           \
        for (i2 = 0; i2 < (P)->dims[2]; ++i2)                                         \
          for (i3 = 0; i3 < (P)->dims[3]; ++i3, ++n) {                                \
            const int32_t ia = i0 * (P)->s1[0] + i1 * (P)->s1[1] + i2 * (P)->s1[2] + i3 * (P)->s1[3]; \
            const int32_t ib = i0 * (P)->s2[0] + i1 * (P)->s2[1] + i2 * (P)->s2[2] + i3 * (P)->s2[3]; \
            BODY;                                                                     \
          }                                                                           \
  } while (0)

static inline int32_t mbqm_smaller(int32_t x, int32_t mult, int left_shift) {
  return edgekd_rdbpot(edgekd_srdhm(x, mult), -left_shift);
}

static inline int8_t add1(int32_t a, int32_t b, const edgekd_add_params *p) {
  const int32_t x = mbqm_smaller((a + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
  const int32_t y = mbqm_smaller((b + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
  const int32_t r = mbqm_smaller(x + y, p->out_mult, p->out_shift) + p->out_offset;
  return (int8_t)edgekd_clamp(r, p->act_min, p->act_max);
}

void edgekd_add_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_add_params *p) {
  EDGEKD_BCAST_LOOP(&p->b, out[n] = add1(a[ia], b[ib], p));
}

static inline int8_t mul1(int32_t a, int32_t b, const edgekd_mul_params *p) {
  const int32_t r = p->out_offset + edgekd_mbqm((a + p->in1_offset) * (b + p->in2_offset), p->out_mult, p->out_shift);
  return (int8_t)edgekd_clamp(r, p->act_min, p->act_max);
}

void edgekd_mul_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_mul_params *p) {
  EDGEKD_BCAST_LOOP(&p->b, out[n] = mul1(a[ia], b[ib], p));
}

void edgekd_min_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_bcast *p) {
  EDGEKD_BCAST_LOOP(p, out[n] = a[ia] < b[ib] ? a[ia] : b[ib]);
}

void edgekd_max_s8(const int8_t *a, const int8_t *b, int8_t *out, const edgekd_bcast *p) {
  EDGEKD_BCAST_LOOP(p, out[n] = a[ia] > b[ib] ? a[ia] : b[ib]);
}

/* QUANTIZE int8->int8 and RELU: rescale onto the output's quantization, then clamp. */
void edgekd_requant_s8(const int8_t *in, int8_t *out, const edgekd_requant_params *p) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t r = p->out_zp + edgekd_mbqm(in[i] - p->in_zp, p->mult, p->shift);
    out[i] = (int8_t)edgekd_clamp(r, p->act_min, p->act_max);
  }
}

/* An element-wise function of one int8 value, tabulated at generation time (HARD_SWISH). */
void edgekd_lut_s8(const int8_t *in, int8_t *out, int32_t size, const int8_t *table) {
  int32_t i;
  for (i = 0; i < size; ++i) out[i] = table[(uint8_t)in[i]];
}

/* RELU6 (and any clamp on unchanged quantization). */
void edgekd_clip_s8(const int8_t *in, int8_t *out, int32_t size, int32_t lo, int32_t hi) {
  int32_t i;
  for (i = 0; i < size; ++i) out[i] = (int8_t)edgekd_clamp(in[i], lo, hi);
}

/* ---- 16-bit fixed point for HARD_SWISH ---- */
static inline int16_t srdhm16(int16_t a, int16_t b) {
  int32_t ab;
  int16_t nudge;
  if (a == b && a == INT16_MIN) return INT16_MAX;
  ab = (int32_t)a * (int32_t)b;
  nudge = (int16_t)(ab >= 0 ? (1 << 14) : (1 - (1 << 14)));
  return (int16_t)((ab + nudge) / (1 << 15));
}

static inline int16_t sdhm16(int16_t a, int16_t b) { /* truncating, as hard_swish.h */
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static inline int16_t rdbpot16(int16_t x, int exponent) {
  const int32_t mask = (1 << exponent) - 1;
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

static inline int16_t sat_left_shift16(int16_t v, int amount) {
  int64_t r = (int64_t)v * ((int64_t)1 << amount);
  if (r > INT16_MAX) r = INT16_MAX;
  if (r < INT16_MIN) r = INT16_MIN;
  return (int16_t)r;
}

void edgekd_hard_swish_s8(const int8_t *in, int8_t *out, const edgekd_hard_swish_params *p) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int16_t v = (int16_t)(in[i] - p->in_zp);
    const int16_t hires = (int16_t)(v * (1 << 7));
    const int16_t preshift = srdhm16(hires, (int16_t)p->out_mult);
    int16_t reluish = hires;
    int16_t o;
    if (p->reluish_exp > 0) reluish = sat_left_shift16(reluish, p->reluish_exp - 1);
    reluish = srdhm16(reluish, (int16_t)p->reluish_mult);
    if (p->reluish_exp > 0) reluish = sat_left_shift16(reluish, 1);
    if (p->reluish_exp < 0) reluish = rdbpot16(reluish, -p->reluish_exp);
    reluish = (int16_t)((reluish + (1 << 15)) >> 1);
    o = rdbpot16(sdhm16(reluish, preshift), -p->out_exp);
    o = (int16_t)(o + p->out_zp);
    out[i] = (int8_t)edgekd_clamp(o, -128, 127);
  }
}

/* ---- gemmlowp's logistic on Q4.27 ---- */
static inline int32_t sat_mul_pot(int32_t x, int exponent) {
  if (exponent > 0) {
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
  }
  return exponent < 0 ? edgekd_rdbpot(x, -exponent) : x;
}

/* exp(x) for x in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668, one_third = 715827883;
  const int32_t x = a + (1 << 28);
  const int32_t x2 = edgekd_srdhm(x, x), x3 = edgekd_srdhm(x2, x), x4 = edgekd_srdhm(x2, x2);
  const int32_t x4_over_4 = edgekd_rdbpot(x4, 2);
  const int32_t poly = edgekd_rdbpot(edgekd_srdhm(x4_over_4 + x3, one_third) + x2, 1);
  return constant_term + edgekd_srdhm(constant_term, x + poly);
}

static int32_t exp_on_negative_values(int32_t a, int integer_bits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int frac = 31 - integer_bits;
  const int32_t quarter = (int32_t)1 << (frac - 2);
  const int32_t a_mod = (a & (quarter - 1)) - quarter;
  int32_t result = exp_quarter(sat_mul_pot(a_mod, integer_bits));
  const int32_t remainder = a_mod - a;
  int e;
  for (e = -2; e <= 4; ++e) {
    if (integer_bits > e && (remainder & ((int32_t)1 << (frac + e)))) result = edgekd_srdhm(result, multipliers[e + 2]);
  }
  if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0;
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in (0, 1): Newton-Raphson in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t one_f2 = (int32_t)1 << 29;
  int32_t x = 1515870810 + edgekd_srdhm(half_den, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = one_f2 - edgekd_srdhm(half_den, x);
    x = x + sat_mul_pot(edgekd_srdhm(x, one_minus), 2);
  }
  return sat_mul_pot(x, 1);
}

void edgekd_logistic_s8(const int8_t *in, int8_t *out, const edgekd_logistic_params *p) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t v = in[i] - p->in_zp;
    if (v <= -p->radius) {
      out[i] = -128;
    } else if (v >= p->radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = edgekd_mbqm(v, p->mult, p->left_shift);
      const int32_t abs_q4 = q4 > 0 ? q4 : -q4;
      const int32_t positive = one_over_one_plus_x(exp_on_negative_values(-abs_q4, 4));
      const int32_t q0 = q4 == 0 ? (1 << 30) : (q4 > 0 ? positive : INT32_MAX - positive);
      out[i] = (int8_t)edgekd_clamp(edgekd_rdbpot(q0, 31 - 8) - 128, -128, 127);
    }
  }
}

/* ---- SOFTMAX: gemmlowp fixed-point exp and reciprocal (no table), as the reference kernel ---- */
static int clz32(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void edgekd_softmax_s8(const int8_t *in, int8_t *out, const edgekd_softmax_params *p) {
  int32_t r, c;
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->depth;
    int8_t *o = out + r * p->depth;
    int32_t max_v = -128, sum = 0, scale, headroom, bits_over_unit;
    for (c = 0; c < p->depth; ++c) max_v = x[c] > max_v ? x[c] : max_v;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_v;
      if (diff >= p->diff_min) {
        const int32_t scaled = edgekd_srdhm(diff * (1 << p->left_shift), p->mult);
        sum += edgekd_rdbpot(exp_on_negative_values(scaled, 5), 12); /* Rescale to Q12.19 */
      }
    }
    headroom = clz32((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    scale = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
    /* Read x[c] before writing o[c]: the generator may run softmax in place. */
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_v;
      int32_t v = -128;
      if (diff >= p->diff_min) {
        const int32_t scaled = edgekd_srdhm(diff * (1 << p->left_shift), p->mult);
        const int32_t e = exp_on_negative_values(scaled, 5);
        v = edgekd_rdbpot(edgekd_srdhm(scale, e), bits_over_unit + 31 - 8) - 128;
      }
      o[c] = (int8_t)edgekd_clamp(v, -128, 127);
    }
  }
}
