/* The mixture-of-experts block of gpt-oss on the packed MXFP4 bytes, for x86-64 CPUs.
 *
 * Owns: `ossy_moe` (one layer's routed experts for N tokens: gate_up -> clamped SwiGLU -> down ->
 * weighted sum, never dequantizing a matrix), its AVX512 (F/BW/VL/BF16) and AVX2 (+FMA/F16C)
 * variants chosen at run time (`ossy_select`), on the thread pool of pool.c, and
 * `ossy_repack_rows16`, the layout the AVX512-BF16 variant reads.
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
 * Layouts. As stored (HF, ossy/model/mxfp4.py): a matrix W[out, in] is blocks uint8[out, in/32, 16]
 * and scales uint8[out, in/32]; byte j of a block holds element 2j (low nibble) and 2j+1 (high
 * nibble); value = E2M1(code) * 2^(scale - 127). The AVX2 and fp32 kernels read that, splitting a
 * block into its 16 low nibbles (even elements) and 16 high ones (odd elements), paired with the
 * activations reordered the same way once per token (`reorder`). The AVX512-BF16 kernel reads the
 * rows16 layout, the same bytes reordered (`ossy_repack_rows16`: in place, or per expert into
 * memory of its own, as `ossy.model.native.Kernels.pack` decides), through a table of each
 * expert's matrices (`moe_args.rows16`), with the activations in their natural order.
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

/* AVX512-BF16, on the rows16 layout (`ossy_repack_rows16`): sixteen rows at a time, one per fp32
 * lane. For each block of 32 inputs the sixteen rows' weights are 256 bytes: four 64-byte loads,
 * each four nibbles per 16-bit word: word w of load j holds, in nibble q, the code of row w/2 and
 * input 8j + 2q + w%2. A word shifted right by 4q keeps that nibble in its low bits, which VPERMW
 * looks up in a table of the 16 bf16 values (twice over: it reads five bits), giving 32 bf16
 * weights laid out as VDPBF16PS wants them: lane r holds row r's weights of inputs 2p, 2p+1 for
 * p = 4j + q. VDPBF16PS then adds both products into lane r, with that input pair of the token
 * broadcast to every lane (the activations stay in their natural order). The block's sums are
 * scaled by the sixteen rows' scales (exact: powers of two) into the rows' accumulators, and the
 * sixteen results are stored as they are: no reduction across lanes. Per 64 weights that is
 * half a load, 1.5 shifts, 2 VPERMW and 2 VDPBF16PS, where the row-at-a-time layout needed a
 * scale blend and an FMA too: one 20b layer at one token took 2.77 ms that way, 1.84 ms this way
 * (best of 30, 2 threads, random experts). */
#define ROWS16 16
#define TOKENS_AT_ONCE 8
#ifndef MOE_PREFETCH_BYTES
#define MOE_PREFETCH_BYTES 1024 /* decode: how far ahead the next blocks are prefetched (four blocks) */
#endif

/* The 16 E2M1 codes as bf16, twice (VPERMW reads five bits of each index). */
#define FP4_BF16_TABLE                                                                                \
    _mm512_set_epi16(                                                                                 \
        (short)0xC0C0, (short)0xC080, (short)0xC040, (short)0xC000, (short)0xBFC0, (short)0xBF80,     \
        (short)0xBF00, (short)0x8000, 0x40C0, 0x4080, 0x4040, 0x4000, 0x3FC0, 0x3F80, 0x3F00, 0x0000,  \
        (short)0xC0C0, (short)0xC080, (short)0xC040, (short)0xC000, (short)0xBFC0, (short)0xBF80,     \
        (short)0xBF00, (short)0x8000, 0x40C0, 0x4080, 0x4040, 0x4000, 0x3FC0, 0x3F80, 0x3F00, 0x0000)

/* The sixteen rows' scales of one block, 2^(code - 127) as fp32 (code 0: 2^-127, a denormal). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline __m512 scales16(const uint8_t *codes) {
    __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)codes));
    __m512i bits = _mm512_slli_epi32(c, 23);
    bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(c, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(bits);
}

/* One token (decode): sixteen rows per group, two partial sums per block for the adder's latency. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void rows16_one(const uint8_t *blocks, const uint8_t *scales, int rows, int groups, const bf16 *x,
                       float *out) {
    const __m512i table = FP4_BF16_TABLE;
    const uint32_t *pairs = (const uint32_t *)x; /* the token's inputs, two bf16 at a time */
    for (int g = 0; g < rows / ROWS16; g++) {
        const uint8_t *b = blocks + (size_t)g * groups * 256;
        const uint8_t *s = scales + (size_t)g * groups * ROWS16;
        __m512 acc = _mm512_setzero_ps();
        for (int k = 0; k < groups; k++) {
            const uint8_t *bk = b + (size_t)k * 256;
            for (int line = 0; line < 4; line++) _mm_prefetch((const char *)(bk + MOE_PREFETCH_BYTES + 64 * line), _MM_HINT_T0);
            const uint32_t *xk = pairs + (size_t)k * 16;
            __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();
            for (int j = 0; j < 4; j++) {
                __m512i v = _mm512_loadu_si512((const void *)(bk + 64 * j));
                even = _mm512_dpbf16_ps(even, (__m512bh)_mm512_permutexvar_epi16(v, table),
                                        (__m512bh)_mm512_set1_epi32((int)xk[4 * j]));
                odd = _mm512_dpbf16_ps(odd, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), table),
                                       (__m512bh)_mm512_set1_epi32((int)xk[4 * j + 1]));
                even = _mm512_dpbf16_ps(even, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 8), table),
                                        (__m512bh)_mm512_set1_epi32((int)xk[4 * j + 2]));
                odd = _mm512_dpbf16_ps(odd, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 12), table),
                                       (__m512bh)_mm512_set1_epi32((int)xk[4 * j + 3]));
            }
            acc = _mm512_fmadd_ps(_mm512_add_ps(even, odd), scales16(s + (size_t)k * ROWS16), acc);
        }
        _mm512_storeu_ps(out + (size_t)g * ROWS16, acc);
    }
}

