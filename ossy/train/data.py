"""Synthetic harmony conversations for training nano, and their token form.

Owns: the conversation generator (small talk, facts from `ossy.train.facts`, arithmetic with
column working in the analysis channel, a drill of the one-digit facts that working is made of,
developer instructions, tool calls with a tool result and a final answer that uses it; and,
for probes, not in the default mix, a drill of saying back made-up names, numbers and paths),
repeated random runs (the copy warm-up, `TrainConfig.copy_warmup`), the
train / held-out split, and `encode`, which renders a conversation with ossy's own harmony
renderer exactly as inference renders its prompt and weighs the tokens the model must learn to
produce. Does not own: tokenizers, models or training.

A `Setting` is everything in the system and developer messages (date, reasoning effort, developer
instructions, declared tools). The trainer batches conversations that share a setting so that
the long shared prefix (the tool declarations) is computed once per batch; `Setting`s vary from
batch to batch. The declared tools vary too: any subset of the built-in toolsets, the tools in
their own order or shuffled, so the tool list is not a fixed string the model memorises; a
request for a tool that is not declared is answered without a call (the model says it cannot
check), and the declared tools it has no use for are tools it must not call. Everything is drawn from a `random.Random` seeded by the caller: the same seed
gives the same data.

Split: held-out conversations use phrasings, file and folder names and arithmetic operand pairs
that training never sees (facts are the same facts, and so are the one-digit facts sums are
worked from; knowing them is the point).
"""

from __future__ import annotations

import datetime
import json
import random
import re
import zlib
from dataclasses import dataclass
from functools import cache

from ossy import harmony
from ossy.harmony import tokens as T
from ossy.harmony.render import REASONING_EFFORTS, render_message
from ossy.tools import fs, system
from ossy.tools.registry import TOOLSETS, Registry
from ossy.train import facts as F

TRAIN, HELDOUT = "train", "heldout"
SPLITS = (TRAIN, HELDOUT)
TOOL_NAMES = ("list_directory", "read_file", "find_files", "bash", "df", "free")
NANO_TOOLSETS = ("fs", "shell", "system")  # the toolsets holding TOOL_NAMES (`ossy run nano --tools ...`)
ALL_TOOLSETS = tuple(TOOLSETS)  # every built-in toolset, in the registry's order


@dataclass(frozen=True)
class Setting:
    """The system + developer part of a prompt, shared by a batch."""

    effort: str
    date: str
    instructions: str | None = None  # developer instructions text
    style: str | None = None  # the answer style the instructions ask for (`facts.INSTRUCTIONS` key)
    toolsets: tuple[str, ...] = ()  # the declared toolsets, in order
    shuffle: int | None = None  # the declared tools in an order drawn from this seed (None: as listed)

    @property
    def tools(self) -> list[dict] | None:
        """The declared tools (OpenAI function tools), or None."""
        return declared_tools(self.toolsets, self.shuffle) if self.toolsets else None

    @property
    def tool_names(self) -> set[str]:
        return {t["function"]["name"] for t in self.tools or []}

    def header_messages(self) -> list[dict]:
        return [{"role": "developer", "content": self.instructions}] if self.instructions else []


@dataclass(frozen=True)
class Conversation:
    """OpenAI-style messages (no system/developer); the last user message starts the turn the
    model must produce. `answer` is the expected final answer text (facts, arithmetic,
    instructions), `call` the expected first tool call (name, arguments): for a `no_tool`
    conversation, the call it would be if the tool were declared."""

    kind: str
    messages: tuple[dict, ...]
    answer: str | None = None
    call: tuple[str, dict] | None = None

    @property
    def prompt(self) -> list[dict]:
        """The messages before the model's first message of the turn."""
        last_user = max(i for i, m in enumerate(self.messages) if m["role"] == "user")
        return list(self.messages[: last_user + 1])


# -- helpers -------------------------------------------------------------------------------------
def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return SPLITS.index(split)


def _pick(rng: random.Random, pair: tuple, split: str):
    """One item of the train (pair[0]) or held-out (pair[1]) pool."""
    return rng.choice(pair[_split_index(split)])


