"""The deployment files the user guide asks for, checked by what they do: the Dockerfile (installs
what pyproject pins; its ENV makes `ossy serve` listen on the exposed port with models in the
volume; its CMD is a real command; its health check passes against a live server),
docker-compose.yml (valid against the Compose Specification's schema, then the same checks), the
VS Code REST Client file examples/api.http (every request in it is sent to a live server, the
stub-engine one of test_client.py, with @model set to its tiny model) and the example Modelfiles."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from test_client import live_server  # noqa: F401  (the fixture)

from ossy.cli import serve
from ossy.cli.main import build_parser
from ossy.config import settings
from ossy.modelfile import parse
from ossy.server import split_host

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = {
    ("POST", "/api/chat"), ("POST", "/api/generate"), ("GET", "/api/tags"), ("POST", "/api/show"),
    ("POST", "/api/create"), ("POST", "/api/copy"), ("DELETE", "/api/delete"), ("GET", "/api/ps"),
    ("GET", "/api/version"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
    ("POST", "/v1/responses"), ("GET", "/health"), ("POST", "/api/pull"), ("POST", "/api/embed"),
    ("POST", "/v1/embeddings"), ("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"),
    ("GET", "/metrics"), ("GET", "/api/experts"), ("POST", "/api/agent"),
}


def http_requests(text: str) -> list[dict]:
    """REST Client's format: `@var = value` lines, requests separated by `###`, an optional
    `# @name` line, `METHOD URL`, headers, a blank line, the body."""
    variables = dict(re.findall(r"^@(\w+)\s*=\s*(.+?)\s*$", text, re.M))
    out = []
    for block in re.split(r"^###.*$", text, flags=re.M)[1:]:
        lines = block.strip("\n").splitlines()
        name = None
        while lines and (lines[0].startswith("#") or not lines[0].strip()):
            found = re.match(r"#\s*@name\s+(\w+)", lines.pop(0))
            name = found.group(1) if found else name
        if not lines:
            continue
        method, url = lines[0].split()
        headers, i = {}, 1
        while i < len(lines) and lines[i].strip():
            key, value = lines[i].split(":", 1)
            headers[key.strip()] = value.strip()
            i += 1
        body = "\n".join(lines[i:]).strip()
        out.append({"name": name, "method": method, "url": url, "headers": headers, "body": body,
                    "variables": variables})
    return out


def substitute(text: str, variables: dict, responses: dict) -> str:
    def value(match):
        key = match.group(1)
        if key in variables:
            return variables[key]
        ref = re.fullmatch(r"(\w+)\.response\.body\.\$\.(\w+)", key)
        assert ref, f"unknown variable {key}"
        return str(responses[ref.group(1)][ref.group(2)])

    for _ in range(3):  # variables may refer to variables
        text = re.sub(r"\{\{\s*(.+?)\s*\}\}", value, text)
    return text


def test_api_http_covers_every_endpoint_with_valid_json():
    requests = http_requests((ROOT / "examples" / "api.http").read_text())
    seen = set()
    for r in requests:
        path = substitute(r["url"], {**r["variables"], "host": ""}, {"first": {"id": "x"}})
        seen.add((r["method"], re.sub(r"^(/v1/models)/.+$", r"\1", path)))
        if r["body"]:
            json.loads(substitute(r["body"], r["variables"], {"first": {"id": "x"}}))
            assert r["headers"].get("Content-Type") == "application/json"
    assert ENDPOINTS <= seen, ENDPOINTS - seen
    text = (ROOT / "examples" / "api.http").read_text()
    for feature in ('"stream": true', '"tools"', '"include_usage"', '"previous_response_id"', '"keep_alive": 0',
                    '"response_format"', '"format"', '"think"', '"tool_choice"', '"role": "tool"'):
        assert feature in text, feature


def test_every_request_in_api_http_works_against_a_live_server(live_server):
    """Sent in file order (create before copy before delete) to the stub-engine server."""
    requests = http_requests((ROOT / "examples" / "api.http").read_text())
    responses: dict = {}
    with httpx.Client(timeout=30) as http:
        for r in requests:
            variables = {**r["variables"], "host": f"http://{live_server.host}", "model": "tiny"}
            url = substitute(r["url"], variables, responses)
            body = substitute(r["body"], variables, responses) if r["body"] else None
            response = http.request(r["method"], url, headers=r["headers"], content=body)
            assert response.status_code == 200, (r["method"], url, response.text)
            if r["name"]:
                responses[r["name"]] = response.json()
    assert not {"my-gpt-oss:latest", "my-gpt-oss:backup"} & {str(m.name) for m in live_server.library.models()}


@pytest.mark.parametrize("name", ["development", "production"])
def test_example_modelfiles_parse(name):
    path = ROOT / "examples" / f"Modelfile.{name}"
    modelfile = parse(path.read_text(), path=str(path), check_template=True)
    assert modelfile.from_ == "gpt-oss:20b" and modelfile.system and "num_ctx" in modelfile.parameters


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def instruction(name: str) -> list[str]:
    return [arg for op, arg in dockerfile() if op == name]


def env_of(assignments: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in assignments.split())


def listens_on(env: dict[str, str]) -> tuple[str, int]:
    """Where `ossy serve` listens with this environment (the settings it reads, the address it binds)."""
    return split_host(settings(env).host)


def healthcheck_passes(command: list[str], server_port: int) -> bool:
    """The health check run as Docker runs it, against a live server on `server_port`."""
    command = [part.replace(":11434/", f":{server_port}/") for part in command]
    assert command[0] == "python", command  # the image's python
    return subprocess.run([sys.executable, *command[1:]], timeout=30).returncode == 0


def test_the_dockerfile_builds_what_pyproject_pins():
    base = instruction("FROM")[0]
    python = tuple(int(n) for n in re.search(r"python:(\d+)\.(\d+)", base).groups())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert python >= tuple(int(n) for n in pyproject["requires-python"].removeprefix(">=").split("."))
    runs = " ".join(instruction("RUN"))
    torch_pin = next(d for d in pyproject["dependencies"] if d.startswith("torch=="))
    assert f"--index-url https://download.pytorch.org/whl/cpu {torch_pin}" in runs  # the CPU wheel, ossy's pin
    installed = re.search(r"pip install [^&]*-c constraints.txt \. ([^&]*)", runs).group(1).split()
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    pinned = {line.split("==")[0].lower() for line in constraints if "==" in line}
    assert installed and all(name.lower() in pinned for name in installed), installed  # every extra is pinned
    for arg in instruction("COPY"):
        for source in arg.split()[:-1]:
            assert (ROOT / source).exists(), source


def test_the_image_serves_on_its_exposed_port_and_keeps_models_in_its_volume(live_server):
    env = env_of(" ".join(instruction("ENV")))
    assert listens_on(env) == ("0.0.0.0", int(instruction("EXPOSE")[0]))  # reachable through the published port
    assert json.loads(instruction("VOLUME")[0]) == [str(settings(env).models)]
    command = json.loads(instruction("CMD")[-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command[0]] == "ossy.cli.main:main"
    assert build_parser().parse_args(command[1:]).func is serve.run
    health = instruction("HEALTHCHECK")[0].split(" CMD ", 1)[1]
    assert healthcheck_passes(shlex.split(health), int(live_server.host.rsplit(":", 1)[1]))


def test_docker_compose_is_a_valid_compose_file_for_the_image(live_server):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)  # what `docker compose config` checks first
    service = compose["services"]["ossy"]
    assert service["build"] == "."
    env = {**env_of(" ".join(instruction("ENV"))), **{k: str(v) for k, v in service["environment"].items()}}
    host, port = listens_on(env)
    published = {int(mapping.split(":")[1]) for mapping in service["ports"]}
    assert host == "0.0.0.0" and port in published
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == str(settings(env).models)
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and healthcheck_passes(test[1:], int(live_server.host.rsplit(":", 1)[1]))


def test_the_vllm_gateway_compose_file_points_ossy_at_its_vllm():
    compose = yaml.safe_load((ROOT / "examples" / "compose.vllm.yml").read_text())
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    ossy_service, vllm_service = compose["services"]["ossy"], compose["services"]["vllm"]
    s = settings({k: str(v) for k, v in ossy_service["environment"].items()})
    vllm_port = vllm_service["command"][vllm_service["command"].index("--port") + 1]
    assert s.backend == f"vllm:http://vllm:{vllm_port}" and "--skip-tokenizer-init" in vllm_service["command"]
    assert ossy_service["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert (ROOT / "examples" / ossy_service["build"] / "Dockerfile").is_file()
