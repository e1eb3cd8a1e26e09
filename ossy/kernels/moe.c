/* The mixture-of-experts block of gpt-oss on the packed MXFP4 bytes, for x86-64 CPUs.
 *
 * Owns: `ossy_moe` (one layer's routed experts for N tokens: gate_up -> clamped SwiGLU -> down ->
 * weighted sum, never dequantizing a matrix), its AVX512 (F/BW/VL/BF16) and AVX2 (+FMA/F16C)
 * variants chosen at run time (`ossy_select`), on the thread pool of pool.c.
 * Does not own: routing (the caller passes each token's experts and weights, computed as the
 * PyTorch reference computes them), attention, or anything outside one MoE block.
 *
 * Numerics follow `ossy/model/gptoss.py` step by step so greedy tokens match it: bf16 inputs and
 * weights, fp32 products and sums (a power-of-two scale applied to a block's partial sum is exact),
 * the bias added in fp32, and every value the reference keeps in bf16 rounded to bf16 at the same
 * point: the gate_up output, each SwiGLU operation (alpha * gate, sigmoid, gate * sigmoid,
 * linear + 1, the product), the down output, output * routing weight, and the running sum over
 * the token's experts in expert order.
 *
 * Layout (ossy/model/mxfp4.py): a matrix W[out, in] is blocks uint8[out, in/32, 16] and scales
 * uint8[out, in/32]; byte j of a block holds element 2j (low nibble) and 2j+1 (high nibble);
 * value = E2M1(code) * 2^(scale - 127). The kernels split a block into its 16 low nibbles (even
 * elements) and 16 high nibbles (odd elements), and pair them with the activations reordered the
 * same way once per token (`reorder`), so no interleaving is needed per block.
 */

#include <math.h>
#include <stdlib.h>
#include <immintrin.h>

#include "common.h"

static float SCALES[256]; /* E8M0 code -> 2^(code - 127), filled by ossy_select */
static int supported;     /* the highest level ossy_select has granted (a call's level may not exceed it) */

int ossy_supported(void) { return supported; }

static inline float scale_of(uint8_t s) { return SCALES[s]; }

/* ---- dot products of weight rows with activations ---------------------------------------- */

/* Each rows_* function: for `rows` rows of an MXFP4 matrix (row stride `groups` blocks) and `ntok`
 * activation vectors (each reordered, `groups`*32 long), out[r * ntok + t] = sum_i W[r, i] * x_t[i]
 * in fp32. */

/* AVX512-BF16. Two blocks (64 weights, 32 bytes) at a time: their 64 nibble codes (the 32 low
 * nibbles, then the 32 high ones) are looked up as the low and the high byte of their bf16 value
 * (VPSHUFB, in-lane) and the bytes interleaved into two vectors of 32 bf16 weights (VPUNPCK*BW,
 * in-lane); the activations are laid out to match (`reorder`, `lane_source`). VDPBF16PS sums
 * products in pairs into 16 fp32 lanes, lanes [0-3, 8-11] belonging to the first block and
 * [4-7, 12-15] to the second, which are then scaled by their blocks' scales (exact: powers of two)
 * into the row's accumulator. Two rows and up to four tokens at a time share the loads. */
#define ROWS_AT_ONCE 2
#define PREFETCH_ROWS 8 /* decode: how far ahead (in rows) the next rows are prefetched; measured best of 4-12 */
#define TOKENS_AT_ONCE 4

/* Where element i (0..63) of a pair's activation layout comes from: (block 0/1, element 0..31).
 * Elements 0-31 meet the first weight vector, 32-63 the second (see DECODE_PAIR). */
static void lane_source(int i, int *block, int *element) {
    int second = i / 32, word = i % 32;                 /* the vector, the word in it */
    int byte = 2 * (word % 16) + second, high = word / 16; /* the nibble's byte in the pair's 32 */
    *block = byte / 16;
    *element = 2 * (byte % 16) + high;
}

static void rows_avx512(const uint8_t *blocks, const uint8_t *scales, int rows, int groups,
                        const bf16 *xs, int ntok, float *out);

