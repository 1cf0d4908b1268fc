"""Every prompt of the ChatReID paper, verbatim, in one place; their paraphrases; the answer
formats and the parsers that read answers back.

Three kinds of text live here:

* ``PAPER``: the paper's own words, exactly as printed (quotes of sections 3.1.1 and 3.1.3, and
  Figure 4 as the extracted text shows it, garbled parts included). Nothing renders these; they
  are the reference the templates are checked against (tests/test_prompts.py).
* ``TEMPLATES``: what the instruction engine, the retrieval engine and the app actually send. Each
  verbatim template is the paper's text with its slots filled the same way everywhere: an image
  is the marker ``<image>`` (``to_content`` turns each into TRL's ``{"type": "image"}``), a gallery
  is ``{gallery}`` (``gallery_block``: "Image 1: <image>" lines), other slots are ``{name}``.
  Figure 4's garbled or missing words are reconstructed; the comment above each such template
  lists exactly which words are ours. Templates the paper describes but never prints (the stage 3
  attribute-based and multi-modal objectives, the best-choice follow-up) are marked
  "project text".
* ``PARAPHRASES``: alternative wordings beside each template, with the same slots and the same
  number of images, sampled by ``render(..., paraphrase_prob=p)``.

Instruction task names (the ``task`` column of instruction rows) are in ``INSTRUCTION_TASKS``;
prompts that are not a task of their own (follow-up turns) are only in ``TEMPLATES``. The
retrieval tasks a query asks for (``standard``, ``text_to_image``, ...) are ``chatreid.tasks``'.

Answer formats: Yes/No; gallery images named "Image k" (1-based, as ``gallery_block`` labels
them); captions named by ordinal ("The second caption"); the attribute comparison
"Common Attributes: ... / Unique Attributes of the First Image: ... / Unique Attributes of the
Second Image: ..."; attribute lists as comma-separated phrases of ``chatreid.data.attributes``.
Every ``answer_*`` function has a ``parse_*`` inverse; parsers raise ``ValueError`` on text they
cannot read (never guess).
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from chatreid.data.attributes import VOCAB, phrases

IMAGE = "<image>"

# --------------------------------------------------------------------------------------------
# The paper's words, as printed.
# --------------------------------------------------------------------------------------------
PAPER: dict[str, str] = {
    # Section 3.1.1.
    "caption": (
        "In the {person image} provided, can you give a detailed description of the pedestrian, "
        "including their gender, age range, hair, type and color of clothing, footwear type and "
        "color, posture or gait, any patterns or accessories, and any distinguishing features?"
    ),
    # Section 3.1.3.
    "reid_standard": (
        "Given the {person image} provided, identify which of the following images show the same "
        "pedestrian as in the first image."
    ),
    "reid_cc": (
        "Given the {person image} provided, select which of the {gallery} shows the same person, "
        "who may be wearing different clothing."
    ),
    "reid_vi": (
        "Using the given {person image}, choose the corresponding {gallery} that matches the same "
        "pedestrian, considering both infrared and visible light images for reidentification."
    ),
    "reid_t2i": (
        "Select the {person image} that best matches the following description of the "
        "pedestrian's appearance: {text}"
    ),
    # Figure 4 (input prompt | response), as the extracted text prints them.
    "i2i_one_to_one": "Do these two images < > contain the same pedestrian identity?",
    "i2i_one_to_one/response": "Yes/No",
    "i2i_many_to_many": (
        "Given the query image < of a pedestrian and a gallery set < 0.000 Constraints of the "
        "pedestrian in the query image."
    ),
    "i2i_many_to_many/response": (
        "These two images < [] []> match the identity of the pedestrian in the query image."
    ),
    "t2i_one_to_one": 'Does the image $<$ $>$ of the pedestrian match the following caption: ""',
    "t2i_one_to_one/response": "Yes/No",
    "t2i_many_to_one": (
        'Given the following image < ]>, which of the captions accurately describes it? The first '
        'caption: " ". The second caption: " ". The third "'
    ),
    "t2i_many_to_one/response": "The second caption",
    "t2i_one_to_many": (
        "Select the image that best matches the following description of the pedestrian's "
        'appearance: ""'
    ),
    "t2i_one_to_many/response": "This image <[]> matches the following description.",
    "attr_compare": "",  # the figure's prompt cell is empty
    "attr_compare/response": (
        "Common Attributes: Unique Attributesof the First Image: Unique Attributes of the Second "
        "Image:"
    ),
    "attr_predict": (
        "Examine the image < > below and select the correct attribute annotations for the "
        "pedestrian."
    ),
    "attr_predict/response": "The pedestrian attributes of this image are:",
}

# --------------------------------------------------------------------------------------------
# Templates actually rendered.
# --------------------------------------------------------------------------------------------
# "{person image}" (the paper's slot) becomes "person image <image>" where the slot is the query
# image, and "person image" where it names the gallery (reid_t2i); "{gallery}" in the running
# text becomes "gallery images" and the gallery itself follows the sentence as {gallery}.
TEMPLATES: dict[str, str] = {
    # Stage 1.
    "caption": (
        "In the person image <image> provided, can you give a detailed description of the "
        "pedestrian, including their gender, age range, hair, type and color of clothing, "
        "footwear type and color, posture or gait, any patterns or accessories, and any "
        "distinguishing features?"
    ),
    # Stage 2 (Figure 4). Verbatim apart from the image markers.
    "i2i_one_to_one": "Do these two images <image><image> contain the same pedestrian identity?",
    # Reconstructed words: "{gallery}, identify all the images in the gallery set that match the
    # identity" (the figure prints "< 0.000 Constraints" there); the rest is printed.
    "i2i_many_to_many": (
        "Given the query image <image> of a pedestrian and a gallery set {gallery}, identify all "
        "the images in the gallery set that match the identity of the pedestrian in the query "
        "image."
    ),
    # Reconstructed: nothing but the caption filled into the printed empty quotes.
    "t2i_one_to_one": (
        'Does the image <image> of the pedestrian match the following caption: "{caption}"'
    ),
    # Reconstructed words: "caption:" after "The third" and the closing '".'; more than three
    # captions continue the printed pattern ("The fourth caption: ..."), see caption_options().
    "t2i_many_to_one": (
        "Given the following image <image>, which of the captions accurately describes it? "
        "{options}"
    ),
    # Reconstructed: the gallery ({gallery}) after the description; the figure shows no images.
    "t2i_one_to_many": (
        "Select the image that best matches the following description of the pedestrian's "
        'appearance: "{caption}"\n{gallery}'
    ),
    # Reconstructed entirely (the figure's prompt cell is empty): written from section 3.1.2,
    # "explaining the similarities and distinctions in attributes of two pedestrians", and the
    # task's name in the figure.
    "attr_compare": (
        "Compare the attributes of the pedestrians in these two images <image><image>. List "
        "their common attributes and the unique attributes of each image."
    ),
    "attr_predict": (
        "Examine the image <image> below and select the correct attribute annotations for the "
        "pedestrian."
    ),
    # Stage 3 (section 3.1.3). Verbatim apart from the slots described above.
    "reid_standard": (
        "Given the person image <image> provided, identify which of the following images show the "
        "same pedestrian as in the first image.\n{gallery}"
    ),
    "reid_cc": (
        "Given the person image <image> provided, select which of the gallery images shows the "
        "same person, who may be wearing different clothing.\n{gallery}"
    ),
    "reid_vi": (
        "Using the given person image <image>, choose the corresponding gallery images that "
        "matches the same pedestrian, considering both infrared and visible light images for "
        "reidentification.\n{gallery}"
    ),
    # The paper prints an unmatched closing quote after {text}; the description is quoted here.
    "reid_t2i": (
        "Select the person image that best matches the following description of the "
        'pedestrian\'s appearance: "{text}"\n{gallery}'
    ),
    # Project text: section 3.3 describes the attribute-based objective ("Given a gallery set and
    # a query with accurate pedestrian attribute descriptions, the model identifies the gallery
    # image that best matches the query information") but prints no prompt.
    "attr_retrieval": (
        "Identify the pedestrian in the gallery who matches the following attributes: "
        "{attributes}.\n{gallery}"
    ),
    # Project text: the adaptive multi-modal objective (section 3.3): an image query with added
    # text, for clothing changes or long-term recognition.
    "multimodal_retrieval": (
        "Given the person image <image> provided and this additional description of the "
        'pedestrian: "{text}", identify which of the following images show the same pedestrian.'
        "\n{gallery}"
    ),
    # Project text: a later turn of a multi-modal conversation, where an earlier match becomes
    # the next query ("the user can use that match as a new query to refine further results").
    "multimodal_followup": (
        "Image {index} is the person I am looking for. Using it as the new query, which of the "
        "remaining images show the same pedestrian?"
    ),
    # Project text: the multi-turn best-choice format of section 3.3 ("at each step, the model
    # selects the most similar image"). The first turn is a Re-ID prompt above; each later turn
    # asks this, and the answer names one image, or "None" once no remaining image matches.
    "best_choice_next": (
        'Which of the remaining images is the best match? Answer "None" if no remaining image '
        "shows the same pedestrian."
    ),
}

# Same slots, same number of images as the template beside which they stand.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "caption": (
        "Describe the pedestrian in this person image <image> in detail: gender, age range, hair, "
        "the type and color of each piece of clothing, footwear, posture or gait, patterns, "
        "accessories and anything distinctive.",
        "Look at the person image <image>. Give a detailed description of the pedestrian, "
        "covering gender, approximate age, hair, clothing type and color, shoes, posture, any "
        "accessories or patterns, and distinguishing features.",
    ),
    "i2i_one_to_one": (
        "Are the pedestrians in these two images <image><image> the same person?",
        "Image A <image> and image B <image>: do they show the same pedestrian identity?",
    ),
    "i2i_many_to_many": (
        "Here is a query image <image> of a pedestrian and a gallery {gallery}. Find every "
        "gallery image that shows the same person as the query.",
        "Query pedestrian: <image>. Gallery: {gallery}. Which gallery images share the query "
        "pedestrian's identity?",
    ),
    "t2i_one_to_one": (
        'Is the pedestrian in the image <image> described by this caption: "{caption}"?',
        'Caption: "{caption}". Does it match the pedestrian in the image <image>?',
    ),
    "t2i_many_to_one": (
        "Which caption describes the pedestrian in this image <image> correctly? {options}",
        "Read the captions below and pick the one that fits the image <image>. {options}",
    ),
    "t2i_one_to_many": (
        'Which image matches this description of the pedestrian: "{caption}"?\n{gallery}',
        'Find the pedestrian described as follows: "{caption}"\n{gallery}',
    ),
    "attr_compare": (
        "What attributes do the pedestrians in these two images <image><image> share, and which "
        "attributes are unique to each?",
    ),
    "attr_predict": (
        "List the attribute annotations of the pedestrian in this image <image>.",
        "Annotate the pedestrian attributes (gender, age, hair, clothing, accessories) of the "
        "image <image>.",
    ),
    "reid_standard": (
        "The first image <image> shows a pedestrian. Which of the following images show the same "
        "pedestrian?\n{gallery}",
        "Query: <image>. Identify the gallery images of the same person.\n{gallery}",
    ),
    "reid_cc": (
        "Find the person in the image <image> among the gallery images below; they may have "
        "changed clothes.\n{gallery}",
    ),
    "reid_vi": (
        "The query <image> and the gallery images may be infrared or visible-light shots. Which "
        "gallery images show the same pedestrian?\n{gallery}",
    ),
    "reid_t2i": (
        'Which person image fits this description of the pedestrian: "{text}"?\n{gallery}',
    ),
    "attr_retrieval": (
        "Find the person with these attributes: {attributes}.\n{gallery}",
        "I am looking for someone who matches this: {attributes}. Which image shows them?\n"
        "{gallery}",
    ),
    "multimodal_retrieval": (
        'Here is the person I am looking for <image>; also, "{text}". Which of the following '
        "images show the same pedestrian?\n{gallery}",
    ),
    "multimodal_followup": (
        "Take Image {index} as the query now. Which of the remaining images show the same "
        "pedestrian?",
    ),
    "best_choice_next": (
        'Among the remaining images, which one matches best? Say "None" if none of them shows the '
        "same pedestrian.",
    ),
}

STAGE_TASKS: dict[int, tuple[str, ...]] = {
    1: ("caption",),
    2: ("i2i_one_to_one", "i2i_many_to_many", "t2i_one_to_one", "t2i_many_to_one",
        "t2i_one_to_many", "attr_compare", "attr_predict"),
    3: ("reid_standard", "reid_cc", "reid_vi", "reid_t2i", "attr_retrieval",
        "multimodal_retrieval"),
}
# The instruction tasks: the prompt formats of the training rows (their ``task`` column). Not the
# retrieval tasks a query asks for (``chatreid.tasks.TASKS``); a retrieval task is read with one of these.
INSTRUCTION_TASKS: tuple[str, ...] = tuple(itertools.chain.from_iterable(STAGE_TASKS.values()))
# The Yes/No formats the pairwise scorer reads (retrieval/scorer.py: image and text queries). The
# paper's stage 3 has no Yes/No task, so a stage-3 model would be scored in a format it was last
# trained on one stage earlier, and from-scratch models lose the skill (docs/demo-learning.md):
# stage 3 replays these stage-2 rows by default (instructions/config.py).
SCORING_TASKS: tuple[str, ...] = ("i2i_one_to_one", "t2i_one_to_one")

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
            "ninth", "tenth")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")

YES, NO = "Yes", "No"
NONE = "None"


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------
def render(name: str, rng: np.random.Generator | None = None, paraphrase_prob: float = 0.0,
           **fields) -> str:
    """The text of prompt ``name`` with ``fields`` filled in.

    With probability ``paraphrase_prob`` (drawn from ``rng``) one of the paraphrases is used
    instead of the verbatim template. The result contains one ``IMAGE`` marker per image, in the
    order the images must be given.
    """
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt {name!r}; known: {', '.join(TEMPLATES)}")
    if not 0.0 <= paraphrase_prob <= 1.0:
        raise ValueError(f"paraphrase_prob must be in [0, 1], got {paraphrase_prob}")
    template = TEMPLATES[name]
    if paraphrase_prob > 0.0 and PARAPHRASES.get(name):
        if rng is None:
            raise ValueError("render: paraphrase_prob > 0 needs an rng (determinism by seed)")
        if rng.random() < paraphrase_prob:
            options = PARAPHRASES[name]
            template = options[int(rng.integers(len(options)))]
    try:
        return template.format(**fields)
    except KeyError as err:
        raise KeyError(f"prompt {name!r} needs field {err.args[0]!r}") from None


def gallery_block(n: int) -> str:
    """The gallery as the prompts show it: "Image 1: <image>" ... "Image n: <image>", one a line."""
    if n < 1:
        raise ValueError(f"a gallery needs at least one image, got {n}")
    return "\n".join(f"Image {i}: {IMAGE}" for i in range(1, n + 1))


def caption_options(captions: list[str]) -> str:
    """Figure 4's option list: 'The first caption: "...". The second caption: "...". ...'."""
    if not 2 <= len(captions) <= len(ORDINALS):
        raise ValueError(f"between 2 and {len(ORDINALS)} captions, got {len(captions)}")
    return " ".join(f'The {ORDINALS[i]} caption: "{c}".' for i, c in enumerate(captions))