/* Several tokens (prefill): each group's weights decoded once per load and used by up to
 * TOKENS_AT_ONCE tokens. out[r * ntok + t]. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void rows16(const uint8_t *blocks, const uint8_t *scales, int rows, int groups, const bf16 *xs, int ntok,
                   float *out) {
    if (ntok == 1) {
        rows16_one(blocks, scales, rows, groups, xs, out);
        return;
    }
    const __m512i table = FP4_BF16_TABLE;
    const size_t width = (size_t)groups * BLOCK / 2; /* one token's inputs, in bf16 pairs */
    const uint32_t *pairs = (const uint32_t *)xs;
    for (int g = 0; g < rows / ROWS16; g++) {
        const uint8_t *b = blocks + (size_t)g * groups * 256;
        const uint8_t *s = scales + (size_t)g * groups * ROWS16;
        for (int t0 = 0; t0 < ntok; t0 += TOKENS_AT_ONCE) {
            int nt = ntok - t0 < TOKENS_AT_ONCE ? ntok - t0 : TOKENS_AT_ONCE;
            __m512 acc[TOKENS_AT_ONCE];
            for (int t = 0; t < TOKENS_AT_ONCE; t++) acc[t] = _mm512_setzero_ps();
            for (int k = 0; k < groups; k++) {
                const uint8_t *bk = b + (size_t)k * 256;
                __m512 part[TOKENS_AT_ONCE];
                for (int t = 0; t < TOKENS_AT_ONCE; t++) part[t] = _mm512_setzero_ps();
                for (int j = 0; j < 4; j++) {
                    __m512i v = _mm512_loadu_si512((const void *)(bk + 64 * j));
                    for (int q = 0; q < 4; q++) {
                        __m512bh w = (__m512bh)_mm512_permutexvar_epi16(_mm512_srl_epi16(v, _mm_cvtsi32_si128(4 * q)), table);
                        for (int t = 0; t < nt; t++) {
                            uint32_t pair = pairs[(size_t)(t0 + t) * width + (size_t)k * 16 + 4 * j + q];
                            part[t] = _mm512_dpbf16_ps(part[t], w, (__m512bh)_mm512_set1_epi32((int)pair));
                        }
                    }
                }
                __m512 scale = scales16(s + (size_t)k * ROWS16);
                for (int t = 0; t < nt; t++) acc[t] = _mm512_fmadd_ps(part[t], scale, acc[t]);
            }
            for (int t = 0; t < nt; t++) {
                float lanes[ROWS16];
                _mm512_storeu_ps(lanes, acc[t]);
                for (int r = 0; r < ROWS16; r++) out[((size_t)g * ROWS16 + r) * ntok + t0 + t] = lanes[r];
            }
        }
    }
}

/* Write `matrices` matrices of `rows` rows (a multiple of 16) and `groups` blocks per row from
 * the HF layout (blocks [rows, groups, 16], scales [rows, groups]) at `src` into the rows16 layout
 * at `dst` (the same place, or another of the same size): per group of sixteen rows, blocks
 * [groups, 4, 32 words] as rows16 reads them and scales [groups, 16]. A group occupies the same
 * bytes in both layouts. */
typedef struct {
    const uint8_t *src_blocks, *src_scales;
    uint8_t *dst_blocks, *dst_scales;
    int rows, groups;
} repack_ctx;

