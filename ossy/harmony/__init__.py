"""Harmony, gpt-oss's conversation format: rendering prompts and parsing model output.

Owns: the public harmony API. Rendering lives in `render` (with the tool namespaces in
`typescript`), parsing in `parser`, special-token names and stop sets in `tokens`. Does not own:
tokenisation (`ossy.tokenizer`) or sampling.
"""

from ossy.harmony.parser import (
    ContentDelta,
    Done,
    Event,
    MessageFinished,
    ParsedMessage,
    ParseWarning,
    PreambleDelta,
    ReasoningDelta,
    StreamParser,
    TextDelta,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
    parse,
)
from ossy.harmony.render import Message, RenderError, conversation, render, render_conversation
from ossy.harmony.tokens import message_terminator_ids, stop_token_ids

__all__ = [
    "ContentDelta",
    "Done",
    "Event",
    "Message",
    "MessageFinished",
    "ParseWarning",
    "ParsedMessage",
    "PreambleDelta",
    "ReasoningDelta",
    "RenderError",
    "StreamParser",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "conversation",
    "message_terminator_ids",
    "parse",
    "render",
    "render_conversation",
    "stop_token_ids",
]
