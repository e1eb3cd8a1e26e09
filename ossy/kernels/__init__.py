"""ossy's native CPU kernels: C sources built by `make` into `libossy_kernels.so` beside them.

Owns the C code only (`moe.c`: the MXFP4 mixture-of-experts block, its AVX512/AVX2 paths and
thread pool). Loading and calling it from Python is `ossy.model.native`'s.
"""