def _ask(rng: random.Random, phrasings: tuple, split: str, **fields) -> str:
    """A request: a phrasing of `split` filled in, maybe with an opener and a closer around it."""
    return rng.choice(F.OPENERS) + _pick(rng, phrasings, split).format(**fields) + rng.choice(F.CLOSERS)


def _in_split(key: str, split: str) -> bool:
    """Held-out owns the keys (operand pairs, made-up names) whose hash is 0 mod 5."""
    return (zlib.crc32(key.encode()) % 5 == 0) == (split == HELDOUT)


def _word(rng: random.Random, split: str, pool: tuple = F.NAME_WORDS) -> str:
    """A name: a word of the split's pool, or a made-up one of 2-3 syllables in the split."""
    if rng.random() < 0.5:
        return _pick(rng, pool, split)
    while True:
        word = "".join(rng.choice(F.SYLLABLES) for _ in range(rng.randint(2, 3)))
        if _in_split(word, split):
            return word


def _by_effort(effort: str, low: str, medium: str, high: str) -> str:
    return {"low": low, "medium": medium, "high": high}[effort]


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- arithmetic ----------------------------------------------------------------------------------
def _digits(n: int) -> list[int]:
    return [int(c) for c in str(n)][::-1]  # least significant first


def addition_steps(a: int, b: int) -> list[str]:
    steps, carry = [], 0
    da, db = _digits(a), _digits(b)
    for i in range(max(len(da), len(db))):
        x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
        total = x + y + carry
        plus_carry = f" + {carry}" if carry else ""
        steps.append(f"{x} + {y}{plus_carry} = {total}, write {total % 10}" + (", carry 1" if total >= 10 else ""))
        carry = total // 10
    if carry:
        steps.append("write the carry 1")
    return steps


def subtraction_steps(a: int, b: int) -> list[str]:
    steps, borrow = [], 0
    da, db = _digits(a), _digits(b)
    for i in range(len(da)):
        x, y = da[i] - borrow, (db[i] if i < len(db) else 0)
        minus_borrow = " - 1" if borrow else ""
        if x < y:
            steps.append(f"{da[i]}{minus_borrow} < {y}, borrow: {x + 10} - {y} = {x + 10 - y}")
            borrow = 1
        else:
            steps.append(f"{da[i]}{minus_borrow} - {y} = {x - y}")
            borrow = 0
    return steps


def multiplication_steps(a: int, b: int) -> list[str]:
    steps, carry = [], 0
    for x in _digits(a):
        total = x * b + carry
        plus_carry = f" + {carry}" if carry else ""
        steps.append(f"{x} * {b}{plus_carry} = {total}, write {total % 10}" + (f", carry {total // 10}" if total >= 10 else ""))
        carry = total // 10
    if carry:
        steps.append(f"write the carry {carry}")
    return steps


_OPERATIONS = {"+": (lambda a, b: a + b, addition_steps), "-": (lambda a, b: a - b, subtraction_steps),
               "*": (lambda a, b: a * b, multiplication_steps)}


# the (lowest, highest) first and second operand of each operation; a subtraction never goes below 0
_OPERAND_BOUNDS = {"+": ((1, 99), (1, 99)), "-": ((1, 99), (1, 99)), "*": ((2, 29), (2, 9))}


def _operand_range(op: str):
    """Every (a, b) the questions about `op` use, both splits."""
    (a_low, a_high), (b_low, b_high) = _OPERAND_BOUNDS[op]
    return [(a, b) for a in range(a_low, a_high + 1) for b in range(b_low, b_high + 1) if op != "-" or a >= b]


def _operands(rng: random.Random, op: str, split: str) -> tuple[int, int]:
    first, second = _OPERAND_BOUNDS[op]
    while True:
        a, b = rng.randint(*first), rng.randint(*second)
        if op == "-" and a < b:
            a, b = b, a
        if _in_split(f"{op}{a},{b}", split):
            return a, b