/* The bf16 weights of one row's blocks 2p and 2p+1 (see rows_avx512), and their two scales
 * broadcast from the table and blended into the lanes of each block (loads, no shuffle). The 32
 * bytes are loaded into both halves of a register; each 16-bit word there holds four nibbles,
 * shifted (VPSRLVW) so that the wanted one is in its low bits, which VPERMW looks up in a table
 * of the 16 bf16 values (twice over: it reads five bits). Word j < 16 of the first vector is the
 * low nibble of byte 2j, word 16 + j its high nibble; the second vector the same of byte 2j + 1. */
#define DECODE_PAIR(src, srow, p, wa, wb, scale)                                                      \
    do {                                                                                              \
        __m512i bytes_ = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(src)));           \
        wa = (__m512bh)_mm512_permutexvar_epi16(_mm512_srlv_epi16(bytes_, shift_a), fp4_table);       \
        wb = (__m512bh)_mm512_permutexvar_epi16(_mm512_srlv_epi16(bytes_, shift_b), fp4_table);       \
        scale = _mm512_mask_blend_ps((__mmask16)0xF0F0, _mm512_set1_ps(SCALES[(srow)[2 * (p)]]),        \
                                     _mm512_set1_ps(SCALES[(srow)[2 * (p) + 1]]));                    \
    } while (0)

/* The 16 E2M1 codes as bf16, twice (VPERMW reads five bits of each index). */
#define FP4_BF16_TABLE                                                                                \
    _mm512_set_epi16(                                                                                 \
        (short)0xC0C0, (short)0xC080, (short)0xC040, (short)0xC000, (short)0xBFC0, (short)0xBF80,     \
        (short)0xBF00, (short)0x8000, 0x40C0, 0x4080, 0x4040, 0x4000, 0x3FC0, 0x3F80, 0x3F00, 0x0000,  \
        (short)0xC0C0, (short)0xC080, (short)0xC040, (short)0xC000, (short)0xBFC0, (short)0xBF80,     \
        (short)0xBF00, (short)0x8000, 0x40C0, 0x4080, 0x4040, 0x4000, 0x3FC0, 0x3F80, 0x3F00, 0x0000)

#define FP4_LUTS                                                                                      \
    const __m512i fp4_table = FP4_BF16_TABLE;                                                         \
    const __m512i shift_a = _mm512_set_epi64(0x0004000400040004LL, 0x0004000400040004LL,             \
                                             0x0004000400040004LL, 0x0004000400040004LL, 0, 0, 0, 0); \
    const __m512i shift_b = _mm512_set_epi64(0x000C000C000C000CLL, 0x000C000C000C000CLL,             \
                                             0x000C000C000C000CLL, 0x000C000C000C000CLL,             \
                                             0x0008000800080008LL, 0x0008000800080008LL,             \
                                             0x0008000800080008LL, 0x0008000800080008LL)

