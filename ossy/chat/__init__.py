"""The chat layer: between HTTP (or the CLI) and the engine; text on one side, token ids on the other.

Owns: request options and their layering over Modelfile PARAMETERs (`options`), building the
prompt (`prompt`), stop strings (`stops`), the structured-output hook (`constraint`), the tools a request offers
(`tools`), running
one assistant turn over any `ossy.engine.protocol.Engine` (`turn`), and resolving model names
from the store (`models`). Does not own: HTTP shapes (`ossy.server`), harmony (`ossy.harmony`),
sampling or scheduling (the engine).
"""

from ossy.chat.options import RequestError, check_options
from ossy.chat.tools import check_tools
from ossy.chat.turn import (
    ChatRequest,
    Result,
    TextChunk,
    ToolCallArgs,
    ToolCallChunk,
    ToolCallStart,
    Turn,
    json_closing,
    run,
)

__all__ = ["ChatRequest", "RequestError", "Result", "TextChunk", "ToolCallArgs", "ToolCallChunk", "ToolCallStart", "Turn", "json_closing", "check_options",
           "check_tools", "run"]