def to_content(text: str) -> list[dict]:
    """TRL content list of a rendered prompt: text pieces and ``{"type": "image"}`` in order."""
    content: list[dict] = []
    for i, piece in enumerate(text.split(IMAGE)):
        if i:
            content.append({"type": "image", "text": None})
        if piece:
            content.append({"type": "text", "text": piece})
    return content


def count_images(text: str) -> int:
    return text.count(IMAGE)


# --------------------------------------------------------------------------------------------
# Answers and their parsers. Gallery indices in code are 0-based; "Image k" in text is 1-based.
# --------------------------------------------------------------------------------------------
def answer_yes_no(same: bool) -> str:
    return YES if same else NO


def parse_yes_no(text: str) -> bool:
    """True for an answer that starts with "Yes", False for "No"; anything else is an error."""
    word = re.match(r"\s*(yes|no)\b", text, flags=re.IGNORECASE)
    if not word:
        raise ValueError(f"not a Yes/No answer: {text!r}")
    return word.group(1).lower() == "yes"


def image_ref(index: int) -> str:
    """How an answer names gallery image ``index`` (0-based): "Image 3" for index 2."""
    return f"Image {index + 1}"


def parse_image_refs(text: str) -> list[int]:
    """0-based gallery indices named in ``text`` ("Image 3" -> 2), in order, without repeats."""
    out: list[int] = []
    for m in re.finditer(r"\bImage (\d+)\b", text):
        k = int(m.group(1))
        if k < 1:
            raise ValueError(f"image numbers start at 1: {text!r}")
        if k - 1 not in out:
            out.append(k - 1)
    return out


