/* edgekd C engine: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, PAD and CONCATENATION, int8, with
 * tflite-micro's reference arithmetic. */
#include "edgekd_kernels.h"

/* The pooling window of output position o along one axis: its first input index (may be negative, in the padding)
 * and the kernel offsets [lo, hi) that fall inside the input, as tflite-micro clips them. */
static void window(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n, int32_t *i0, int32_t *lo, int32_t *hi) {
  *i0 = o * stride - pad;
  *lo = *i0 < 0 ? -*i0 : 0;
  *hi = k < n - *i0 ? k : n - *i0;
}

void edgekd_avgpool_s8(const int8_t *in, int8_t *out, const edgekd_pool_params *p) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    int32_t iy0, y_lo, y_hi;
    window(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &iy0, &y_lo, &y_hi);
    for (ox = 0; ox < p->out_w; ++ox) {
      int32_t ix0, x_lo, x_hi;
      window(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &ix0, &x_lo, &x_hi);
      const int32_t count = (y_hi - y_lo) * (x_hi - x_lo);
      for (c = 0; c < p->c; ++c) {
        int32_t acc = 0;
        for (ky = y_lo; ky < y_hi; ++ky)
          for (kx = x_lo; kx < x_hi; ++kx) acc += in[((iy0 + ky) * p->in_w + ix0 + kx) * p->c + c];
        if (count > 0) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        out[(oy * p->out_w + ox) * p->c + c] = (int8_t)edgekd_clamp(acc, p->act_min, p->act_max);
      }
    }
  }
}

void edgekd_maxpool_s8(const int8_t *in, int8_t *out, const edgekd_pool_params *p) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    int32_t iy0, y_lo, y_hi;
    window(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &iy0, &y_lo, &y_hi);
    for (ox = 0; ox < p->out_w; ++ox) {
      int32_t ix0, x_lo, x_hi;
      window(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &ix0, &x_lo, &x_hi);
      for (c = 0; c < p->c; ++c) {
        int32_t m = -128;
        for (ky = y_lo; ky < y_hi; ++ky)
          for (kx = x_lo; kx < x_hi; ++kx) {
            const int32_t v = in[((iy0 + ky) * p->in_w + ix0 + kx) * p->c + c];
            if (v > m) m = v;
          }
        out[(oy * p->out_w + ox) * p->c + c] = (int8_t)edgekd_clamp(m, p->act_min, p->act_max);
      }
    }
  }
}

/* The reduced axes form one contiguous block [outer][reduce][inner]. */
void edgekd_mean_s8(const int8_t *in, int8_t *out, const edgekd_mean_params *p) {
  int32_t o, i, r;
  for (o = 0; o < p->outer; ++o) {
    for (i = 0; i < p->inner; ++i) {
      int32_t sum = 0;
      const int8_t *x = in + o * p->reduce * p->inner + i;
      for (r = 0; r < p->reduce; ++r) sum += x[r * p->inner];
      if (p->same_quant) {
        out[o * p->inner + i] = (int8_t)(sum / p->reduce);
      } else {
        const int32_t v = edgekd_mbqm(sum - p->in_zp * p->reduce, p->mult, p->shift) + p->out_zp;
        out[o * p->inner + i] = (int8_t)edgekd_clamp(v, -128, 127);
      }
    }
  }
}

void edgekd_pad_s8(const int8_t *in, int8_t *out, const edgekd_pad_params *p) {
  const int32_t *d = p->in_dims;
  int32_t od[4], i0, i1, i2;
  int k;
  for (k = 0; k < 4; ++k) od[k] = p->before[k] + d[k] + p->after[k];
  memset(out, (int)p->value, (size_t)(od[0] * od[1] * od[2] * od[3]));
  for (i0 = 0; i0 < d[0]; ++i0)
    for (i1 = 0; i1 < d[1]; ++i1)
      for (i2 = 0; i2 < d[2]; ++i2) {
        const int8_t *src = in + ((i0 * d[1] + i1) * d[2] + i2) * d[3];
        int8_t *dst = out + (((i0 + p->before[0]) * od[1] + i1 + p->before[1]) * od[2] + i2 + p->before[2]) * od[3] + p->before[3];
        memcpy(dst, src, (size_t)d[3]);
      }
}

void edgekd_concat_s8(const int8_t *const *ins, int8_t *out, const edgekd_concat_params *p) {
  int32_t o, k;
  for (o = 0; o < p->outer; ++o)
    for (k = 0; k < p->count; ++k) {
      memcpy(out, ins[k] + o * p->inner[k], (size_t)p->inner[k]);
      out += p->inner[k];
    }
}
