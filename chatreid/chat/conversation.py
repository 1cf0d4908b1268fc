"""The state of a multi-turn Re-ID chat and the understanding of what the person asks.

The paper's promise (sec. 3.3, Fig. 2 (c)-(g)) is that a non-expert types a request in their own
words and refines it turn by turn. This module turns such a request into a ``Query`` for the
engine, keeps what was said before (query photos, descriptive sentences, parsed attributes, the
last ranking), runs the refinement actions, and writes the assistant's answer. It knows nothing of
Gradio: the app renders a ``Reply``; tests drive ``Conversation`` with a fake engine.

The request understanding is deliberately rule-based and transparent (keywords and a small
attribute grammar over ``chatreid.data.attributes.VOCAB``): the VLM does the Re-ID, and every
decision taken here is echoed back in the answer ("I read this as cloth-changing Re-ID because you
said 'changed clothes'"), so a wrong guess is visible and a preset can override it.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from chatreid import prompts
from chatreid.data.attributes import VOCAB, phrases
from chatreid.retrieval.query import TASKS, Query, SearchResult

# What each task is called in answers and in the app's preset menu.
TASK_NAMES = {
    "standard": "same person (standard Re-ID)",
    "cloth_changing": "same person in other clothes (cloth-changing Re-ID)",
    "visible_infrared": "infrared to visible (cross-modality Re-ID)",
    "text_to_image": "text description to image",
    "attribute": "partial attributes to image",
    "adaptive": "photo plus description (adaptive multi-modal retrieval)",
}
AUTO = "auto"

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


class ChatError(ValueError):
    """A request that cannot be answered as asked; its message is shown to the person as is."""


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


def parse_attributes(text: str) -> tuple[dict, list[str]]:
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
        if word in _COLOUR_WORDS:
            colour = _COLOUR_WORDS[word]
            # The colour belongs to the next garment noun within three words ("a red and white
            # top", "black skinny jeans"); a colour of an accessory or shoes is not in VOCAB.
            for noun in nxt:
                if noun in _UPPER_NOUNS:
                    put("upper_color", colour, word)
                    break
                if noun in _LOWER_NOUNS:
                    put("lower_color", colour, word)
                    break
                if noun in _ACCESSORY_NOUNS or noun in _ACCESSORIES:
                    break
            else:
                # "dressed in red", "all in black": the upper garment is what people see first.
                if i > 0 and w[i - 1] in ("in", "wearing", "wears") and "upper_color" not in out:
                    put("upper_color", colour, word)
    # A pronoun says the gender only inside a description ("he carries a backpack"); alone
    # ("find him") it is just how people talk about a photo, not an attribute query.
    if pronoun_gender and out and "gender" not in out:
        out["gender"] = pronoun_gender
    return out, notes


def describe_attributes(attributes: dict) -> str:
    """The attributes as the short phrases the answer echoes back ("female, a red upper garment")."""
    seen: list[str] = []
    for phrase in phrases(attributes).values():
        if phrase not in seen:
            seen.append(phrase)
    return ", ".join(seen)


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
            and not x.isdigit()]


def infer_task(text: str, has_images: bool, attributes: dict | None = None) -> tuple[str, str]:
    """The paper's task a request asks for, and the reason in words (shown to the person).

    Order matters: the explicit setting words (infrared, changed clothes) win; then images vs no
    images decide image Re-ID vs text retrieval; a description next to a photo makes it adaptive.
    """
    low = text.lower()
    attributes = attributes if attributes is not None else parse_attributes(text)[0]
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
    attrs, notes = parse_attributes(text)
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


# ----------------------------------------------------------------------------------------------
# The conversation
# ----------------------------------------------------------------------------------------------

@dataclass
class GalleryItem:
    """One gallery image: a display name (file name), the RGB image, and its file if it has one
    (a UI can show the file instead of re-encoding the image)."""

    name: str
    image: object  # PIL.Image.Image
    path: str | None = None
    _digest: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def digest(self) -> bytes:
        """A hash of the decoded pixels: equal for exact duplicates (the same photo uploaded
        twice, or a result used as the query)."""
        if self._digest is None:
            self._digest = image_digest(self.image)
        return self._digest


def image_digest(image) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.digest()


@dataclass
class Reply:
    """What the assistant says for one turn, and the ranking to show (None: keep the last one).

    ``ranked``: ``[(gallery index, score)]`` best first; ``ok`` False for refusals and errors.
    """

    text: str
    ranked: list[tuple[int, float]] | None = None
    ok: bool = True
    task: str | None = None


@dataclass
class Conversation:
    """One person's chat: the gallery, the current query, and the last ranking.

    ``respond`` is the only entry point a UI needs; it never raises for a person's mistake (it
    answers with what to do instead), so one bad message never ends the session.
    """

    gallery: list[GalleryItem] = field(default_factory=list)
    query_images: list = field(default_factory=list)
    query_names: list[str] = field(default_factory=list)
    description: str = ""
    attributes: dict = field(default_factory=dict)
    task: str | None = None
    last: SearchResult | None = None
    turns: int = 0
    # The gallery's pre-filter features, kept with the gallery (one session's searches never
    # recompute them, whatever other sessions search in between); None until computed.
    gallery_features: object = None
    # The VLM's encodings of the gallery images it has scored (gallery index -> EncodedImage),
    # filled by the engine's searches and kept with the gallery likewise: a later search of this
    # session encodes only images it has not seen. A new gallery starts a new dict.
    gallery_encodings: dict = field(default_factory=dict)
    # The accumulated description is bounded, so one turn's cost is bounded whatever was said
    # earlier (the app also caps each message before it gets here).
    max_description_chars: int = 2000

    # -- state changes ------------------------------------------------------------------------
    def set_gallery(self, items: Sequence[GalleryItem]) -> None:
        """A new gallery: the old ranking no longer refers to anything; the query is kept."""
        self.gallery = list(items)
        self.last = None
        self.gallery_features = None
        self.gallery_encodings = {}  # a new dict: a search still running fills the old one

    def prepare(self, engine) -> None:
        """Compute the gallery's pre-filter features now (the app does it on upload, outside the
        model queue), if the engine has a pre-filter and they are not computed yet."""
        compute = getattr(engine, "prefilter_features", None)
        if self.gallery and self.gallery_features is None and compute is not None:
            self.gallery_features = compute([g.image for g in self.gallery])

    def reset(self) -> None:
        """Start over: forget the query and the ranking, keep the gallery."""
        self.query_images, self.query_names = [], []
        self.description, self.attributes, self.task, self.last = "", {}, None, None

    @property
    def has_query(self) -> bool:
        return bool(self.query_images or self.description or self.attributes)

    def result_index(self, k: int) -> int:
        """Gallery index of result #k (1-based) of the last ranking; ChatError if there is none."""
        if self.last is None:
            raise ChatError("There are no results yet to refer to; ask a search first.")
        if not 1 <= k <= len(self.last.ranking):
            raise ChatError(f"There is no result #{k}; the ranking has results #1 to "
                            f"#{len(self.last.ranking)}.")
        return self.last.ranking[k - 1]

    def build_query(self, task: str) -> Query:
        """The engine query for ``task`` from the current state."""
        q = Query(images=list(self.query_images), task=task,
                  text=self.description or None,
                  attributes=dict(self.attributes) or None)
        if task == "standard":
            q.text, q.attributes = None, None  # the paper's image prompt takes no words
        if task in _KEPT_KEYS:
            # Another outfit (or an infrared camera) makes clothing colours meaningless, but what
            # survives it is scored beside the photo, as the paper's adaptive retrieval combines a
            # photo with text; what is left out is named in the answer (``words_used``).
            kept = {k: v for k, v in self.attributes.items() if k in _KEPT_KEYS[task]}
            q.text, q.attributes = None, kept or None
        if task == "text_to_image":
            q.images = []
            if not q.text and self.attributes:
                q.text = _attributes_sentence(self.attributes)
        if task == "attribute":
            q.images = []
        return q

    # -- the turn -----------------------------------------------------------------------------
    def respond(self, text: str, engine, *, images: Sequence = (), image_names: Sequence[str] = (),
                task: str = AUTO, progress: Callable[[int, int], None] | None = None,
                top_k: int | None = None, strategy: str = "pairwise") -> Reply:
        """Answer one message. ``images``: photos attached to it (the new query);
        ``task``: a preset from ``TASKS`` or ``"auto"`` (infer from the words)."""
        self.turns += 1
        saved = self._snapshot()
        try:
            reply = self._respond(text or "", engine, list(images), list(image_names), task,
                                  progress, top_k, strategy)
        except ChatError as err:
            self._restore(saved)  # a refused message never becomes part of the query
            return Reply(str(err), ok=False)
        except BaseException:
            self._restore(saved)  # nor does one whose search failed (the caller reports it)
            raise
        return reply

    def _snapshot(self) -> dict:
        return {"query_images": list(self.query_images), "query_names": list(self.query_names),
                "description": self.description, "attributes": dict(self.attributes),
                "task": self.task, "last": self.last}

    def _restore(self, saved: dict) -> None:
        for key, value in saved.items():
            setattr(self, key, value)

    def _respond(self, text, engine, images, names, task, progress, top_k, strategy) -> Reply:
        if task != AUTO and task not in TASKS:
            raise ChatError(f"Unknown task preset {task!r}; choose one of: auto, {', '.join(TASKS)}.")
        intent = interpret(text, has_new_images=bool(images), has_query=self.has_query,
                           has_results=self.last is not None)
        if intent.action == "reset":
            self.reset()
            return Reply("Starting over: the query is cleared (the gallery is kept). "
                         + HELP_TEXT, ranked=[])
        if intent.action == "help":
            if self.has_query and task != AUTO:
                # A preset chosen without a message: re-run the current query under it.
                intent = Intent("search", refine=True)
            else:
                return Reply(HELP_TEXT)
        if intent.action == "compare":
            return self._compare(engine, intent.indices)
        if intent.action == "describe":
            return self._describe(engine, intent.indices[0])
        if intent.action == "pick":
            picked = [self.result_index(k) for k in intent.indices]
            imgs = [self.gallery[i].image for i in picked]
            nms = [self.gallery[i].name for i in picked]
            if intent.append:
                self.query_images += imgs
                self.query_names += nms
            else:
                self.query_images, self.query_names = imgs, nms
            lead = (f"Using result{'s' if len(picked) > 1 else ''} "
                    f"{', '.join('#%d' % k for k in intent.indices)} ({', '.join(map(name_text, nms))}) "
                    f"{'added to' if intent.append else 'as'} the query. ")
            extra = interpret(intent.text, has_query=True) if intent.text else Intent("search")
            return self._search(engine, extra, task, progress, top_k, strategy, lead=lead,
                                picked=True)
        # search
        if images:
            self.query_images, self.query_names = list(images), list(names) or [
                f"photo {i + 1}" for i in range(len(images))]
            # New photos start a new query; words in the same message describe it.
            self.description, self.attributes, self.task = "", {}, None
        elif not intent.refine or (not self.query_images and _NEW_TEXT_QUERY_RE.match(text.lower())):
            # A fresh text search replaces an earlier text-only query.
            self.description, self.attributes, self.task = "", {}, None
            self.query_images, self.query_names = [], []
        return self._search(engine, intent, task, progress, top_k, strategy)

    def _search(self, engine, intent: Intent, preset, progress, top_k, strategy, lead: str = "",
                picked: bool = False) -> Reply:
        if not self.gallery:
            raise ChatError("There is no gallery yet. Upload gallery photos (or a zip), or pick a "
                            "built-in example gallery, then ask again.")
        if intent.text:
            description = (self.description + " " + intent.text).strip() if self.description \
                else intent.text
            if len(description) > self.max_description_chars:
                raise ChatError(f"With this sentence the description would be {len(description):,} "
                                f"characters, over the limit of {self.max_description_chars:,}; it "
                                "was not added. Say *start over* to begin a new description.")
            self.description = description
        self.attributes.update(intent.attributes)
        if not self.has_query:
            raise ChatError("I need a query: attach a photo of the person, or describe them "
                            "(e.g. *a woman in a red top with a black backpack*).")
        if preset != AUTO:
            task, reason = preset, "you chose it"
        else:
            task, reason = infer_task(self.description, bool(self.query_images), self.attributes)
            if picked and task == "text_to_image":
                task = "standard"
            # A refinement keeps a setting the person named earlier (infrared, other clothes),
            # unless the words this turn name another.
            if (self.task in ("cloth_changing", "visible_infrared") and task in ("standard", "adaptive")
                    and self.query_images):
                task, reason = self.task, "you asked for it earlier in this chat"
        query = self.build_query(task)
        try:
            query.validate()
        except ValueError as err:
            raise ChatError(_explain_invalid(task, err)) from None
        if task == "attribute" and not self.attributes:
            raise ChatError("I could not find any attribute I know in that. Known: "
                            + "; ".join(f"{k} ({', '.join(map(str, v))})" for k, v in VOCAB.items()))
        try:
            # top_k cuts the pre-filter's ranking, which only image queries have.
            extra = {}
            if query.images:
                self.prepare(engine)
                if self.gallery_features is not None:
                    extra["gallery_features"] = self.gallery_features
            if getattr(engine, "encoding_bytes", None) is not None:  # the engine keeps them for us
                extra["gallery_encodings"] = self.gallery_encodings
            result = engine.search(query, [g.image for g in self.gallery], strategy=strategy,
                                   top_k=top_k if query.images else None, progress=progress,
                                   **extra)
        except ValueError as err:  # the engine refused this query: say why, keep the session
            raise ChatError(f"The engine could not run this search: {err}") from None
        result, dupes = self._without_query_duplicates(result, query)
        self.task, self.last = task, result
        ranked = list(zip(result.ranking, result.scores))
        extra = words_used(self, task)
        if dupes:
            extra.append(f"(Left out of the ranking: {', '.join(map(name_text, dupes))}, an exact "
                         f"duplicate of the query photo{'s' if len(query.images) > 1 else ''}; an "
                         "image is never its own match.)")
        return Reply(lead + answer_text(self, task, reason, result, intent.notes, extra=extra),
                     ranked=ranked, task=task)

    def _without_query_duplicates(self, result: SearchResult, query: Query):
        """The result without gallery images whose pixels equal a query photo's, and their names."""
        if not query.images:
            return result, []
        digests = {image_digest(im) for im in query.images}
        drop = {gi for gi in result.ranking if self.gallery[gi].digest in digests}
        if not drop:
            return result, []
        keep = [k for k, gi in enumerate(result.ranking) if gi not in drop]
        scored = sum(1 for k in keep if k < result.num_scored)
        answer = result.answer or ""
        for gi in drop:  # the engine's answer names it among the matches: no longer
            answer = re.sub(rf"\bImage {gi + 1}\b(, )?", "", answer)
        answer = re.sub(r"(, | and )?\.$", ".", answer.strip()).replace(": .", ": none.")
        return SearchResult([result.ranking[k] for k in keep], [result.scores[k] for k in keep],
                            scored, answer, result.prefilter_scores), \
            [self.gallery[gi].name for gi in result.ranking if gi in drop]

    def _compare(self, engine, indices: list[int]) -> Reply:
        """Why two people match or differ, in the model's own attribute answers, side by side."""
        if self.last is None:
            raise ChatError("There are no results yet to refer to; ask a search first.")

        def pick(k: int):
            if k == 0:
                if not self.query_images:
                    raise ChatError("The query has no photo to compare; name two results instead, "
                                    "e.g. *compare #1 and #2*.")
                return self.query_images[0], "the query", f"the query ({name_text(self.query_names[0])})"
            gi = self.result_index(k)
            return self.gallery[gi].image, f"#{k}", f"#{k} ({name_text(self.gallery[gi].name)})"

        (a, short_a, name_a), (b, short_b, name_b) = pick(indices[0]), pick(indices[1])
        lines = [f"Comparing {name_a} with {name_b}."]
        lines += [self._standing(k) for k in indices if k != 0]
        (attrs_a, why_a), (attrs_b, why_b) = (read_attribute_answer(_attribute_answer(engine, a)),
                                              read_attribute_answer(_attribute_answer(engine, b)))
        if why_a or why_b:
            bad = [f"for {n} ({w})" for n, w in ((short_a, why_a), (short_b, why_b)) if w]
            lines.append("The model's attribute answer could not be used " + " and ".join(bad)
                         + ", so there is no side-by-side view of its attributes. What can be "
                         "trusted is the ranking and the scores above.")
        else:
            lines.append(attribute_table(attrs_a, attrs_b, short_a, short_b))
        said = engine.compare(a, b)
        try:
            common, only_a, only_b = prompts.parse_attr_compare(said)
        except ValueError:
            why = unusable(said) or "it is not in the comparison format the model was trained on"
            lines.append(f"The model's direct comparison of the two images could not be read "
                         f"({why}); it is not shown.")
        else:
            lines.append(f"**The model's direct comparison:** in common: "
                         f"{describe_attributes(common) or 'nothing'}; only {short_a}: "
                         f"{describe_attributes(only_a) or 'nothing'}; only {short_b}: "
                         f"{describe_attributes(only_b) or 'nothing'}.")
        return Reply("\n\n".join(lines))

    def _standing(self, k: int) -> str:
        """What the search said of result #k: its score, and the pre-filter's view of it."""
        gi, n = self.last.ranking[k - 1], len(self.last.ranking)
        line = (f"The search gave #{k} a score of {self.last.scores[k - 1]:.3f} "
                f"({'scored by the model' if k <= self.last.num_scored else 'pre-filter only'})")
        pre = self.last.prefilter_scores
        if self.query_images and pre and any(pre):
            rank = 1 + sum(1 for s in pre if s > pre[gi])
            line += f"; the pre-filter's similarity to the query is {pre[gi]:.3f} (rank {rank} of {n})"
        return line + "."

    def _describe(self, engine, k: int) -> Reply:
        gi = self.result_index(k)
        item = self.gallery[gi]
        lines = [f"Result #{k} ({name_text(item.name)}):"]
        said = engine.describe(item.image)
        why = unusable(said, min_words=3)
        if why:
            lines.append(f"The model's description could not be used ({why}); it is not shown.")
        else:
            lines.append(f"**The model's description:** {as_text(said.strip())}")
        attrs, why_attrs = read_attribute_answer(_attribute_answer(engine, item.image))
        if attrs:
            lines.append(f"**The model's attribute answer:** {describe_attributes(attrs)}.")
        else:
            lines.append(f"The model's attribute answer could not be used ({why_attrs}).")
        lines.append(self._standing(k))
        return Reply("\n\n".join(lines))


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


