"""RWKV's chat template (the RWKV-7 G1 template of RWKV-LM), one source for training data and chat.

    System: You are a helpful assistant.

    User: What is RWKV?

    Assistant: An RNN with transformer-level performance.

Turns are "Role: content" (roles System, User, Assistant) separated by "\\n\\n"; inside a turn,
"\\r\\n" becomes "\\n" and any run of blank lines collapses to one "\\n", so "\\n\\n" always means
the end of a turn. A conversation is written as segments that alternate context and response:
the context ends with "Assistant:", the response is " " + the reply + "\\n\\n" (the end of its
turn, which the model must learn to produce), and the last reply ends with the end-of-document
token instead. `generate.py --chat` sends the same context and stops at the same "\\n\\n".

An assistant turn may carry the model's reasoning (a "reasoning" or "reasoning_content" field, or
"<think>...</think>" opening its content). G1 models write it before the answer, as RWKV-LM's
RWKV-v7/RWKV7-G1x-templates.txt shows ("Assistant: <think" asks for it, "Assistant: <think>\\n</think"
is an empty one):

    User: What is 2+2?

    Assistant: <think>
    Two plus two.
    </think>
    4

The reasoning is cleaned like any turn's text, so "\\n\\n" still only ends a turn; an empty reasoning
is written "<think>\\n</think>". With `loss_on_reasoning` False the reasoning joins the context that
precedes the answer, so the segments still alternate context and response.
"""

from __future__ import annotations

import re

ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
END_OF_TURN = "\n\n"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK = " <think"           # RWKV-LM's think mode: the context ends "Assistant: <think" and the model goes on
REASONING_FIELDS = ("reasoning", "reasoning_content")   # ours, and DeepSeek's / OpenAI-style data's name
MESSAGE_SHAPE = '{"role": ..., "content": ...} (an assistant\'s may add "reasoning")'


def clean(content: str) -> str:
    """One turn's text: no surrounding whitespace, Windows line ends as \\n, no blank lines inside."""
    return re.sub(r"\n\s*\n", "\n", content.replace("\r\n", "\n").strip())


def turn(role: str, content: str) -> str:
    return f"{ROLES[role]}: {clean(content)}"


def assistant_prompt(user: str, system: str | None = None) -> str:
    """The context of one exchange, ending where the assistant's reply begins ("...Assistant:")."""
    head = [{"role": "system", "content": system}] if system else []
    return conversation_prompt([*head, {"role": "user", "content": user}])


def split_reasoning(text: str) -> tuple[str | None, str]:
    """A reply's text (as generated after "Assistant:", or an assistant message's content) -> (its reasoning,
    None when it does not open with "<think>", and the answer), both stripped. A reasoning never closed
    (generation cut short) is all reasoning and no answer."""
    text = text.strip()
    if not text.startswith(THINK_OPEN):
        return None, text
    reasoning, _, answer = text[len(THINK_OPEN):].partition(THINK_CLOSE)
    return reasoning.strip(), answer.strip()


def _reasoning_and_answer(message: dict, where: str) -> tuple[str | None, str]:
    """An assistant message's reasoning (None: none given) and answer, from a reasoning field or from
    "<think>...</think>" opening the content; ValueError naming `where` for reasoning given badly."""
    content = message["content"]
    fields = [f for f in REASONING_FIELDS if f in message]
    if len(fields) > 1:
        raise ValueError(f"{where}: both {fields[0]!r} and {fields[1]!r}: give the reasoning once")
    opens = content.lstrip().startswith(THINK_OPEN)
    if opens and THINK_CLOSE not in content:
        raise ValueError(f"{where}: the content opens {THINK_OPEN} and never closes it with {THINK_CLOSE}")
    if not fields:
        return split_reasoning(content) if opens else (None, content)
    reasoning = message[fields[0]]
    if not isinstance(reasoning, str):
        raise ValueError(f"{where}: {fields[0]!r} must be a string, got {type(reasoning).__name__}")
    if opens:
        raise ValueError(f"{where}: the reasoning is given twice, as {fields[0]!r} and as {THINK_OPEN}...{THINK_CLOSE} "
                         f"in the content")
    if THINK_CLOSE in reasoning:
        raise ValueError(f"{where}: {fields[0]!r} holds {THINK_CLOSE}, which would end the reasoning early")
    return reasoning, content