def arithmetic(rng: random.Random, split: str, setting: Setting) -> Conversation:
    op = rng.choice("+-*")
    a, b = _operands(rng, op, split)
    compute, steps_of = _OPERATIONS[op]
    result = compute(a, b)
    question = _ask(rng, F.ARITHMETIC_PHRASINGS[op], split, a=a, b=b)
    steps = steps_of(a, b)
    working = "; ".join(steps) + f". So {a} {op} {b} = {result}."
    analysis = _by_effort(setting.effort, working,
                          f"Compute {a} {op} {b} digit by digit: {working}",
                          f"The user wants {a} {op} {b}. I will work it out column by column from the right: "
                          f"{working} Let me double-check: {a} {op} {b} = {result}. Yes.")
    final = str(result) if setting.style == "number_only" else f"{a} {op} {b} = {result}."
    return Conversation("arithmetic", _turn(question, analysis, final), answer=str(result))


_COLUMN_FACT = re.compile(r"\b(\d+(?: [-+*] \d+)+) = (\d+)\b")


@cache
def column_facts() -> tuple[tuple[str, str], ...]:
    """Every one-step fact column working is made of ("5 + 3 + 1" = "9", "14 - 8" = "6",
    "1 * 8 + 4" = "12"), from the working of every operand pair of both splits: like the fact
    table, the facts are knowledge; what the held-out split keeps unseen is the problems."""
    found: dict[str, str] = {}
    for op, (_, steps_of) in _OPERATIONS.items():
        for a, b in _operand_range(op):
            found.update(_COLUMN_FACT.findall("; ".join(steps_of(a, b))))
    return tuple(sorted(found.items()))


def digit_facts(rng: random.Random, split: str, setting: Setting) -> Conversation:
    """A drill of 10-16 one-digit facts drawn evenly from `column_facts`: each conversation
    carries many of the facts an arithmetic conversation carries two or three of, and the rare
    ones (a borrow from a carry, 2 * 9 + 8) as often as the common ones."""
    drawn = rng.sample(column_facts(), rng.randint(10, 16))
    user = rng.choice(F.OPENERS) + _pick(rng, F.DIGIT_FACT_PHRASINGS, split).format(
        sums=", ".join(expression for expression, _ in drawn))
    analysis = _by_effort(setting.effort, "One-digit facts.", f"{len(drawn)} one-digit facts; I give each result.",
                          f"The user lists {len(drawn)} small sums. Each is a one-digit fact, so I can give "
                          f"each result directly, in order.")
    final = "; ".join(f"{expression} = {value}" for expression, value in drawn) + "."
    return Conversation("digit_facts", _turn(user, analysis, final))


# -- facts and small talk ------------------------------------------------------------------------
def _one_word_facts() -> list[tuple[str, str]]:
    return [(kind, x) for kind, (table, _) in F.FACTS.items() if kind != "legs"
            for x, y in table.items() if " " not in y]


def fact(rng: random.Random, split: str, setting: Setting) -> Conversation:
    if setting.style == "one_word":
        kind, x = rng.choice(_one_word_facts())
    elif setting.style == "number_only":
        kind, x = "legs", rng.choice(sorted(F.FACTS["legs"][0]))
    else:
        kind = rng.choice(sorted(F.FACTS))
        x = rng.choice(sorted(F.FACTS[kind][0]))
    table, sentence = F.FACTS[kind]
    y = table[x]
    question = _ask(rng, F.FACT_PHRASINGS[kind], split, x=x)
    full = sentence.format(x=x, X=_capitalized(x), y=y)
    analysis = _by_effort(setting.effort, f"{full}",
                          f"The user asks a {kind} question about {x}. {full}",
                          f"The user asks a {kind} question about {x}. I know this one: {full} "
                          f"I will answer {'in one word' if setting.style else 'with a short sentence'}.")
    final = y if setting.style else full
    return Conversation("instruction" if setting.style else "fact", _turn(question, analysis, final), answer=y)


def small_talk(rng: random.Random, split: str, setting: Setting) -> Conversation:
    train, heldout, reply = rng.choice(F.SMALL_TALK)
    user = _pick(rng, (train, heldout), split)
    analysis = _by_effort(setting.effort, "Small talk. Reply politely.",
                          f"The user says \"{user}\". This is small talk, so I reply briefly and politely.",
                          f"The user says \"{user}\". No tool or calculation is needed; this is small talk. "
                          f"I should reply in a friendly way and offer help.")
    return Conversation("small_talk", _turn(user, analysis, reply))


