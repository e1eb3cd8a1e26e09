"""Malformed Modelfiles: each gives exactly one line saying where, what is wrong, what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ossy.errors import OssyError
from ossy.modelfile import ModelfileError, parse, parse_file

FIXTURES = Path(__file__).parent / "fixtures" / "modelfiles"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())

INSTRUCTIONS = "valid: FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES, TOOLS"
PARAMETER_NAMES = (
    "valid: num_ctx, num_predict, temperature, top_k, top_p, min_p, typical_p, repeat_penalty, "
    "repeat_last_n, presence_penalty, frequency_penalty, seed, stop, num_keep, num_batch, num_gpu, "
    "main_gpu, use_mmap, num_thread, draft_num_predict"
)
STRAY = "unexpected '\"\"\"' outside a TEMPLATE/SYSTEM value; remove this line or open the value with TEMPLATE \"\"\""

CASES = [
    # (id, Modelfile text, the exact message)
    ("empty", "", "Modelfile: no FROM line; add one such as FROM gpt-oss:20b"),
    ("only-comments", "# FROM gpt-oss:20b\n", "Modelfile: no FROM line; add one such as FROM gpt-oss:20b"),
    ("typo-instruction", "FORM gpt-oss:20b\n", f'Modelfile:1: unknown instruction "FORM"; did you mean "FROM"? {INSTRUCTIONS}'),
    ("unknown-instruction", "FROM x\nHELLO there\n", f'Modelfile:2: unknown instruction "HELLO"; {INSTRUCTIONS}'),
    ("pasted-prose", "FROM x\n6.3 Creating Extended Models\n", f'Modelfile:2: unknown instruction "6.3"; {INSTRUCTIONS}'),
    ("stray-triple-quote", 'FROM x\nPARAMETER temperature 1\n"""\n', f"Modelfile:3: {STRAY}"),
    (
        "stray-quote",
        'FROM x\n"\n',
        "Modelfile:2: unexpected '\"' outside a TEMPLATE/SYSTEM value; remove this line or open the value with TEMPLATE \"",
    ),
    (
        "template-outside-value",
        "FROM x\n{{ .Prompt }}\n",
        'Modelfile:2: template text outside a TEMPLATE value; put it between TEMPLATE """ and a closing """',
    ),
    ("markdown-fence", "```\nFROM x\n```\n", "Modelfile:1: unexpected Markdown code fence; remove this line"),
    (
        "ollama-only",
        "FROM x\nparser harmony\n",
        "Modelfile:2: PARSER is an Ollama instruction ossy does not support; remove this line",
    ),
    ("no-space", 'FROM x\nSYSTEM"hi"\n', "Modelfile:2:7: expected a space after SYSTEM"),
    ("from-without-value", "FROM\n", "Modelfile:1: FROM needs a value; write FROM <model name or path>"),
    ("from-empty-quotes", 'FROM ""\n', "Modelfile:1: FROM needs a value; write FROM <model name or path>"),
    ("second-from", "FROM a\nFROM b\n", "Modelfile:2: FROM is already set on line 1; keep one"),
    (
        "second-template",
        "FROM x\nTEMPLATE a\n\nTEMPLATE b\n",
        "Modelfile:4: TEMPLATE is already set on line 2; keep one",
    ),
    (
        "value-on-next-line",
        'FROM x\nSYSTEM\n"""\nhi\n"""\n',
        'Modelfile:2: SYSTEM needs a value; write SYSTEM """<system prompt>"""',
    ),
    (
        "unterminated-triple",
        'FROM x\nTEMPLATE """{{ .Prompt }}\nPARAMETER temperature 1\n',
        'Modelfile:2:10: TEMPLATE value opened with """ is never closed; end its last line with """',
    ),
    (
        "text-after-closing-quote",
        'FROM x\nTEMPLATE  """{{ .Prompt }}""" # the prompt\n',
        'Modelfile:2:11: TEMPLATE value opened with """ is never closed; end its last line with """',
    ),
    (
        "unterminated-quote",
        'FROM x\nSYSTEM "hello\n',
        'Modelfile:2:8: SYSTEM value opened with " is never closed; end its last line with "',
    ),
    (
        "typo-parameter",
        "FROM x\nPARAMETER temprature 0.7\n",
        f'Modelfile:2:11: unknown parameter "temprature"; did you mean "temperature"? {PARAMETER_NAMES}',
    ),
    (
        "parameter-case",
        "FROM x\nPARAMETER  Top_P 0.9\n",
        f'Modelfile:2:12: unknown parameter "Top_P"; did you mean "top_p"? {PARAMETER_NAMES}',
    ),
    ("removed-parameter", "FROM x\nPARAMETER tfs_z 1\n", f'Modelfile:2:11: unknown parameter "tfs_z"; {PARAMETER_NAMES}'),
    ("parameter-alone", "FROM x\nPARAMETER\n", "Modelfile:2: PARAMETER needs a value; write PARAMETER <name> <value>"),
    (
        "parameter-without-value",
        "FROM x\nPARAMETER temperature \n",
        "Modelfile:2: PARAMETER temperature needs a value; write PARAMETER temperature <value>",
    ),
    (
        "not-a-float",
        "FROM x\nPARAMETER temperature hot\n",
        'Modelfile:2:23: invalid float value "hot" for temperature; expected a number such as 0.7',
    ),
    (
        "trailing-comment",
        "FROM x\nPARAMETER temperature 0.7 # creative\n",
        'Modelfile:2:23: invalid float value "0.7 # creative" for temperature; expected a number such as 0.7 '
        "(comments must be on their own line)",
    ),
    (
        "nan",
        "FROM x\nPARAMETER top_p nan\n",
        'Modelfile:2:17: invalid float value "nan" for top_p; expected a number such as 0.7',
    ),
    (
        "empty-float",
        'FROM x\nPARAMETER temperature ""\n',
        'Modelfile:2:23: invalid float value "" for temperature; expected a number such as 0.7',
    ),
    (
        "not-an-int",
        "FROM x\nPARAMETER num_ctx 4k\n",
        'Modelfile:2:19: invalid int value "4k" for num_ctx; expected a whole number',
    ),
    (
        "float-for-int",
        "FROM x\nPARAMETER top_k 40.0\n",
        'Modelfile:2:17: invalid int value "40.0" for top_k; expected a whole number',
    ),
    (
        "int-overflow",
        "FROM x\nPARAMETER seed 9223372036854775808\n",
        'Modelfile:2:16: invalid int value "9223372036854775808" for seed; expected a whole number',
    ),
    (
        "not-a-bool",
        "FROM x\nPARAMETER use_mmap yes\n",
        'Modelfile:2:20: invalid bool value "yes" for use_mmap; expected true or false',
    ),
    (
        "negative-temperature",
        "FROM x\nPARAMETER temperature -1\n",
        "Modelfile:2:23: temperature -1 is out of range; expected temperature >= 0",
    ),
    (
        "top-p-above-one",
        "FROM x\nPARAMETER top_p 1.5\n",
        "Modelfile:2:17: top_p 1.5 is out of range; expected 0 <= top_p <= 1",
    ),
    (
        "zero-context",
        "FROM x\nPARAMETER num_ctx 0\n",
        "Modelfile:2:19: num_ctx 0 is out of range; expected num_ctx >= 1",
    ),
    (
        "multiline-value-shown-on-one-line",
        'FROM x\nPARAMETER num_keep "1\n2"\n',
        'Modelfile:2:20: invalid int value "1\\n2" for num_keep; expected a whole number',
    ),
    (
        "parameter-twice",
        "FROM x\nPARAMETER temperature 1\nPARAMETER temperature 0.5\n",
        "Modelfile:3: PARAMETER temperature is already set on line 2; keep one",
    ),
    (
        "empty-stop",
        'FROM x\nPARAMETER stop ""\n',
        'Modelfile:2:16: stop needs a non-empty string; write PARAMETER stop "<text>"',
    ),
    (
        "message-role",
        "FROM x\nMESSAGE bot hi\n",
        'Modelfile:2:9: unknown MESSAGE role "bot"; valid: system, user, assistant',
    ),
    (
        "message-role-typo",
        "FROM x\nMESSAGE User: hi\n",
        'Modelfile:2:9: unknown MESSAGE role "User:"; did you mean "user"? valid: system, user, assistant',
    ),
    (
        "message-without-text",
        "FROM x\nMESSAGE user\n",
        "Modelfile:2: MESSAGE user needs a value; write MESSAGE user <text>",
    ),
    (
        "requires-not-a-version",
        "FROM x\nREQUIRES latest\n",
        'Modelfile:2:10: REQUIRES "latest" is not a version; write one such as 0.14.0',
    ),
    (
        "requires-leading-zero",
        "FROM x\nREQUIRES 0.014.0\n",
        'Modelfile:2:10: REQUIRES "0.014.0" is not a version; write one such as 0.14.0',
    ),
    (
        "tools-spaces",
        "FROM x\nTOOLS fs shell\n",
        'Modelfile:2:7: invalid toolset name "fs shell" in TOOLS; write names separated by commas, such as TOOLS fs,shell',
    ),
    (
        "tools-empty-name",
        "FROM x\nTOOLS fs,,shell\n",
        'Modelfile:2:7: invalid toolset name "" in TOOLS; write names separated by commas, such as TOOLS fs,shell',
    ),
    (
        "tools-unknown",
        "FROM x\nTOOLS fs,web\n",
        'Modelfile:2:7: unknown toolset "web" in TOOLS; ossy has fs, shell, system, python, browser',
    ),
    (
        "tools-twice",
        "FROM x\nTOOLS fs\nTOOLS shell, fs\n",
        'Modelfile:3:7: toolset "fs" is listed twice in TOOLS; keep one',
    ),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed(text, message):
    with pytest.raises(ModelfileError) as caught:
        parse(text, check_template=False)
    assert str(caught.value) == message
    assert "\n" not in message