static void repack_task(void *p, int task) {
    const repack_ctx *c = p;
    int per_matrix = c->rows / ROWS16, groups = c->groups;
    size_t m = (size_t)(task / per_matrix), g = (size_t)(task % per_matrix);
    size_t first = m * c->rows + g * ROWS16; /* the group's first row */
    uint8_t *b = c->dst_blocks + first * groups * 16, *s = c->dst_scales + first * groups;
    uint8_t old_b[ROWS16 * groups * 16], old_s[ROWS16 * groups];
    memcpy(old_b, c->src_blocks + first * groups * 16, sizeof old_b);
    memcpy(old_s, c->src_scales + first * groups, sizeof old_s);
    for (int k = 0; k < groups; k++) {
        for (int r = 0; r < ROWS16; r++) s[(size_t)k * ROWS16 + r] = old_s[(size_t)r * groups + k];
        for (int j = 0; j < 4; j++)
            for (int w = 0; w < 32; w++) {
                const uint8_t *row = old_b + ((size_t)(w / 2) * groups + k) * 16;
                uint16_t word = 0;
                for (int q = 0; q < 4; q++) word |= (uint16_t)(((row[4 * j + q] >> (4 * (w % 2))) & 0x0F) << (4 * q));
                memcpy(b + (size_t)k * 256 + 64 * j + 2 * w, &word, 2);
            }
    }
}

int ossy_repack_rows16(const uint8_t *src_blocks, const uint8_t *src_scales, uint8_t *dst_blocks,
                       uint8_t *dst_scales, int32_t matrices, int32_t rows, int32_t groups) {
    if (rows % ROWS16 || matrices < 0 || groups < 1) return -1;
    repack_ctx c = {src_blocks, src_scales, dst_blocks, dst_scales, rows, groups};
    ossy_parallel(repack_task, &c, matrices * (rows / ROWS16));
    return 0;
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
    const uint8_t *const *rows16; /* bf16 at level 2 (else NULL): [E, 4] the rows16 gate_up blocks,
                                     scales, down blocks, scales of each expert; the routed ones set */
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

/* The activations as the row kernels read them: rows16 in their natural order; the others,
 * within each block of 32, the 16 even elements then the 16 odd ones. */
static void reorder(const moe_args *a, const void *src, void *dst, int n) {
    size_t size = a->fp32 ? 4 : 2;
    int groups = n / BLOCK;
    const char *from = src;
    char *to = dst;
    if (a->rows16) {
        memcpy(to, from, (size_t)n * size);
        return;
    }
    for (int g = 0; g < groups; g++) {
        for (int j = 0; j < BLOCK / 2; j++) {
            memcpy(to + ((size_t)g * BLOCK + j) * size, from + ((size_t)g * BLOCK + 2 * j) * size, size);
            memcpy(to + ((size_t)g * BLOCK + BLOCK / 2 + j) * size, from + ((size_t)g * BLOCK + 2 * j + 1) * size, size);
        }
    }
}

static void rows(const moe_args *a, const uint8_t *blocks, const uint8_t *scales, int n, int groups,
                 const void *xs, int ntok, float *out) {
    if (a->rows16) rows16(blocks, scales, n, groups, xs, ntok, out);
    else if (a->level == 1) rows_avx2(blocks, scales, n, groups, xs, a->fp32, ntok, out);
    else rows_f32_avx512(blocks, scales, n, groups, xs, ntok, out);
}

/* A task's rows of one matrix (gate_up or down) of one expert, times that expert's inputs. */
static void matrix_task(phase_ctx *c, int task, int down, int total, int width, const void *inputs, float *outputs) {
    const moe_args *a = c->a;
    expert_work *w = &c->work[c->task_work[task]];
    int groups = width / BLOCK, r0 = c->task_row[task];
    int n = total - r0 < ROWS_PER_TASK ? total - r0 : ROWS_PER_TASK;
    const uint8_t *blocks, *scales;
    size_t first = r0; /* the task's first row in the expert's matrix */
    if (a->rows16) {
        blocks = a->rows16[4 * (size_t)w->expert + 2 * down];
        scales = a->rows16[4 * (size_t)w->expert + 2 * down + 1];
    } else {
        blocks = down ? a->dn_blocks : a->gu_blocks;
        scales = down ? a->dn_scales : a->gu_scales;
        first += (size_t)w->expert * total;
    }
    rows(a, blocks + first * groups * 16, scales + first * groups, n, groups, inputs, w->count,
         outputs + (size_t)r0 * w->count);
}

static void gate_up_task(void *p, int task) {
    phase_ctx *c = p;
    expert_work *w = &c->work[c->task_work[task]];
    matrix_task(c, task, 0, 2 * c->a->inter, c->a->hidden, w->xs, w->gate_up);
}

static void down_task(void *p, int task) {
    phase_ctx *c = p;
    expert_work *w = &c->work[c->task_work[task]];
    matrix_task(c, task, 1, c->a->hidden, c->a->inter, w->act, w->down);
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
    if ((a->rows16 != NULL) != (a->level == 2 && !a->fp32)) return -1; /* bf16 at level 2 reads rows16 */
    int N = a->n_tokens, H = a->hidden, I = a->inter, E = a->n_experts, K = a->top_k;
    size_t size = a->fp32 ? 4 : 2;
    for (int i = 0; i < N * K; i++) {
        if (a->experts[i] < 0 || a->experts[i] >= E) return -1;
        for (int m = 0; a->rows16 && m < 4; m++)
            if (!a->rows16[4 * (size_t)a->experts[i] + m]) return -1; /* a routed expert not repacked */
    }
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
