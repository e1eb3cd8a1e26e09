/* What ossy's kernels share: the bf16 type and its conversions, the E8M0 scale table, and the
 * thread pool's interface (pool.c). */

#ifndef OSSY_KERNELS_COMMON_H
#define OSSY_KERNELS_COMMON_H

#include <stdint.h>
#include <string.h>

typedef uint16_t bf16;

#define BLOCK 32

static inline float bf16_to_f32(bf16 v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline bf16 f32_to_bf16(float f) { /* round to nearest even, as torch does */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (bf16)((bits >> 16) | 0x40); /* NaN stays NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (bf16)(bits >> 16);
}

static inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

/* The paths, as ossy_select numbers them: 2 = AVX512-BF16, 1 = AVX2 (+FMA, F16C). */
int ossy_supported(void); /* the highest level ossy_select has granted */

/* fn(ctx, 0..tasks-1) on the pool's threads and the caller's; returns when all are done. */
typedef void (*task_fn)(void *ctx, int task);
void ossy_parallel(task_fn fn, void *ctx, int tasks);

#endif