/* One token (decode): four rows at a time, each with its own accumulator in a register. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
__attribute__((noinline)) static void rows_avx512_one(const uint8_t *blocks, const uint8_t *scales, int rows, int groups,
                            const bf16 *x, float *out) {
    FP4_LUTS;
    const int pairs = groups / 2;
    const size_t stride = (size_t)groups * 16;
    int r0 = 0;
    for (; r0 + 4 <= rows && groups % 2 == 0; r0 += 4) {
        const uint8_t *b = blocks + (size_t)r0 * stride;
        const uint8_t *s0 = scales + (size_t)r0 * groups, *s1 = s0 + groups, *s2 = s1 + groups, *s3 = s2 + groups;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (int p = 0; p < pairs; p++) {
            const __m512bh xa = (__m512bh)_mm512_loadu_si512((const void *)(x + (size_t)p * 2 * BLOCK));
            const __m512bh xb = (__m512bh)_mm512_loadu_si512((const void *)(x + (size_t)p * 2 * BLOCK + BLOCK));
            __m512bh wa, wb;
            __m512 scale;
            const size_t off = (size_t)p * 32;
            if (p % 2 == 0) { /* the next four rows' line at this place */
                const uint8_t *next = b + (size_t)PREFETCH_ROWS * stride + off;
                _mm_prefetch((const char *)next, _MM_HINT_T0);
                _mm_prefetch((const char *)(next + stride), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + 2 * stride), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + 3 * stride), _MM_HINT_T0);
            }
            DECODE_PAIR(b + off, s0, p, wa, wb, scale);
            acc0 = _mm512_fmadd_ps(_mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), wa, xa), wb, xb), scale, acc0);
            DECODE_PAIR(b + stride + off, s1, p, wa, wb, scale);
            acc1 = _mm512_fmadd_ps(_mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), wa, xa), wb, xb), scale, acc1);
            DECODE_PAIR(b + 2 * stride + off, s2, p, wa, wb, scale);
            acc2 = _mm512_fmadd_ps(_mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), wa, xa), wb, xb), scale, acc2);
            DECODE_PAIR(b + 3 * stride + off, s3, p, wa, wb, scale);
            acc3 = _mm512_fmadd_ps(_mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), wa, xa), wb, xb), scale, acc3);
        }
        out[r0] = _mm512_reduce_add_ps(acc0);
        out[r0 + 1] = _mm512_reduce_add_ps(acc1);
        out[r0 + 2] = _mm512_reduce_add_ps(acc2);
        out[r0 + 3] = _mm512_reduce_add_ps(acc3);
    }
    if (r0 < rows) rows_avx512(blocks + (size_t)r0 * stride, scales + (size_t)r0 * groups, rows - r0, groups, x, 1,
                               out + r0);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void rows_avx512(const uint8_t *blocks, const uint8_t *scales, int rows, int groups,
                        const bf16 *xs, int ntok, float *out) {
    if (ntok == 1 && rows >= 4 && groups % 2 == 0) {
        rows_avx512_one(blocks, scales, rows, groups, xs, out);
        return;
    }
    FP4_LUTS;
    const int pairs = groups / 2, width = groups * BLOCK;
    for (int r0 = 0; r0 < rows; r0 += ROWS_AT_ONCE) {
        int nr = rows - r0 < ROWS_AT_ONCE ? rows - r0 : ROWS_AT_ONCE;
        for (int t0 = 0; t0 < ntok; t0 += TOKENS_AT_ONCE) {
            int nt = ntok - t0 < TOKENS_AT_ONCE ? ntok - t0 : TOKENS_AT_ONCE;
            __m512 acc[ROWS_AT_ONCE][TOKENS_AT_ONCE];
            for (int r = 0; r < ROWS_AT_ONCE; r++)
                for (int t = 0; t < TOKENS_AT_ONCE; t++) acc[r][t] = _mm512_setzero_ps();
            for (int p = 0; p < pairs; p++) {
                __m512bh wa[ROWS_AT_ONCE], wb[ROWS_AT_ONCE];
                __m512 scale[ROWS_AT_ONCE];
                for (int r = 0; r < nr; r++)
                    DECODE_PAIR(blocks + ((size_t)(r0 + r) * groups + 2 * p) * 16, scales + (size_t)(r0 + r) * groups, p,
                                wa[r], wb[r], scale[r]);
                for (int t = 0; t < nt; t++) {
                    const bf16 *x = xs + (size_t)(t0 + t) * width + (size_t)p * 2 * BLOCK;
                    __m512bh xa = (__m512bh)_mm512_loadu_si512((const void *)x);
                    __m512bh xb = (__m512bh)_mm512_loadu_si512((const void *)(x + BLOCK));
                    for (int r = 0; r < nr; r++) {
                        __m512 part = _mm512_dpbf16_ps(_mm512_setzero_ps(), wa[r], xa);
                        part = _mm512_dpbf16_ps(part, wb[r], xb);
                        acc[r][t] = _mm512_fmadd_ps(part, scale[r], acc[r][t]);
                    }
                }
            }
            if (groups % 2) { /* the unpaired last block: its layout is [even, odd] */
                int g = groups - 1;
                const __m512i table = FP4_BF16_TABLE;
                for (int r = 0; r < nr; r++) {
                    __m128i bytes = _mm_loadu_si128((const __m128i *)(blocks + ((size_t)(r0 + r) * groups + g) * 16));
                    __m128i lo = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
                    __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0F));
                    __m512bh w = (__m512bh)_mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(_mm256_set_m128i(hi, lo)), table);
                    __m512 scale = _mm512_set1_ps(scale_of(scales[(size_t)(r0 + r) * groups + g]));
                    for (int t = 0; t < nt; t++) {
                        const bf16 *x = xs + (size_t)(t0 + t) * width + (size_t)g * BLOCK;
                        __m512 part = _mm512_dpbf16_ps(_mm512_setzero_ps(), w, (__m512bh)_mm512_loadu_si512((const void *)x));
                        acc[r][t] = _mm512_fmadd_ps(part, scale, acc[r][t]);
                    }
                }
            }
            for (int r = 0; r < nr; r++)
                for (int t = 0; t < nt; t++) out[(size_t)(r0 + r) * ntok + t0 + t] = _mm512_reduce_add_ps(acc[r][t]);
        }
    }
}