def repeat(rng: random.Random, split: str, setting: Setting) -> Conversation:
    words = " ".join(_word(rng, split, F.ECHO_WORDS) if rng.random() < 0.8 else str(rng.randint(0, 9999))
                     for _ in range(rng.randint(1, 5)))
    user = _pick(rng, F.REPEAT_PHRASINGS, split).format(words=words)
    analysis = _by_effort(setting.effort, f"Repeat: {words}", f"The user wants me to repeat \"{words}\".",
                          f"The user asks me to repeat some words exactly. The words are: {words}. "
                          f"I will say them back without changes.")
    return Conversation("repeat", _turn(user, analysis, words), answer=words)


def _made_up(rng: random.Random, split: str) -> str:
    """A made-up word of 1-4 syllables in the split: no word pool to guess it from."""
    while True:
        word = "".join(rng.choice(F.SYLLABLES) for _ in range(rng.randint(1, 4)))
        if _in_split(word, split):
            return word


def _drill_item(rng: random.Random, split: str) -> str:
    roll = rng.random()
    if roll < 0.35:
        return _made_up(rng, split)
    if roll < 0.65:
        return str(rng.randrange(10 ** rng.randint(1, 10)))
    name = f"{_made_up(rng, split)}.{rng.choice(sorted(F.EXTENSIONS))}"
    return name if roll < 0.85 else f"{_made_up(rng, split)}/{name}"


def copy_drill(rng: random.Random, split: str, setting: Setting) -> Conversation:
    """A list of 4-16 made-up words, numbers of up to 10 digits and file paths to say back: every
    item can only come from the request, so the loss is lowered only by copying from the context,
    which every answer from a tool result is made of (`experiments/tool_probe.py --drill`)."""
    items = [_drill_item(rng, split) for _ in range(rng.randint(4, 16))]
    words = rng.choice((" ", ", ")).join(items)
    user = _pick(rng, F.REPEAT_PHRASINGS, split).format(words=words)
    analysis = _by_effort(setting.effort, f"Repeat {len(items)} items.", f"The user wants {len(items)} items said back.",
                          f"The user gives me {len(items)} items to say back exactly. I will copy each of them "
                          f"in order, digit for digit and letter for letter.")
    return Conversation("copy_drill", _turn(user, analysis, words), answer=words)


def _turn(user: str, analysis: str, final: str) -> tuple[dict, ...]:
    return ({"role": "user", "content": user}, {"role": "assistant", "reasoning_content": analysis, "content": final})


# -- tools ---------------------------------------------------------------------------------------
def _name(rng: random.Random, split: str, extension: str | None = None) -> str:
    return f"{_word(rng, split)}.{extension or rng.choice(sorted(F.EXTENSIONS))}"


def _content_line(rng: random.Random) -> str:
    words = " ".join(_word(rng, TRAIN, F.ECHO_WORDS) for _ in range(rng.randint(2, 6)))
    return rng.choice(F.CONTENT_TEMPLATES).format(
        person=rng.choice(F.PEOPLE), day=rng.choice(F.DAYS), hour=f"{rng.randint(7, 18)}:{rng.choice(('00', '30'))}",
        n=rng.randint(1, 9999) if rng.random() < 0.5 else rng.randint(1, 99), item=rng.choice(F.ITEMS),
        word=_word(rng, TRAIN), words=_capitalized(words) + rng.choice((".", "", "!")))


@dataclass(frozen=True)
class Workspace:
    """A made-up workspace: files at the top and in folders one level down, with made-up contents.
    Renders what the real fs tools print for it (checked against them in tests/test_train.py)."""

    files: dict[str, str]  # relative path -> text

    @classmethod
    def sample(cls, rng: random.Random, split: str) -> "Workspace":
        files = {}
        for folder in [""] + [_word(rng, split, F.DIR_WORDS) + "/" for _ in range(rng.randint(0, 3))]:
            for _ in range(rng.randint(1, 4)):
                lines = [_content_line(rng) for _ in range(rng.randint(1, 3))]
                files[folder + _name(rng, split)] = "\n".join(lines) + "\n"
        return cls(files)

    def entries(self, directory: str) -> list[str]:
        """Names directly in `directory` ("." or a folder), folders with a trailing "/", sorted."""
        prefix = "" if directory == "." else directory + "/"
        inside = {path[len(prefix):] for path in self.files if path.startswith(prefix)}
        return sorted({name.split("/")[0] + ("/" if "/" in name else "") for name in inside},
                      key=lambda name: name.rstrip("/"))

    def listing(self, directory: str) -> str:
        """list_directory's output."""
        prefix = "" if directory == "." else directory + "/"
        lines = [fs.listing_line("directory", entry.rstrip("/"), 0) if entry.endswith("/")
                 else fs.listing_line("file", entry, len(self.files[prefix + entry].encode()))
                 for entry in self.entries(directory)]
        return "\n".join([fs.listing_header(directory, len(lines)), *lines])

    def found(self, extension: str) -> list[str]:
        """find_files's matches for `*.extension`, in its walk order (by name, depth first)."""
        return sorted((p for p in self.files if p.endswith("." + extension)), key=lambda p: p.split("/"))


