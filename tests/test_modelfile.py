"""ossy.modelfile: every valid form parses to what Ollama reads, and writing back round-trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ossy.modelfile import PARAMETERS, Modelfile, ModelfileError, gptoss_defaults, parse, parse_file
from ossy.tools.registry import TOOLSETS

FIXTURES = Path(__file__).parent / "fixtures" / "modelfiles"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
SHOW = FIXTURES / "seed1-l0102-ollama-show.Modelfile"


def read(text: str) -> Modelfile:
    return parse(text, check_template=False)


def test_minimal():
    assert read("FROM gpt-oss:20b") == Modelfile(from_="gpt-oss:20b")


def test_every_instruction_any_case_and_order():
    text = """# a comment
  # an indented comment
license MIT

Parameter temperature 0.5
PARAMETER stop <|end|>
PARAMETER stop "<|call|>"
system You are terse.
TEMPLATE {{ .Prompt }}
from ./checkpoint
ADAPTER ./lora
ADAPTER ./lora2
LICENSE \"\"\"Apache
2.0\"\"\"
MESSAGE user Hi there
message assistant "Hello!"
REQUIRES v0.14.0
TOOLS fs, shell
TOOLS browser
"""
    assert read(text) == Modelfile(
        from_="./checkpoint",
        parameters={"temperature": 0.5, "stop": ["<|end|>", "<|call|>"]},
        template="{{ .Prompt }}",
        system="You are terse.",
        adapters=["./lora", "./lora2"],
        licenses=["MIT", "Apache\n2.0"],
        messages=[("user", "Hi there"), ("assistant", "Hello!")],
        requires="0.14.0",
        tools=["fs", "shell", "browser"],
    )


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("  spaced   out  ", "spaced   out"),
        ("tab\tinside\t", "tab\tinside"),
        ('"quoted"', "quoted"),
        ('" keeps outer spaces "', " keeps outer spaces "),
        ('""', ""),
        ('""""""', ""),
        ('"two\nlines"', "two\nlines"),
        ('"""\n  indented\n\n  kept\n"""', "\n  indented\n\n  kept\n"),
        ('"""say "hi" twice"""', 'say "hi" twice'),
        ('"a "b" c"', 'a "b" c'),
        ('bare "quotes" stay', 'bare "quotes" stay'),
        ("# not a comment here", "# not a comment here"),
        ('"""\n# inside\nFROM inside\n"""', "\n# inside\nFROM inside\n"),
        ('"""a""" b"""', 'a""" b'),  # a closing quote counts only at the end of a line
        ('"""first\nlast"""   ', "first\nlast"),
        ('"""x\n  """', "x\n  "),
        ('"""""""', '"'),
    ],
)
def test_value_forms(written, value):
    assert read(f"FROM x\nSYSTEM {written}\n").system == value


def test_line_endings_bom_and_tabs():
    text = '\ufeffFROM\tx\r\nSYSTEM """a\r\nb"""\rPARAMETER\ttop_k\t0\r\n'
    assert read(text) == Modelfile(from_="x", system="a\nb", parameters={"top_k": 0})


def test_parse_file_reads_utf16_and_names_path(tmp_path):
    path = tmp_path / "Modelfile"
    path.write_text("FROM gpt-oss:20b\nSYSTEM héllo\n", encoding="utf-16")
    assert parse_file(path) == Modelfile(from_="gpt-oss:20b", system="héllo")


@pytest.mark.parametrize(
    ("name", "written", "value"),
    [
        ("temperature", "1", 1.0),
        ("temperature", ".5", 0.5),
        ("temperature", "+1e-3", 0.001),
        ("top_p", "1", 1.0),
        ("min_p", "0", 0.0),
        ("num_ctx", "8192", 8192),
        ("num_predict", "-1", -1),
        ("seed", "-42", -42),
        ("seed", "9223372036854775807", 2**63 - 1),
        ("repeat_last_n", "-1", -1),
        ("presence_penalty", "-1.5", -1.5),
        ("use_mmap", "false", False),
        ("use_mmap", "F", False),
        ("use_mmap", "TRUE", True),
        ("use_mmap", "1", True),
        ("num_gpu", '"0"', 0),
    ],
)
def test_parameters_are_typed(name, written, value):
    parsed = read(f"FROM x\nPARAMETER {name} {written}\n").parameters[name]
    assert parsed == value and type(parsed) is type(value)