/* AVX2 (+FMA): eight weights at a time as fp32 (magnitude by VPERMPS, sign from bit 3), times
 * the activations as fp32 (bf16 widened, or fp32 as given), one block's sum scaled into the row's. */
__attribute__((target("avx2,fma,f16c")))
static inline __m256 fp4_x8(const uint8_t *bytes8, int high) {
    const __m256 magnitudes = _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
    __m128i bytes = _mm_loadl_epi64((const __m128i *)bytes8);
    __m256i codes = _mm256_and_si256(_mm256_cvtepu8_epi32(high ? _mm_srli_epi16(bytes, 4) : bytes),
                                     _mm256_set1_epi32(0x0F));
    __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(codes, 3), 31);
    return _mm256_xor_ps(_mm256_permutevar8x32_ps(magnitudes, codes), _mm256_castsi256_ps(sign));
}

__attribute__((target("avx2,fma,f16c")))
static inline __m256 x_x8(const void *xs, size_t i, int fp32) {
    if (fp32) return _mm256_loadu_ps((const float *)xs + i);
    __m128i half = _mm_loadu_si128((const __m128i *)((const bf16 *)xs + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
}

__attribute__((target("avx2,fma,f16c")))
static void rows_avx2(const uint8_t *blocks, const uint8_t *scales, int rows, int groups,
                      const void *xs, int fp32, int ntok, float *out) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *b = blocks + (size_t)r * groups * 16;
        const uint8_t *s = scales + (size_t)r * groups;
        for (int t = 0; t < ntok; t++) {
            const size_t x0 = (size_t)t * groups * BLOCK;
            __m256 acc = _mm256_setzero_ps();
            for (int g = 0; g < groups; g++) {
                __m256 part = _mm256_setzero_ps();
                for (int high = 0; high < 2; high++) /* low nibbles (even elements), then high */
                    for (int q = 0; q < 2; q++)
                        part = _mm256_fmadd_ps(fp4_x8(b + (size_t)g * 16 + q * 8, high),
                                               x_x8(xs, x0 + (size_t)g * BLOCK + high * 16 + q * 8, fp32), part);
                acc = _mm256_fmadd_ps(part, _mm256_set1_ps(scale_of(s[g])), acc);
            }
            __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            sum4 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
            sum4 = _mm_add_ss(sum4, _mm_movehdup_ps(sum4));
            out[(size_t)r * ntok + t] = _mm_cvtss_f32(sum4);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void rows_f32_avx512(const uint8_t *blocks, const uint8_t *scales, int rows, int groups,
                            const float *xs, int ntok, float *out) {
    const __m512 table = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                        -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int r = 0; r < rows; r++) {
        const uint8_t *b = blocks + (size_t)r * groups * 16;
        const uint8_t *s = scales + (size_t)r * groups;
        for (int t = 0; t < ntok; t++) {
            const float *x = xs + (size_t)t * groups * BLOCK;
            __m512 acc = _mm512_setzero_ps();
            for (int g = 0; g < groups; g++) {
                __m128i bytes = _mm_loadu_si128((const __m128i *)(b + (size_t)g * 16));
                __m512 even = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, low4)), table);
                __m512 odd = _mm512_permutexvar_ps(
                    _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4)), table);
                __m512 part = _mm512_mul_ps(even, _mm512_loadu_ps(x + (size_t)g * BLOCK));
                part = _mm512_fmadd_ps(odd, _mm512_loadu_ps(x + (size_t)g * BLOCK + 16), part);
                acc = _mm512_fmadd_ps(part, _mm512_set1_ps(scale_of(s[g])), acc);
            }
            out[(size_t)r * ntok + t] = _mm512_reduce_add_ps(acc);
        }
    }
}

