"""gpt-oss model configuration: one dataclass read from HF `config.json` or `original/config.json`.

Owns: the hyper-parameters of the architecture, their names in both files (HF v4 `rope_scaling`,
HF v5 `rope_parameters`, the original checkpoint's `rope_ntk_*` keys), the sliding/full layer
pattern, and the validation that turns a bad file into a `ConfigError` naming the key.
Does not own: weights (`ossy.model.weights`) or sampling defaults (those live with the model in
the store).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ossy.model.errors import ConfigError

SLIDING = "sliding_attention"
FULL = "full_attention"


@dataclass(frozen=True)
class GptOssConfig:
    vocab_size: int
    hidden_size: int  # residual width (2880)
    intermediate_size: int  # per-expert width (2880)
    num_hidden_layers: int
    num_attention_heads: int  # query heads (64)
    num_key_value_heads: int  # kv heads (8); query head h uses kv head h // (heads / kv_heads)
    head_dim: int  # 64
    num_local_experts: int  # E (32 / 128)
    num_experts_per_tok: int  # top-k (4)
    sliding_window: int  # visible keys on sliding layers, the current one included (128)
    layer_types: tuple[str, ...]  # SLIDING or FULL per layer
    rope_theta: float = 150000.0
    rope_scaling_factor: float = 1.0  # YaRN s; 1.0 means plain RoPE
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    original_max_position_embeddings: int = 4096  # `initial_context_length` in original/
    rope_truncate: bool = False  # gpt-oss: False (do not floor/ceil the YaRN correction range)
    max_position_embeddings: int = 131072
    rms_norm_eps: float = 1e-5
    swiglu_limit: float = 7.0
    swiglu_alpha: float = 1.702
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    quantization: str | None = None  # "mxfp4" when the checkpoint stores experts as MXFP4

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived -----------------------------------------------------------------------------
    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == SLIDING

    @property
    def queries_per_kv(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def yarn_concentration(self) -> float:
        """YaRN attention factor applied to cos and sin: 0.1·ln(s) + 1 (1.0 without scaling)."""
        s = self.rope_scaling_factor
        return 0.1 * math.log(s) + 1.0 if s > 1.0 else 1.0

    @property
    def context_length(self) -> int:
        return self.max_position_embeddings

    # -- (de)serialisation -------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> "GptOssConfig":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "GptOssConfig":
        """Build from an HF config dict or an `original/config.json` dict."""
        try:
            if "num_experts" in data and "num_local_experts" not in data:
                return _from_original(data, source)
            return _from_hf(data, source)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_hf_dict(self) -> dict:
        """The HF `config.json` form (transformers v5 key names) of this config."""
        d = {
            "architectures": ["GptOssForCausalLM"],
            "model_type": "gpt_oss",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "num_local_experts": self.num_local_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "experts_per_token": self.num_experts_per_tok,
            "sliding_window": self.sliding_window,
            "layer_types": list(self.layer_types),
            "max_position_embeddings": self.max_position_embeddings,
            "initial_context_length": self.original_max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "swiglu_limit": self.swiglu_limit,
            "swiglu_alpha": self.swiglu_alpha,
            "attention_bias": True,
            "tie_word_embeddings": self.tie_word_embeddings,
            "rope_theta": self.rope_theta,
            "rope_parameters": {
                "rope_type": "yarn",
                "rope_theta": self.rope_theta,
                "factor": self.rope_scaling_factor,
                "beta_fast": self.rope_beta_fast,
                "beta_slow": self.rope_beta_slow,
                "original_max_position_embeddings": self.original_max_position_embeddings,
                "truncate": self.rope_truncate,
            },
            "eos_token_id": list(self.eos_token_ids) or None,
            "pad_token_id": self.pad_token_id,
        }
        if self.quantization == "mxfp4":
            d["quantization_config"] = {
                "quant_method": "mxfp4",
                "modules_to_not_convert": [
                    "model.layers.*.self_attn",
                    "model.layers.*.mlp.router",
                    "model.embed_tokens",
                    "lm_head",
                ],
            }
        return d

    def replace(self, **changes) -> "GptOssConfig":
        d = asdict(self)
        d.update(changes)
        d["layer_types"] = tuple(d["layer_types"])
        return GptOssConfig(**d)


# Keys every HF gpt-oss config must have (the rest have gpt-oss defaults).
_HF_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "num_local_experts",
    "sliding_window",
)
_ORIGINAL_REQUIRED = (
    "num_hidden_layers",
    "num_experts",
    "experts_per_token",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "head_dim",
    "num_attention_heads",
    "num_key_value_heads",
    "sliding_window",
)


def _require(data: dict, keys, source: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(f"{source}: missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


def _check_architecture(data: dict, source: str) -> None:
    model_type = data.get("model_type")
    archs = data.get("architectures") or []
    if model_type is not None and model_type != "gpt_oss":
        raise ConfigError(f"{source}: model_type is {model_type!r}, not a gpt-oss model ('gpt_oss')")
    if archs and not any("GptOss" in a for a in archs):
        raise ConfigError(f"{source}: architectures {archs} is not a gpt-oss model (GptOssForCausalLM)")


def _one_of(data: dict, names: tuple[str, ...], source: str, default=None):
    """Value of the first present key among aliases; contradictory aliases are an error."""
    present = [(n, data[n]) for n in names if n in data and data[n] is not None]
    if not present:
        return default
    first_name, first = present[0]
    for name, value in present[1:]:
        if value != first:
            raise ConfigError(f"{source}: {first_name}={first!r} contradicts {name}={value!r}")
    return first


def _eos_ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _from_hf(data: dict, source: str) -> GptOssConfig:
    _check_architecture(data, source)
    _require(data, _HF_REQUIRED, source)
    rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type")
    if rope_type not in (None, "yarn", "default"):
        raise ConfigError(f"{source}: rope type {rope_type!r} is not supported (gpt-oss uses 'yarn')")
    yarn = rope_type == "yarn"
    num_layers = int(data["num_hidden_layers"])
    layer_types = data.get("layer_types")
    if layer_types is None:
        layer_types = [SLIDING if i % 2 == 0 else FULL for i in range(num_layers)]
    quant = data.get("quantization_config") or {}
    heads = int(data["num_attention_heads"])
    return GptOssConfig(
        vocab_size=int(data["vocab_size"]),
        hidden_size=int(data["hidden_size"]),
        intermediate_size=int(data["intermediate_size"]),
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=int(data["num_key_value_heads"]),
        head_dim=int(data.get("head_dim") or int(data["hidden_size"]) // heads),
        num_local_experts=int(data["num_local_experts"]),
        num_experts_per_tok=int(_one_of(data, ("num_experts_per_tok", "experts_per_token"), source, default=4)),
        sliding_window=int(data["sliding_window"]),
        layer_types=tuple(layer_types),
        rope_theta=float(rope.get("rope_theta", data.get("rope_theta", 150000.0))),
        rope_scaling_factor=float(rope.get("factor", 1.0)) if yarn else 1.0,
        rope_beta_fast=float(rope.get("beta_fast", 32.0)),
        rope_beta_slow=float(rope.get("beta_slow", 1.0)),
        original_max_position_embeddings=int(
            rope.get("original_max_position_embeddings", data.get("initial_context_length", 4096))
        ),
        rope_truncate=bool(rope.get("truncate", True)),  # transformers' default when absent
        max_position_embeddings=int(data.get("max_position_embeddings", 131072)),
        rms_norm_eps=float(data.get("rms_norm_eps", 1e-5)),
        swiglu_limit=float(data.get("swiglu_limit", 7.0)),
        swiglu_alpha=float(data.get("swiglu_alpha", 1.702)),
        tie_word_embeddings=bool(data.get("tie_word_embeddings", False)),
        eos_token_ids=_eos_ids(data.get("eos_token_id")),
        pad_token_id=data.get("pad_token_id"),
        quantization=quant.get("quant_method"),
    )


def _from_original(data: dict, source: str) -> GptOssConfig:
    _require(data, _ORIGINAL_REQUIRED, source)
    num_layers = int(data["num_hidden_layers"])
    initial = int(data.get("initial_context_length", 4096))
    factor = float(data.get("rope_scaling_factor", 1.0))
    return GptOssConfig(
        vocab_size=int(data["vocab_size"]),
        hidden_size=int(data["hidden_size"]),
        intermediate_size=int(data["intermediate_size"]),
        num_hidden_layers=num_layers,
        num_attention_heads=int(data["num_attention_heads"]),
        num_key_value_heads=int(data["num_key_value_heads"]),
        head_dim=int(data["head_dim"]),
        num_local_experts=int(data["num_experts"]),
        num_experts_per_tok=int(data["experts_per_token"]),
        sliding_window=int(data["sliding_window"]),
        layer_types=tuple(SLIDING if i % 2 == 0 else FULL for i in range(num_layers)),
        rope_theta=float(data.get("rope_theta", 150000.0)),
        rope_scaling_factor=factor,
        rope_beta_fast=float(data.get("rope_ntk_beta", 32.0)),
        rope_beta_slow=float(data.get("rope_ntk_alpha", 1.0)),
        original_max_position_embeddings=initial,
        rope_truncate=False,
        max_position_embeddings=int(round(factor * initial)),
        swiglu_limit=float(data.get("swiglu_limit", 7.0)),
        eos_token_ids=(200002, 199999, 200012),
        pad_token_id=199999,
        quantization="mxfp4",
    )


def _validate(c: GptOssConfig) -> None:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"config: {msg}")

    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "num_local_experts", "num_experts_per_tok", "sliding_window"):
        if getattr(c, name) <= 0:
            raise bad(f"{name} must be positive, got {getattr(c, name)}")
    if c.num_attention_heads % c.num_key_value_heads:
        raise bad(f"num_attention_heads ({c.num_attention_heads}) is not a multiple of "
                  f"num_key_value_heads ({c.num_key_value_heads})")
    if c.num_experts_per_tok > c.num_local_experts:
        raise bad(f"num_experts_per_tok ({c.num_experts_per_tok}) exceeds num_local_experts ({c.num_local_experts})")
    if c.head_dim % 2:
        raise bad(f"head_dim ({c.head_dim}) must be even for rotary embeddings")
    if len(c.layer_types) != c.num_hidden_layers:
        raise bad(f"layer_types has {len(c.layer_types)} entries but num_hidden_layers is {c.num_hidden_layers}")
    unknown = sorted(set(c.layer_types) - {SLIDING, FULL})
    if unknown:
        raise bad(f"unknown layer type {unknown[0]!r} (expected {SLIDING!r} or {FULL!r})")
    if c.rope_scaling_factor < 1.0:
        raise bad(f"rope scaling factor must be >= 1, got {c.rope_scaling_factor}")
    if c.quantization not in (None, "mxfp4"):
        raise bad(f"quantization {c.quantization!r} is not supported (only 'mxfp4')")
