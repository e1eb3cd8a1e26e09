"""The system toolset: ps, top, df, free, netstat, uptime and system_analysis.

Owns: reading the machine's state from the kernel (/proc, /proc/mounts with statvfs) and
presenting it like the familiar commands. These tools read files in ossy's own process and start
no process, so they need no sandbox; a sandboxed `ps` would only see the sandbox's own PID
namespace and a sandboxed `df` only its mounts. All of them are read-only (no approval).
Options strings are parsed with `ossy.tools.shell.Options` into small allowlists; anything else
is refused by name. Does not own the shell utilities (`ossy.tools.shell`) or the tool machinery
(`ossy.tools.base`, `ossy.tools.executor`).

Privacy: processes are shown with pid, user, state, CPU and memory use and a command: the full
argument list for the user's own processes, only the command name for other users'; never
environments. Sockets are shown without the processes that own them. Linux only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import pwd
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ossy.format import human_bytes
from ossy.tools.base import Tool, ToolContext, ToolError, ToolResult
from ossy.tools.shell import Options, count_value, flags

PROC = Path("/proc")
CPU_SAMPLE_SECONDS = 0.25  # top and system_analysis measure CPU use over this interval
COMPONENTS = ("cpu", "memory", "disk", "network", "processes")


def _read(path: Path | str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = ()) -> str:
    """Columns padded to their widest cell: right-aligned, the columns in `left` left-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [str(cell).ljust(width) if i in left else str(cell).rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join(line(row) for row in [header, *rows])


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


# ---------------------------------------------------------------------------------------------
# memory, load, uptime, cpu


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values = {}
    for line in _read(PROC / "meminfo").splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words:
            values[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return values


@dataclass(frozen=True)
class Memory:
    total: int
    used: int
    free: int
    shared: int
    buffers: int
    cache: int
    available: int
    swap_total: int
    swap_free: int

    @classmethod
    def read(cls) -> "Memory":
        info = meminfo()
        total, available = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
        return cls(total=total, used=total - available, free=info["MemFree"], shared=info.get("Shmem", 0),
                   buffers=info.get("Buffers", 0), cache=info.get("Cached", 0) + info.get("SReclaimable", 0),
                   available=available, swap_total=info.get("SwapTotal", 0), swap_free=info.get("SwapFree", 0))


def uptime_seconds() -> float:
    return float(_read(PROC / "uptime").split()[0])


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = _read(PROC / "loadavg").split()[:3]
    return float(one), float(five), float(fifteen)


def _duration(seconds: float) -> str:
    """uptime's "3 days, 4:05" (or "12 min")."""
    days, rest = divmod(int(seconds), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    clock = f"{hours}:{minutes:02d}" if hours else f"{minutes} min"
    return f"{days} day{'s' if days != 1 else ''}, {clock}" if days else clock


def uptime_line() -> str:
    loads = ", ".join(f"{value:.2f}" for value in loadavg())
    return f"{time.strftime('%H:%M:%S')} up {_duration(uptime_seconds())},  load average: {loads}"


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> dict[str, list[int]]:
    """The "cpu" lines of /proc/stat: name -> jiffies per CPU_FIELDS."""
    return {words[0]: [int(value) for value in words[1:len(CPU_FIELDS) + 1]]
            for words in (line.split() for line in _read(PROC / "stat").splitlines())
            if words and words[0].startswith("cpu")}


def cpu_usage(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Percent of time in each state between two `cpu_times` samples, per cpu line."""
    usage = {}
    for name, end in after.items():
        deltas = [b - a for a, b in zip(before.get(name, end), end)]
        total = sum(deltas)
        usage[name] = {field: _percent(delta, total) for field, delta in zip(CPU_FIELDS, deltas)}
    return usage


def cpu_model() -> str:
    for line in _read(PROC / "cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


# ---------------------------------------------------------------------------------------------
# processes


@dataclass(frozen=True)
class Process:
    pid: int
    uid: int
    user: str
    state: str
    name: str  # the kernel's comm
    command: str  # arguments for the user's own processes, else the name in brackets
    rss: int  # bytes
    cpu_seconds: float
    started: float  # seconds after boot
    threads: int


@lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


_CONTROL = dict.fromkeys([*range(0x20), 0x7F], "?")


def _printable(text: str) -> str:
    """Control characters as "?", as ps shows them, so one process is one line."""
    return text.translate(_CONTROL)


def _process(pid: int, ticks: int, page: int) -> Process | None:
    folder = PROC / str(pid)
    try:
        uid = folder.stat().st_uid
        stat = _read(folder / "stat")
        arguments = (folder / "cmdline").read_bytes() if uid == os.getuid() else b""
    except OSError:  # gone, or not ours to read
        return None
    name = _printable(stat[stat.index("(") + 1:stat.rindex(")")])
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 of proc(5)
    command = _printable(arguments.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")) or f"[{name}]"
    return Process(pid=pid, uid=uid, user=_user_name(uid), state=fields[0], name=name, command=command,
                   rss=int(fields[21]) * page, cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
                   started=int(fields[19]) / ticks, threads=int(fields[17]))


def processes() -> list[Process]:
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    found = (_process(int(entry.name), ticks, page) for entry in PROC.iterdir() if entry.name.isdigit())
    return sorted((process for process in found if process is not None), key=lambda process: process.pid)


def _cpu_time(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


PROCESS_HEADER = ["PID", "USER", "%CPU", "%MEM", "RSS", "STAT", "TIME", "COMMAND"]
PROCESS_LEFT = (1, 5, 7)


def _process_rows(chosen: list[Process], cpu: Callable[[Process], float], memory_total: int) -> list[list[str]]:
    return [[str(p.pid), p.user, f"{cpu(p):.1f}", f"{_percent(p.rss, memory_total):.1f}", human_bytes(p.rss),
             p.state, _cpu_time(p.cpu_seconds), p.command[:200]] for p in chosen]


def _lifetime_cpu(now: float) -> Callable[[Process], float]:
    """ps's %CPU: CPU time over the process's lifetime."""
    return lambda p: _percent(p.cpu_seconds, max(now - p.started, 1e-9))


PS_SORT_KEYS: dict[str, Callable[[Process], float]] = {
    "pid": lambda p: p.pid, "rss": lambda p: p.rss, "%mem": lambda p: p.rss, "time": lambda p: p.cpu_seconds,
    "%cpu": lambda p: p.cpu_seconds / max(uptime_seconds() - p.started, 1e-9), "user": lambda p: p.uid,
}


def _sort_key(value: str) -> str:
    if value.lstrip("+-").lower() not in PS_SORT_KEYS:
        raise ValueError(f'"{value}" is not a sort key ({", ".join(PS_SORT_KEYS)}; "-" first for descending)')
    return value.lower()


# Selection and format letters are accepted and change nothing: every process is listed, in one format.
PS_OPTIONS = Options(flags("a", "u", "x", "w", "e", "f", "-e", "-A", "-a", "-u", "-x", "-f", "-F", "-w", "-l"),
                     {"--sort": _sort_key}, bare_letters=True)


def _ps(args: dict, ctx: ToolContext) -> ToolResult:
    chosen, now, memory = processes(), uptime_seconds(), Memory.read()
    for _, value in PS_OPTIONS.parse(args.get("options")):
        if value is not None:  # --sort
            chosen.sort(key=PS_SORT_KEYS[value.lstrip("+-")], reverse=value.startswith("-"))
    rows = _process_rows(chosen, _lifetime_cpu(now), memory.total)
    note = "(command lines of other users' processes are shown as [name]; environments never)"
    return ToolResult(output=f"{_table(PROCESS_HEADER, rows, left=PROCESS_LEFT)}\n{note}",
                      data={"count": len(chosen), "pids": [p.pid for p in chosen], "rss": [p.rss for p in chosen]})


# ---------------------------------------------------------------------------------------------
# top


TOP_SORT = {"%CPU": "cpu", "%MEM": "rss", "RES": "rss", "PID": "pid", "TIME+": "time", "TIME": "time"}


def _top_field(value: str) -> str:
    if value.upper() not in TOP_SORT:
        raise ValueError(f'"{value}" is not a field to sort by ({", ".join(TOP_SORT)})')
    return value.upper()


TOP_OPTIONS = Options(flags("-b", "-c", "-i"), {"-n": count_value(1, 1), "-o": _top_field})


def sample_processes() -> tuple[list[Process], dict[int, float], dict[str, dict[str, float]]]:
    """Processes, each one's %CPU over `CPU_SAMPLE_SECONDS`, and the CPU states over that time."""
    before, cpu_before = {p.pid: p.cpu_seconds for p in processes()}, cpu_times()
    start = time.monotonic()
    time.sleep(CPU_SAMPLE_SECONDS)
    after, cpu_after = processes(), cpu_times()
    elapsed = time.monotonic() - start
    busy = {p.pid: _percent(p.cpu_seconds - before.get(p.pid, p.cpu_seconds), elapsed) for p in after}
    return after, busy, cpu_usage(cpu_before, cpu_after)


def _top(args: dict, ctx: ToolContext) -> ToolResult:
    options = TOP_OPTIONS.parse(args.get("options"))
    field = next((TOP_SORT[value] for flag, value in options if flag == "-o"), "cpu")
    idle_hidden = ("-i", None) in options
    listed, busy, usage = sample_processes()
    memory, count = Memory.read(), int(args.get("count", 10))
    states = {state: sum(p.state == state for p in listed) for state in "RSDITZ"}
    keys = {"cpu": lambda p: busy[p.pid], "rss": lambda p: p.rss, "pid": lambda p: -p.pid,
            "time": lambda p: p.cpu_seconds}
    chosen = sorted((p for p in listed if not idle_hidden or busy[p.pid] > 0), key=keys[field], reverse=True)[:count]
    cpu = usage["cpu"]
    header = [f"top - {uptime_line()}",
              f"Tasks: {len(listed)} total, {states['R']} running, {states['S'] + states['D'] + states['I']} sleeping, "
              f"{states['T']} stopped, {states['Z']} zombie",
              f"%Cpu(s): {cpu['user']:.1f} us, {cpu['system']:.1f} sy, {cpu['nice']:.1f} ni, {cpu['idle']:.1f} id, "
              f"{cpu['iowait']:.1f} wa, {cpu['steal']:.1f} st",
              f"Mem: {human_bytes(memory.total)} total, {human_bytes(memory.free)} free, "
              f"{human_bytes(memory.used)} used, {human_bytes(memory.buffers + memory.cache)} buff/cache, "
              f"{human_bytes(memory.available)} available"]
    rows = _process_rows(chosen, lambda p: busy[p.pid], memory.total)
    return ToolResult(output="\n".join(header) + "\n\n" + _table(PROCESS_HEADER, rows, left=PROCESS_LEFT),
                      data={"pids": [p.pid for p in chosen], "rss": [p.rss for p in chosen]})


# ---------------------------------------------------------------------------------------------
# df


@dataclass(frozen=True)
class Mount:
    device: str
    point: str
    fstype: str
    size: int
    used: int
    available: int
    inodes: int
    inodes_free: int

    @property
    def use_percent(self) -> int:
        """df's Use%: used over what a user could have, rounded up."""
        return math.ceil(_percent(self.used, self.used + self.available))


def _unescape_mount(text: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (\\040)."""
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def mounts(include_all: bool = False) -> list[Mount]:
    """Mounted filesystems with their statvfs numbers; without `include_all`, those with no
    blocks (proc, sysfs, cgroup...) and repeated mounts of one device are left out, as df does."""
    found, seen = [], set()
    for line in _read(PROC / "mounts").splitlines():
        device, point, fstype = (_unescape_mount(word) for word in line.split()[:3])
        try:
            stats = os.statvfs(point)
        except OSError:
            continue
        if not include_all and (stats.f_blocks == 0 or point in seen or (device.startswith("/") and device in seen)):
            continue
        seen.update((device, point))
        found.append(Mount(device=device, point=point, fstype=fstype, size=stats.f_blocks * stats.f_frsize,
                           used=(stats.f_blocks - stats.f_bfree) * stats.f_frsize,
                           available=stats.f_bavail * stats.f_frsize, inodes=stats.f_files,
                           inodes_free=stats.f_ffree))
    return found


def mount_of(path: str, ctx: ToolContext, known: list[Mount]) -> Mount:
    """The mount holding `path` (relative paths are in the workspace), by the longest mount point
    that prefixes it; the path itself is not opened, so df reveals nothing about files."""
    target = os.path.normpath(os.path.join(ctx.workspace, path))
    holders = [m for m in known if os.path.commonpath([target, m.point]) == m.point]
    if not holders:
        raise ToolError(f'no mounted filesystem holds "{path}"')
    return max(holders, key=lambda m: len(m.point))


DF_OPTIONS = Options(flags("-h", "-k", "-T", "-a", "-i", "-P", "-l", "--human-readable", "--all", "--inodes"))


def _df(args: dict, ctx: ToolContext) -> ToolResult:
    given = {flag for flag, _ in DF_OPTIONS.parse(args.get("options"))}
    listed = mounts(include_all=bool(given & {"-a", "--all"}))
    if args.get("path"):
        listed = [mount_of(args["path"], ctx, mounts(include_all=True))]
    text = df_table(listed, human=bool(given & {"-h", "--human-readable"}), inodes=bool(given & {"-i", "--inodes"}),
                    typed="-T" in given)
    return ToolResult(output=text, data={"filesystems": [vars(m) | {"use_percent": m.use_percent} for m in listed]})


def df_table(listed: list[Mount], *, human: bool = False, inodes: bool = False, typed: bool = False) -> str:
    """df's table of `listed` (1K blocks unless `human`; inodes with `inodes`; a Type column with `typed`)."""
    size = human_bytes if human else (lambda n: str(n // 1024))
    if inodes:
        header = ["Filesystem", "Inodes", "IUsed", "IFree", "IUse%", "Mounted on"]
        rows = [[m.device, str(m.inodes), str(m.inodes - m.inodes_free), str(m.inodes_free),
                 f"{math.ceil(_percent(m.inodes - m.inodes_free, m.inodes))}%" if m.inodes else "-", m.point]
                for m in listed]
    else:
        header = ["Filesystem", "Size" if human else "1K-blocks", "Used", "Avail", "Use%", "Mounted on"]
        rows = [[m.device, size(m.size), size(m.used), size(m.available), f"{m.use_percent}%", m.point]
                for m in listed]
    if typed:
        header.insert(1, "Type")
        for row, mount in zip(rows, listed):
            row.insert(1, mount.fstype)
    last = len(header) - 1
    return _table(header, rows, left=(0, 1, last) if typed else (0, last))


# ---------------------------------------------------------------------------------------------
# free, uptime


FREE_UNITS = {"-b": 1, "--bytes": 1, "-k": 1024, "--kibi": 1024, "-m": 1 << 20, "--mebi": 1 << 20,
              "-g": 1 << 30, "--gibi": 1 << 30}
FREE_OPTIONS = Options(frozenset(FREE_UNITS) | flags("-h", "--human", "-t", "--total", "-w", "--wide"))


def _free(args: dict, ctx: ToolContext) -> ToolResult:
    given = [flag for flag, _ in FREE_OPTIONS.parse(args.get("options"))]
    unit = next((FREE_UNITS[flag] for flag in reversed(given) if flag in FREE_UNITS), 1024)
    memory = Memory.read()
    text = free_table(memory, unit=unit, human=bool({"-h", "--human"} & set(given)),
                      total=bool({"-t", "--total"} & set(given)))
    return ToolResult(output=text, data=vars(memory))


def free_table(memory: Memory, *, unit: int = 1024, human: bool = False, total: bool = False) -> str:
    """free's table of `memory` (in `unit`s of bytes, or human sizes), with a Total row if `total`."""
    show = human_bytes if human else (lambda n: str(n // unit))
    swap_used = memory.swap_total - memory.swap_free
    header = ["", "total", "used", "free", "shared", "buff/cache", "available"]
    rows = [["Mem:", *map(show, (memory.total, memory.used, memory.free, memory.shared,
                                 memory.buffers + memory.cache, memory.available))],
            ["Swap:", *map(show, (memory.swap_total, swap_used, memory.swap_free)), "", "", ""]]
    if total:
        rows.append(["Total:", *map(show, (memory.total + memory.swap_total, memory.used + swap_used,
                                           memory.free + memory.swap_free)), "", "", ""])
    return _table(header, rows, left=(0,))


UPTIME_OPTIONS = Options(flags("-p", "--pretty", "-s", "--since"))


def _uptime(args: dict, ctx: ToolContext) -> ToolResult:
    given = {flag for flag, _ in UPTIME_OPTIONS.parse(args.get("options"))}
    seconds = uptime_seconds()
    if given & {"-s", "--since"}:
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - seconds))
    elif given & {"-p", "--pretty"}:
        text = f"up {_duration(seconds)}"
    else:
        text = uptime_line()
    return ToolResult(output=text, data={"uptime_seconds": seconds, "load_average": list(loadavg())})


# ---------------------------------------------------------------------------------------------
# netstat


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING", "0C": "NEW_SYN_RECV"}


@dataclass(frozen=True)
class Socket:
    protocol: str  # tcp, tcp6, udp, udp6
    local: str
    remote: str
    state: str  # LISTEN, ESTABLISHED...; UDP: UNCONN or ESTABLISHED
    send_queue: int
    receive_queue: int

    @property
    def listening(self) -> bool:
        return self.state in ("LISTEN", "UNCONN")


def _address(text: str) -> str:
    """"0100007F:1F90" (kernel byte order, 32-bit words) -> "127.0.0.1:8080"."""
    host, port = text.split(":")
    raw = b"".join(bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, len(host), 8))
    address = ipaddress.ip_address(raw)
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{shown}:{int(port, 16)}"


def sockets(protocols: tuple[str, ...]) -> list[Socket]:
    found = []
    for protocol in protocols:
        try:
            lines = _read(PROC / "net" / protocol).splitlines()[1:]
        except OSError:  # no IPv6, for instance
            continue
        for line in lines:
            words = line.split()
            state = TCP_STATES.get(words[3], words[3])
            if protocol.startswith("udp"):
                state = "UNCONN" if state == "CLOSE" else state
            send, receive = (int(value, 16) for value in words[4].split(":"))
            found.append(Socket(protocol, _address(words[1]), _address(words[2]), state, send, receive))
    return found


NETSTAT_OPTIONS = Options(flags("-t", "-u", "-l", "-a", "-n", "-p", "-4", "-6", "--tcp", "--udp", "--listening",
                                "--all", "--numeric", "--program"))


def _netstat(args: dict, ctx: ToolContext) -> ToolResult:
    given = {flag for flag, _ in NETSTAT_OPTIONS.parse(args.get("options"))} or {"-t", "-u", "-l"}
    kinds = [kind for kind, names in (("tcp", {"-t", "--tcp"}), ("udp", {"-u", "--udp"})) if given & names]
    families = [family for family, flag in (("", "-4"), ("6", "-6")) if flag in given] or ["", "6"]
    found = sockets(tuple(kind + family for kind in kinds or ["tcp", "udp"] for family in families))
    if not given & {"-a", "--all"}:
        wanted = bool(given & {"-l", "--listening"})
        found = [s for s in found if s.listening == wanted]
    rows = [[s.protocol, str(s.receive_queue), str(s.send_queue), s.local, s.remote, s.state] for s in found]
    text = _table(["Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State"], rows, left=(0, 3, 4, 5))
    if given & {"-p", "--program"}:
        text += "\n(process names are not shown: ossy does not reveal which process owns a socket)"
    return ToolResult(output=text, data={"sockets": [vars(s) for s in found]})


# ---------------------------------------------------------------------------------------------
# system_analysis


def interfaces() -> list[dict]:
    """/proc/net/dev: per interface, bytes/packets/errors/drops received and sent."""
    found = []
    for line in _read(PROC / "net" / "dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        values = [int(value) for value in rest.split()]
        found.append({"name": name.strip(), "rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                      "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                      "tx_errors": values[10], "tx_dropped": values[11]})
    return found


@dataclass
class Analysis:
    lines: list[str]
    data: dict
    warnings: list[str]


def _analyse_cpu(analysis: Analysis, detailed: bool, usage: dict[str, dict[str, float]]) -> None:
    count, loads = os.cpu_count() or 1, loadavg()
    busy = 100.0 - usage["cpu"]["idle"] - usage["cpu"]["iowait"]
    analysis.lines += ["## CPU", f"{count} CPUs ({cpu_model()}), {busy:.1f}% busy over {CPU_SAMPLE_SECONDS} s",
                       f"load average: {loads[0]:.2f}, {loads[1]:.2f}, {loads[2]:.2f}"]
    analysis.data["cpu"] = {"count": count, "model": cpu_model(), "busy_percent": busy, "load_average": list(loads)}
    if detailed:
        states = ", ".join(f"{name} {value:.1f}%" for name, value in usage["cpu"].items())
        per_cpu = {name: 100.0 - u["idle"] - u["iowait"] for name, u in usage.items() if name != "cpu"}
        analysis.lines += [f"time: {states}",
                           "per CPU busy: " + ", ".join(f"{name} {value:.0f}%" for name, value in per_cpu.items())]
        analysis.data["cpu"] |= {"states_percent": usage["cpu"], "per_cpu_busy_percent": per_cpu}
    if loads[0] > count:
        analysis.warnings.append(f"load average {loads[0]:.2f} is above the {count} CPUs")


def _analyse_memory(analysis: Analysis, detailed: bool) -> None:
    memory = Memory.read()
    used_percent = _percent(memory.used, memory.total)
    analysis.lines += ["## Memory", f"{human_bytes(memory.used)} used of {human_bytes(memory.total)} "
                       f"({used_percent:.1f}%), {human_bytes(memory.available)} available"]
    if detailed:
        swap_used, cached = memory.swap_total - memory.swap_free, memory.buffers + memory.cache
        analysis.lines.append(f"free {human_bytes(memory.free)}, buff/cache {human_bytes(cached)}, shared "
                              f"{human_bytes(memory.shared)}, swap {human_bytes(swap_used)} used of "
                              f"{human_bytes(memory.swap_total)}")
    analysis.data["memory"] = vars(memory) | {"used_percent": used_percent}
    if memory.available < memory.total / 10:
        analysis.warnings.append(f"only {human_bytes(memory.available)} of memory available")


def _analyse_disk(analysis: Analysis, detailed: bool) -> None:
    listed = mounts()
    analysis.lines.append("## Disk")
    for m in listed:
        line = f"{m.point}: {human_bytes(m.used)} used of {human_bytes(m.size)} ({m.use_percent}%)"
        if detailed:
            inodes = f"{_percent(m.inodes - m.inodes_free, m.inodes):.0f}% inodes used" if m.inodes else "no inodes"
            line += f", {m.fstype} on {m.device}, {inodes}"
        analysis.lines.append(line)
        if m.use_percent >= 90 and m.size:
            analysis.warnings.append(f"{m.point} is {m.use_percent}% full")
    analysis.data["disk"] = [vars(m) | {"use_percent": m.use_percent} for m in listed]


def _analyse_network(analysis: Analysis, detailed: bool) -> None:
    found, listening = interfaces(), [s for s in sockets(("tcp", "tcp6", "udp", "udp6")) if s.listening]
    analysis.lines.append("## Network")
    for interface in found:
        line = (f"{interface['name']}: received {human_bytes(interface['rx_bytes'])}, "
                f"sent {human_bytes(interface['tx_bytes'])}")
        if detailed:
            line += (f" ({interface['rx_packets']}/{interface['tx_packets']} packets, errors "
                     f"{interface['rx_errors']}/{interface['tx_errors']}, dropped "
                     f"{interface['rx_dropped']}/{interface['tx_dropped']})")
        analysis.lines.append(line)
    analysis.lines.append(f"{len(listening)} listening sockets")
    if detailed:
        analysis.lines += [f"  {s.protocol} {s.local}" for s in listening]
    analysis.data["network"] = {"interfaces": found, "listening": [vars(s) for s in listening]}


def _analyse_processes(analysis: Analysis, detailed: bool, listed: list[Process], busy: dict[int, float]) -> None:
    memory_total = Memory.read().total
    by_memory = sorted(listed, key=lambda p: p.rss, reverse=True)[:10 if detailed else 5]
    zombies = sum(p.state == "Z" for p in listed)
    analysis.lines += ["## Processes", f"{len(listed)} processes, {sum(p.threads for p in listed)} threads, "
                       f"{zombies} zombie", "largest by memory:",
                       _table(PROCESS_HEADER, _process_rows(by_memory, lambda p: busy[p.pid], memory_total),
                              left=PROCESS_LEFT)]
    analysis.data["processes"] = {"count": len(listed), "zombies": zombies,
                                  "top_memory": [{"pid": p.pid, "name": p.name, "rss": p.rss} for p in by_memory]}
    if detailed:
        by_cpu = sorted(listed, key=lambda p: busy[p.pid], reverse=True)[:10]
        analysis.lines += ["busiest by CPU:",
                           _table(PROCESS_HEADER, _process_rows(by_cpu, lambda p: busy[p.pid], memory_total),
                                  left=PROCESS_LEFT)]
        analysis.data["processes"]["top_cpu"] = [{"pid": p.pid, "name": p.name, "cpu_percent": busy[p.pid]}
                                                 for p in by_cpu]
    if zombies:
        analysis.warnings.append(f"{zombies} zombie processes")


def _system_analysis(args: dict, ctx: ToolContext) -> ToolResult:
    components = list(dict.fromkeys(args.get("components") or COMPONENTS))
    detailed = args.get("depth", "basic") == "detailed"
    listed, busy, usage = sample_processes() if {"cpu", "processes"} & set(components) else ([], {}, {})
    analysis = Analysis(lines=[f"# System analysis ({'detailed' if detailed else 'basic'}): {uptime_line()}"],
                        data={}, warnings=[])
    steps = {"cpu": lambda: _analyse_cpu(analysis, detailed, usage),
             "memory": lambda: _analyse_memory(analysis, detailed),
             "disk": lambda: _analyse_disk(analysis, detailed),
             "network": lambda: _analyse_network(analysis, detailed),
             "processes": lambda: _analyse_processes(analysis, detailed, listed, busy)}
    for component in components:
        steps[component]()
    analysis.lines += ["## Findings", *(f"- {warning}" for warning in analysis.warnings or ["nothing unusual"])]
    analysis.data["warnings"] = analysis.warnings
    return ToolResult(output="\n".join(analysis.lines), data=analysis.data)


# ---------------------------------------------------------------------------------------------


def _tool(name: str, description: str, properties: dict, handler: Callable[[dict, ToolContext], ToolResult]) -> Tool:
    return Tool(name=name, toolset="system", description=description, handler=handler,
                parameters={"type": "object", "properties": properties, "additionalProperties": False})


def _options(examples: str) -> dict:
    return {"options": {"type": "string", "description": f"Options, e.g. {examples}"}}


def toolset() -> list[Tool]:
    return [
        _tool("ps", "List processes (pid, user, %cpu, %mem, memory, state, cpu time, command).",
              _options('"aux", "-ef", "--sort=-rss", "-u root"'), _ps),
        _tool("top", "Processes using the most CPU right now (sampled over a quarter second), with a system summary.",
              {"count": {"type": "integer", "minimum": 1, "maximum": 200,
                         "description": "Number of processes to return (default: 10)"},
               **_options('"-o %MEM" to sort by memory, "-i" to hide idle processes')}, _top),
        _tool("df", "Disk space of mounted filesystems.",
              {"path": {"type": "string", "description": "Show only the filesystem holding this path"},
               **_options('"-h" human-readable, "-T" types, "-i" inodes, "-a" all')}, _df),
        _tool("free", "Memory and swap usage.", _options('"-h" human-readable, "-m" MiB, "-t" totals'), _free),
        _tool("netstat", "Network sockets (default: listening TCP and UDP, like -tuln). No process names.",
              _options('"-tuln" listening TCP/UDP, "-ta" all TCP, "-t" connected TCP'), _netstat),
        _tool("uptime", "How long the system has been up, and its load average.",
              _options('"-p" pretty, "-s" since when'), _uptime),
        _tool("system_analysis", "A system report combining CPU, memory, disk, network and processes, "
              "with findings (full disks, low memory, high load).",
              {"components": {"type": "array", "items": {"enum": list(COMPONENTS)},
                              "description": "Components to analyse (default: all)"},
               "depth": {"enum": ["basic", "detailed"], "description": "basic (default) or detailed"}},
              _system_analysis),
    ]