/* The best path this CPU has, capped at `limit`: 2 = AVX512-BF16, 1 = AVX2, 0 = none (the caller
 * then uses the PyTorch path). Callers pass the level to each `ossy_moe` (moe_args.level). */
int ossy_select(int limit) {
    for (int i = 0; i < 256; i++) SCALES[i] = ldexpf(1.0f, i - 127);
    __builtin_cpu_init();
    int level = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) level = 1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16")) level = 2;
    if (level > limit) level = limit;
    if (level > supported) supported = level;
    return level;
}

/* ---- the MoE block -------------------------------------------------------------------------- */

typedef struct {
    int32_t n_tokens, hidden, inter, n_experts, top_k;
    int32_t fp32;               /* 1: activations, biases, weights and out are float; 0: bf16 */
    int32_t level;              /* the path: 2 AVX512-BF16, 1 AVX2 (as ossy_select granted) */
    const void *x;              /* [N, H] the normed hidden states */
    const int32_t *experts;     /* [N, K] chosen experts */
    const void *weights;        /* [N, K] their routing weights (as the reference's softmax gives them) */
    const uint8_t *gu_blocks;   /* [E, 2I, H/32, 16] */
    const uint8_t *gu_scales;   /* [E, 2I, H/32] */
    const void *gu_bias;        /* [E, 2I] */
    const uint8_t *dn_blocks;   /* [E, H, I/32, 16] */
    const uint8_t *dn_scales;   /* [E, H, I/32] */
    const void *dn_bias;        /* [E, H] */
    float alpha, limit;
    void *out;                  /* [N, H] */
} moe_args;

/* Element i of an activation-typed array, as float; and the reference's rounding of a result. */
static inline float get(const moe_args *a, const void *p, size_t i) {
    return a->fp32 ? ((const float *)p)[i] : bf16_to_f32(((const bf16 *)p)[i]);
}

static inline float rnd(const moe_args *a, float v) { return a->fp32 ? v : round_bf16(v); }

static inline void put(const moe_args *a, void *p, size_t i, float v) {
    if (a->fp32) ((float *)p)[i] = v;
    else ((bf16 *)p)[i] = f32_to_bf16(v);
}

/* One expert's share of a step: its tokens (indices into the N tokens) and its buffers. */
typedef struct {
    int expert, count;
    int *tokens;      /* [count] token indices, ascending */
    void *xs;         /* [count, H] reordered inputs (activation type) */
    float *gate_up;   /* [2I, count] */
    void *act;        /* [count, I] reordered SwiGLU outputs (activation type) */
    float *down;      /* [H, count] */
} expert_work;

typedef struct {
    const moe_args *a;
    expert_work *work;
    int *index;                /* expert -> its work item */
    int *task_work, *task_row; /* task -> (work item, first row or token) */
} phase_ctx;

enum { ROWS_PER_TASK = 64 };

/* The activations as the row kernels read them: within each block of 32, the 16 even elements
 * then the 16 odd ones; for the AVX512-BF16 kernel, each pair of blocks as `lane_source` says (an
 * unpaired last block as [even, odd]). */
static void reorder(const moe_args *a, const void *src, void *dst, int n) {
    size_t size = a->fp32 ? 4 : 2;
    int paired = !a->fp32 && a->level == 2, groups = n / BLOCK;
    const char *from = src;
    char *to = dst;
    for (int g = 0; g < groups; g++) {
        if (paired && g % 2 == 0 && g + 1 < groups) { /* a pair: lane_source says where each comes from */
            for (int i = 0; i < 2 * BLOCK; i++) {
                int block, element;
                lane_source(i, &block, &element);
                memcpy(to + ((size_t)g * BLOCK + i) * size, from + ((size_t)(g + block) * BLOCK + element) * size, size);
            }
            g++;
            continue;
        }
        for (int j = 0; j < BLOCK / 2; j++) {
            memcpy(to + ((size_t)g * BLOCK + j) * size, from + ((size_t)g * BLOCK + 2 * j) * size, size);
            memcpy(to + ((size_t)g * BLOCK + BLOCK / 2 + j) * size, from + ((size_t)g * BLOCK + 2 * j + 1) * size, size);
        }
    }
}