def test_every_parameter_accepted():
    example = {int: "1", float: "0.5", bool: "true", str: "<|end|>"}
    lines = [f"PARAMETER {name} {example[spec.kind]}" for name, spec in PARAMETERS.items()]
    parsed = read("FROM x\n" + "\n".join(lines)).parameters
    assert list(parsed) == list(PARAMETERS)
    assert parsed["stop"] == ["<|end|>"]


def test_deprecated_parameter_is_dropped_with_a_warning():
    parsed = read("FROM x\nPARAMETER mirostat 2\nPARAMETER temperature 1\n")
    assert parsed.parameters == {"temperature": 1.0}
    assert parsed.warnings == [
        'Modelfile:2: parameter "mirostat" is deprecated and ignored, as in Ollama; remove this line'
    ]


def test_requires_versions():
    for written, kept in [("0.14.0", "0.14.0"), ("v1", "1"), ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5")]:
        assert read(f"FROM x\nREQUIRES {written}").requires == kept


# -- writing back ------------------------------------------------------------------------------
def test_ollama_show_output_is_written_back_byte_for_byte():
    """`ollama show --modelfile` output (the seed, minus its comment header) is what we write."""
    text = SHOW.read_text()
    assert read(text).to_text() == text.split("\n", 3)[3]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "SYSTEM plain"),
        ("two\nlines", 'SYSTEM "two\nlines"'),
        ('say "hi"\nok', 'SYSTEM """say "hi"\nok"""'),
        (" lead", 'SYSTEM " lead"'),
        ('"starts quoted"', 'SYSTEM """"starts quoted""""'),
        ("", 'SYSTEM ""'),
        ('ends "\nnext', 'SYSTEM """ends "\nnext"""'),
    ],
)
def test_quoting_choice(value, written):
    assert Modelfile(from_="x", system=value).to_text() == f"FROM x\n{written}\n"


def test_unwritable_values_are_refused():
    for value in ('a"""\n"b', "carriage\rreturn"):
        with pytest.raises(ModelfileError) as caught:
            Modelfile(from_="x", system=value).to_text()
        assert str(caught.value) == (
            'Modelfile: cannot write this SYSTEM value as Modelfile text: a line inside it ends with """ '
            "or it holds a carriage return, and no quoting can enclose that"
        )


def test_writing_needs_from():
    with pytest.raises(ModelfileError, match="^Modelfile: cannot write a Modelfile without FROM; set from_ first$"):
        Modelfile(system="x").to_text()


_CHARS = st.sampled_from(["a", "b", " ", "\t", "\n", '"', "#", "{", "}", "\\", "é"])
_TEXT = st.text(_CHARS, max_size=12)
_NONEMPTY = st.text(_CHARS, min_size=1, max_size=12)


def _parameter_value(name: str):
    spec = PARAMETERS[name]
    if spec.kind is bool:
        return st.booleans()
    if spec.kind is str:
        return st.lists(_NONEMPTY, min_size=1, max_size=3)
    if spec.kind is int:
        low = -(2**63) if spec.low is None else int(spec.low)
        return st.integers(low, 2**63 - 1)
    return st.floats(spec.low, spec.high, allow_nan=False, allow_infinity=False)


_PARAMETERS = st.lists(st.sampled_from(list(PARAMETERS)), unique=True, max_size=4).flatmap(
    lambda names: st.fixed_dictionaries({name: _parameter_value(name) for name in names})
)
_MODELFILES = st.builds(
    Modelfile,
    from_=_NONEMPTY,
    parameters=_PARAMETERS,
    template=st.none() | _TEXT,
    system=st.none() | _TEXT,
    adapters=st.lists(_NONEMPTY, max_size=2),
    licenses=st.lists(_TEXT, max_size=2),
    messages=st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), _TEXT), max_size=2),
    requires=st.none() | st.sampled_from(["0.14.0", "1.2.3-rc.1"]),
    tools=st.lists(st.sampled_from(sorted(TOOLSETS)), unique=True, max_size=3),
)