def _checked_message(message, where: str) -> tuple[str, str]:
    """(role, content) of a well-formed message; ValueError naming `where` otherwise."""
    if not isinstance(message, dict) or set(message) - {"role", "content", *REASONING_FIELDS} \
            or "role" not in message or "content" not in message:
        raise ValueError(f"{where} must be {MESSAGE_SHAPE}, got {message!r:.80}")
    role, content = message["role"], message["content"]
    if role not in ROLES:
        raise ValueError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ValueError(f"{where}: content must be a string, got {type(content).__name__}")
    field = next((f for f in REASONING_FIELDS if f in message), None)
    if field and role != "assistant":
        raise ValueError(f"{where}: {field!r} is for assistant messages, not a {role} message")
    return role, content


def assistant_reply(message: dict, where: str = "reply", loss_on_reasoning: bool = True) -> list[tuple[str, bool]]:
    """One assistant reply as the text that follows "Assistant:" ("..." -> " ..."), with its reasoning in
    the G1 template and without an end of turn (the caller adds "\\n\\n" or the end-of-document token):
    [(text, carries_loss), ...], the last one the answer with loss. With `loss_on_reasoning` False a
    reasoning is its own first part, without loss. `message` is {"role": "assistant" (may be left out),
    "content": ..., "reasoning": ...}; ValueError naming `where` otherwise."""
    if isinstance(message, dict):
        message = {"role": "assistant", **message}
        if message["role"] != "assistant":
            raise ValueError(f"{where}: a reply is an assistant message, got role {message['role']!r}")
    _checked_message(message, where)
    reasoning, answer = _reasoning_and_answer(message, where)
    answer = clean(answer)
    if reasoning is None:
        return [(" " + answer, True)]
    reasoning = clean(reasoning)
    thought = f" {THINK_OPEN}\n" + (reasoning + "\n" if reasoning else "") + THINK_CLOSE + ("\n" if answer else "")
    return [(thought + answer, True)] if loss_on_reasoning else [(thought, False), (answer, True)]


def _render(messages: list[dict], where: str, loss_on_reasoning: bool) -> tuple[list[tuple[str, bool]], str]:
    """The conversation's segments so far, and the context after its last reply (not yet answered)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where} must be a non-empty list of {MESSAGE_SHAPE} messages")
    segments: list[tuple[str, bool]] = []
    context = ""
    for i, message in enumerate(messages):
        role, content = _checked_message(message, f"{where}[{i}]")
        if role == "assistant":
            if not context:
                raise ValueError(f"{where}[{i}]: an assistant reply must follow a user or system message")
            context += f"{ROLES['assistant']}:"
            for text, carries_loss in assistant_reply(message, f"{where}[{i}]", loss_on_reasoning):
                if carries_loss:
                    segments += [(context, False), (text, True)]
                    context = ""
                else:                                            # reasoning without loss: more context
                    context += text
        else:
            if role == "system" and (segments or context):
                raise ValueError(f"{where}[{i}]: a system message comes first")
            if segments and not context:                         # the previous reply ends its turn
                segments[-1] = (segments[-1][0] + END_OF_TURN, True)
            context += turn(role, content) + END_OF_TURN
    return segments, context


def conversation_segments(messages: list[dict], where: str = "messages",
                          loss_on_reasoning: bool = True) -> list[tuple[str, bool]]:
    """[{"role": ..., "content": ...}, ...] -> [(text, is_response), ...], alternating context and response
    and starting with context; the loss goes on the responses (with `loss_on_reasoning` False, not on an
    assistant's reasoning: it ends the context before the answer). Raises ValueError naming `where` and the
    message for a bad role, content, reasoning or order (a conversation must contain an assistant reply, and
    a reply must follow a user or system turn)."""
    segments, context = _render(messages, where, loss_on_reasoning)
    if not segments:
        raise ValueError(f"{where} holds no assistant reply: nothing to learn from")
    if context:
        raise ValueError(f"{where} ends with a {messages[-1]['role']} message: end it with the assistant's reply")
    return segments


def conversation_prompt(messages: list[dict], where: str = "messages") -> str:
    """The context that precedes the next assistant reply after `messages` (which end with a user turn;
    earlier assistant turns are history, with their reasoning), ending with "Assistant:" exactly as the
    context segments of conversation_segments do. ValueError naming `where` for a bad conversation."""
    segments, context = _render(messages, where, loss_on_reasoning=True)
    if messages[-1]["role"] != "user":
        raise ValueError(f"{where} ends with a {messages[-1]['role']} message: end it with the user's turn "
                         f"that the reply answers")
    return "".join(text for text, _ in segments) + context + f"{ROLES['assistant']}:"