static void rows(const moe_args *a, const uint8_t *blocks, const uint8_t *scales, int n, int groups,
                 const void *xs, int ntok, float *out) {
    if (a->level == 1) rows_avx2(blocks, scales, n, groups, xs, a->fp32, ntok, out);
    else if (a->fp32) rows_f32_avx512(blocks, scales, n, groups, xs, ntok, out);
    else rows_avx512(blocks, scales, n, groups, xs, ntok, out);
}

/* A task's rows of one matrix (gate_up or down) of one expert, times that expert's inputs. */
static void matrix_task(phase_ctx *c, int task, const uint8_t *blocks, const uint8_t *scales, int total,
                        int width, const void *inputs, float *outputs) {
    const moe_args *a = c->a;
    expert_work *w = &c->work[c->task_work[task]];
    int groups = width / BLOCK, r0 = c->task_row[task];
    int n = total - r0 < ROWS_PER_TASK ? total - r0 : ROWS_PER_TASK;
    size_t base = (size_t)w->expert * total + r0;
    rows(a, blocks + base * groups * 16, scales + base * groups, n, groups, inputs, w->count,
         outputs + (size_t)r0 * w->count);
}

static void gate_up_task(void *p, int task) {
    phase_ctx *c = p;
    expert_work *w = &c->work[c->task_work[task]];
    matrix_task(c, task, c->a->gu_blocks, c->a->gu_scales, 2 * c->a->inter, c->a->hidden, w->xs, w->gate_up);
}

static void down_task(void *p, int task) {
    phase_ctx *c = p;
    expert_work *w = &c->work[c->task_work[task]];
    matrix_task(c, task, c->a->dn_blocks, c->a->dn_scales, c->a->hidden, c->a->inter, w->act, w->down);
}

/* SwiGLU of one expert's gate_up outputs for one token, rounded where the reference's ops round;
 * written reordered into w->act. */
static void swiglu_task(void *p, int task) {
    phase_ctx *c = p;
    const moe_args *a = c->a;
    expert_work *w = &c->work[c->task_work[task]];
    int t = c->task_row[task], I = a->inter;
    size_t size = a->fp32 ? 4 : 2, bias0 = (size_t)w->expert * 2 * I;
    char row[I * size];
    for (int i = 0; i < I; i++) {
        float gate = rnd(a, w->gate_up[(size_t)(2 * i) * w->count + t] + get(a, a->gu_bias, bias0 + 2 * i));
        float linear = rnd(a, w->gate_up[(size_t)(2 * i + 1) * w->count + t] + get(a, a->gu_bias, bias0 + 2 * i + 1));
        gate = gate > a->limit ? a->limit : gate;
        linear = linear > a->limit ? a->limit : linear < -a->limit ? -a->limit : linear;
        float sig = rnd(a, 1.0f / (1.0f + expf(-rnd(a, a->alpha * gate))));
        put(a, row, i, rnd(a, gate * sig) * rnd(a, linear + 1.0f));
    }
    reorder(a, row, (char *)w->act + (size_t)t * I * size, I);
}

static int plan_rows(phase_ctx *c, int n_work, int total) {
    int tasks = 0;
    for (int k = 0; k < n_work; k++)
        for (int r = 0; r < total; r += ROWS_PER_TASK) {
            c->task_work[tasks] = k;
            c->task_row[tasks] = r;
            tasks++;
        }
    return tasks;
}

static int plan_tokens(phase_ctx *c, int n_work) {
    int tasks = 0;
    for (int k = 0; k < n_work; k++)
        for (int t = 0; t < c->work[k].count; t++) {
            c->task_work[tasks] = k;
            c->task_row[tasks] = t;
            tasks++;
        }
    return tasks;
}

/* out[t] = sum over the token's experts, in expert order, of round(round(y) * weight), rounded
 * after each addition as the reference's index_add_ into a bf16 tensor does. */
