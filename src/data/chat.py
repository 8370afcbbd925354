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
"""

from __future__ import annotations

import re

ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
END_OF_TURN = "\n\n"


def clean(content: str) -> str:
    """One turn's text: no surrounding whitespace, Windows line ends as \\n, no blank lines inside."""
    return re.sub(r"\n\s*\n", "\n", content.replace("\r\n", "\n").strip())


def turn(role: str, content: str) -> str:
    return f"{ROLES[role]}: {clean(content)}"


def assistant_prompt(user: str, system: str | None = None) -> str:
    """The context of one exchange, ending where the assistant's reply begins ("...Assistant:")."""
    head = turn("system", system) + END_OF_TURN if system else ""
    return f"{head}{turn('user', user)}{END_OF_TURN}{ROLES['assistant']}:"


def conversation_segments(messages: list[dict], where: str = "messages") -> list[tuple[str, bool]]:
    """[{"role": ..., "content": ...}, ...] -> [(text, is_response), ...], alternating context and response
    and starting with context; the loss goes on the responses. Raises ValueError naming `where` and the
    message for a bad role, content or order (a conversation must contain an assistant reply, and a
    reply must follow a user or system turn)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where} must be a non-empty list of {{\"role\": ..., \"content\": ...}} messages")
    segments: list[tuple[str, bool]] = []
    context = ""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message \
                or "content" not in message:
            raise ValueError(f"{where}[{i}] must be {{\"role\": ..., \"content\": ...}}, got {message!r:.80}")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"{where}[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{where}[{i}]: content must be a string, got {type(content).__name__}")
        if role == "assistant":
            if not context:
                raise ValueError(f"{where}[{i}]: an assistant reply must follow a user or system message")
            segments.append((context + f"{ROLES['assistant']}:", False))
            segments.append((" " + clean(content), True))
            context = ""
        else:
            if role == "system" and (segments or context):
                raise ValueError(f"{where}[{i}]: a system message comes first")
            if segments and not context:                         # the previous reply ends its turn
                segments[-1] = (segments[-1][0] + END_OF_TURN, True)
            context += turn(role, content) + END_OF_TURN
    if not segments:
        raise ValueError(f"{where} holds no assistant reply: nothing to learn from")
    if context:
        raise ValueError(f"{where} ends with a {messages[-1]['role']} message: end it with the assistant's reply")
    return segments
