"""The compute paths a model can run on, by name: what the OSSY_KERNELS setting may say.

Owns the names only (no torch here, so `ossy.config` can check a setting against them):
"auto" (the best path the CPU has), "avx512" (ossy's AVX512-BF16 kernels), "avx2" (its AVX2
kernels), "torch" (the PyTorch reference path). Loading the kernels is `ossy.model.native`'s.
"""

KERNEL_CHOICES = ("auto", "avx512", "avx2", "torch")
LEVELS = {"avx512": 2, "avx2": 1}  # the C library's numbering (ossy/kernels/moe.c, ossy_select)
