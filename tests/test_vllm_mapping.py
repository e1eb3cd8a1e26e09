"""The vLLM backend's parts that need no vLLM (`make test-vllm` runs it against vLLM itself):
ossy's sampling options as vLLM's sampling parameters, the options it refuses, and choosing the
backend (OSSY_BACKEND, OSSY_VLLM_ARGS, `ossy serve --backend`)."""

from __future__ import annotations

import asyncio

import pytest

from ossy.cli.main import build_parser
from ossy.config import SettingsError, settings
from ossy.engine.backend import open_engine
from ossy.engine.protocol import SamplingOptions
from ossy.engine.scheduler import LocalEngine
from ossy.engine.vllm import InProcess, Remote, UnsupportedOption, VllmEngine, vllm_sampling


def test_sampling_options_map_one_to_one():
    o = SamplingOptions(temperature=0.7, top_p=0.9, top_k=40, min_p=0.05, seed=3, top_logprobs=2)
    assert vllm_sampling(o, 100, frozenset({200012, 200002})) == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.0, "max_tokens": 100,
        "stop_token_ids": [200002, 200012], "ignore_eos": True, "seed": 3, "logprobs": 2}
    assert "seed" not in vllm_sampling(SamplingOptions(), 5, frozenset()) and \
        "logprobs" not in vllm_sampling(SamplingOptions(), 5, frozenset())
    assert vllm_sampling(SamplingOptions(logprobs=True), 5, frozenset())["logprobs"] == 0  # the chosen token's only
    assert vllm_sampling(SamplingOptions(repeat_penalty=1.2, repeat_last_n=-1), 5, frozenset())["repetition_penalty"] == 1.2


@pytest.mark.parametrize("options, named", [({"repeat_penalty": 1.1}, "repeat_last_n -1"),
                                            ({"presence_penalty": 0.4}, "presence_penalty"),
                                            ({"frequency_penalty": -0.2}, "frequency_penalty")])
def test_what_vllm_cannot_apply_is_refused_with_a_400(options, named):
    with pytest.raises(UnsupportedOption, match=named) as e:
        vllm_sampling(SamplingOptions(**options), 5, frozenset())
    assert e.value.http_status == 400


def test_the_backend_setting_and_flag():
    assert settings({}).backend == "local" and settings({}).vllm_args == {}
    s = settings({"OSSY_BACKEND": "vllm:http://10.0.0.5:8000", "OSSY_VLLM_ARGS": '{"tensor_parallel_size": 2}'})
    assert (s.backend, s.vllm_args) == ("vllm:http://10.0.0.5:8000", {"tensor_parallel_size": 2})
    for env, message in [({"OSSY_BACKEND": "vllm:10.0.0.5"}, "OSSY_BACKEND='vllm:10.0.0.5'"),
                         ({"OSSY_VLLM_ARGS": "[1]"}, "OSSY_VLLM_ARGS: expected a JSON object"),
                         ({"OSSY_VLLM_ARGS": "{"}, "OSSY_VLLM_ARGS: not JSON")]:
        with pytest.raises(SettingsError, match=message):
            settings(env)
    assert build_parser().parse_args(["serve", "--backend", "vllm"]).backend == "vllm"


def test_open_engine_builds_the_engine_the_setting_names():
    remote = open_engine(settings({"OSSY_BACKEND": "vllm:http://127.0.0.1:9/"}))
    assert isinstance(remote, VllmEngine) and isinstance(remote.transport, Remote)
    assert remote.transport.url == "http://127.0.0.1:9" and remote.loaded() == []
    in_process = open_engine(settings({"OSSY_BACKEND": "vllm", "OSSY_VLLM_ARGS": '{"enforce_eager": true}'}))
    assert isinstance(in_process.transport, InProcess) and in_process.transport.engine_args == {"enforce_eager": True}
    local = open_engine(settings({}))
    assert isinstance(local, LocalEngine)
    for engine in (remote, in_process, local):
        asyncio.run(engine.close())
