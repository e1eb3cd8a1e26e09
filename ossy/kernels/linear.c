/* bf16 matrix-vector products for the few tokens of a decode step: y = x W^T + b.
 *
 * Owns: `ossy_linear` (x [N, in] bf16, W [out, in] bf16, bias [out] bf16 or none -> y [N, out]
 * bf16, each value the fp32 sum plus the bias rounded once to bf16, as torch's bf16 linear rounds
 * it), with AVX512-BF16 and AVX2 paths, rows split over the pool. Meant for N of 1 to 8 (the
 * attention projections and the 201k-row lm_head of a decode step), where the work is reading W
 * once at memory speed; larger N is a GEMM, which the caller leaves to PyTorch. One token reads
 * its rows as one contiguous stream with software prefetch (10-13% faster on the lm_head here
 * than four interleaved rows: 33 ms against 38, best of 5); several tokens share four rows.
 * Does not own: which layers use it (`ossy.model.gptoss`), or choosing the path (`ossy_select`).
 */

#include <stdint.h>
#include <immintrin.h>

#include "common.h"

typedef struct {
    int32_t n_tokens, in, out, level;
    const bf16 *x;    /* [N, in] */
    const bf16 *w;    /* [out, in] */
    const bf16 *bias; /* [out] or NULL */
    bf16 *y;          /* [N, out] */
} linear_args;

enum { ROWS_PER_TASK = 128, MAX_TOKENS = 8 };

static inline bf16 finish(const linear_args *a, float sum, int row) {
    return f32_to_bf16(sum + (a->bias ? bf16_to_f32(a->bias[row]) : 0.0f));
}

#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 256 /* measured: 256 best of 256-1024 (benchmarks in the commit) */
#endif

/* One token: rows [r0, r1) one after another, so the task reads one contiguous stream, each line
 * prefetched PREFETCH_BYTES ahead; two accumulators per row halve the dependency chain. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void row_stream_avx512(const linear_args *a, int r0, int r1) {
    const int in = a->in, full = in / 32, tail = in % 32;
    const __mmask32 tail_mask = (__mmask32)((1ull << tail) - 1);
    const bf16 *x = a->x;
    for (int r = r0; r < r1; r++) {
        const bf16 *w = a->w + (size_t)r * in;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int k = 0;
        for (; k + 1 < full; k += 2) {
            _mm_prefetch((const char *)(w + 32 * k) + PREFETCH_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + 32 * k) + PREFETCH_BYTES + 64, _MM_HINT_T0);
            acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512((const void *)(w + 32 * k)),
                                    (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * k)));
            acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_loadu_si512((const void *)(w + 32 * k + 32)),
                                    (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * k + 32)));
        }
        if (k < full)
            acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512((const void *)(w + 32 * k)),
                                    (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * k)));
        if (tail)
            acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + 32 * full),
                                    (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x + 32 * full));
        a->y[r] = finish(a, _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)), r);
    }
}

/* Rows [r0, r1) for every token, four rows at a time: each row is read once for all tokens. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void rows_avx512(const linear_args *a, int r0, int r1) {
    const int in = a->in, full = in / 32, tail = in % 32, N = a->n_tokens;
    const __mmask32 tail_mask = (__mmask32)((1ull << tail) - 1);
    for (int r = r0; r < r1; r += 4) {
        int nr = r1 - r < 4 ? r1 - r : 4;
        for (int t = 0; t < N; t++) {
            const bf16 *x = a->x + (size_t)t * in;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            if (nr == 4) {
                const bf16 *w0 = a->w + (size_t)r * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
                for (int k = 0; k < full; k++) {
                    __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * k));
                    acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)_mm512_loadu_si512((const void *)(w0 + 32 * k)), xv);
                    acc[1] = _mm512_dpbf16_ps(acc[1], (__m512bh)_mm512_loadu_si512((const void *)(w1 + 32 * k)), xv);
                    acc[2] = _mm512_dpbf16_ps(acc[2], (__m512bh)_mm512_loadu_si512((const void *)(w2 + 32 * k)), xv);
                    acc[3] = _mm512_dpbf16_ps(acc[3], (__m512bh)_mm512_loadu_si512((const void *)(w3 + 32 * k)), xv);
                }
            } else {
                for (int j = 0; j < nr; j++)
                    for (int k = 0; k < full; k++)
                        acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_loadu_si512((const void *)(a->w + (size_t)(r + j) * in + 32 * k)),
                                                  (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * k)));
            }
            if (tail)
                for (int j = 0; j < nr; j++)
                    acc[j] = _mm512_dpbf16_ps(acc[j],
                                              (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, a->w + (size_t)(r + j) * in + 32 * full),
                                              (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x + 32 * full));
            for (int j = 0; j < nr; j++) a->y[(size_t)t * a->out + r + j] = finish(a, _mm512_reduce_add_ps(acc[j]), r + j);
        }
    }
}

__attribute__((target("avx2,fma,f16c")))
static inline __m256 load8(const bf16 *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

__attribute__((target("avx2,fma,f16c")))
static void rows_avx2(const linear_args *a, int r0, int r1) {
    const int in = a->in, full = in / 8, N = a->n_tokens;
    for (int r = r0; r < r1; r++) {
        const bf16 *w = a->w + (size_t)r * in;
        for (int t = 0; t < N; t++) {
            const bf16 *x = a->x + (size_t)t * in;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            int k = 0;
            for (; k + 1 < full; k += 2) {
                acc0 = _mm256_fmadd_ps(load8(w + 8 * k), load8(x + 8 * k), acc0);
                acc1 = _mm256_fmadd_ps(load8(w + 8 * k + 8), load8(x + 8 * k + 8), acc1);
            }
            if (k < full) acc0 = _mm256_fmadd_ps(load8(w + 8 * k), load8(x + 8 * k), acc0);
            acc0 = _mm256_add_ps(acc0, acc1);
            __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
            sum4 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
            sum4 = _mm_add_ss(sum4, _mm_movehdup_ps(sum4));
            float sum = _mm_cvtss_f32(sum4);
            for (int i = 8 * full; i < in; i++) sum += bf16_to_f32(w[i]) * bf16_to_f32(x[i]);
            a->y[(size_t)t * a->out + r] = finish(a, sum, r);
        }
    }
}

static void linear_task(void *p, int task) {
    const linear_args *a = p;
    int r0 = task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < a->out ? r0 + ROWS_PER_TASK : a->out;
    if (a->level == 2) (a->n_tokens == 1 ? row_stream_avx512 : rows_avx512)(a, r0, r1);
    else rows_avx2(a, r0, r1);
}

/* y = x W^T + b; 0 on success, -1 for a path not granted or more than MAX_TOKENS tokens. */
int ossy_linear(const linear_args *a) {
    if (a->level < 1 || a->level > ossy_supported() || a->n_tokens < 1 || a->n_tokens > MAX_TOKENS) return -1;
    ossy_parallel(linear_task, (void *)a, (a->out + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
    return 0;
}
