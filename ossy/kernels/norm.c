/* The small per-token steps of a decode step between the matrix kernels: RMS norm and RoPE.
 *
 * Owns: `ossy_rms_norm` (x [N, H] bf16, gain [H] fp32 -> y [N, H] bf16) and `ossy_rope`
 * (rotate-half RoPE of the first `heads` heads of each row, in place). Each is a few
 * microseconds per token on one thread; what they replace is PyTorch's op-at-a-time dispatch,
 * seven ops for a norm and seven for a rotation, twice per layer (measured: ~5 us an op).
 * Does not own: when they are used (`ossy.model.gptoss`: decode steps on the native path) or the
 * cos/sin tables (computed once per step by the caller).
 *
 * Numerics follow `ossy/model/gptoss.py` op by op. rms_norm: the mean of squares in fp32 (summed
 * here in double; PyTorch's fp32 cascade sums in another order, so a value on a rounding edge
 * can land one bf16 step away: 1 of 576,000 values measured, 200 random rows of 2880), the
 * reciprocal square root, x * r, times the gain, rounded once to bf16. rotate: every bf16 product
 * and difference rounded to bf16 where PyTorch's bf16 ops round it, so the result is identical.
 */

#include <math.h>

#include "common.h"

int ossy_rms_norm(const bf16 *x, const float *gain, int n_tokens, int hidden, float eps, bf16 *y) {
    if (n_tokens < 0 || hidden < 1) return -1;
    for (int t = 0; t < n_tokens; t++) {
        const bf16 *row = x + (size_t)t * hidden;
        double squares = 0.0;
        for (int i = 0; i < hidden; i++) {
            float v = bf16_to_f32(row[i]);
            squares += (double)(v * v);
        }
        float r = 1.0f / sqrtf((float)squares / (float)hidden + eps);
        for (int i = 0; i < hidden; i++)
            y[(size_t)t * hidden + i] = f32_to_bf16(gain[i] * (bf16_to_f32(row[i]) * r));
    }
    return 0;
}

/* x: rows of `row_stride` bf16, each starting with `heads` heads of `head_dim`; cos, sin:
 * [N, head_dim / 2] bf16. Each head's halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin). */
int ossy_rope(bf16 *x, int n_tokens, int heads, int head_dim, int row_stride, const bf16 *cos,
              const bf16 *sin) {
    const int half = head_dim / 2;
    if (n_tokens < 0 || heads < 1 || head_dim % 2 || row_stride < heads * head_dim) return -1;
    for (int t = 0; t < n_tokens; t++) {
        const bf16 *c = cos + (size_t)t * half, *s = sin + (size_t)t * half;
        for (int h = 0; h < heads; h++) {
            bf16 *p = x + (size_t)t * row_stride + (size_t)h * head_dim;
            for (int j = 0; j < half; j++) {
                float x1 = bf16_to_f32(p[j]), x2 = bf16_to_f32(p[j + half]);
                float cj = bf16_to_f32(c[j]), sj = bf16_to_f32(s[j]);
                p[j] = f32_to_bf16(round_bf16(x1 * cj) - round_bf16(x2 * sj));
                p[j + half] = f32_to_bf16(round_bf16(x2 * cj) + round_bf16(x1 * sj));
            }
        }
    }
    return 0;
}
