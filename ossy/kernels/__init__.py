"""ossy's native CPU kernels: C sources built by `make` into `libossy_kernels.so` beside them.

Owns the C code only: `moe.c` (the MXFP4 mixture-of-experts block and `ossy_select`, which picks
the AVX512 or AVX2 path), `linear.c` (bf16 matrix-vector products), `pool.c` (the thread pool)
and `common.h`. Loading and calling it from Python is `ossy.model.native`'s.
"""