def _attribute_answer(engine, image) -> str:
    predict = getattr(engine, "predict_attributes", None)
    return predict(image) if predict is not None else ""


def unusable(text: str | None, min_words: int = 1) -> str | None:
    """Why a generated text cannot be shown (empty, repeating itself, too short), or None."""
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


# What a cloth-changing or infrared query keeps of the person's words: attributes that do not
# depend on the clothes worn (cloth-changing) or on colour (infrared).
_KEPT_KEYS = {
    "cloth_changing": ("gender", "age", "hair", "backpack", "bag", "handbag"),
    "visible_infrared": ("gender", "age", "hair", "sleeve", "lower_type", "lower_length", "hat",
                         "backpack", "bag", "handbag"),
}


def words_used(conv: "Conversation", task: str) -> list[str]:
    """Lines saying which of the person's words a photo query uses, and why the rest are not."""
    if not conv.query_images or not (conv.description or conv.attributes):
        return []
    if task == "standard":
        return ["(Your words are not used: the *same person* setting compares photos only. Choose "
                "*Let the assistant decide* or *photo plus description* to search with them.)"]
    if task not in _KEPT_KEYS:
        return []
    kept = {k: v for k, v in conv.attributes.items() if k in _KEPT_KEYS[task]}
    left = {k: v for k, v in conv.attributes.items() if k not in _KEPT_KEYS[task]}
    why = ("the person may have changed clothes" if task == "cloth_changing"
           else "an infrared photo shows no colour")
    lines = []
    if kept:
        lines.append(f"**Your words, used with the photo:** {describe_attributes(kept)} (scored "
                     "beside the photo, as in the paper's photo-plus-text retrieval).")
    if left:
        lines.append(f"(Not used, since {why}: {describe_attributes(left)}.)")
    # the setting's own words ("changed clothes", "infrared") are the request, not a description
    extra = _leftover_words(_CC_RE.sub(" ", _IR_RE.sub(" ", conv.description.lower())))
    if extra:
        lines.append("(Words outside the attribute vocabulary are not used in this setting: "
                     f"{as_text(', '.join(dict.fromkeys(extra)))}.)")
    if not kept and not left and not extra:
        return []
    return lines