def _unwritable(modelfile: Modelfile) -> bool:
    values = [modelfile.from_, modelfile.template or "", modelfile.system or "", *modelfile.adapters]
    values += modelfile.licenses + [text for _, text in modelfile.messages] + modelfile.parameters.get("stop", [])
    return any(re.search(r'"""[ \t]*\n', value) for value in values)


@settings(max_examples=300, deadline=None)
@given(_MODELFILES)
def test_round_trip(modelfile):
    try:
        text = modelfile.to_text()
    except ModelfileError:
        assert _unwritable(modelfile)
        return
    assert read(text) == modelfile
    assert read(text).to_text() == text


# -- gpt-oss defaults --------------------------------------------------------------------------
def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def test_gptoss_defaults_are_the_library_entry():
    defaults, shown = gptoss_defaults(), read(SHOW.read_text())
    assert defaults.from_ == ""
    assert defaults.parameters == {"temperature": 1.0}
    # The seed prints the library TEMPLATE and LICENSE with blank lines and runs of spaces lost.
    assert _lines(defaults.template) == _lines(shown.template)
    assert _lines(defaults.licenses[0]) == _lines(shown.licenses[0])
    assert "Current date: {{ currentDate }}\n{{- if and .IsThinkSet" in defaults.template
    assert "\n\nReasoning: medium\n" in defaults.template
    assert defaults.template.endswith("<|start|>assistant\n{{- end -}}")
    assert defaults.licenses[0].startswith("\n" + " " * 33 + "Apache License\n")
    assert defaults.licenses[0].endswith("limitations under the License.")


def test_gptoss_defaults_round_trip_and_apply():
    defaults = gptoss_defaults()
    built = Modelfile(from_="/ckpt", parameters={"top_k": 0}, licenses=["extra"]).with_defaults(defaults)
    assert read(built.to_text()) == built
    assert built.template == defaults.template
    assert built.parameters == {"temperature": 1.0, "top_k": 0}
    assert built.licenses == [defaults.licenses[0], "extra"]
    own = Modelfile(from_="/ckpt", template="{{ .Prompt }}", parameters={"temperature": 0.2}).with_defaults(defaults)
    assert (own.template, own.parameters) == ("{{ .Prompt }}", {"temperature": 0.2})


# -- TEMPLATE checked with ossy.template -------------------------------------------------------
def test_library_template_and_valid_seed_pass_the_check():
    assert parse(SHOW.read_text()) == read(SHOW.read_text())
    parse(Modelfile(from_="x").with_defaults(gptoss_defaults()).to_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_modelfiles_with_template_check(name):
    expected = EXPECTED[name]["error"]
    text = (FIXTURES / name).read_text()
    if expected is None:
        parse(text)
        return
    with pytest.raises(ModelfileError) as caught:
        parse(text)
    assert str(caught.value) == expected


@pytest.mark.parametrize("name", ["seed1-l0635-linux.Modelfile", "seed1-l1770-linux.Modelfile"])
def test_seed_with_stray_quote_removed_parses(name):
    """Following the error's advice (remove the stray line) gives a Modelfile that builds."""
    text = (FIXTURES / name).read_text()
    assert text.endswith('\n"""\n')
    assert parse(text.removesuffix('"""\n')).parameters == {"temperature": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'FROM x\n# note\nTEMPLATE """\n{{ if .System }}\n{{ end }}\n{{ end }}\n"""\n',
            "Modelfile:6: TEMPLATE has a stray {{end}} with no matching {{if}}, {{range}} or {{with}}; "
            "the template looks cut short: complete the elided part "
            "(ossy show gpt-oss:20b --template prints the full one) or delete this {{end}}",
        ),
        (
            'FROM x\nTEMPLATE """{{ if .System }}\nno end"""\n',
            "Modelfile:3: TEMPLATE ends inside an {{if}}, {{range}} or {{with}}; add the missing {{end}}",
        ),
        (
            "FROM x\nSYSTEM s\nTEMPLATE {{ nosuch .Prompt }}\n",
            'Modelfile:3: TEMPLATE: function "nosuch" not defined',
        ),
    ],
)
def test_template_errors_name_the_modelfile_line(text, message):
    with pytest.raises(ModelfileError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert read(text).template is not None  # the check can be turned off
