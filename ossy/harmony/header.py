"""Reading a harmony message header (the text between `<|start|>` and `<|message|>`).

Owns: turning header text such as `assistant<|channel|>commentary to=functions.f <|constrain|>json`
into author, channel, recipient and content type, the way openai-harmony's `StreamableParser`
does, plus a best reading (and problem codes) where harmony would raise. Does not own: tokens
or the message state machine (`ossy.harmony.parser`).

Harmony's rules, kept: the first `<|channel|>X` anywhere is the channel (X runs to whitespace or
`<`); a space is put before `<|constrain|>`; the words are split on ASCII whitespace; the role
word is dropped (an unknown first word is a tool author, e.g. `functions.f` replying); then
`to=R` alone or `to=R TYPE` give recipient and content type, and so do one or two bare words
(`R`, `R TYPE`).
Where harmony raises, we read on: `to=R` is found anywhere (`json to=R`, `to=R json extra`), and
`bad_header` reports what could not be placed: leftover words (ignored; three or more bare
words give no recipient), no role after `<|start|>`, an empty or second channel, an empty
recipient. One documented deviation from harmony: a bare
word that is a content type (`json`, `code`, `<|constrain|>json`) is never read as the recipient,
where harmony makes `commentary json` a call to a tool named "json" (turning a preamble into a
tool call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ossy.harmony.tokens import CHANNEL, CONSTRAIN

ASSISTANT = "assistant"
ROLES = frozenset({"assistant", "user", "system", "developer", "tool"})
CONTENT_TYPES = frozenset({"json", "code"})  # plus anything starting with <|constrain|>

_CHANNEL_VALUE = re.compile(re.escape(CHANNEL) + r"([^\s<]*)")
_ASCII_SPACE = re.compile(r"[\t\n\x0c\r ]+")
_WORD = re.compile(r"\S+")

Problem = tuple[str, str]  # (code, detail)


@dataclass(frozen=True)
class Header:
    author: str = ASSISTANT  # the role word, or a tool's name for a (hallucinated) tool message
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None


def is_content_type(word: str) -> bool:
    return word in CONTENT_TYPES or word.startswith(CONSTRAIN)


def read_header(text: str, *, role_known: bool) -> tuple[Header, list[Problem]]:
    """The header that `<|message|>` completed. `role_known`: the role was given (the first
    message of a completion, after the prompt's `<|start|>assistant`), not read from the text."""
    problems: list[Problem] = []
    channel, rest = _take_channel(text, problems)
    words = [w for w in _ASCII_SPACE.split(rest.replace(CONSTRAIN, " " + CONSTRAIN).strip()) if w]
    author = _take_author(words, role_known, problems)
    recipient, content_type = _take_recipient(words, problems)
    return Header(author, channel, recipient, content_type), problems


def read_unfinished_header(text: str, *, role_known: bool) -> tuple[Header, str, list[Problem]]:
    """A header that never got its `<|message|>`: the leading header-like words (role, `to=R`,
    content type) and the channel make the header, the text from the first other word on is
    the message's content. Returns (header, content, problems)."""
    problems: list[Problem] = []
    channel, rest = _take_channel(text, problems)
    rest = rest.replace(CONSTRAIN, " " + CONSTRAIN)
    words, content = [], ""
    for match in _WORD.finditer(rest):
        word = match.group()
        if not (word.startswith("to=") or is_content_type(word) or (not words and word in ROLES)):
            content = rest[match.start() :].replace(" " + CONSTRAIN, "")  # no marker in content
            break
        words.append(word)
    author = _take_author(words, role_known, problems)
    recipient, content_type = _take_recipient(words, problems)
    return Header(author, channel, recipient, content_type), content, problems


def _take_channel(text: str, problems: list[Problem]) -> tuple[str | None, str]:
    """The first channel's value, and the text without any `<|channel|>X` (harmony cuts out the
    one it reads and would keep a second; we drop that too, so no marker leaks into a name)."""
    values = _CHANNEL_VALUE.findall(text)
    if not values:
        return None, text
    if not values[0]:
        problems.append(("bad_header", "empty channel"))
    if len(values) > 1:
        problems.append(("bad_header", "several channels: " + " ".join(values)))
    return values[0] or None, _CHANNEL_VALUE.sub("", text)


def _take_author(words: list[str], role_known: bool, problems: list[Problem]) -> str:
    if role_known:
        if words and words[0] == ASSISTANT:
            del words[0]
        return ASSISTANT
    if not words or words[0].startswith("to="):
        problems.append(("bad_header", "no role after <|start|>"))
        return ASSISTANT
    return words.pop(0)


def _take_recipient(words: list[str], problems: list[Problem]) -> tuple[str | None, str | None]:
    at = next((i for i, word in enumerate(words) if word.startswith("to=")), None)
    if at is not None:
        recipient, after, extra = words[at][3:], words[at + 1 :], words[:at]
        if after:
            content_type = after.pop(0)
        else:
            content_type = extra.pop() if extra and is_content_type(extra[-1]) else None
        extra += after
    elif len(words) in (1, 2) and not is_content_type(words[0]):  # harmony: `R` or `R TYPE`
        recipient, content_type, extra = words[0], words[1] if len(words) == 2 else None, []
    else:
        recipient = None
        content_type = words.pop() if words and is_content_type(words[-1]) else None
        extra = words
    if extra:
        problems.append(("bad_header", "ignored header words: " + " ".join(extra)))
    if recipient == "":
        problems.append(("bad_header", "empty recipient"))
    return recipient or None, content_type