def _memory(rng: random.Random) -> system.Memory:
    total = rng.randint(1, 128) * 2**30 + rng.randrange(2**30)
    available = rng.randint(total // 20, total * 19 // 20)
    free = available * rng.randint(20, 95) // 100
    cache = available - free + rng.randrange(2**28)
    return system.Memory(total=total, used=total - available, free=free, shared=rng.randrange(2**27),
                         buffers=rng.randrange(2**26), cache=cache, available=available,
                         swap_total=0 if rng.random() < 0.6 else rng.randint(1, 16) * 2**30, swap_free=0)


def _mount(rng: random.Random, device: str, point: str, fstype: str, empty: bool = False) -> system.Mount:
    size = rng.randint(1, 999) * 2**30 + rng.randrange(2**30)
    used = 0 if empty else rng.randint(size // 50, size * 49 // 50)
    return system.Mount(device=device, point=point, fstype=fstype, size=size, used=used, available=size - used,
                        inodes=0, inodes_free=0)


def _df_result(rng: random.Random) -> tuple[str, str]:
    """df's table; the answer reads the row mounted on /."""
    root = _mount(rng, "/dev/" + rng.choice(("sda1", "vda", "vda1", "nvme0n1p2", "sdb2", "mapper/root")), "/",
                  "ext4")
    others = [_mount(rng, "tmpfs", "/dev/shm", "tmpfs", empty=True), _mount(rng, "devtmpfs", "/dev", "devtmpfs", True),
              _mount(rng, "/dev/sda2", "/home", "ext4"), _mount(rng, "tmpfs", "/run", "tmpfs"),
              _mount(rng, "/dev/sdb1", "/boot", "vfat")]
    listed = rng.sample(others, rng.randint(0, 3))
    listed.insert(rng.randint(0, len(listed)), root)
    return system.df_table(listed), (f"The root file system has {root.available // 1024} KB free of "
                                     f"{root.size // 1024} KB ({root.use_percent}% used).")


def _free_result(rng: random.Random) -> tuple[str, str]:
    """free's table (KiB); the answer reads the available column."""
    memory = _memory(rng)
    return system.free_table(memory), (f"{memory.available // 1024} KiB of memory is available, "
                                       f"out of {memory.total // 1024} KiB.")


def _command_result(rng: random.Random, split: str, command: str) -> str:
    results = {
        "pwd": lambda: rng.choice(("/home/{}/{}", "/tmp/{}{}", "/var/tmp/{}/{}", "/srv/{}/{}")).format(
            rng.choice(F.USERS), _word(rng, split, F.DIR_WORDS)),
        "date +%F": lambda: (datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(4000))).isoformat(),
        "python3 --version": lambda: f"Python 3.{rng.randint(8, 14)}.{rng.randint(0, 12)}",
        "uname -r": lambda: f"{rng.randint(4, 6)}.{rng.randint(1, 19)}.{rng.randint(0, 99)}-"
                            f"{rng.choice(('generic', 'amd64', 'arch1-1', 'fc-v669', 'aws'))}",
        "whoami": lambda: rng.choice(F.USERS),
    }
    return results[command]()


def _tool_request(rng: random.Random, split: str, tool: str) -> tuple[str, str, dict, str, str, str]:
    """(tool, user text, arguments, tool result, final answer, what the user wants)."""
    workspace = Workspace.sample(rng, split)
    if tool == "list_directory":
        folders = [entry.rstrip("/") for entry in workspace.entries(".") if entry.endswith("/")]
        here = not folders or rng.random() < 0.4
        directory = "." if here else rng.choice(folders)
        user = _ask(rng, F.TOOL_PHRASINGS["list_here" if here else tool], split, dir=directory)
        where = "The current directory" if here else f"The {directory} directory"
        return (tool, user, {"path": directory}, workspace.listing(directory),
                f"{where} contains: {', '.join(workspace.entries(directory))}.",
                f"the files in {'the current directory' if here else directory}")
    if tool == "read_file":
        file = rng.choice(sorted(workspace.files))
        text = workspace.files[file]
        user = _ask(rng, F.TOOL_PHRASINGS[tool], split, file=file)
        return tool, user, {"path": file}, text, f"{file} says: {' '.join(text.split(chr(10))).strip()}", \
            f"the contents of {file}"
    if tool == "find_files":
        kind = rng.choice(sorted(F.FILE_KINDS))
        extension = next(e for e, k in F.EXTENSIONS.items() if k == kind)
        found = workspace.found(extension)
        user = _ask(rng, F.TOOL_PHRASINGS[tool], split, kind=kind)
        pattern = F.FILE_KINDS[kind]
        if not found:
            return (tool, user, {"pattern": pattern}, f'no names match "{pattern}" under .',
                    f"There are no {kind} files.", f"the {kind} files")
        return (tool, user, {"pattern": pattern}, "\n".join(found),
                f"I found these {kind} files: {', '.join(found)}.", f"the {kind} files")
    if tool == "bash":
        if rng.random() < 0.5:
            train, heldout, command = rng.choice(F.COMMAND_QUESTIONS)
            user = _ask(rng, (train, heldout), split)
            output = _command_result(rng, split, command)
            return tool, user, {"command": command}, output, f"The command {command} printed: {output}", "a command's output"
        words = " ".join(_word(rng, split, F.ECHO_WORDS) for _ in range(rng.randint(1, 4)))
        command = f"echo {words}"
        user = _ask(rng, F.TOOL_PHRASINGS[tool], split, command=command)
        return tool, user, {"command": command}, words, f"The command printed: {words}", f"to run {command}"
    result, final = (_df_result if tool == "df" else _free_result)(rng)
    user = _ask(rng, F.TOOL_PHRASINGS[tool], split)
    return tool, user, {}, result, final, "the disk space" if tool == "df" else "the memory usage"


def tool_use(rng: random.Random, split: str, setting: Setting) -> Conversation:
    """A request, the call of the declared tool that answers it, the result, an answer from it."""
    available = [name for name in TOOL_NAMES if name in setting.tool_names]
    if not available:
        return unavailable_tool(rng, split, setting)
    tool, user, arguments, result, final, want = _tool_request(rng, split, rng.choice(available))
    args_text = json.dumps(arguments, separators=(",", ":"))
    plan = _by_effort(setting.effort, f"Need {tool}.",
                      f"The user wants {want}. I will call {tool}.",
                      f"The user wants {want}. I cannot know this without looking, so I will use the {tool} "
                      f"tool with {args_text} and then report what it returns.")
    after = _by_effort(setting.effort, "Got the result.", f"{tool} returned the result. I will report it.",
                       f"The {tool} call worked. I will summarize its output for the user.")
    call = {"id": "call_1", "type": "function", "function": {"name": tool, "arguments": args_text}}
    messages = ({"role": "user", "content": user},
                {"role": "assistant", "reasoning_content": plan, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": result},
                {"role": "assistant", "reasoning_content": after, "content": final})
    return Conversation("tool", messages, call=(tool, arguments))


def unavailable_tool(rng: random.Random, split: str, setting: Setting) -> Conversation:
    """A request only a tool that is not declared could answer: no call, and the answer says so."""
    tool = rng.choice([name for name in TOOL_NAMES if name not in setting.tool_names])
    _, user, arguments, _, _, want = _tool_request(rng, split, tool)
    analysis = _by_effort(setting.effort, f"No {tool} tool here.",
                          f"The user wants {want}. The {tool} tool is not available, so I cannot check.",
                          f"The user wants {want}. That needs the {tool} tool, which is not among the tools I "
                          f"have here. I should not call a tool I was not given; I will say so.")
    final = f"I cannot check {want}: the {tool} tool is not available here."
    return Conversation("no_tool", _turn(user, analysis, final), answer=final, call=(tool, arguments))


def repeated_runs(rng: random.Random, runs: int, alphabet: int) -> list[list[tuple[int, float]]]:
    """Not conversations: `runs` random runs of 8-16 token ids below `alphabet`, each followed by
    itself, weighted as `encode` weighs (the second run's tokens after its first, which cannot
    be known, are the targets). Copying is the only way to predict them: the steps that train on
    these first grow the copying heads (induction) that every answer from a tool result uses
    (`experiments/copy_probe.py`, `experiments/tool_probe.py --copy-warmup`)."""
    continuations = []
    for _ in range(runs):
        run = [rng.randrange(alphabet) for _ in range(rng.randint(8, 16))]
        continuations.append([(t, 0.0) for t in run] + [(t, float(j > 0)) for j, t in enumerate(run)])
    return continuations


# -- sampling ------------------------------------------------------------------------------------
def _sample_tools(rng: random.Random) -> dict:
    """Declared tools: the nano toolsets as `--tools fs,shell,system` lists them (a third of the
    time), else any non-empty subset of the built-in toolsets in any order; half the time with
    the tools shuffled."""
    if rng.random() < 1 / 3:
        toolsets = NANO_TOOLSETS
    else:
        toolsets = ()
        while not toolsets:
            toolsets = tuple(name for name in ALL_TOOLSETS if rng.random() < 0.5)
        toolsets = tuple(rng.sample(toolsets, len(toolsets)))
    return {"toolsets": toolsets, "shuffle": rng.randrange(2**31) if rng.random() < 0.5 else None}


def sample_setting(rng: random.Random) -> Setting:
    """Reasoning effort and date evenly; developer instructions in 30% of settings (an eighth of
    them with tools), tools declared in 30% in all."""
    effort = rng.choice(REASONING_EFFORTS)
    date = (datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(7 * 365))).isoformat()
    roll = rng.random()
    if roll < 0.3:
        style = rng.choice(sorted(F.INSTRUCTIONS))
        tools = _sample_tools(rng) if rng.random() < 0.125 else {}
        return Setting(effort, date, rng.choice(F.INSTRUCTIONS[style]), style, **tools)
    return Setting(effort, date, **(_sample_tools(rng) if roll < 0.5625 else {}))


def sample_conversation(rng: random.Random, split: str, setting: Setting) -> Conversation:
    if setting.style == "number_only":
        kinds, weights = (arithmetic, fact), (3, 1)
    elif setting.style == "one_word":
        kinds, weights = (fact,), (1,)
    elif setting.toolsets:
        usable = sum(name in setting.tool_names for name in TOOL_NAMES)
        kinds, weights = (tool_use, unavailable_tool, fact, arithmetic, small_talk, repeat), \
            (9 if usable else 0, 1.5 if usable < len(TOOL_NAMES) else 0, 1.5, 1, 1.5, 1)
    else:
        kinds, weights = (fact, arithmetic, digit_facts, small_talk, repeat, unavailable_tool), (2.5, 6, 6, 1.5, 2, 0.5)
    convo = rng.choices(kinds, weights)[0](rng, split, setting)
    if rng.random() < 0.1:  # an earlier exchange, as the chat layer replays it (analysis dropped)
        earlier = rng.choice((fact, small_talk))(rng, split, Setting(setting.effort, setting.date))
        replay = (earlier.messages[0], {"role": "assistant", "content": earlier.messages[-1]["content"]})
        convo = Conversation(convo.kind, replay + convo.messages, convo.answer, convo.call)
    return convo


def batches(split: str, seed: int, per_batch: int):
    """Endless (setting, [conversation, ...]) groups of `per_batch` conversations under one
    setting (their shared prefix, the tool declarations when there are tools, is computed once
    for the lot), reproducible from `seed`."""
    rng = random.Random(f"{split}:{seed}")
    while True:
        setting = sample_setting(rng)
        yield setting, [sample_conversation(rng, split, setting) for _ in range(per_batch)]


# -- tokens --------------------------------------------------------------------------------------
@cache
def declared_tools(toolsets: tuple[str, ...] = NANO_TOOLSETS, shuffle: int | None = None) -> list[dict]:
    """The toolsets' tools as the agent declares them (the real tools' names and schemas), in
    their order or shuffled by the seed `shuffle`. Shared: do not change the list."""

    tools = Registry.from_toolsets(toolsets).openai_tools()
    if shuffle is not None:
        random.Random(shuffle).shuffle(tools)
    return tools


def harmony_messages(setting: Setting, messages: list[dict]) -> list[harmony.Message]:
    """The conversation as the chat layer renders it (`ossy.chat.prompt`): default identity,
    the setting's date and effort, instructions and tools in the developer message."""
    return harmony.conversation(setting.header_messages() + list(messages),
                                tools=setting.tools,
                                reasoning_effort=setting.effort, current_date=setting.date)


def _header_size(setting: Setting) -> int:
    return 2 if setting.instructions or setting.toolsets else 1  # system [+ developer]


def prefix_ids(setting: Setting, tokenizer) -> list[int]:
    """Tokens of the system [+ developer] messages of `setting`."""
    header = harmony_messages(setting, [])
    return [i for m in header for i in render_message(m, tokenizer)]


_RESULT_DIGITS = re.compile(r"= \d*$")


def _result_digits(tokens: list[int], tokenizer) -> list[bool]:
    """Which of `tokens` are the digits of a result, after "= ": a working step's ("7 + 5 + 1 =
    13", a one-digit fact the model must know) and the sum's ("So 47 + 85 = 132")."""
    text, marks = "", []
    for token in tokens:
        piece = tokenizer.decode([token])
        marks.append(piece.isdigit() and _RESULT_DIGITS.search(text) is not None)
        text = (text + piece)[-32:]
    return marks


def encode(setting: Setting, convo: Conversation, tokenizer, result_weight: float = 1.0,
           copy_weight: float = 1.0) -> list[tuple[int, float]]:
    """The tokens of `convo` after the `setting` prefix, each with its weight in the loss: 0 for
    what the model reads, 1 for what it produces, `result_weight` for the digits of a result it
    produces (sums are where nano is weakest: each is one fact it must know, among copies), and
    `copy_weight` for what it must copy: a tool call's arguments (paths from the request) and the
    text of the answer after a tool result (names, numbers and lines from the result).

    Produced: the assistant messages after the last user message, except the `<|start|>assistant`
    the chat layer writes before each model turn. The last message ends in `<|return|>`, as
    generated (the renderer writes `<|end|>` for replay).
    """
    body = harmony_messages(setting, convo.messages)[_header_size(setting):]
    last_user = max(i for i, m in enumerate(body) if m.author == "user")
    turn_start = 1 + len(tokenizer.encode("assistant"))
    message_token = tokenizer.token_id(T.MESSAGE)
    out: list[tuple[int, float]] = []
    for k, message in enumerate(body):
        tokens = render_message(message, tokenizer)
        if k == len(body) - 1:
            tokens[-1] = tokenizer.token_id(T.RETURN)
        if not (k > last_user and message.author == "assistant"):
            out += [(token, 0.0) for token in tokens]
            continue
        skip = turn_start if body[k - 1].author != "assistant" else 0
        results = _result_digits(tokens, tokenizer)
        after_result = message.channel == "final" and any(m.author not in ("user", "assistant")
                                                           for m in body[last_user + 1:k])
        copied = message.recipient is not None or after_result
        body_start = tokens.index(message_token) + 1 if copied else len(tokens)
        out += [(token, 0.0 if j < skip else result_weight if results[j] else
                 copy_weight if body_start <= j < len(tokens) - 1 else 1.0) for j, token in enumerate(tokens)]
    return out


def corpus(n: int, seed: int):
    """Text of `n` training conversations (system and developer messages included), message by
    message, for training the tokenizer."""
    rng = random.Random(f"corpus:{seed}")
    for _ in range(n):
        setting = sample_setting(rng)
        for m in harmony_messages(setting, sample_conversation(rng, TRAIN, setting).messages):
            yield " ".join(p for p in (m.author, m.recipient and f"to={m.recipient}", m.channel, m.content) if p)