def test_there_are_at_least_25_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 25


def test_error_carries_location_and_is_a_user_error():
    with pytest.raises(ModelfileError) as caught:
        parse("FROM x\nPARAMETER top_p 2\n", path="models/Modelfile", check_template=False)
    error = caught.value
    assert (error.path, error.line, error.column) == ("models/Modelfile", 2, 17)
    assert str(error).startswith("models/Modelfile:2:17: top_p 2 is out of range")
    assert isinstance(error, OssyError) and error.http_status == 400


def test_file_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelfileError) as caught:
        parse_file(missing)
    assert str(caught.value) == f"{missing}: cannot read the Modelfile: No such file or directory"
    latin1 = tmp_path / "Modelfile"
    latin1.write_bytes(b"FROM x\nSYSTEM caf\xe9\n")
    with pytest.raises(ModelfileError) as caught:
        parse_file(latin1)
    assert str(caught.value) == f"{latin1}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_every_fixture_has_an_expectation():
    assert sorted(EXPECTED) == sorted(path.name for path in FIXTURES.glob("*.Modelfile"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_modelfiles_as_printed(name):
    """The seeds' Modelfiles, pasted as printed: the syntax errors (the template is checked in
    test_modelfile.py, where ossy.template is at hand)."""
    expected = EXPECTED[name]["syntax_error"]
    path = FIXTURES / name
    if expected is None:
        parse_file(path, check_template=False)
        return
    with pytest.raises(ModelfileError) as caught:
        parse_file(path, check_template=False)
    assert str(caught.value) == expected.replace("Modelfile:", f"{path}:", 1)