def _image_list(indices: list[int]) -> str:
    return ", ".join(image_ref(i) for i in indices)


def answer_matches(indices: list[int]) -> str:
    """Figure 4's many-to-many response: "These two images (Image 2, Image 5) match ..."."""
    if not indices:
        raise ValueError("a retrieval answer names at least one image")
    if len(indices) == 1:
        return f"This image ({image_ref(indices[0])}) matches the identity of the pedestrian in the query image."
    count = _NUMBER_WORDS[len(indices)] if len(indices) < len(_NUMBER_WORDS) else str(len(indices))
    return (f"These {count} images ({_image_list(indices)}) match the identity of the pedestrian "
            "in the query image.")


def answer_description_match(index: int) -> str:
    """Figure 4's text-to-image one-to-many response."""
    return f"This image ({image_ref(index)}) matches the following description."


def answer_reid(indices: list[int]) -> str:
    """Project text: the stage 3 answer naming every match at once (the paper prints none)."""
    if not indices:
        raise ValueError("a Re-ID answer names at least one image")
    return f"The matching images are: {_image_list(indices)}."


def answer_best_choice(index: int | None) -> str:
    """One turn of the multi-turn best-choice format: "Image 3", or "None" when nothing is left."""
    return NONE if index is None else image_ref(index)


