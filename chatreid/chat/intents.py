"""Understanding a person's request: which task, which result numbers, which attributes.

The paper's promise (sec. 3.3, Fig. 2 (c)-(g)) is that a non-expert types a request in their own
words. This module reads one message into an ``Intent`` (search, pick, compare, describe, reset,
help), infers the paper's task from the words (``infer_task``) and reads attribute phrases into
``chatreid.data.attributes.VOCAB`` (``attributes_in_request``).

It is deliberately rule-based and transparent (keywords and a small attribute grammar): the VLM
does the Re-ID, and every decision taken here is echoed back in the answer ("I read this as
cloth-changing Re-ID because you said 'changed clothes'"), so a wrong guess is visible and a
preset can override it. Not to be confused with ``chatreid.prompts.parse_attributes``, which reads
the *model's* attribute answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chatreid.data.attributes import VOCAB


# ----------------------------------------------------------------------------------------------
# Attribute phrases -> VOCAB
# ----------------------------------------------------------------------------------------------

# Colour words people use -> the vocabulary's colour names (before checking the key's values).
_COLOUR_WORDS = {
    "black": "black", "dark": "black", "white": "white", "cream": "white", "red": "red",
    "maroon": "red", "crimson": "red", "purple": "purple", "violet": "purple", "lilac": "purple",
    "yellow": "yellow", "gold": "yellow", "golden": "yellow", "gray": "gray", "grey": "gray",
    "silver": "gray", "blue": "blue", "navy": "blue", "denim": "blue", "green": "green",
    "olive": "green", "pink": "pink", "brown": "brown", "beige": "brown", "khaki": "brown",
    "tan": "brown", "orange": "orange",
}
_UPPER_NOUNS = {
    "top", "tops", "shirt", "shirts", "t-shirt", "tshirt", "tee", "blouse", "jacket", "coat",
    "sweater", "jumper", "hoodie", "sweatshirt", "vest", "cardigan", "upper", "polo", "parka",
    "blazer",
}
_LOWER_NOUNS = {
    "pants", "trousers", "jeans", "shorts", "skirt", "skirts", "leggings", "bottoms", "lower",
    "slacks", "dress",
}
_ACCESSORY_NOUNS = {"backpack", "rucksack", "bag", "handbag", "purse", "hat", "cap", "shoes",
                    "sneakers", "boots", "hair"}
_GENDER_WORDS = {
    "woman": "female", "women": "female", "female": "female", "girl": "female", "lady": "female",
    "she": "female", "her": "female", "man": "male", "men": "male", "male": "male", "boy": "male",
    "guy": "male", "gentleman": "male", "he": "male", "him": "male", "his": "male",
}
_AGE_WORDS = {
    "child": "young", "kid": "young", "boy": "young", "girl": "young", "toddler": "young",
    "teen": "teenager", "teenager": "teenager", "teenage": "teenager", "adolescent": "teenager",
    "adult": "adult", "middle-aged": "adult", "old": "old", "elderly": "old", "senior": "old",
    "aged": "old",
}
_ACCESSORIES = {  # word -> VOCAB key
    "backpack": "backpack", "rucksack": "backpack", "knapsack": "backpack",
    "handbag": "handbag", "purse": "handbag", "clutch": "handbag",
    "bag": "bag", "satchel": "bag", "tote": "bag", "shoulder-bag": "bag",
    "hat": "hat", "cap": "hat", "beanie": "hat", "helmet": "hat",
}
_KEY_NAMES = {"upper_color": "an upper-garment colour", "lower_color": "a lower-garment colour"}
_PRONOUNS = {"he", "him", "his", "she", "her"}
_NEGATORS = {"no", "not", "without", "never", "nothing", "isn't", "doesn't", "don't", "n't"}
_WORD_RE = re.compile(r"[a-z]+(?:[-'][a-z]+)*")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def attributes_in_request(text: str) -> tuple[dict, list[str]]:
    """Read attribute phrases of ``text`` into the VOCAB, e.g.

    ``"a woman in a red top with a black backpack"`` ->
    ``{"gender": "female", "upper_color": "red", "backpack": True}``.

    Returns ``(attributes, notes)``; ``notes`` names what was recognised but has no place in the
    vocabulary (e.g. "orange is not an upper-garment colour the model knows"), so the answer can
    say what was ignored instead of silently dropping it.
    """
    w = _words(text)
    out: dict = {}
    notes: list[str] = []

    def negated(i: int) -> bool:
        # "without a backpack", "no hat", "not carrying a bag", "doesn't have a backpack"
        return any(x in _NEGATORS for x in w[max(0, i - 3):i])

    def put(key: str, value, word: str) -> None:
        if value in VOCAB[key]:
            out[key] = value
        else:
            notes.append(f"'{word}' is not {_KEY_NAMES[key]} the model knows "
                         f"(known: {', '.join(str(v) for v in VOCAB[key])})")

    pronoun_gender = None
    for i, word in enumerate(w):
        nxt = w[i + 1:i + 4]
        if word in _GENDER_WORDS and word not in _PRONOUNS:
            out.setdefault("gender", _GENDER_WORDS[word])
        elif word in _PRONOUNS and pronoun_gender is None:
            pronoun_gender = _GENDER_WORDS[word]
        if word in _AGE_WORDS and not (word == "old" and nxt[:1] and nxt[0] in _UPPER_NOUNS | _LOWER_NOUNS):
            # "boy"/"girl" say young; "young man" says nothing about the vocabulary's "young"
            # (a child), so plain "young" is left out on purpose.
            out.setdefault("age", _AGE_WORDS[word])
        if word in _ACCESSORIES:
            out[_ACCESSORIES[word]] = not negated(i)
        _read_shape(w, i, out)
        if word in _COLOUR_WORDS:
            key = _colour_key(w, i, out)
            if key is not None:
                put(key, _COLOUR_WORDS[word], word)
    # A pronoun says the gender only inside a description ("he carries a backpack"); alone
    # ("find him") it is just how people talk about a photo, not an attribute query.
    if pronoun_gender and out and "gender" not in out:
        out["gender"] = pronoun_gender
    return out, notes


def _read_shape(w: list[str], i: int, out: dict) -> None:
    """What the word ``w[i]`` says of hair, sleeves and the lower garment (type and length)."""
    word = w[i]
    if word == "hair":
        prev = w[max(0, i - 3):i]
        if "long" in prev:
            out["hair"] = "long"
        elif "short" in prev:
            out["hair"] = "short"
    if word in ("sleeves", "sleeve", "sleeved"):
        prev = w[max(0, i - 2):i]
        if "short" in prev:
            out["sleeve"] = "short"
        elif "long" in prev:
            out["sleeve"] = "long"
    if word in ("short-sleeved", "t-shirt", "tshirt", "tee"):
        out.setdefault("sleeve", "short")
    if word in ("long-sleeved",):
        out["sleeve"] = "long"
    if word in ("dress", "skirt", "skirts"):
        out["lower_type"] = "dress"
    if word in ("pants", "trousers", "jeans", "leggings", "slacks"):
        out["lower_type"] = "pants"
        out.setdefault("lower_length", "long")
    if word == "shorts":
        out["lower_type"] = "pants"
        out["lower_length"] = "short"
    if word in ("skirt", "dress"):
        size = [x for x in w[max(0, i - 3):i] if x in ("short", "mini", "long", "maxi")]
        if size:
            out["lower_length"] = "short" if size[-1] in ("short", "mini") else "long"


def _colour_key(w: list[str], i: int, out: dict) -> str | None:
    """Which garment the colour word ``w[i]`` is of (``upper_color``, ``lower_color``), or None.

    The colour belongs to the next garment noun within three words ("a red and white top", "black
    skinny jeans"); a colour of an accessory or shoes is not in VOCAB. With no noun after it,
    "dressed in red", "all in black": the upper garment is what people see first.
    """
    for noun in w[i + 1:i + 4]:
        if noun in _UPPER_NOUNS:
            return "upper_color"
        if noun in _LOWER_NOUNS:
            return "lower_color"
        if noun in _ACCESSORY_NOUNS or noun in _ACCESSORIES:
            return None
    if i > 0 and w[i - 1] in ("in", "wearing", "wears") and "upper_color" not in out:
        return "upper_color"
    return None


# ----------------------------------------------------------------------------------------------
# Requests -> intents
# ----------------------------------------------------------------------------------------------

_RESET_RE = re.compile(r"\b(start (over|again|afresh)|reset|new search|clear (it|everything|all)"
                       r"|forget (it|that|everything))\b")
_HELP_RE = re.compile(r"^\s*(help|\?|what can you do\??|how does (this|it) work\??)\s*$")
_COMPARE_RE = re.compile(r"\b(why|explain|compare|comparison|differ|differs|different from|"
                         r"difference|differences|in common|similarities)\b")
_DESCRIBE_RE = re.compile(r"\b(describe|description of|what does .{0,30} look like|tell me about)\b")
_PICK_RE = re.compile(r"\b(use|pick|choose|take|select|search with|search from|continue with|"
                      r"more like|go with|query with)\b")
_PICK_AFFIRM_RE = re.compile(r"(is|that's|thats|looks like) (him|her|them|the (right |same )?"
                             r"(person|one|guy|man|woman)|correct|right|a match)\b")
_ADD_RE = re.compile(r"\b(add|also|too|as well|plus)\b")
_IR_RE = re.compile(r"\b(infra-?red|ir|thermal|night[- ]?vision|night[- ]time camera|"
                    r"night camera|dark camera)\b")
_CC_RE = re.compile(r"\b(chang\w*\s+(his\s+|her\s+|their\s+|the\s+)?(clothes|clothing|outfits?)|"
                    r"(different|other|new|changed)\s+(clothes|clothing|outfits?)|"
                    r"cloth(es)?[- ]chang\w*|dressed differently|regardless of (the )?(clothes|clothing)|"
                    r"long[- ]term|weeks? later|days? later|another day)\b")
_TEXT_TASK_RE = re.compile(r"\b(attributes?)\b")
_NEW_TEXT_QUERY_RE = re.compile(r"^\s*(now\s+)?(find|search( for)?|look(ing)? for|show( me)?|"
                                r"retrieve|who is|is there|are there|i('m| am) looking for)\b")
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
             "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "top": 1, "best": 1}
_INDEX_RE = re.compile(r"(?:#\s*(\d+)|\b(?:number|no\.?|result|image|photo|picture|match|rank|"
                       r"candidate)\s*#?\s*(\d+)|\b(first|second|third|fourth|fifth|sixth|seventh|"
                       r"eighth|ninth|tenth|top|best)\b(?:\s+(?:one|result|match|image|photo|"
                       r"picture|person))?)")
_QUERY_REF_RE = re.compile(r"\b(query|my photo|my image|the photo i|this person|the person i)\b")
# Words that make a request, not a description: removed before deciding "attribute" (the text is
# nothing but attributes) vs "text_to_image" (free description with more than the vocabulary).
_REQUEST_WORDS = set("""
a an the this that these those is are was were be been find search for look looking show me
retrieve who is there any some someone somebody person people pedestrian individual of in on with
and or to please can you could would i i'm am need want help get all who which photo photos image
images picture pictures gallery same wearing wears wear dressed carrying carries carry has have
having holding holds who's one ones like plus also too as well they he she his her him their
them it its find me see spot locate identify match matches which what where whose do does did
my our your first second third last top best other cameras camera shot shots taken same-person
might may maybe probably again here just only now also guy from by at shown appears appear
please thanks thank ok okay try rerun re-run redo run more results
""".split())
# Words that join or open a phrase: they describe nothing, and a finished sentence never ends on
# one ("a woman in a white open jacket over" was cut off; ``answers.unusable`` checks it).
PHRASE_OPENERS = frozenset("""
a an the of in on at to into onto over under above below behind beside between with without
from by for about around through across along near and or but nor because while although though
whereas if than as his her their its my your our this that these those whose which who
""".split())
# Other function words (linking, degree, time): not a description either, so never reported as
# words a setting could not use ("... not used in this setting: but").
_FUNCTION_WORDS = PHRASE_OPENERS | set("""
so yet then also still very quite rather really somewhat slightly fairly too much many more
most less least some any each every both either neither such same other another just only even
again already perhaps maybe probably possibly likely seems seem looks look is are was were be
been being am has have had having do does did will would shall should can could may might must
it its they them he she him her his there here when where while who whom what which that
""".split())
_ATTRIBUTE_WORDS = (set(_COLOUR_WORDS) | _UPPER_NOUNS | _LOWER_NOUNS | set(_GENDER_WORDS)
                    | set(_AGE_WORDS) | set(_ACCESSORIES) | {
                        "hair", "long", "short", "sleeves", "sleeve", "sleeved", "short-sleeved",
                        "long-sleeved", "no", "not", "without", "top", "bottom", "young", "garment",
                        "clothes", "clothing", "colour", "color", "coloured", "colored"})


@dataclass
class Intent:
    """What one message asks for.

    ``action``: ``search`` (run or re-run retrieval), ``pick`` (result(s) become the query),
    ``compare`` (why two people match or differ), ``describe``, ``reset``, ``help``.
    ``indices``: the 1-based result numbers the message names, in order; 0 stands for the query.
    ``task``: the inferred task for ``search`` (None: keep or infer later); ``reason``: why.
    ``text``: the descriptive part of the message; ``attributes``: what it says in VOCAB terms.
    ``refine``: the message adds to the current query rather than starting a new one.
    """

    action: str
    task: str | None = None
    reason: str = ""
    indices: list[int] = field(default_factory=list)
    text: str = ""
    attributes: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    refine: bool = False
    append: bool = False


def _indices(text: str) -> list[int]:
    out: list[int] = []
    for m in _INDEX_RE.finditer(text):
        k = int(m.group(1) or m.group(2)) if (m.group(1) or m.group(2)) else _ORDINALS[m.group(3)]
        out.append(k)
    return out


def description_part(text: str) -> str:
    """The message without its request wording ("please find a man in blue" -> "a man in blue")."""
    t = text.strip()
    t = re.sub(r"^\s*(now\s+|please\s+|can you\s+|could you\s+)*", "", t, flags=re.I)
    t = re.sub(r"^(find|search( for)?|look( for)?|show( me)?|retrieve|i('m| am) looking for|"
               r"is there|are there|who is)\s*[:,]?\s*", "", t, flags=re.I)
    return t.strip()


def _leftover_words(text: str) -> list[str]:
    """Words that are neither request wording nor attribute vocabulary."""
    return [x for x in _words(text) if x not in _REQUEST_WORDS and x not in _ATTRIBUTE_WORDS
            and x not in _FUNCTION_WORDS and not x.isdigit()]


def infer_task(text: str, has_images: bool, attributes: dict | None = None) -> tuple[str, str]:
    """The paper's task a request asks for, and the reason in words (shown to the person).

    Order matters: the explicit setting words (infrared, changed clothes) win; then images vs no
    images decide image Re-ID vs text retrieval; a description next to a photo makes it adaptive.
    """
    low = text.lower()
    attributes = attributes if attributes is not None else attributes_in_request(text)[0]
    if m := _IR_RE.search(low):
        if has_images:
            return "visible_infrared", f"you mentioned '{m.group(0)}'"
    if m := _CC_RE.search(low):
        if has_images:
            return "cloth_changing", f"you said '{m.group(0)}'"
    if has_images:
        # Words that describe the person (not only ask, as in "find him") make it adaptive.
        if attributes or _leftover_words(description_part(text)):
            return "adaptive", "you gave a photo and described the person"
        return "standard", "you gave a photo"
    desc = description_part(text)
    if not desc:
        return "text_to_image", "you gave no photo"
    if _TEXT_TASK_RE.search(low) and attributes:
        return "attribute", "you asked by attributes"
    if attributes and not _leftover_words(desc):
        return "attribute", "your description is a list of attributes"
    return "text_to_image", "you described the person in words"


def interpret(text: str, *, has_new_images: bool = False, has_query: bool = False,
              has_results: bool = False) -> Intent:
    """Map one message to an ``Intent``.

    ``has_new_images``: the message carries photos (they become the query); ``has_query``: a
    query is already set; ``has_results``: a ranking exists that "#k" can refer to.
    """
    text = (text or "").strip()
    low = text.lower()
    if _RESET_RE.search(low):
        return Intent("reset")
    if not has_new_images and (not text or _HELP_RE.match(low)):
        return Intent("help")
    idx = _indices(low)
    # References to results are recognised even before a search, so "use #2" gets "there are no
    # results yet" instead of being read as a description.
    if not has_new_images:
        if _COMPARE_RE.search(low):
            # "why do the query and #1 match?", "compare #1 and #3", "why?" (query vs the best)
            if _QUERY_REF_RE.search(low) or len(idx) < 2:
                idx = [0] + idx[:1] if idx else [0, 1]
            return Intent("compare", indices=idx[:2])
        if _DESCRIBE_RE.search(low) and idx:
            return Intent("describe", indices=idx[:1])
        if idx and (_PICK_RE.search(low) or _PICK_AFFIRM_RE.search(low)):
            return Intent("pick", indices=idx, append=bool(_ADD_RE.search(low)),
                          text=_strip_pick_words(text))
    attrs, notes = attributes_in_request(text)
    desc = description_part(text)
    if not attrs and not _leftover_words(desc):
        desc = ""  # only request wording ("search again", "find him"): nothing to add to the query
    # A message without new photos, while a query exists, adds to it (adaptive refinement), unless
    # it plainly starts a new text search ("find a man in blue") and the query had no photo.
    refine = has_query and not has_new_images
    return Intent("search", text=desc, attributes=attrs, notes=notes, refine=refine)


def _strip_pick_words(text: str) -> str:
    """What remains of "use #2 as the query, she has a backpack" once the pick is removed."""
    parts = re.split(r"[,;.]", text, maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


# What a cloth-changing or infrared query keeps of the person's words: attributes that do not
# depend on the clothes worn (cloth-changing) or on colour (infrared).
KEPT_KEYS = {
    "cloth_changing": ("gender", "age", "hair", "backpack", "bag", "handbag"),
    "visible_infrared": ("gender", "age", "hair", "sleeve", "lower_type", "lower_length", "hat",
                         "backpack", "bag", "handbag"),
}


def undescribed_words(description: str) -> list[str]:
    """The words of a description outside the attribute vocabulary, the setting's own words
    ("changed clothes", "infrared") left out: what a cloth-changing or infrared search cannot use."""
    return _leftover_words(_CC_RE.sub(" ", _IR_RE.sub(" ", description.lower())))


def starts_new_search(text: str) -> bool:
    """The message plainly starts a new search ("find a man in blue"), not a refinement."""
    return bool(_NEW_TEXT_QUERY_RE.match(text.lower()))
