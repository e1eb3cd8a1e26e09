"""Training nano, on tiny sizes: the data generator (seeded, split, rendered exactly as the chat
layer renders prompts), the tokenizer (round trip, harmony special tokens, digits one by one),
the trainable model (same loss as the inference model, learns, reproducible), and export ->
`ossy.load` (the same logits up to MXFP4 rounding)."""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import ossy
from ossy import harmony
from ossy.harmony import tokens as T
from ossy.model.gptoss import GptOss
from ossy.model.mxfp4 import dequantize, quantize
from ossy.tokenizer.core import TiktokenBackend
from ossy.tools.base import Policy, ToolContext
from ossy.tools.executor import Executor
from ossy.tools.registry import Registry
from ossy.train import data, facts
from ossy.train.export import export
from ossy.train.model import Pack, TrainableGptOss
from ossy.train.tokenizer import SPECIAL_TOKENS, train_tokenizer
from ossy.train.trainer import TrainConfig, load_tokenizer_text, nano_config, packs, train

TINY = TrainConfig(steps=3, copy_warmup=1, conversations_per_step=2, tokenizer_conversations=150, vocab_size=1024, hidden_size=64,
                   layers=2, heads=2, warmup_steps=1, log_every=1, eval_every=100)


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return train_tokenizer(data.corpus(TINY.tokenizer_conversations, 0), TINY.vocab_size)


@pytest.fixture(scope="module")
def tok(tokenizer_json):
    return load_tokenizer_text(tokenizer_json)


def user_texts(split: str, seed: int, n: int) -> list[str]:
    groups = itertools.islice(data.batches(split, seed, 4), n)
    return [m["content"] for _, convos in groups for c in convos for m in c.messages if m["role"] == "user"]


# -- data ------------------------------------------------------------------------------------------
def test_the_generator_is_deterministic_per_seed():
    first = list(itertools.islice(data.batches(data.TRAIN, 3, 4), 20))
    assert first == list(itertools.islice(data.batches(data.TRAIN, 3, 4), 20))
    assert first != list(itertools.islice(data.batches(data.TRAIN, 4, 4), 20))


def test_heldout_prompts_never_occur_in_training():
    train, heldout = set(user_texts(data.TRAIN, 0, 1500)), set(user_texts(data.HELDOUT, 0, 300))
    assert len(heldout) > 300 and not train & heldout


def test_arithmetic_operand_pairs_are_split():
    rng = random.Random(0)
    pairs = {split: {(op, *data._operands(rng, op, split)) for op in "+-*" for _ in range(300)}
             for split in data.SPLITS}
    assert pairs[data.TRAIN] and pairs[data.HELDOUT] and not pairs[data.TRAIN] & pairs[data.HELDOUT]


def test_every_kind_effort_and_setting_occurs():
    groups = list(itertools.islice(data.batches(data.TRAIN, 0, 8), 200))
    kinds = {c.kind for _, convos in groups for c in convos}
    assert kinds == {"small_talk", "repeat", "fact", "arithmetic", "digit_facts", "instruction", "tool", "no_tool"}
    assert {s.effort for s, _ in groups} == {"low", "medium", "high"}
    assert {s.style for s, _ in groups} == {None, "one_word", "number_only"}
    calls = {c.call[0] for _, convos in groups for c in convos if c.call}
    assert calls == set(data.TOOL_NAMES)


def test_the_declared_tools_vary_and_only_declared_tools_are_called():
    settings = [s for s, _ in itertools.islice(data.batches(data.TRAIN, 0, 1), 3000)]
    declared = [s for s in settings if s.toolsets]
    assert 0.25 < len(declared) / len(settings) < 0.35
    assert {frozenset(s.toolsets) for s in declared} >= {frozenset([name]) for name in data.ALL_TOOLSETS}
    assert len({s.toolsets for s in declared}) > 40  # subsets in many orders
    assert {s.shuffle is None for s in declared} == {True, False}
    shuffled = next(s for s in declared if s.shuffle is not None and len(s.tools) > 3)
    assert [t["function"]["name"] for t in shuffled.tools] != \
        [t["function"]["name"] for t in data.declared_tools(shuffled.toolsets)]
    for setting, convos in itertools.islice(data.batches(data.TRAIN, 1, 8), 300):
        for convo in convos:
            called = [c["function"]["name"] for m in convo.messages for c in m.get("tool_calls") or []]
            assert set(called) <= setting.tool_names  # never a tool that is not declared
            if convo.kind == "no_tool":
                tool = convo.answer.split("the ")[-1].split(" tool")[0]
                assert not called and tool in data.TOOL_NAMES and tool not in setting.tool_names