def parse_best_choice(text: str) -> int | None:
    """0-based index named by a best-choice answer, or None for "None"; exactly one of them."""
    if re.fullmatch(r"\s*none\.?\s*", text, flags=re.IGNORECASE):
        return None
    refs = parse_image_refs(text)
    if len(refs) != 1:
        raise ValueError(f"a best-choice answer names exactly one image or None: {text!r}")
    return refs[0]


def answer_caption_choice(index: int) -> str:
    """Figure 4's many-to-one response: "The second caption" for index 1."""
    return f"The {ORDINALS[index]} caption"


def parse_caption_choice(text: str) -> int:
    m = re.search(r"\bthe (\w+) caption\b", text, flags=re.IGNORECASE)
    if not m or m.group(1).lower() not in ORDINALS:
        raise ValueError(f"not a caption choice: {text!r}")
    return ORDINALS.index(m.group(1).lower())


# Attribute phrases: chatreid.data.attributes.phrases, deduplicated (the lower-garment phrase
# stands for up to three keys), joined by ", " (no phrase contains a comma).
def attribute_phrases(attributes: dict) -> list[str]:
    out: list[str] = []
    for phrase in phrases(attributes).values():
        if phrase not in out:
            out.append(phrase)
    return out


def _phrase_table() -> dict[str, dict]:
    """Every phrase ``phrases`` can produce -> the partial attributes it says."""
    table: dict[str, dict] = {}
    simple = [k for k in VOCAB if k not in ("lower_type", "lower_length", "lower_color")]
    for key in simple:
        for value in VOCAB[key]:
            table[phrases({key: value})[key]] = {key: value}
    lower = ("lower_type", "lower_length", "lower_color")
    for combo in itertools.product(*[(None,) + VOCAB[k] for k in lower]):
        attrs = {k: v for k, v in zip(lower, combo) if v is not None}
        if attrs:
            table[next(iter(phrases(attrs).values()))] = attrs
    return table


