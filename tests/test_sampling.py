"""Sampler: every option against a direct computation, seeds, logprobs, validation."""

from __future__ import annotations

import math

import pytest
import torch

from ossy.engine.protocol import SamplingOptions
from ossy.engine.sampling import Sampler, penalize, truncated_probs
from ossy.errors import OssyError


def logits(seed: int = 0, size: int = 50) -> torch.Tensor:
    return torch.randn(size, generator=torch.Generator().manual_seed(seed)) * 3


def reference_probs(scores: list[float], top_k: int, top_p: float, min_p: float) -> list[float]:
    """The same filters written out longhand, one token at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if top_k:
        order = order[:top_k]
    z = sum(math.exp(scores[i]) for i in order)
    p = {i: math.exp(scores[i]) / z for i in order}
    kept, mass = [], 0.0
    for i in order:
        if mass >= top_p:
            break
        kept.append(i)
        mass += p[i]
    best = p[order[0]]
    kept = [i for i in kept if p[i] >= min_p * best]
    total = sum(p[i] for i in kept)
    return [p[i] / total if i in kept else 0.0 for i in range(len(scores))]


@pytest.mark.parametrize("top_k,top_p,min_p", [(0, 1.0, 0.0), (5, 1.0, 0.0), (0, 0.7, 0.0), (0, 1.0, 0.2),
                                               (10, 0.9, 0.05), (1, 1.0, 0.0), (0, 0.01, 0.0)])
def test_truncated_probs_match_a_direct_computation(top_k, top_p, min_p):
    scores = logits(1)
    ours = truncated_probs(scores, top_k, top_p, min_p)
    expected = torch.tensor(reference_probs(scores.tolist(), top_k, top_p, min_p))
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_sampled_frequencies_follow_the_distribution():
    scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    sampler = Sampler(temperature=0.8, seed=0, top_k=4, top_p=0.95)
    counts = torch.bincount(torch.tensor([sampler(scores).id for _ in range(8000)]), minlength=5).float()
    expected = torch.tensor(reference_probs((scores / 0.8).tolist(), 4, 0.95, 0.0))
    assert counts[4] == 0 and (counts / counts.sum() - expected).abs().max() < 0.03


def test_greedy_is_argmax_and_respects_the_mask():
    scores = logits(2)
    assert Sampler(0)(scores).id == int(scores.argmax())
    allowed = {3, 17, 40}
    assert Sampler(0)(scores, allowed=allowed).id == max(allowed, key=lambda i: scores[i])
    hot = Sampler(temperature=5.0, seed=1)
    assert all(hot(scores, allowed=allowed).id in allowed for _ in range(200))


def test_seeds_reproduce_and_differ():
    scores = logits(3)

    def draw(seed):
        s = Sampler(temperature=1.0, seed=seed)
        return [s(scores).id for _ in range(30)]

    assert draw(7) == draw(7)
    assert len({tuple(draw(seed)) for seed in range(4)}) > 1


def test_penalties_match_llama_cpp_and_openai():
    scores = torch.tensor([2.0, -2.0, 1.0, 0.5, -0.5])
    o = SamplingOptions(repeat_penalty=2.0, presence_penalty=0.25, frequency_penalty=0.5)
    out = penalize(scores, [0, 1, 1, 3], o)
    expected = [
        2.0 / 2 - 0.25 - 1 * 0.5,  # positive: divided, once despite one occurrence
        -2.0 * 2 - 0.25 - 2 * 0.5,  # negative: multiplied; frequency counts both occurrences
        1.0,  # unseen: untouched
        0.5 / 2 - 0.25 - 0.5,
        -0.5,
    ]
    torch.testing.assert_close(out, torch.tensor(expected))


@pytest.mark.parametrize("last_n,penalized", [(2, {3}), (0, set()), (-1, {0, 3}), (64, {0, 3})])
def test_repeat_last_n_window(last_n, penalized):
    scores = torch.tensor([3.0, 2.9, 0.0, 2.8])
    sampler = Sampler(0, repeat_penalty=100.0, repeat_last_n=last_n)
    best_unpenalized = next(i for i in (0, 1, 3) if i not in penalized)
    assert sampler(scores, history=[0, 2, 3]).id == best_unpenalized


def test_logprobs_are_the_models_raw_distribution():
    scores = logits(4)
    token = Sampler(temperature=0.5, seed=2, top_k=3, repeat_penalty=3.0, top_logprobs=4)(scores, history=[1, 2])
    raw = scores.log_softmax(-1)
    assert token.logprob == pytest.approx(float(raw[token.id]), abs=1e-6)
    assert [i for i, _ in token.top_logprobs] == raw.topk(4).indices.tolist()
    assert [v for _, v in token.top_logprobs] == pytest.approx(raw.topk(4).values.tolist(), abs=1e-6)
    plain = Sampler(0)(scores)
    assert plain.logprob is None and plain.top_logprobs == ()
    assert Sampler(0, logprobs=True)(scores).top_logprobs == ()


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1),
                                 dict(min_p=2), dict(repeat_penalty=0), dict(top_logprobs=21),
                                 dict(repeat_last_n=-2)])
def test_invalid_options_are_user_errors(bad):
    with pytest.raises(OssyError, match=next(iter(bad))):
        Sampler.of(SamplingOptions(**bad))