@pytest.mark.parametrize("steps,result", [(data.addition_steps(478, 56), 534),
                                          (data.subtraction_steps(503, 27), 476),
                                          (data.multiplication_steps(87, 6), 522)])
def test_column_working_writes_the_result_digits(steps, result):
    written = [int(s.split("write ")[-1].split(",")[0].replace("the carry ", "")) for s in steps if "write" in s]
    borrowed = [int(s.split("= ")[-1]) for s in steps if "write" not in s]
    digits = written or borrowed
    assert int("".join(map(str, reversed(digits)))) == result


def test_column_facts_are_right_and_are_every_fact_column_working_uses():
    table = dict(data.column_facts())
    assert all(eval(expression) == int(value) for expression, value in table.items())  # digits and + - * only
    rng = random.Random(3)
    for split, op in itertools.product(data.SPLITS, "+-*"):
        for _ in range(500):
            steps = "; ".join(data._OPERATIONS[op][1](*data._operands(rng, op, split)))
            assert all(table[expression] == value for expression, value in data._COLUMN_FACT.findall(steps))
    assert {"3 + 9 + 1", "12 - 7", "5 - 1 - 2", "2 * 9 + 8"} <= set(table)  # carries, borrows


def test_the_drill_asks_the_facts_it_answers_and_covers_the_table():
    table, drilled = dict(data.column_facts()), set()
    for seed in range(200):
        convo = data.digit_facts(random.Random(seed), data.TRAIN, data.Setting("low", "2026-03-04"))
        user, final = convo.messages[0]["content"], convo.messages[-1]["content"]
        pairs = [fact.split(" = ") for fact in final.rstrip(".").split("; ")]
        assert 10 <= len(pairs) <= 16 and all(table[expression] == value for expression, value in pairs)
        assert ", ".join(expression for expression, _ in pairs) in user
        drilled |= {expression for expression, _ in pairs}
    assert len(drilled) > 0.95 * len(table)  # drawn evenly: rare facts too


def test_only_produced_tokens_are_targets_and_result_digits_weigh_more(tok):
    setting = data.Setting("high", "2026-03-04")
    convo = data.arithmetic(random.Random(4), data.TRAIN, setting)
    tokens = data.encode(setting, convo, tok, result_weight=3.0)
    assert {w for _, w in tokens} == {0.0, 1.0, 3.0}
    runs, run = [], ""
    for token, weight in tokens:
        if weight == 3.0:
            run += tok.decode([token])
        elif run:
            runs, run = runs + [run], ""
    produced = tok.decode([t for t, w in tokens if w])
    assert runs == re.findall(r"= (\d+)", produced) and len(runs) >= 4  # working steps, "So", the final answer
    assert tok.decode([t for t, w in tokens if not w]).startswith("<|start|>user<|message|>" + convo.messages[0]["content"])
    assert [(t, bool(w)) for t, w in tokens] == [(t, bool(w)) for t, w in data.encode(setting, convo, tok)]


@pytest.mark.parametrize("toolsets,shuffle", [(data.NANO_TOOLSETS, None), (("system", "browser", "fs"), 7)])
def test_a_tool_conversation_renders_as_the_chat_layer_renders_each_prompt(tok, toolsets, shuffle):
    setting = data.Setting("medium", "2026-03-04", toolsets=toolsets, shuffle=shuffle)
    convo = data.tool_use(random.Random(1), data.TRAIN, setting)
    tokens = data.encode(setting, convo, tok)
    ids, produced = [t for t, _ in tokens], [w > 0 for _, w in tokens]
    full = data.prefix_ids(setting, tok) + ids
    tools = setting.tools
    # turn 1: the prompt is everything before the first produced token, as harmony.render makes it
    first = produced.index(True) + len(data.prefix_ids(setting, tok))
    assert full[:first] == harmony.render(convo.prompt, tok, tools=tools, reasoning_effort="medium",
                                          current_date="2026-03-04")
    # turn 2 (after the tool result): the same, with the assistant call and the tool result replayed
    resumed = max(i for i in range(1, len(produced)) if produced[i] and not produced[i - 1])
    resumed += len(data.prefix_ids(setting, tok))
    assert full[:resumed] == harmony.render(list(convo.messages[:3]), tok, tools=tools, reasoning_effort="medium",
                                            current_date="2026-03-04")
    text = tok.decode([t for t, w in tokens if w])
    assert text.startswith("<|channel|>analysis<|message|>") and text.endswith("<|return|>")
    assert f"<|start|>assistant to=functions.{convo.call[0]}<|channel|>commentary <|constrain|>json" in text
    assert tok.decode([ids[-1]]) == T.RETURN