static void combine_task(void *p, int token) {
    phase_ctx *c = p;
    const moe_args *a = c->a;
    int H = a->hidden, K = a->top_k;
    int chosen[K];
    float weights[K];
    for (int j = 0; j < K; j++) { /* the token's experts, ascending (insertion sort: K is 4) */
        int e = a->experts[(size_t)token * K + j], at = j;
        float weight = get(a, a->weights, (size_t)token * K + j);
        while (at > 0 && chosen[at - 1] > e) {
            chosen[at] = chosen[at - 1];
            weights[at] = weights[at - 1];
            at--;
        }
        chosen[at] = e;
        weights[at] = weight;
    }
    size_t o = (size_t)token * H;
    for (int h = 0; h < H; h++) put(a, a->out, o + h, 0.0f);
    for (int j = 0; j < K; j++) {
        expert_work *w = &c->work[c->index[chosen[j]]];
        int lo = 0, hi = w->count - 1;
        while (lo < hi) { /* the token's place among the expert's (ascending) tokens */
            int mid = (lo + hi) / 2;
            if (w->tokens[mid] < token) lo = mid + 1;
            else hi = mid;
        }
        size_t bias0 = (size_t)w->expert * H;
        for (int h = 0; h < H; h++) {
            float y = rnd(a, w->down[(size_t)h * w->count + lo] + get(a, a->dn_bias, bias0 + h));
            put(a, a->out, o + h, get(a, a->out, o + h) + rnd(a, y * weights[j]));
        }
    }
}

/* One MoE block; 0 on success, -1 when no kernel was selected or memory ran out. */
int ossy_moe(const moe_args *a) {
    if (a->level < 1 || a->level > supported || a->hidden % BLOCK || a->inter % BLOCK) return -1;
    int N = a->n_tokens, H = a->hidden, I = a->inter, E = a->n_experts, K = a->top_k;
    size_t size = a->fp32 ? 4 : 2;
    for (int i = 0; i < N * K; i++)
        if (a->experts[i] < 0 || a->experts[i] >= E) return -1;
    int *counts = calloc((size_t)E, sizeof(int)), *first = calloc((size_t)E, sizeof(int));
    int *index = calloc((size_t)E, sizeof(int));
    expert_work *work = calloc((size_t)E, sizeof(expert_work));
    int *order = malloc((size_t)N * K * sizeof(int));
    int max_rows = 2 * I > H ? 2 * I : H;
    int max_tasks = E * ((max_rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
    if (max_tasks < N * K) max_tasks = N * K;
    int *task_work = malloc((size_t)max_tasks * sizeof(int)), *task_row = malloc((size_t)max_tasks * sizeof(int));
    int ok = counts && first && index && work && order && task_work && task_row;
    int n_work = 0;
    if (ok) {
        for (int i = 0; i < N * K; i++) counts[a->experts[i]]++;
        for (int e = 0, start = 0; e < E; start += counts[e], e++) {
            first[e] = start;
            if (!counts[e]) continue;
            index[e] = n_work;
            work[n_work].expert = e;
            work[n_work].tokens = order + start;
            n_work++;
        }
        for (int t = 0; t < N; t++) /* tokens ascending within each expert */
            for (int j = 0; j < K; j++) order[first[a->experts[(size_t)t * K + j]]++] = t;
        for (int k = 0; ok && k < n_work; k++) {
            expert_work *w = &work[k];
            w->count = counts[w->expert];
            w->xs = malloc((size_t)w->count * H * size);
            w->gate_up = malloc((size_t)2 * I * w->count * sizeof(float));
            w->act = malloc((size_t)w->count * I * size);
            w->down = malloc((size_t)H * w->count * sizeof(float));
            ok = w->xs && w->gate_up && w->act && w->down;
            for (int t = 0; ok && t < w->count; t++)
                reorder(a, (const char *)a->x + (size_t)w->tokens[t] * H * size, (char *)w->xs + (size_t)t * H * size, H);
        }
    }
    if (ok) {
        phase_ctx c = {a, work, index, task_work, task_row};
        ossy_parallel(gate_up_task, &c, plan_rows(&c, n_work, 2 * I));
        ossy_parallel(swiglu_task, &c, plan_tokens(&c, n_work));
        ossy_parallel(down_task, &c, plan_rows(&c, n_work, H));
        ossy_parallel(combine_task, &c, N);
    }
    for (int k = 0; k < n_work; k++) {
        free(work[k].xs);
        free(work[k].gate_up);
        free(work[k].act);
        free(work[k].down);
    }
    free(counts);
    free(first);
    free(index);
    free(work);
    free(order);
    free(task_work);
    free(task_row);
    return ok ? 0 : -1;
}
