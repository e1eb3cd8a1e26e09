"""Settings from the environment: Ollama's forms, the OLLAMA_* fallbacks, one-line errors."""

from __future__ import annotations

import math

import pytest
from store_util import run_ossy

from ossy.config import SettingsError, settings
from ossy.duration import FOREVER, parse_duration


@pytest.mark.parametrize("text,seconds", [
    ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3), ("2h45m30.5s", 9930.5), ("300", 300),
    (300, 300), (0, 0), ("0", 0), ("0s", 0), (".5s", 0.5), ("+5m", 300), ("1µs", 1e-6), ("7us", 7e-6),
    ("-1", FOREVER), (-1, FOREVER), ("-5m", FOREVER), (-0.5, FOREVER), ("100000000h", FOREVER),
    (1e10, FOREVER), ("9999999999", FOREVER), (3e8, 3e8),
])
def test_durations_in_ollama_forms(text, seconds):
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("bad", [True, False, None, [5], {"m": 5}, "inf", "-inf", "nan", "Infinity", "1e400",
                                 float("inf"), float("nan"), "5x", "m", "", "5 m", "1h30", "h1", "--5m", "5mm"])
def test_what_is_not_a_duration(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_ossy_variables_win_and_ollama_ones_fill_in():
    s = settings({"OLLAMA_HOST": "0.0.0.0:8080", "OLLAMA_KEEP_ALIVE": "1h30m", "OLLAMA_NUM_PARALLEL": "2",
                  "OLLAMA_MAX_QUEUE": "7", "OLLAMA_ORIGINS": "https://a.example, https://b.example:*",
                  "OLLAMA_CONTEXT_LENGTH": "4096"})
    assert (s.host, s.keep_alive, s.num_parallel, s.max_queue, s.context_length) == ("0.0.0.0:8080", 5400, 2, 7, 4096)
    assert s.origins == ("https://a.example", "https://b.example:*")
    s = settings({"OLLAMA_HOST": "0.0.0.0:8080", "OSSY_HOST": "127.0.0.1:9", "OLLAMA_KEEP_ALIVE": "1h",
                  "OSSY_KEEP_ALIVE": "-1", "OSSY_NUM_PARALLEL": "3", "OLLAMA_NUM_PARALLEL": "abc",
                  "OSSY_CONTEXT_LENGTH": "0", "OLLAMA_CONTEXT_LENGTH": "2048"})
    assert (s.host, s.keep_alive, s.num_parallel, s.context_length) == ("127.0.0.1:9", FOREVER, 3, None)
    assert settings({}).keep_alive == 300 and settings({}).num_parallel == 4 and settings({}).max_body == 16 << 20
    assert settings({"OSSY_MAX_BODY": "2MiB"}).max_body == 2 << 20
    assert settings({"OSSY_NUM_PARALLEL": "0"}).num_parallel == 4  # Ollama: 0 means automatic


@pytest.mark.parametrize("variable,value", [
    ("OSSY_KEEP_ALIVE", "5x"), ("OLLAMA_KEEP_ALIVE", "inf"), ("OSSY_NUM_PARALLEL", "abc"),
    ("OLLAMA_NUM_PARALLEL", "1.5"), ("OSSY_MAX_QUEUE", "-1"), ("OSSY_CONTEXT_LENGTH", "big"),
    ("OSSY_MAX_BODY", "lots"), ("OSSY_MAX_BODY", "0"), ("OSSY_NUM_PARALLEL", "-2"),
])
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(SettingsError) as e:
        settings({variable: value})
    assert str(e.value).startswith(f"{variable}={value!r}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("variable,value", [("OSSY_KEEP_ALIVE", "5x"), ("OSSY_NUM_PARALLEL", "abc"),
                                            ("OLLAMA_MAX_QUEUE", "many")])
def test_the_cli_prints_one_line(tmp_path, variable, value):
    env = {"OSSY_HOME": str(tmp_path), variable: value}
    for command in (["list"], ["serve"]):
        r = run_ossy(env, *command)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith(f"Error: {variable}={value!r}: ") and r.stderr.count("\n") == 1, r.stderr


def test_the_cli_takes_ollamas_forms(tmp_path):
    env = {"OSSY_HOME": str(tmp_path), "OSSY_KEEP_ALIVE": "5m", "OLLAMA_NUM_PARALLEL": "2", "OSSY_MAX_QUEUE": "-0"}
    r = run_ossy(env, "list")
    assert r.returncode == 0, r.stderr


def test_the_ollama_store_defaults_to_the_users_then_the_linux_services(tmp_path, monkeypatch):
    import ossy.config

    monkeypatch.setenv("HOME", str(tmp_path))
    service = tmp_path / "usr-share-ollama" / "models"
    monkeypatch.setattr(ossy.config, "OLLAMA_SERVICE_MODELS", service)
    assert settings({}).ollama_models == tmp_path / ".ollama" / "models"  # neither exists: the user's
    service.mkdir(parents=True)
    assert settings({}).ollama_models == service  # only the service's exists
    (tmp_path / ".ollama" / "models").mkdir(parents=True)
    assert settings({}).ollama_models == tmp_path / ".ollama" / "models"
    assert settings({"OLLAMA_MODELS": str(tmp_path / "x")}).ollama_models == tmp_path / "x"