def test_copied_text_weighs_more_the_call_arguments_and_the_answer_from_the_result(tok):
    setting = data.Setting("low", "2026-03-04", toolsets=data.NANO_TOOLSETS)
    rng = random.Random(3)
    convo = next(c for c in (data.tool_use(rng, data.TRAIN, setting) for _ in range(50)) if c.call[0] == "read_file")
    tokens = data.encode(setting, convo, tok, result_weight=1.0, copy_weight=5.0)
    copied = tok.decode([t for t, w in tokens if w == 5.0])
    arguments = convo.messages[1]["tool_calls"][0]["function"]["arguments"]
    assert copied == arguments + convo.messages[-1]["content"]  # nothing else: not the analysis, not the ends
    assert [(t, bool(w)) for t, w in tokens] == [(t, bool(w)) for t, w in data.encode(setting, convo, tok)]


# -- tokenizer -------------------------------------------------------------------------------------
def test_tokenizer_round_trips_and_names_the_harmony_tokens(tok, tokenizer_json):
    assert isinstance(tok._backend, TiktokenBackend)  # the fast engine accepts its form
    assert tok.vocab_size == TINY.vocab_size and set(SPECIAL_TOKENS) <= set(tok.special_tokens)
    for text in ("List the files in src.", "naïve café 東京 🙂", "  spaces\n\nand\ttabs", "{\"path\":\"a.py\"}"):
        assert tok.decode(tok.encode(text)) == text
    assert [tok.decode([i]) for i in tok.encode(" 1234")] == [" ", "1", "2", "3", "4"]
    assert tok.encode("<|call|>", allow_special=True) == [tok.token_id(T.CALL)]
    assert tok.token_id(T.CALL) not in tok.encode("<|call|>")
    assert train_tokenizer(data.corpus(TINY.tokenizer_conversations, 0), TINY.vocab_size) == tokenizer_json


# -- model and training ----------------------------------------------------------------------------
def tiny_model(tok, seed: int = 0) -> TrainableGptOss:
    return TrainableGptOss(nano_config(replace(TINY, vocab_size=tok.vocab_size)), seed=seed)


def inference_loss(engine: GptOss, pack: Pack) -> torch.Tensor:
    """The pack's loss computed by the inference model, one continuation (after the prefix) at a time."""
    predict, total = pack.predict.tolist(), torch.tensor(0.0)
    for start, end in pack.spans:
        logits = engine.forward(torch.cat((pack.ids[: pack.prefix], pack.ids[start:end])), engine.new_cache())
        picked = [i for i, row in enumerate(predict) if start <= row < end]
        rows = torch.tensor([predict[i] - start + pack.prefix for i in picked])
        losses = F.cross_entropy(logits[rows], pack.labels[picked], reduction="none")
        total += (losses * pack.weights[picked]).sum()
    return total / pack.weights.sum()


def test_the_training_loss_is_the_inference_models_loss(tok):
    model = tiny_model(tok)
    engine = GptOss.from_tensors(model.config, model.tensors(), torch.float32)
    config = replace(TINY, conversations_per_step=3)
    with_tools = next(p for p in packs(config, data.TRAIN, tok) if p.prefix > 1000)  # the tool declarations
    with_results = next(p for p in packs(config, data.TRAIN, tok) if p.weights.max() == config.result_weight)
    for pack in (with_tools, with_results):
        assert pack.prefix > 0
        with torch.no_grad():
            loss = model(pack)
        assert torch.allclose(loss, inference_loss(engine, pack), rtol=1e-5)


def test_a_few_steps_reduce_the_loss_and_training_is_reproducible():
    lines: list[str] = []
    model, tokenizer_json = train(TINY, log=lines.append)
    again, same_json = train(TINY, log=lambda line: None)
    assert tokenizer_json == same_json
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    steps = [line for line in lines if line.startswith("step ") and "loss" in line and "held-out" not in line]
    assert steps[-1].startswith(f"step {TINY.steps}/{TINY.steps}") and "tok/s" in steps[-1] and "left" in steps[-1]
    tok = load_tokenizer_text(tokenizer_json)
    pack = next(packs(replace(TINY, seed=99, copy_warmup=0, conversations_per_step=3), data.TRAIN, tok))
    with torch.no_grad():
        assert model(pack) < TrainableGptOss(model.config, seed=TINY.seed)(pack)


