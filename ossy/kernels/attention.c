/* Attention with learned sinks over a sequence's cached keys, one (query, kv head) at a time.
 *
 * Owns: `ossy_attention` (q [T, Hq, D], keys and values [S, Hkv, D], their positions, the
 * sliding window, the per-head sinks -> [T, Hq, D]), for bf16 or fp32 activations, its AVX512 and
 * AVX2 builds of the same C (the compiler vectorizes the loops for each), and `exp_approx`.
 * Memory: one task holds the scores of its G = Hq / Hkv query heads over the S keys (4 G S bytes),
 * never a [T, S] matrix for the whole prompt.
 * Does not own: the cache (ossy/model/cache.py) or RoPE (the caller rotates q and k).
 *
 * Numerics follow `ossy.model.gptoss.attention`: score = round(round(q . k) * D^-0.5) (the
 * reference's bf16 matmul output, then its bf16 scaling; no rounding for fp32), masked keys left
 * out, softmax in fp32 over the visible scores and the head's sink, each probability rounded to
 * the activation type, then out = round(sum of p * v) with fp32 sums. exp is a degree-7
 * polynomial on a reduced argument (error under 2 ulp of fp32), so a probability can differ from
 * torch's in its last fp32 bit, which a bf16 rounding almost always hides.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "common.h"

typedef struct {
    int32_t n_queries, n_keys, q_heads, kv_heads, head_dim, window, fp32, level;  /* window 0: full */
    const void *q;        /* [T, Hq, D] */
    const void *k;        /* [S, Hkv, D] */
    const void *v;        /* [S, Hkv, D] */
    const int64_t *q_pos; /* [T] */
    const int64_t *k_pos; /* [S] */
    const float *sinks;   /* [Hq] */
    void *out;            /* [T, Hq, D] */
} attention_args;

enum { MAX_DIM = 256 };

/* e^x for x <= 0 (a softmax's shifted scores): 2^n * p(r), x = n ln2 + r, |r| <= ln2/2; plain
 * arithmetic (no library call), so the loops around it vectorize. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-01f + r * (4.16666667e-02f + r * (8.33333333e-03f +
              r * (1.38888889e-03f + r * 1.98412698e-04f))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, 4);
    return p * two_n;
}

static inline float rnd_bf16_fast(float v) { /* round to bf16 (no NaN care: scores are finite) */
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    memcpy(&v, &bits, 4);
    return v;
}

/* Scores of the G query heads of kv head g (q as bf16 pairs) against every key, with AVX512-BF16:
 * two VDPBF16PS per head and key (D = 64), then one horizontal sum each. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void scores_bf16_avx512(const attention_args *a, int t, int g, float *scores) {
    const int G = a->q_heads / a->kv_heads, S = a->n_keys;
    const bf16 *q = (const bf16 *)a->q + ((size_t)t * a->q_heads + (size_t)g * G) * 64;
    __m512bh q0[64], q1[64];
    for (int h = 0; h < G; h++) {
        q0[h] = (__m512bh)_mm512_loadu_si512((const void *)(q + (size_t)h * 64));
        q1[h] = (__m512bh)_mm512_loadu_si512((const void *)(q + (size_t)h * 64 + 32));
    }
    for (int s = 0; s < S; s++) {
        const bf16 *key = (const bf16 *)a->k + ((size_t)s * a->kv_heads + g) * 64;
        __m512bh k0 = (__m512bh)_mm512_loadu_si512((const void *)key);
        __m512bh k1 = (__m512bh)_mm512_loadu_si512((const void *)(key + 32));
        for (int h = 0; h < G; h++) {
            __m512 acc = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), q0[h], k0), q1[h], k1);
            scores[(size_t)h * S + s] = _mm512_reduce_add_ps(acc);
        }
    }
}

/* One (query, kv head): scores, softmax with the sink, weighted sum of the values. FP32 is a
 * compile-time constant, so each variant's loops have no type test and vectorize. */