def _attributes_sentence(attributes: dict) -> str:
    from chatreid.data.attributes import to_text
    return to_text(attributes)


def _explain_invalid(task: str, err: Exception) -> str:
    needs = {
        "standard": "a photo of the person (attach one to your message)",
        "cloth_changing": "a photo of the person (attach one to your message)",
        "visible_infrared": "an infrared photo of the person (attach one to your message)",
        "text_to_image": "a description in words",
        "attribute": "attributes such as *a woman in a red top with a backpack*",
        "adaptive": "a photo, a description, or both",
    }[task]
    return f"The task '{TASK_NAMES[task]}' needs {needs}. ({err})"


def name_images(text: str, gallery: Sequence[GalleryItem], max_listed: int = 8) -> str:
    """The engine names gallery images by position ("Image 3", 1-based); the chat numbers
    results by rank ("#1"), so positions are rewritten as file names to avoid two numberings."""
    def sub(m):
        k = int(m.group(1))
        return f"{m.group(0)} ({name_text(gallery[k - 1].name)})" if 1 <= k <= len(gallery) else m.group(0)
    refs = list(re.finditer(r"\bImage \d+\b", text))
    if len(refs) > max_listed:  # a long list of matches is in the ranked gallery already
        text = text[:refs[max_listed - 1].end()] + f", … ({len(refs) - max_listed} more)."
    return re.sub(r"\bImage (\d+)\b", sub, text)


def answer_text(conv: Conversation, task: str, reason: str, result: SearchResult,
                notes: Sequence[str] = (), show: int = 3, extra: Sequence[str] = ()) -> str:
    """The assistant's answer after a search: what was understood, what was done, what was found."""
    lines = [f"**Task:** {TASK_NAMES[task]} — {reason}."]
    query_bits = []
    if conv.query_images and task not in ("text_to_image", "attribute"):
        query_bits.append(f"{len(conv.query_images)} photo{'s' if len(conv.query_images) > 1 else ''}"
                          f" ({', '.join(map(name_text, conv.query_names))})")
    if conv.description and task in ("text_to_image", "adaptive"):
        query_bits.append(f"“{as_text(conv.description)}”")
    if conv.attributes and task in ("attribute", "adaptive", "text_to_image"):
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