def test_export_loads_with_ossy_and_gives_the_same_logits_up_to_mxfp4(tok, tokenizer_json, tmp_path):
    model = tiny_model(tok, seed=5)
    path = export(model, tokenizer_json, tmp_path / "nano")
    assert sorted(p.name for p in path.iterdir()) == ["Modelfile", "config.json", "model.safetensors",
                                                      "tokenizer.json"]
    modelfile = (path / "Modelfile").read_text()
    assert "TOOLS" not in modelfile and "PARAMETER num_predict 400" in modelfile  # tools only with --tools
    loaded = ossy.load(path, dtype="float32")
    assert loaded.config.quantization == "mxfp4" and ossy.tokenizer.load(path).special_tokens == tok.special_tokens
    pack = next(packs(replace(TINY, seed=1, conversations_per_step=1), data.TRAIN, tok))
    rounded = GptOss.from_tensors(model.config, mxfp4_rounded(model.tensors()), torch.float32)
    expected = rounded.forward(pack.ids, rounded.new_cache())
    assert torch.allclose(loaded.logits(pack.ids.tolist()), expected, atol=1e-5)


def mxfp4_rounded(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with every expert matrix rounded to MXFP4 and back (dense, HF layout)."""
    out = dict(tensors)
    for name, t in tensors.items():
        if name.endswith(("gate_up_proj", "down_proj")):
            out[name] = dequantize(*quantize(t.transpose(1, 2)), torch.float32).transpose(1, 2)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_made_up_tool_results_are_what_the_real_tools_print(tmp_path, seed):
    rng = random.Random(seed)
    workspace = data.Workspace.sample(rng, data.TRAIN)
    for path, text in workspace.files.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    tools = Executor(Registry.from_toolsets(("fs",)), ToolContext(workspace=tmp_path, policy=Policy(), home=tmp_path / "ossy-home"))
    folders = [entry.rstrip("/") for entry in workspace.entries(".") if entry.endswith("/")]
    for directory in [".", *folders]:
        assert tools.call("list_directory", {"path": directory}).text() == workspace.listing(directory)
    for path, text in workspace.files.items():
        assert tools.call("read_file", {"path": path}).text() == text
    for extension in facts.EXTENSIONS:
        found = workspace.found(extension)
        assert tools.call("find_files", {"pattern": f"*.{extension}"}).text().splitlines() == (
            found or [f'no names match "*.{extension}" under .'])


def test_names_result_takes_the_expected_answer_and_refuses_a_made_up_name():
    from ossy.train.evaluate import names_result

    setting = data.Setting("low", "2026-03-04", toolsets=data.NANO_TOOLSETS)
    rng = random.Random(0)
    for _ in range(200):
        convo = data.tool_use(rng, data.HELDOUT, setting)
        result, final = convo.messages[2]["content"], convo.messages[-1]["content"]
        assert names_result(final, result, final), (final, result)
        assert not names_result(final, result, final.rstrip(".") + ", zzqx.txt.")  # a file it was not shown
        dropped = final.split(": ")[0] + ": nothing."
        if dropped != final:
            assert not names_result(final, result, dropped)  # what the result shows is missing


def test_the_copy_drill_says_back_exactly_what_it_was_given():
    rng = random.Random(0)
    setting = data.Setting("low", "2026-01-01")
    for split in data.SPLITS:
        for _ in range(50):
            convo = data.copy_drill(rng, split, setting)
            user, assistant = convo.messages
            assert assistant["content"] == convo.answer and user["content"].endswith(convo.answer)
            assert 4 <= len(convo.answer.replace(",", " ").split()) <= 16


def test_the_warm_up_packs_come_first_and_only_the_repeats_are_targets(tok):
    config = replace(TINY, copy_warmup=2, copy_runs=3, copy_alphabet=10)
    first, second, third = itertools.islice(packs(config, data.TRAIN, tok), 3)
    for pack in (first, second):
        assert pack.prefix == 0 and len(pack.spans) == 3 and int(pack.ids.max()) < 10
        for start, end in pack.spans:
            run = pack.ids[start:end].tolist()
            half = len(run) // 2
            assert run[:half] == run[half:]
            targets = [int(i) + 1 for i in pack.predict if start <= int(i) < end]  # rows predict the next id
            assert targets == list(range(start + half + 1, end))
    assert third.prefix > 0  # then conversations, under a setting's shared prefix
