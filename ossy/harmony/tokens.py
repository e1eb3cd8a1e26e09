"""Harmony's special tokens by name, and what each terminator means.

Owns: the names of the harmony control tokens and the stop-token sets. Ids are never hard-coded
here: they come from the tokenizer (`tokenizer.token_id(name)`), because a model may use a
different vocabulary (the bundled nano model has its own small BPE with the same names).

What the three terminators mean (for the engine and the parser):
  <|return|>  ends the final answer and the turn: stop sampling (stop reason "stop").
  <|call|>    ends a message addressed to a tool: stop sampling, run the tool, then continue
              the conversation with its result (stop reason "tool_calls").
  <|end|>     ends ONE message, not the turn. The engine must keep sampling: the model goes on
              with <|start|>assistant and its next message (analysis, then final or a call).
              It is no stop token for sampling, only a message boundary for the parser.
So: sample until `stop_token_ids`; split messages at `message_terminator_ids`.
"""

from __future__ import annotations

START = "<|start|>"
END = "<|end|>"  # ends a message; NOT a stop token: the model goes on with <|start|>assistant
MESSAGE = "<|message|>"
CHANNEL = "<|channel|>"
CONSTRAIN = "<|constrain|>"
RETURN = "<|return|>"  # ends the final answer: stop sampling
CALL = "<|call|>"  # ends a tool call: stop sampling, run the tool
ENDOFTEXT = "<|endoftext|>"
STARTOFTEXT = "<|startoftext|>"

CONTROL_TOKENS = (START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL)
ASSISTANT_STOPS = (RETURN, CALL)  # openai-harmony stop_tokens_for_assistant_actions()
ALL_STOPS = (RETURN, END, CALL)  # openai-harmony stop_tokens()


def stop_token_ids(tokenizer) -> set[int]:
    """Ids at which sampling an assistant turn stops: <|return|> and <|call|>."""
    return {tokenizer.token_id(name) for name in ASSISTANT_STOPS}


def message_terminator_ids(tokenizer) -> set[int]:
    """Ids that end one message: the stops plus <|end|> (which must not stop sampling)."""
    return {tokenizer.token_id(name) for name in ALL_STOPS}