#define ATTEND(suffix, isa, FP32, FAST_SCORES)                                                          \
    __attribute__((target(isa))) static void attend_##suffix(const attention_args *a, int t, int g,   \
                                                              float *scores) {                        \
        typedef float value_f32;                                                                      \
        const int G = a->q_heads / a->kv_heads, D = a->head_dim, S = a->n_keys;                       \
        const float scale = 1.0f / sqrtf((float)D);                                                   \
        const int64_t qpos = a->q_pos[t];                                                             \
        float key[MAX_DIM], acc[MAX_DIM];                                                             \
        if (FAST_SCORES && D == 64) {                                                                 \
            scores_bf16_avx512(a, t, g, scores);                                                      \
        } else {                                                                                      \
            float q[64][MAX_DIM];                                                                     \
            for (int h = 0; h < G; h++)                                                               \
                for (int d = 0; d < D; d++) {                                                         \
                    size_t i = ((size_t)t * a->q_heads + g * G + h) * D + d;                          \
                    q[h][d] = FP32 ? ((const float *)a->q)[i] : bf16_to_f32(((const bf16 *)a->q)[i]); \
                }                                                                                     \
            for (int s = 0; s < S; s++) {                                                             \
                size_t base = ((size_t)s * a->kv_heads + g) * D;                                      \
                for (int d = 0; d < D; d++)                                                           \
                    key[d] = FP32 ? ((const float *)a->k)[base + d] : bf16_to_f32(((const bf16 *)a->k)[base + d]); \
                for (int h = 0; h < G; h++) {                                                         \
                    value_f32 dot = 0.0f;                                                             \
                    for (int d = 0; d < D; d++) dot += q[h][d] * key[d];                              \
                    scores[(size_t)h * S + s] = dot;                                                  \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        for (int h = 0; h < G; h++) {                                                                 \
            float *row = scores + (size_t)h * S, sink = a->sinks[g * G + h], top = sink, sum = 0.0f;  \
            for (int s = 0; s < S; s++) {                                                             \
                int64_t delta = qpos - a->k_pos[s];                                                   \
                int seen = delta >= 0 && (a->window == 0 || delta < a->window);                       \
                float v = FP32 ? row[s] * scale : rnd_bf16_fast(rnd_bf16_fast(row[s]) * scale);       \
                row[s] = seen ? v : -INFINITY;                                                        \
                top = row[s] > top ? row[s] : top;                                                    \
            }                                                                                         \
            for (int s = 0; s < S; s++) {                                                             \
                row[s] = row[s] == -INFINITY ? 0.0f : exp_approx(row[s] - top);                       \
                sum += row[s];                                                                        \
            }                                                                                         \
            sum += exp_approx(sink - top);                                                            \
            for (int d = 0; d < D; d++) acc[d] = 0.0f;                                                \
            for (int s = 0; s < S; s++) {                                                             \
                if (row[s] == 0.0f) continue;                                                         \
                float p = FP32 ? row[s] / sum : rnd_bf16_fast(row[s] / sum);                          \
                size_t base = ((size_t)s * a->kv_heads + g) * D;                                      \
                for (int d = 0; d < D; d++)                                                           \
                    acc[d] += p * (FP32 ? ((const float *)a->v)[base + d] : bf16_to_f32(((const bf16 *)a->v)[base + d])); \
            }                                                                                         \
            size_t o = ((size_t)t * a->q_heads + g * G + h) * D;                                      \
            for (int d = 0; d < D; d++) {                                                             \
                if (FP32) ((float *)a->out)[o + d] = acc[d];                                          \
                else ((bf16 *)a->out)[o + d] = f32_to_bf16(acc[d]);                                   \
            }                                                                                         \
        }                                                                                             \
    }

ATTEND(bf16_avx512, "avx512f,avx512bw,avx512vl,avx512bf16", 0, 1)
ATTEND(f32_avx512, "avx512f,avx512bw,avx512vl", 1, 0)
ATTEND(bf16_avx2, "avx2,fma", 0, 0)
ATTEND(f32_avx2, "avx2,fma", 1, 0)

typedef struct {
    const attention_args *a;
} attention_ctx;

static void attention_task(void *p, int task) {
    const attention_args *a = ((attention_ctx *)p)->a;
    int t = task / a->kv_heads, g = task % a->kv_heads, G = a->q_heads / a->kv_heads;
    float *scores = malloc((size_t)G * a->n_keys * sizeof(float));
    if (scores == NULL) return; /* the caller checked the size; see ossy_attention */
    if (a->level == 2) (a->fp32 ? attend_f32_avx512 : attend_bf16_avx512)(a, t, g, scores);
    else (a->fp32 ? attend_f32_avx2 : attend_bf16_avx2)(a, t, g, scores);
    free(scores);
}

/* 0 on success; -1 for a path not granted or shapes the kernel does not take. */
int ossy_attention(const attention_args *a) {
    if (a->level < 1 || a->level > ossy_supported() || a->kv_heads < 1 || a->q_heads % a->kv_heads ||
        a->head_dim < 1 || a->head_dim > MAX_DIM || a->n_keys < 1 || a->q_heads / a->kv_heads > 64 || a->n_queries < 1)
        return -1;
    attention_ctx ctx = {a};
    ossy_parallel(attention_task, &ctx, a->n_queries * a->kv_heads);
    return 0;
}