_PHRASES = _phrase_table()


def parse_phrases(text: str) -> dict:
    """Attributes said by a comma-separated phrase list ("none" is empty); unknown phrase: error."""
    text = text.strip().rstrip(".").strip()
    if not text or text.lower() == "none":
        return {}
    out: dict = {}
    for phrase in (p.strip() for p in text.split(",")):
        if phrase not in _PHRASES:
            raise ValueError(f"unknown attribute phrase {phrase!r}")
        out.update(_PHRASES[phrase])
    return out


_PREDICT_HEAD = "The pedestrian attributes of this image are:"


def answer_attributes(attributes: dict) -> str:
    """Figure 4's annotation-prediction response with the image's annotated attributes."""
    if not attributes:
        raise ValueError("attribute prediction needs annotated attributes")
    return f"{_PREDICT_HEAD} {', '.join(attribute_phrases(attributes))}."


def parse_attributes(text: str) -> dict:
    if not text.startswith(_PREDICT_HEAD):
        raise ValueError(f"attribute answer must start with {_PREDICT_HEAD!r}: {text!r}")
    return parse_phrases(text[len(_PREDICT_HEAD):])


_COMPARE_HEADS = ("Common Attributes:", "Unique Attributes of the First Image:",
                  "Unique Attributes of the Second Image:")


