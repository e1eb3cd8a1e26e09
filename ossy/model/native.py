"""ossy's native CPU kernels (`ossy/kernels/*.c`, built by `make` into `libossy_kernels.so`), as
torch-facing functions.

Owns: finding and loading the library, choosing its path (`open_kernels("auto" | "avx512" |
"avx2" | "torch")`: the best the CPU has, or a lower one a setting forces; None means the PyTorch
path), its thread count, `Kernels.pack` (experts in the layout the chosen path reads: `_Rows16`
says when they are repacked) and `Kernels.moe`, one MoE block on packed MXFP4 experts. Routing stays
in PyTorch, exactly as `ossy.model.gptoss.mixture_of_experts` computes it, and the kernel gets
each token's chosen experts and weights.
Does not own: the math itself (the C file states its numerics, which follow the PyTorch
reference), building the library (the Makefile), or which settings pick a path (`ossy.config`).

Written with ctypes rather than as a torch extension: the kernels take raw pointers and sizes,
need no torch headers or ninja at build time, and ctypes releases the GIL while they run.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
from pathlib import Path

import torch

from ossy.model.backends import KERNEL_CHOICES, LEVELS

LIBRARY = Path(__file__).resolve().parents[1] / "kernels" / "libossy_kernels.so"
NAMES = {level: name for name, level in LEVELS.items()}

log = logging.getLogger("ossy.model")


class _MoeArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("n_tokens", "hidden", "inter", "n_experts", "top_k", "fp32",
                                                    "level")] + \
               [(name, ctypes.c_void_p) for name in ("x", "experts", "weights", "gu_blocks", "gu_scales", "gu_bias",
                                                     "dn_blocks", "dn_scales", "dn_bias", "rows16")] + \
               [("alpha", ctypes.c_float), ("limit", ctypes.c_float), ("out", ctypes.c_void_p)]


class _LinearArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("n_tokens", "in_", "out", "level")] + \
               [(name, ctypes.c_void_p) for name in ("x", "w", "bias", "y")]


class _AttentionArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("n_queries", "n_keys", "q_heads", "kv_heads", "head_dim", "window",
                                                    "fp32", "level")] + \
               [(name, ctypes.c_void_p) for name in ("q", "k", "v", "q_pos", "k_pos", "sinks", "out")]


MAX_LINEAR_TOKENS = 8  # linear.c's MAX_TOKENS: more tokens make a GEMM, left to PyTorch


class Kernels:
    """The loaded library at one path (`name`: "avx512" or "avx2")."""

    def __init__(self, lib: ctypes.CDLL, level: int) -> None:
        self.lib, self.level, self.name = lib, level, NAMES[level]

    def set_threads(self, n: int) -> int:
        """Use `n` threads (this one included); the number running."""
        return self.lib.ossy_set_threads(max(1, n))

    def linear(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, in] @ w [out, in]^T + bias, all bf16, N <= MAX_LINEAR_TOKENS -> [N, out] bf16."""
        x, w = x.contiguous(), w.contiguous()
        bias = bias.contiguous() if bias is not None else None
        y = torch.empty(x.shape[0], w.shape[0], dtype=torch.bfloat16)
        args = _LinearArgs(n_tokens=x.shape[0], in_=x.shape[1], out=w.shape[0], level=self.level, x=x.data_ptr(),
                           w=w.data_ptr(), bias=bias.data_ptr() if bias is not None else None, y=y.data_ptr())
        if self.lib.ossy_linear(ctypes.byref(args)) != 0:
            raise RuntimeError("the native linear kernel failed (a bad shape)")
        return y

    def rms_norm(self, x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
        """`ossy.model.gptoss.rms_norm` of bf16 x [N, H] with the fp32 gain [H] -> [N, H] bf16."""
        x = x.contiguous()
        y = torch.empty_like(x)
        if self.lib.ossy_rms_norm(x.data_ptr(), gain.data_ptr(), x.shape[0], x.shape[1], eps, y.data_ptr()) != 0:
            raise RuntimeError("the native rms_norm kernel failed (a bad shape)")
        return y

    def rope(self, rows: torch.Tensor, heads: int, head_dim: int, cos: torch.Tensor, sin: torch.Tensor) -> None:
        """`ossy.model.gptoss.rotate` in place on the first `heads` heads of each bf16 row of
        `rows` [N, width] (contiguous), with cos/sin [N, 1, head_dim / 2] bf16."""
        cos, sin = cos.contiguous(), sin.contiguous()
        if not rows.is_contiguous() or self.lib.ossy_rope(rows.data_ptr(), rows.shape[0], heads, head_dim,
                                                          rows.shape[1], cos.data_ptr(), sin.data_ptr()) != 0:
            raise RuntimeError("the native rope kernel failed (a bad shape)")

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor,
                  query_positions: torch.Tensor, key_positions: torch.Tensor, window: int | None) -> torch.Tensor:
        """`ossy.model.gptoss.attention` of q [T, Hq, D] over k, v [S, Hkv, D] (bf16 or fp32), the
        visible keys given by positions and `window` -> [T, Hq, D]."""
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        sinks = sinks.float().contiguous()
        query_positions, key_positions = query_positions.long().contiguous(), key_positions.long().contiguous()
        out = torch.empty_like(q)
        args = _AttentionArgs(n_queries=q.shape[0], n_keys=k.shape[0], q_heads=q.shape[1], kv_heads=k.shape[1],
                              head_dim=q.shape[2], window=window or 0, fp32=int(q.dtype == torch.float32),
                              level=self.level, q=q.data_ptr(), k=k.data_ptr(), v=v.data_ptr(),
                              q_pos=query_positions.data_ptr(), k_pos=key_positions.data_ptr(),
                              sinks=sinks.data_ptr(), out=out.data_ptr())
        if self.lib.ossy_attention(ctypes.byref(args)) != 0:
            raise RuntimeError("the native attention kernel failed (a bad shape)")
        return out

    def resident(self, t: torch.Tensor) -> torch.Tensor:
        """A copy of the matrix `t` [rows, ...] that a decode step reads whole (a projection, the
        lm_head) in `hugepage_empty` memory; the pages of a file-mapped `t` are given back as
        they are copied, so its bytes are held once. Besides the page walks, anonymous memory
        cannot be evicted as clean page cache can: on the 20b shape, decode at a 4k context
        measured 8.1 tok/s best with the copies and 4.2 without (benchmarks/vs_llamacpp.py,
        two runs). The price is at load: 2-9 s more to the first token (compaction for the huge
        pages)."""
        copy = hugepage_empty(t.numel() * t.element_size()).view(t.dtype).view(t.shape)
        mapped = _file_mapped(t.data_ptr())
        step = max(1, (64 << 20) // max(1, t[0].numel() * t.element_size()))  # rows per 64 MB
        for start in range(0, t.shape[0], step):
            copy[start:start + step] = t[start:start + step]
            if mapped:
                _give_back(t[start:start + step])
        return copy

    def pack(self, experts) -> None:
        """Make `experts` (a `PackedExperts`) what `moe` reads at this path: at AVX512-BF16 with bf16
        activations, moe.c's rows16 layout (`_Rows16`); else the layout as stored."""
        if self.level == LEVELS["avx512"] and experts.dtype == torch.bfloat16 and experts.native is None:
            experts.native = _Rows16(self.lib, experts)

    def moe(self, h: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor, experts, alpha: float,
            limit: float) -> torch.Tensor:
        """h [N, H] (bf16 or fp32) with each token's experts `chosen` [N, K] and `weights` [N, K]
        -> the MoE block's output [N, H]; `experts` is a `PackedExperts` as `pack` left it."""
        h = h.contiguous()
        chosen = chosen.to(torch.int32).contiguous()
        weights = weights.to(h.dtype).contiguous()
        out = torch.empty_like(h)
        gu_blocks, gu_scales = experts.gate_up
        dn_blocks, dn_scales = experts.down
        _require_packed(gu_blocks, gu_scales, dn_blocks, dn_scales)
        gu_bias, dn_bias = experts.gate_up_bias.to(h.dtype).contiguous(), experts.down_bias.to(h.dtype).contiguous()
        rows16 = ctypes.addressof(experts.native.pointers(chosen)) if experts.native is not None else None
        args = _MoeArgs(n_tokens=h.shape[0], hidden=h.shape[1], inter=dn_blocks.shape[2] * 32,
                        n_experts=gu_blocks.shape[0], top_k=chosen.shape[1], fp32=int(h.dtype == torch.float32),
                        level=self.level, rows16=rows16,
                        x=h.data_ptr(), experts=chosen.data_ptr(), weights=weights.data_ptr(),
                        gu_blocks=gu_blocks.data_ptr(), gu_scales=gu_scales.data_ptr(), gu_bias=gu_bias.data_ptr(),
                        dn_blocks=dn_blocks.data_ptr(), dn_scales=dn_scales.data_ptr(), dn_bias=dn_bias.data_ptr(),
                        alpha=alpha, limit=limit, out=out.data_ptr())
        if self.lib.ossy_moe(ctypes.byref(args)) != 0:
            raise RuntimeError("the native MoE kernel failed (out of memory, a bad shape, or experts not packed "
                               "for this path: Kernels.pack)")
        return out


class _Rows16:
    """One layer's experts as moe.c's AVX512-BF16 kernel reads them (its rows16 layout), for
    `Kernels.moe`: the pointers [E, 4] to each expert's gate_up blocks and scales and down blocks
    and scales.

    Experts in memory of the process's own (a GGUF's, read at load; a test's) are rewritten in
    place, all at once: the same bytes, reordered (their `layout` becomes "rows16", which only the
    kernel reads). Experts mapped from a checkpoint file stay as they are, and each is repacked
    into memory of its own the first time a token is routed to it: writing the mapping in place
    would copy every page (copy-on-write), and reading every expert at load would cost the time
    to the first token. The mapped pages an expert was read from are then given back
    (MADV_DONTNEED; a private file mapping reads them again from the file if touched), so its
    bytes are held once. (Slots, no __dict__: `GptOss.weight_bytes` counts the experts, not this
    kernel-side copy of them.)"""

    __slots__ = ("lib", "experts", "table", "held", "missing")

    def __init__(self, lib: ctypes.CDLL, experts) -> None:
        self.lib, self.experts = lib, experts
        E = experts.num_experts
        self.table = (ctypes.c_void_p * (4 * E))()
        self.held: dict[int, list[torch.Tensor]] = {}  # expert -> its repacked tensors
        self.missing = set(range(E))
        if not _file_mapped(experts.gate_up[0].data_ptr()):
            for blocks, scales in (experts.gate_up, experts.down):
                self._repack(blocks, scales, blocks, scales, E)
            experts.layout = "rows16"
            for e in range(E):
                self._point(e, [t[e] for pair in (experts.gate_up, experts.down) for t in pair])

    def pointers(self, chosen: torch.Tensor) -> ctypes.Array:
        """The table, every expert in `chosen` repacked."""
        if self.missing:
            for e in self.missing.intersection(chosen.view(-1).tolist()):
                held = []
                matrices = [(blocks[e], scales[e]) for blocks, scales in (self.experts.gate_up, self.experts.down)]
                region = hugepage_empty(sum(b.numel() + s.numel() for b, s in matrices))  # uint8: bytes
                for blocks, scales in matrices:
                    new_blocks, region = _take(region, blocks)
                    new_scales, region = _take(region, scales)
                    self._repack(blocks, scales, new_blocks, new_scales, 1)
                    _give_back(blocks)
                    _give_back(scales)
                    held += [new_blocks, new_scales]
                self._point(e, held)
                self.held[e] = held
        return self.table

    def _repack(self, blocks, scales, new_blocks, new_scales, matrices: int) -> None:
        _require_packed(blocks, scales)
        rows, groups = blocks.shape[-3], blocks.shape[-2]
        if self.lib.ossy_repack_rows16(blocks.data_ptr(), scales.data_ptr(), new_blocks.data_ptr(),
                                       new_scales.data_ptr(), matrices, rows, groups) != 0:
            raise ValueError(f"experts of {rows} rows cannot be repacked in sixteens")

    def _point(self, e: int, tensors: list[torch.Tensor]) -> None:
        for m, t in enumerate(tensors):
            self.table[4 * e + m] = t.data_ptr()
        self.missing.discard(e)


def _take(region: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the first bytes of the uint8 `region` shaped as `like`, the rest of it)."""
    n = like.numel() * like.element_size()
    return region[:n].view(like.dtype).view(like.shape), region[n:]


def _require_packed(*parts: torch.Tensor) -> None:
    if not all(t.is_contiguous() and t.dtype == torch.uint8 for t in parts):
        raise ValueError("packed experts must be contiguous uint8 blocks and scales")


MADV_DONTNEED = 4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _file_mapped(address: int) -> bool:
    """Whether `address` lies in a mapping of a file (/proc/self/maps names one)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return len(fields) == 6 and fields[5].startswith("/")
    return False


def _give_back(t: torch.Tensor) -> None:
    """Drop the whole pages of a file-mapped tensor from this process (re-read from the file if touched)."""
    page = os.sysconf("SC_PAGE_SIZE")
    start = -(-t.data_ptr() // page) * page
    end = (t.data_ptr() + t.numel() * t.element_size()) // page * page
    if end > start:
        _libc.madvise(start, end - start, MADV_DONTNEED)


HUGE_PAGE = 2 << 20


def hugepage_empty(nbytes: int) -> torch.Tensor:
    """uint8 [nbytes] of fresh anonymous memory aligned to 2 MB and asked to be backed by 2 MB
    pages (MADV_HUGEPAGE; Linux's default leaves them to madvise). The kernels stream matrices
    of megabytes once per token, and 4 KB pages cost a page walk every 4 KB: measured here, 24
    qkv matrices at one token took 20.1 ms on huge pages against 24.4 ms (best of 7, 2 threads;
    in another minute both took 12.4 ms), a 64-byte streaming read ran at 35 GB/s against 31,
    and one 20b MoE layer at one token 2.05 ms against 2.16 (best of 200 calls). The slack before the aligned start
    is never touched, so never resident."""
    region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    start = ctypes.addressof(ctypes.c_char.from_buffer(region))
    return torch.frombuffer(region, dtype=torch.uint8, count=nbytes, offset=-start % HUGE_PAGE)


def open_kernels(choice: str = "auto", threads: int | None = None) -> Kernels | None:
    """The native kernels at the best path the CPU has (at most `choice`), or None: "torch"
    asked for, the library not built, or the CPU without AVX2. `threads` default: the cores."""
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, not {choice!r}")
    if choice == "torch":
        return None
    if not LIBRARY.is_file():
        log.warning("native kernels not built (%s is missing: run make); using the PyTorch path", LIBRARY)
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    lib.ossy_select.argtypes = [ctypes.c_int]
    lib.ossy_set_threads.argtypes = [ctypes.c_int]
    lib.ossy_moe.argtypes = [ctypes.c_void_p]
    lib.ossy_repack_rows16.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int32] * 3
    lib.ossy_linear.argtypes = [ctypes.c_void_p]
    lib.ossy_attention.argtypes = [ctypes.c_void_p]
    lib.ossy_rms_norm.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                                  ctypes.c_void_p]
    lib.ossy_rope.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 4 + [ctypes.c_void_p] * 2
    level = lib.ossy_select(LEVELS.get(choice, max(LEVELS.values())))
    if level == 0:
        log.warning("this CPU has neither AVX512-BF16 nor AVX2: using the PyTorch path")
        return None
    kernels = Kernels(lib, level)
    running = kernels.set_threads(threads or physical_cores())
    log.info("MoE experts run on ossy's native %s kernels, %d threads", kernels.name, running)
    return kernels


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once (sysfs topology; else CPUs)."""
    cpus = sorted(os.sched_getaffinity(0))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))
