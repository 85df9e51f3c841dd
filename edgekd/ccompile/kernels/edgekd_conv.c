/* edgekd C engine: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, int8 with per-channel requantization.
 *
 * Windows wholly inside the input start from a folded bias (bias + input_offset * sum of the weights), so
 * the inner loop is a plain int8 dot product; windows over the padding add (x + input_offset) * w for the
 * in-bounds taps only, as the reference kernel does. Both give the reference kernel's int32 sum exactly.
 * With the DSP extension the dot product runs two lanes per SMLAD (sign-extended pairs, SXTB16).
 */
#include "edgekd_kernels.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define EDGEKD_DSP 1
#endif

static inline int8_t requant(int32_t acc, int32_t mult, int shift, int32_t out_offset, int32_t lo, int32_t hi) {
  acc = edgekd_mbqm(acc, mult, shift) + out_offset;
  return (int8_t)edgekd_clamp(acc, lo, hi);
}

#ifdef EDGEKD_DSP
/* Rotate right by 8: the compiler folds it into SXTB16's rotate operand. */
static inline uint32_t ror8(uint32_t v) { return (v >> 8) | (v << 24); }

static inline uint32_t load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
#endif

/* a0 += x . w0, a1 += x . w1 over n int8 values. */
static inline void dot2(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, int32_t *a0, int32_t *a1) {
  int32_t s0 = *a0, s1 = *a1;
  int32_t i = 0;
#ifdef EDGEKD_DSP
  for (; i + 4 <= n; i += 4) {
    const uint32_t xv = load4(x + i), v0 = load4(w0 + i), v1 = load4(w1 + i);
    const uint32_t xe = __sxtb16(xv), xo = __sxtb16(ror8(xv));
    s0 = (int32_t)__smlad(xe, __sxtb16(v0), (uint32_t)s0);
    s0 = (int32_t)__smlad(xo, __sxtb16(ror8(v0)), (uint32_t)s0);
    s1 = (int32_t)__smlad(xe, __sxtb16(v1), (uint32_t)s1);
    s1 = (int32_t)__smlad(xo, __sxtb16(ror8(v1)), (uint32_t)s1);
  }
#endif
  for (; i < n; ++i) {
    const int32_t xi = x[i];
    s0 += xi * w0[i];
    s1 += xi * w1[i];
  }
  *a0 = s0;
  *a1 = s1;
}

static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc) {
  int32_t i = 0;
#ifdef EDGEKD_DSP
  for (; i + 4 <= n; i += 4) {
    const uint32_t xv = load4(x + i), v = load4(w + i);
    acc = (int32_t)__smlad(__sxtb16(xv), __sxtb16(v), (uint32_t)acc);
    acc = (int32_t)__smlad(__sxtb16(ror8(xv)), __sxtb16(ror8(v)), (uint32_t)acc);
  }
#endif
  for (; i < n; ++i) acc += (int32_t)x[i] * w[i];
  return acc;
}

void edgekd_conv2d_s8(const int8_t *in, int8_t *out, const edgekd_conv_params *p) {
  const int32_t ic = p->in_c, oc_n = p->out_c, row = p->k_w * ic, per_oc = p->k_h * row;
  int32_t oy, ox, oc, ky, kx, c;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_w;
      int8_t *o = out + (oy * p->out_w + ox) * oc_n;
      const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h &&
                         ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
      if (inside && p->dil_w == 1) {
        for (oc = 0; oc + 1 < oc_n; oc += 2) {
          int32_t a0 = p->folded_bias[oc], a1 = p->folded_bias[oc + 1];
          const int8_t *w0 = p->filter + oc * per_oc;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int8_t *x = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * ic;
            dot2(x, w0 + ky * row, w0 + per_oc + ky * row, row, &a0, &a1);
          }
          o[oc] = requant(a0, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
          o[oc + 1] = requant(a1, p->mult[oc + 1], p->shift[oc + 1], p->out_offset, p->act_min, p->act_max);
        }
        if (oc < oc_n) {
          int32_t a = p->folded_bias[oc];
          const int8_t *w = p->filter + oc * per_oc;
          for (ky = 0; ky < p->k_h; ++ky)
            a = dot1(in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * ic, w + ky * row, row, a);
          o[oc] = requant(a, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
        }
        continue;
      }
      for (oc = 0; oc < oc_n; ++oc) {
        int32_t acc = p->bias[oc];
        const int8_t *w = p->filter + oc * per_oc;
        for (ky = 0; ky < p->k_h; ++ky) {
          const int32_t iy = iy0 + ky * p->dil_h;
          if (iy < 0 || iy >= p->in_h) continue;
          for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx * p->dil_w;
            const int8_t *x, *wk;
            if (ix < 0 || ix >= p->in_w) continue;
            x = in + (iy * p->in_w + ix) * ic;
            wk = w + (ky * p->k_w + kx) * ic;
            for (c = 0; c < ic; ++c) acc += (x[c] + p->in_offset) * wk[c];
          }
        }
        o[oc] = requant(acc, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
      }
    }
  }
}

void edgekd_dwconv2d_s8(const int8_t *in, int8_t *out, const edgekd_conv_params *p) {
  const int32_t ic = p->in_c, oc_n = p->out_c, mult_c = p->out_c / p->in_c;
  int32_t oy, ox, oc, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_w;
      int8_t *o = out + (oy * p->out_w + ox) * oc_n;
      const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h &&
                         ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
      for (oc = 0; oc < oc_n; ++oc) {
        const int32_t c = oc / mult_c;
        int32_t acc;
        if (inside) {
          acc = p->folded_bias[oc];
          for (ky = 0; ky < p->k_h; ++ky) {
            const int8_t *x = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * ic + c;
            const int8_t *w = p->filter + ky * p->k_w * oc_n + oc;
            for (kx = 0; kx < p->k_w; ++kx) acc += x[kx * p->dil_w * ic] * w[kx * oc_n];
          }
        } else {
          acc = p->bias[oc];
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = iy0 + ky * p->dil_h;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = ix0 + kx * p->dil_w;
              if (ix < 0 || ix >= p->in_w) continue;
              acc += (in[(iy * p->in_w + ix) * ic + c] + p->in_offset) * p->filter[(ky * p->k_w + kx) * oc_n + oc];
            }
          }
        }
        o[oc] = requant(acc, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
      }
    }
  }
}

void edgekd_fc_s8(const int8_t *in, int8_t *out, const edgekd_fc_params *p) {
  int32_t r, u;
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->depth;
    int8_t *o = out + r * p->units;
    for (u = 0; u + 1 < p->units; u += 2) {
      int32_t a0 = p->folded_bias[u], a1 = p->folded_bias[u + 1];
      const int k0 = p->per_channel ? u : 0, k1 = p->per_channel ? u + 1 : 0;
      dot2(x, p->filter + u * p->depth, p->filter + (u + 1) * p->depth, p->depth, &a0, &a1);
      o[u] = requant(a0, p->mult[k0], p->shift[k0], p->out_offset, p->act_min, p->act_max);
      o[u + 1] = requant(a1, p->mult[k1], p->shift[k1], p->out_offset, p->act_min, p->act_max);
    }
    if (u < p->units) {
      const int k = p->per_channel ? u : 0;
      const int32_t a = dot1(x, p->filter + u * p->depth, p->depth, p->folded_bias[u]);
      o[u] = requant(a, p->mult[k], p->shift[k], p->out_offset, p->act_min, p->act_max);
    }
  }
}
