"""One instruction row in the format of docs/architecture.md, and its ``datasets`` features.

``messages`` is TRL's conversational vision format; the i-th ``{"type": "image"}`` placeholder (in
reading order over all turns) is ``image_ids[i]``; ``meta`` is JSON with the ground truth the
answers were derived from.
"""

from __future__ import annotations

import json
from functools import lru_cache

from chatreid import prompts

COLUMNS = ("messages", "image_ids", "task", "meta")
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: dumps() builds one per call


@lru_cache(maxsize=8192)
def _content(prompt: str) -> tuple[list, int]:
    # Most prompts repeat exactly (same task, same gallery size): split each text once. Rows share
    # the cached list; nothing mutates it.
    return prompts.to_content(prompt), prompts.count_images(prompt)


def features():
    import datasets

    content = datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})
    return datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": content}),
        "image_ids": datasets.List(datasets.Value("string")),
        "task": datasets.Value("string"),
        "meta": datasets.Value("string"),
    })


def make_row(task: str, turns: list[tuple[str, str]], image_ids: list[str], meta: dict) -> dict:
    """A row from (user prompt, assistant answer) turns; prompts carry ``<image>`` markers."""
    messages = []
    n_images = 0
    for prompt, answer in turns:
        content, n = _content(prompt)
        n_images += n
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    if n_images != len(image_ids):
        # A programming error in a builder, never data: fail loudly.
        raise AssertionError(f"{task}: {n_images} image placeholders but {len(image_ids)} ids")
    return {"messages": messages, "image_ids": list(image_ids), "task": task,
            "meta": _ENCODER.encode(meta)}


def turns_of(row: dict) -> list[tuple[str, str]]:
    """The (user text, assistant text) pairs of a row, images as ``<image>`` markers again.

    Raises ValueError on a malformed row (roles out of order, unknown content types).
    """
    from chatreid.prompts import IMAGE

    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs or len(msgs) % 2:
        raise ValueError("messages must be a non-empty list of user/assistant pairs")
    out = []
    for i in range(0, len(msgs), 2):
        user, assistant = msgs[i], msgs[i + 1]
        if user.get("role") != "user" or assistant.get("role") != "assistant":
            raise ValueError(f"message {i}: expected a user turn then an assistant turn")
        parts = []
        for c in user.get("content") or []:
            if c.get("type") == "image":
                parts.append(IMAGE)
            elif c.get("type") == "text" and isinstance(c.get("text"), str):
                parts.append(c["text"])
            else:
                raise ValueError(f"message {i}: bad content item {c!r}")
        answer = assistant.get("content") or []
        if len(answer) != 1 or answer[0].get("type") != "text" or not isinstance(answer[0].get("text"), str):
            raise ValueError(f"message {i + 1}: the assistant answer must be one text item")
        out.append(("".join(parts), answer[0]["text"]))
    return out