def compare_attributes(first: dict, second: dict) -> tuple[list[str], list[str], list[str]]:
    """(common, unique to first, unique to second) phrases over the keys annotated in both.

    A key annotated in only one image says nothing about the other, so it is left out.
    """
    p1, p2 = phrases(first), phrases(second)
    common: list[str] = []
    only1: list[str] = []
    only2: list[str] = []
    for key in p1:
        if key not in p2:
            continue
        if p1[key] == p2[key]:
            if p1[key] not in common:
                common.append(p1[key])
        else:
            if p1[key] not in only1:
                only1.append(p1[key])
            if p2[key] not in only2:
                only2.append(p2[key])
    return common, only1, only2


def answer_attr_compare(first: dict, second: dict) -> str:
    """Figure 4's comparison response, one section a line, "none" for an empty section."""
    parts = compare_attributes(first, second)
    return "\n".join(f"{head} {', '.join(p) if p else 'none'}"
                     for head, p in zip(_COMPARE_HEADS, parts))


def parse_attr_compare(text: str) -> tuple[dict, dict, dict]:
    """(common, unique to first, unique to second) as partial attribute dicts."""
    pattern = r"\s*".join(re.escape(h) + r"(.*?)" for h in _COMPARE_HEADS) + r"\s*$"
    m = re.match(r"\s*" + pattern, text, flags=re.DOTALL)
    if not m:
        raise ValueError(f"not an attribute comparison answer: {text!r}")
    return tuple(parse_phrases(g) for g in m.groups())


def attribute_query(attributes: dict) -> str:
    """The partial-attribute description of an attribute-based query: phrases joined by ", "."""
    if not attributes:
        raise ValueError("an attribute query needs at least one attribute")
    return ", ".join(attribute_phrases(attributes))
