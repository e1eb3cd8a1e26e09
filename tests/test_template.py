"""ossy.template's Python-side contract: the API, its error objects, and what Go cannot check
(Python functions, injected dates, behaviours ossy refuses rather than guesses).

How templates render is proven against Go in test_template_golden.py; the expectations here are
hand-written.
"""

from __future__ import annotations

from datetime import date

import pytest

from ossy.errors import OssyError
from ossy.template import GoError, OllamaTemplate, TemplateError, ollama_data, parse, render


def test_parse_error_is_a_user_error_with_its_line():
    with pytest.raises(TemplateError) as caught:
        parse("intro\n\n{{- end -}}")
    error = caught.value
    assert isinstance(error, OssyError) and error.http_status == 400
    assert str(error) == "template: TEMPLATE:3: unexpected {{end}}"
    assert (error.line, error.column) == (3, None)


def test_execution_error_has_line_and_byte_column():
    with pytest.raises(TemplateError) as caught:
        parse("x\n  é {{ .a.b }}", "T").execute({"a": "s"})
    # Go points at the last field of a chain (.b), counting bytes: "  é {{ .a" is 10.
    assert (caught.value.line, caught.value.column) == (2, 10)
    assert str(caught.value).startswith('template: T:2:10: executing "T" at <.a.b>:')


def test_parsed_template_is_reusable():
    template = parse("{{ .x }}!")
    assert template.execute({"x": 1}) == "1!"
    assert template.execute({"x": "two"}) == "two!"


def test_python_functions():
    def fail(_value):
        raise GoError("no thanks")

    shout = {"shout": lambda s: s.upper() + "!", "fail": fail}
    assert render("{{ shout .x }} {{ .x | shout }}", {"x": "hi"}, funcs=shout) == "HI! HI!"
    with pytest.raises(TemplateError, match=r"at <fail 1>: error calling fail: no thanks$"):
        render("{{ fail 1 }}", {}, funcs=shout)
    with pytest.raises(TemplateError, match="wrong number of args for shout: want 1 got 2"):
        render("{{ shout 1 2 }}", {}, funcs=shout)


def test_functions_can_be_replaced_per_execution():
    template = parse("{{ currentDate }}")
    assert template.execute({}, funcs={"currentDate": lambda *_: "DAY"}) == "DAY"


def test_dates_can_be_fixed():
    text = "{{ currentDate }} {{ yesterdayDate }}"
    assert parse(text, today=date(2024, 1, 1)).execute({}) == "2024-01-01 2023-12-31"


def test_call_runs_a_python_function_from_the_data():
    assert render("{{ call .mul 6 7 }}", {"mul": lambda a, b: a * b}) == "42"


def test_missingkey_option_is_checked():
    assert parse("[{{ .nope }}]", missingkey="default").execute({}) == "[<no value>]"
    with pytest.raises(ValueError):
        parse("x", missingkey="sometimes")


@pytest.mark.parametrize("text", ['{{ printf "%#v" .x }}', '{{ printf "%p" .x }}',
                                  "{{ printf \"%v\" .Messages }}"])
def test_go_output_that_would_show_addresses_or_go_syntax_is_refused(text):
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(TemplateError, match="not support"):
        parse(text).execute({**ollama_data(messages), "x": 1})


def test_think_must_be_a_known_level():
    with pytest.raises(OssyError, match='invalid think value: "extreme"'):
        OllamaTemplate("{{ .Messages }}").render([], think="extreme")


def test_default_system_prompt_goes_first_unless_one_is_given():
    template = OllamaTemplate("{{ .System }}|{{ range .Messages }}{{ .Role }} {{ end }}")
    user = {"role": "user", "content": "x"}
    assert template.render([user], system="S") == "S|system user "
    assert template.render([{"role": "system", "content": "mine"}, user], system="S") == \
        "mine|system user "


def test_legacy_cut_inside_a_branch_with_else_fails_as_in_ollama():
    template = OllamaTemplate("{{ if .Prompt }}{{ .Response }}{{ else }}none{{ end }}")
    with pytest.raises(TemplateError, match="cannot cut"):
        template.render([{"role": "user", "content": "x"}])


def test_vars_and_data_for_messages_templates():
    template = OllamaTemplate("{{ range .Messages }}{{ .Role }}{{ end }}{{ .Tools }}")
    assert {"messages", "role", "tools"} <= set(template.vars)
    data = ollama_data([{"role": "USER", "content": "a"}, {"role": "user", "content": "b"}],
                       think="high")
    assert (data["Think"], data["ThinkLevel"], data["IsThinkSet"]) == (True, "high", True)
    assert parse("{{ range .Messages }}{{ .Role }}={{ .Content }}{{ end }}").execute(data) == \
        "user=a\n\nb"


def test_tool_call_arguments_given_as_a_json_string():
    call = {"function": {"name": "f", "arguments": '{"b": 2, "a": "x"}'}}
    data = ollama_data([{"role": "assistant", "content": "", "tool_calls": [call]}])
    text = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}{{ end }}{{ end }}"
    assert parse(text).execute(data) == '{"a":"x","b":2}'


def test_a_budget_bounds_output_steps_and_work():
    from ossy.template import Budget, TemplateLimitError

    assert parse("{{range 3}}ab{{end}}").execute({}, budget=Budget(max_output=6)) == "ababab"
    with pytest.raises(TemplateLimitError, match="longer than 5 characters") as e:
        parse("{{range 3}}ab{{end}}").execute({}, budget=Budget(max_output=5))
    assert e.value.output
    with pytest.raises(TemplateLimitError, match="more than 1000 steps") as e:
        parse("{{range 1000000000000}}{{end}}").execute({}, budget=Budget(max_steps=1000))
    assert not e.value.output
    with pytest.raises(TemplateLimitError, match="functions made more than"):
        parse('{{range 10000}}{{$x := printf "%999999d" 1}}{{end}}').execute({})
    shared = Budget(max_output=10)  # one budget over several executions (legacy per-turn templates)
    parse("{{.}}").execute("12345", budget=shared)
    with pytest.raises(TemplateLimitError):
        parse("{{.}}").execute("123456", budget=shared)
    legacy = OllamaTemplate("{{ .Prompt }}|")
    with pytest.raises(TemplateLimitError):
        legacy.render([{"role": "user", "content": "x" * 8}, {"role": "assistant", "content": "y"},
                       {"role": "user", "content": "z" * 8}], budget=Budget(max_output=15))
