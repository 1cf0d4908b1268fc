"""What the assistant says: help, the answer after a search, and how the model's own
words are checked (``unusable``) and read (``read_attribute_answer``) before they are shown.

Everything a person typed or a file is called is escaped here (``as_text``, ``name_text``) so it
shows as the characters typed, never as Markdown or HTML.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Protocol, Sequence

from chatreid import prompts
from chatreid.chat.intents import KEPT_KEYS, PHRASE_OPENERS, undescribed_words
from chatreid.data.attributes import VOCAB, phrases
from chatreid.tasks import ATTRIBUTE_TASKS, AUTO, IMAGE_TASKS, TASK_NAMES, TASK_NEEDS, TEXT_TASKS

if TYPE_CHECKING:
    from chatreid.retrieval.query import SearchResult


# What an answer reads of the conversation (``chatreid.chat.conversation.Conversation`` is one;
# declared here because the conversation imports this module, never the other way round).
class Named(Protocol):
    name: str


class Asked(Protocol):
    gallery: Sequence[Named]
    query_images: list
    query_names: list[str]
    description: str
    attributes: dict



def task_choices() -> list[tuple[str, str]]:
    """The task preset menu: (what it says, the preset), letting the words decide first."""
    return [("Let the assistant decide from my words", AUTO)] + [
        (name[0].upper() + name[1:], key) for key, name in TASK_NAMES.items()]


HELP_TEXT = (
    "Upload a gallery (several photos, a zip, or a built-in example), then ask in your own words:\n"
    "- attach a photo and ask *find this person*; say *he may have changed clothes* or *this is an "
    "infrared shot* for the other Re-ID settings;\n"
    "- or describe someone: *a woman in a red top with a black backpack*;\n"
    "- then refine: *use #2 as the query*, *he carries a black backpack*, *why do the query and #1 "
    "match?*, *compare #1 and #3*, *describe #2*, *start over*."
)
NEXT_STEPS = (
    "Next: *use #k as the query*, add a sentence (*she carries a backpack*), "
    "*why do the query and #1 match?*, *describe #k*, or *start over*."
)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~$])")


def as_text(text: str) -> str:
    """Text a person typed, made safe to show in a Markdown chat as the very characters typed:
    HTML is escaped (``<img src=x>`` shows as those characters, never as an image) and Markdown
    syntax is backslash-escaped (no links, images, emphasis or maths from a person's words)."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def name_text(name: str) -> str:
    """A file name (or a message that names files) in an answer: HTML escaped and no link or
    image syntax, but otherwise as is (underscores stay, so ``g07_003.jpg`` reads and copies as
    the file's name)."""
    return html.escape(name, quote=False).replace("[", "\\[").replace("]", "\\]")


def describe_attributes(attributes: dict) -> str:
    """The attributes as the short phrases the answer echoes back ("female, a red upper garment")."""
    seen: list[str] = []
    for phrase in phrases(attributes).values():
        if phrase not in seen:
            seen.append(phrase)
    return ", ".join(seen)


def describe_said(description: str, attributes: dict) -> str:
    """What a person said of the query, for an answer: the description quoted, else the
    attributes they chose ("" when nothing was said)."""
    if description:
        return f"“{as_text(description)}”"
    return describe_attributes(attributes)


_KEY_LABELS = {"gender": "gender", "age": "age", "hair": "hair", "sleeve": "sleeves",
               "upper_color": "upper garment colour", "lower_color": "lower garment colour",
               "lower_type": "lower garment", "lower_length": "lower garment length", "hat": "hat",
               "backpack": "backpack", "bag": "bag", "handbag": "handbag"}


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return {"pants": "trousers", "dress": "dress or skirt"}.get(value, str(value))


def attribute_table(first: dict, second: dict, name_a: str, name_b: str) -> str:
    """The two attribute answers side by side (Markdown table), and which agree."""
    rows = [f"| attribute | {name_a} | {name_b} | |", "|---|---|---|---|"]
    agree, differ = [], []
    for key in VOCAB:
        if key not in first and key not in second:
            continue
        va, vb = first.get(key), second.get(key)
        if key in first and key in second:
            same = va == vb
            (agree if same else differ).append(_KEY_LABELS[key])
            mark = "agree" if same else "**differ**"
        else:
            mark = "(one answer only)"
        rows.append(f"| {_KEY_LABELS[key]} | {_value_text(va) if key in first else '—'} | "
                    f"{_value_text(vb) if key in second else '—'} | {mark} |")
    both = len(agree) + len(differ)
    summary = (f"They agree on {len(agree)} of the {both} attributes both answers name"
               + (f" ({', '.join(agree)})" if agree else "")
               + (f"; they differ on {', '.join(differ)}" if differ else "") + "."
               if both else "The two answers name no attribute in common, so they cannot be compared.")
    return ("**The model's attribute answers**, asked of each image on its own:\n\n"
            + "\n".join(rows) + "\n\n" + summary)


def cut_off(text: str) -> bool:
    """Whether a generated sentence stops mid-phrase: no closing punctuation (generation ran out
    of tokens), or a last word that only opens a phrase ("... jacket over.")."""
    t = text.strip().rstrip("\"')”’»]")
    if not t or t[-1] not in ".!?…":
        return True
    words = re.findall(r"[a-z']+", t.lower())
    return bool(words) and words[-1] in PHRASE_OPENERS


def gist(text: str) -> str:
    """A text's words, lower-cased, without punctuation: equal for the same words said twice."""
    return " ".join(re.findall(r"\w+", (text or "").lower()))


def unusable(text: str | None, min_words: int = 1, sentences: bool = False) -> str | None:
    """Why a generated text cannot be shown (empty, repeating itself, too short, or, for
    ``sentences``, cut off mid-sentence), or None."""
    t = (text or "").strip()
    if not t:
        return "it generated no text"
    words = re.findall(r"\w+", t.lower())
    for n in (1, 2, 3):  # the same word or phrase three times in a row
        for i in range(len(words) - 3 * n + 1):
            if words[i:i + n] == words[i + n:i + 2 * n] == words[i + 2 * n:i + 3 * n]:
                return "it repeated itself"
    if len(words) >= 12 and len(set(words)) < 0.35 * len(words):
        return "it repeated itself"
    if len(words) < min_words:
        return "its answer was too short to be a description"
    if sentences and cut_off(t):
        return "it stops mid-sentence, so it was cut off"
    return None


def read_attribute_answer(text: str) -> tuple[dict, str | None]:
    """The attributes of a generated ``attr_predict`` answer, read phrase by phrase (phrases the
    vocabulary does not know, and keys given two values, are left out); ``(attributes, None)``,
    or ``({}, why)`` when nothing usable was said."""
    why = unusable(text)
    if why:
        return {}, why
    body = text.strip()
    head = "The pedestrian attributes of this image are:"
    if body.startswith(head):
        body = body[len(head):]
    out: dict = {}
    conflict: set = set()
    for phrase in body.strip().rstrip(".").split(","):
        try:
            said = prompts.parse_phrases(phrase.strip().rstrip("."))
        except ValueError:
            continue
        for key, value in said.items():
            if key in out and out[key] != value:
                conflict.add(key)
            out[key] = value
    for key in conflict:
        del out[key]
    if not out:
        return {}, "it names no attribute in the model's vocabulary"
    return out, None


def words_used(conv: Asked, task: str) -> list[str]:
    """Lines saying which of the person's words a photo query uses, and why the rest are not."""
    if not conv.query_images or not (conv.description or conv.attributes):
        return []
    if task == "standard":
        return ["(Your words are not used: the *same person* setting compares photos only. Choose "
                "*Let the assistant decide* or *photo plus description* to search with them.)"]
    if task not in KEPT_KEYS:
        return []
    kept = {k: v for k, v in conv.attributes.items() if k in KEPT_KEYS[task]}
    left = {k: v for k, v in conv.attributes.items() if k not in KEPT_KEYS[task]}
    why = ("the person may have changed clothes" if task == "cloth_changing"
           else "an infrared photo shows no colour")
    lines = []
    if kept:
        lines.append(f"**Your words, used with the photo:** {describe_attributes(kept)} (scored "
                     "beside the photo, as in the paper's photo-plus-text retrieval).")
    if left:
        lines.append(f"(Not used, since {why}: {describe_attributes(left)}.)")
    # the setting's own words ("changed clothes", "infrared") are the request, not a description
    extra = undescribed_words(conv.description)
    if extra:
        lines.append("(Words outside the attribute vocabulary are not used in this setting: "
                     f"{as_text(', '.join(dict.fromkeys(extra)))}.)")
    if not kept and not left and not extra:
        return []
    return lines


def explain_invalid(task: str, err: Exception) -> str:
    """Why the query cannot run as ``task``, and what that task needs, in the person's terms."""
    return f"The task '{TASK_NAMES[task]}' needs {TASK_NEEDS[task]}. ({err})"


def name_images(text: str, gallery: Sequence[Named], max_listed: int = 8) -> str:
    """The engine names gallery images by position ("Image 3", 1-based); the chat numbers
    results by rank ("#1"), so positions are rewritten as file names to avoid two numberings."""
    def sub(m):
        k = int(m.group(1))
        return f"{m.group(0)} ({name_text(gallery[k - 1].name)})" if 1 <= k <= len(gallery) else m.group(0)
    refs = list(re.finditer(r"\bImage \d+\b", text))
    if len(refs) > max_listed:  # a long list of matches is in the ranked gallery already
        text = text[:refs[max_listed - 1].end()] + f", … ({len(refs) - max_listed} more)."
    return re.sub(r"\bImage (\d+)\b", sub, text)


def answer_text(conv: Asked, task: str, reason: str, result: SearchResult,
                notes: Sequence[str] = (), show: int = 3, extra: Sequence[str] = ()) -> str:
    """The assistant's answer after a search: what was understood, what was done, what was found."""
    lines = [f"**Task:** {TASK_NAMES[task]} — {reason}."]
    query_bits = []
    if conv.query_images and task in IMAGE_TASKS:
        query_bits.append(f"{len(conv.query_images)} photo{'s' if len(conv.query_images) > 1 else ''}"
                          f" ({', '.join(map(name_text, conv.query_names))})")
    if conv.description and task in TEXT_TASKS:
        query_bits.append(f"“{as_text(conv.description)}”")
    if conv.attributes and task in ATTRIBUTE_TASKS:
        query_bits.append(f"attributes: {describe_attributes(conv.attributes)}")
    if query_bits:
        lines.append("**Query:** " + "; ".join(query_bits) + ".")
    for note in notes:
        lines.append(f"(Ignored: {as_text(note)}.)")
    lines += list(extra)
    n = len(result.ranking)
    lines.append(f"The model scored {result.num_scored} of {n} gallery images"
                 + (" (the pre-filter ranked the rest)." if result.num_scored < n else "."))
    if n:
        top = ", ".join(f"#{k + 1} {name_text(conv.gallery[gi].name)} ({s:.3f})"
                        for k, (gi, s) in enumerate(zip(result.ranking[:show], result.scores[:show])))
        lines.append(f"**Best matches:** {top}.")
    if result.answer and result.answer.strip():
        why = unusable(result.answer)
        if why:
            lines.append(f"**Model:** its answer in words could not be used ({why}); the ranking "
                         "above, from its scores, is what to go by.")
        else:
            lines.append(f"**Model:** {name_images(result.answer.strip(), conv.gallery)}")
    lines.append(NEXT_STEPS)
    return "\n\n".join(lines)
