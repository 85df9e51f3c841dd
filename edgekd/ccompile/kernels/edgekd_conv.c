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
/* SXTB16 of the odd bytes: one instruction with the rotate operand (GCC does not fold a rotate into it). */
static inline uint32_t sxtb16_odd(uint32_t v) {
#if defined(__GNUC__)
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
#else
  return __sxtb16((v >> 8) | (v << 24));
#endif
}

static inline uint32_t sxtab16(uint32_t acc, uint32_t v) {
#if defined(__GNUC__)
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(v));
  return r;
#else
  return __sxtab16(acc, v);
#endif
}

static inline uint32_t sxtab16_odd(uint32_t acc, uint32_t v) {
#if defined(__GNUC__)
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(v));
  return r;
#else
  return __sxtab16(acc, (v >> 8) | (v << 24));
#endif
}

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
    const uint32_t xe = __sxtb16(xv), xo = sxtb16_odd(xv);
    s0 = (int32_t)__smlad(xe, __sxtb16(v0), (uint32_t)s0);
    s0 = (int32_t)__smlad(xo, sxtb16_odd(v0), (uint32_t)s0);
    s1 = (int32_t)__smlad(xe, __sxtb16(v1), (uint32_t)s1);
    s1 = (int32_t)__smlad(xo, sxtb16_odd(v1), (uint32_t)s1);
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
    acc = (int32_t)__smlad(sxtb16_odd(xv), sxtb16_odd(v), (uint32_t)acc);
  }
#endif
  for (; i < n; ++i) acc += (int32_t)x[i] * w[i];
  return acc;
}

/* a0 += (x + off) . w0, a1 += (x + off) . w1: the reference kernel's sum, for windows that overlap the padding
 * (only their in-bounds taps are summed). SXTAB16 sign-extends a byte pair and adds the offset in one go. */
static inline void dot2_off(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, int32_t off, int32_t *a0, int32_t *a1) {
  int32_t s0 = *a0, s1 = *a1;
  int32_t i = 0;
#ifdef EDGEKD_DSP
  const uint32_t off2 = ((uint32_t)off << 16) | ((uint32_t)off & 0xFFFFu);
  for (; i + 4 <= n; i += 4) {
    const uint32_t xv = load4(x + i), v0 = load4(w0 + i), v1 = load4(w1 + i);
    const uint32_t xe = sxtab16(off2, xv), xo = sxtab16_odd(off2, xv);
    s0 = (int32_t)__smlad(xe, __sxtb16(v0), (uint32_t)s0);
    s0 = (int32_t)__smlad(xo, sxtb16_odd(v0), (uint32_t)s0);
    s1 = (int32_t)__smlad(xe, __sxtb16(v1), (uint32_t)s1);
    s1 = (int32_t)__smlad(xo, sxtb16_odd(v1), (uint32_t)s1);
  }
#endif
  for (; i < n; ++i) {
    const int32_t xi = x[i] + off;
    s0 += xi * w0[i];
    s1 += xi * w1[i];
  }
  *a0 = s0;
  *a1 = s1;
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
      if (p->dil_w == 1) {
        /* Over the padding: each in-bounds row of the window is one contiguous run of (kx_hi - kx_lo) * ic bytes. */
        const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
        const int32_t kx_hi = p->k_w < p->in_w - ix0 ? p->k_w : p->in_w - ix0;
        const int32_t run = (kx_hi - kx_lo) * ic;
        for (oc = 0; oc < oc_n; oc += 2) {
          const int32_t oc1 = oc + 1 < oc_n ? oc + 1 : oc; /* an odd last channel is computed twice, stored once */
          int32_t a0 = p->bias[oc], a1 = p->bias[oc1];
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = iy0 + ky * p->dil_h;
            const int32_t tap = (ky * p->k_w + kx_lo) * ic;
            if (iy < 0 || iy >= p->in_h || run <= 0) continue;
            dot2_off(in + (iy * p->in_w + ix0 + kx_lo) * ic, p->filter + oc * per_oc + tap, p->filter + oc1 * per_oc + tap, run,
                     p->in_offset, &a0, &a1);
          }
          o[oc] = requant(a0, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
          o[oc1] = requant(a1, p->mult[oc1], p->shift[oc1], p->out_offset, p->act_min, p->act_max);
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
      oc = 0;
#ifdef EDGEKD_DSP
      if (inside && mult_c == 1) {
        /* Four channels per word: SXTB16 splits even and odd channels, SMLABB/SMLATT multiply-accumulate each. */
        for (; oc + 4 <= oc_n; oc += 4) {
          int32_t a0 = p->folded_bias[oc], a1 = p->folded_bias[oc + 1], a2 = p->folded_bias[oc + 2], a3 = p->folded_bias[oc + 3];
          for (ky = 0; ky < p->k_h; ++ky) {
            const int8_t *x = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * ic + oc;
            const int8_t *w = p->filter + ky * p->k_w * oc_n + oc;
            for (kx = 0; kx < p->k_w; ++kx) {
              const uint32_t xv = load4(x + kx * p->dil_w * ic), wv = load4(w + kx * oc_n);
              const int32_t xe = (int32_t)__sxtb16(xv), xo = (int32_t)sxtb16_odd(xv);
              const int32_t we = (int32_t)__sxtb16(wv), wo = (int32_t)sxtb16_odd(wv);
              a0 += (int16_t)xe * (int16_t)we;
              a1 += (int16_t)xo * (int16_t)wo;
              a2 += (xe >> 16) * (we >> 16);
              a3 += (xo >> 16) * (wo >> 16);
            }
          }
          o[oc] = requant(a0, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
          o[oc + 1] = requant(a1, p->mult[oc + 1], p->shift[oc + 1], p->out_offset, p->act_min, p->act_max);
          o[oc + 2] = requant(a2, p->mult[oc + 2], p->shift[oc + 2], p->out_offset, p->act_min, p->act_max);
          o[oc + 3] = requant(a3, p->mult[oc + 3], p->shift[oc + 3], p->out_offset, p->act_min, p->act_max);
        }
      }
#endif
      for (; oc < oc_n; ++oc) {
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
