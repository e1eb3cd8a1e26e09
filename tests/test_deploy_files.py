"""The deployment files the user guide asks for: Dockerfile, docker-compose.yml, the VS Code REST
Client file examples/api.http (every request in it is sent to a live server, the stub-engine one
of test_client.py, with @model set to its tiny model) and the example Modelfiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from test_client import live_server  # noqa: F401  (the fixture)

from ossy.modelfile import parse

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


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in re.sub(r"\\\n", " ", text).splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in runs
    assert re.search(r"pip install .*-c constraints.txt \. ", runs)
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "OSSY_HOST=0.0.0.0:11434" in env and "OSSY_MODELS=/var/lib/ossy/models" in env
    assert ["VOLUME", '["/var/lib/ossy/models"]'] in instructions and ["EXPOSE", "11434"] in instructions
    assert instructions[-1] == ["CMD", '["ossy", "serve"]']
    for op, arg in instructions:
        if op == "COPY":
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_docker_compose():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["ossy"]
    assert service["build"] == "." and "11434:11434" in service["ports"]
    assert service["environment"]["OSSY_HOST"] == "0.0.0.0:11434"
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == service["environment"]["OSSY_MODELS"]
    assert target == "/var/lib/ossy/models"  # the Dockerfile's VOLUME
