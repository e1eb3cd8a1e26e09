"""The system toolset against the real /proc of the machine running the tests: the numbers must
match what the kernel reports, the test's own process and sockets must show up, and options
outside the allowlists are refused by name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from ossy.tools import system
from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, ToolContext, ToolError
from ossy.tools.executor import Executor
from ossy.tools.registry import Registry

TOOLS = {tool.name: tool for tool in system.toolset()}


@pytest.fixture
def ctx(tmp_path) -> ToolContext:
    return ToolContext(workspace=tmp_path, policy=Policy(approvals="never"), home=tmp_path / "ossy-home")


def call(ctx: ToolContext, name: str, **args):
    return TOOLS[name].handler(args, ctx)


def kib(meminfo_key: str) -> int:
    for line in open("/proc/meminfo"):
        if line.startswith(meminfo_key + ":"):
            return int(line.split()[1])
    raise KeyError(meminfo_key)


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[1:]]


def test_toolset_names_schemas_and_read_only():
    registry = Registry(system.toolset())
    assert registry.names == ["ps", "top", "df", "free", "netstat", "uptime", "system_analysis"]
    assert not any(tool.destructive for tool in registry)
    assert registry.get("sys.df").name == "df" and registry.get("analysis.system_analysis").name == "system_analysis"


def test_ps_lists_this_process_with_its_command(ctx):
    for options in (None, "aux", "-ef", "--sort=-rss"):
        result = call(ctx, "ps", **({"options": options} if options else {}))
        assert os.getpid() in result.data["pids"]
    mine = next(row for row in rows(result.output) if row[0] == str(os.getpid()))
    assert "pytest" in " ".join(mine[7:]) or "python" in " ".join(mine[7:])
    by_memory = [process.rss for process in system.processes()]
    assert result.data["count"] >= 2 and max(by_memory) > 0


def test_ps_sorts(ctx):
    by_rss = call(ctx, "ps", options="aux --sort=-rss").data["rss"]
    assert by_rss == sorted(by_rss, reverse=True) and by_rss[0] > 0
    by_pid = call(ctx, "ps", options="-ef --sort=pid").data["pids"]
    assert by_pid == sorted(by_pid)


@pytest.mark.parametrize("name, options, named", [
    ("ps", "eww -o pid,environ", "-o"), ("ps", "--sort=environ", "--sort"), ("df", "-hx tmpfs", "-x"),
    ("free", "--si", "--si"), ("netstat", "-tulnz", "-z"), ("top", "-d 0.1", "-d"), ("uptime", "-V", "-V"),
])
def test_unknown_options_are_refused_by_name(ctx, name, options, named):
    with pytest.raises(ToolError, match=named):
        call(ctx, name, options=options)


def test_top_returns_count_processes_and_a_summary(ctx):
    result = call(ctx, "top", count=3, options="-b -n 1 -o %MEM")
    lines = result.output.splitlines()
    assert lines[0].startswith("top - ") and "load average" in lines[0] and lines[1].startswith("Tasks:")
    assert len(result.data["pids"]) == 3 and len(lines) == 5 + 1 + 3
    assert result.data["rss"] == sorted(result.data["rss"], reverse=True)


def test_free_matches_proc_meminfo(ctx):
    result = call(ctx, "free")
    mem = next(row for row in rows(result.output) if row[0] == "Mem:")
    assert int(mem[1]) == kib("MemTotal") and abs(int(mem[6]) - kib("MemAvailable")) < kib("MemTotal") // 20
    in_bytes = call(ctx, "free", options="-b -t")
    assert int(next(row for row in rows(in_bytes.output) if row[0] == "Mem:")[1]) == kib("MemTotal") * 1024
    assert any(row[0] == "Total:" for row in rows(in_bytes.output))
    assert "iB" in call(ctx, "free", options="-h").output


def test_df_of_the_workspace_matches_statvfs(ctx, tmp_path):
    result = call(ctx, "df", path=".")
    [row] = rows(result.output)
    stats = os.statvfs(tmp_path)
    assert int(row[1]) == stats.f_blocks * stats.f_frsize // 1024
    assert abs(int(row[3]) - stats.f_bavail * stats.f_frsize // 1024) < 1024 * 1024  # other writers
    assert str(tmp_path).startswith(row[-1])
    listing = call(ctx, "df", options="-hT")
    assert "Type" in listing.output.splitlines()[0] and any(row[-1] == "/" for row in rows(listing.output))
    assert not any(row[-1] == "/proc" for row in rows(call(ctx, "df").output))  # no pseudo filesystems


def test_uptime_matches_proc(ctx):
    result = call(ctx, "uptime")
    proc_uptime = float(open("/proc/uptime").read().split()[0])
    assert abs(result.data["uptime_seconds"] - proc_uptime) < 5
    again = [float(value) for value in open("/proc/loadavg").read().split()[:3]]
    assert all(abs(a - b) < 1.0 for a, b in zip(result.data["load_average"], again))
    assert "load average: " in result.output
    assert call(ctx, "uptime", options="-p").output.startswith("up ")


def test_netstat_shows_a_listening_socket_of_this_test(ctx):
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        listening = call(ctx, "netstat", options="-tuln")
        assert [f"127.0.0.1:{tcp_port}", "LISTEN"] in [[row[3], row[5]] for row in rows(listening.output)]
        assert [f"127.0.0.1:{udp_port}", "UNCONN"] in [[row[3], row[-1]] for row in rows(listening.output)]
        default = call(ctx, "netstat")
        assert f"127.0.0.1:{tcp_port}" in default.output
        connected_only = call(ctx, "netstat", options="-tn")
        assert f"127.0.0.1:{tcp_port}" not in connected_only.output
        with_p = call(ctx, "netstat", options="-tulpn")
        assert "process names are not shown" in with_p.output


@pytest.mark.parametrize("depth", ["basic", "detailed"])
def test_system_analysis_covers_every_component(ctx, depth):
    result = call(ctx, "system_analysis", depth=depth)
    for section in ("## CPU", "## Memory", "## Disk", "## Network", "## Processes", "## Findings"):
        assert section in result.output
    assert ("per CPU busy" in result.output) == (depth == "detailed")
    assert result.data["memory"]["total"] == kib("MemTotal") * 1024
    assert result.data["cpu"]["count"] == os.cpu_count()
    assert len(result.data["processes"]["top_memory"]) == (10 if depth == "detailed" else 5)


def test_system_analysis_only_the_components_asked_for(ctx):
    result = call(ctx, "system_analysis", components=["memory", "disk"])
    assert "## Memory" in result.output and "## Disk" in result.output and "## CPU" not in result.output
    assert set(result.data) == {"memory", "disk", "warnings"}


def test_system_tools_run_through_the_executor_without_approval(ctx, tmp_path):
    executor = Executor(Registry(system.toolset()), ctx, audit=AuditLog(tmp_path / "audit.sqlite"))
    assert executor.call("sys.free", '{"options": "-h"}').ok
    assert executor.call("system_analysis", {"components": ["gpu"]}).status == "invalid"


def test_a_command_line_with_newlines_stays_on_one_line(ctx):
    child = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(30)\n# ossy-newline-probe"])
    try:
        for _ in range(100):  # until the child has exec'd
            listing = call(ctx, "ps", options="-ef --sort=pid")
            line = next((line for line in listing.output.splitlines() if "ossy-newline-probe" in line), "")
            if line:
                break
            time.sleep(0.05)
        assert "import time?time.sleep(30)?# ossy-newline-probe" in line
        assert len(listing.output.splitlines()) == len(listing.data["pids"]) + 2  # header and note
    finally:
        child.kill()
        child.wait()
