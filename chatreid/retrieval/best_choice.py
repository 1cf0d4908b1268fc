"""Multi-turn best-choice ranking (paper sec. 3.3 and 4.1), read from logits, no generation.

The paper turns retrieval into "a multi-turn best-choice problem": at each step the model picks
the most similar image, which is then out of the running. Exactly what runs here:

1. The candidates (the pre-filter's head, in pre-filter order) are cut into consecutive pages of
   ``window`` images (at most 9, so every label "Image k" ends in a single digit token).
2. A page is one conversation. Turn 1 is the task's stage-3 prompt (``reid_standard``,
   ``reid_cc``, ``reid_vi``, ``reid_t2i``, ``attr_retrieval`` or ``multimodal_retrieval`` of
   ``chatreid.prompts``) with the query and the page's images as "Image 1: <image>" ...; each
   later turn is ``best_choice_next`` ("Which of the remaining images is the best match? ..."),
   after the model's earlier picks written as its answers ("Image 3").
3. In each turn the answer is begun for the model ("Image ") and one forward pass gives the
   logits of the digit tokens "1".."m". The pick is the most likely label among the images not
   yet picked in this page; its confidence is the softmax over those labels only. The same pass
   gives, at the answer's first token, the odds of "None" against "Image" (``p_none``): the
   model's own signal that no remaining image matches.
4. The last image of a page is picked without a forward pass (confidence 1: one label left).
5. Ranking: page 1's picks in pick order, then page 2's, and so on. So the VLM orders images
   within a page and the pre-filter orders the pages; with ``window >= len(candidates)`` (one
   page) the whole head is ordered by the model. The engine then appends the gallery images the
   pre-filter left out, in pre-filter order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from chatreid import prompts
from chatreid.retrieval.scorer import EncodedImage, Item, Reader, SequenceBuilder, chat_prompt

MAX_WINDOW = 9
ANSWER_PREFIX = "Image "


@dataclass
class BestChoiceResult:
    order: list[int]  # indices into the candidate list, best first
    confidence: list[float]  # aligned with order: the pick's probability among its turn's labels
    p_none: list[float]  # aligned with order: P("None") vs P("Image") before the pick (nan: no pass)


def label_tokens(processor, window: int) -> tuple[list[int], list[int]]:
    """(digit token per label 1..window, [first token of "None", first token of "Image"]).

    Checks that, after the assistant header and "Image ", each label is exactly one more token;
    otherwise the pick cannot be read from one pass and this raises ValueError.
    """
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"best-choice window must be in 1..{MAX_WINDOW}, got {window}")
    tok = processor.tokenizer
    head = chat_prompt(processor, "x")
    base = tok.encode(head + ANSWER_PREFIX, add_special_tokens=False)
    labels = []
    for k in range(window):
        ids = tok.encode(head + prompts.answer_best_choice(k), add_special_tokens=False)
        if ids[:-1] != base or len(ids) != len(base) + 1:
            raise ValueError(f"the tokenizer does not write {prompts.answer_best_choice(k)!r} as "
                             f"{ANSWER_PREFIX!r} plus one token; best-choice cannot read its label")
        labels.append(ids[-1])
    start = [tok.encode(prompts.NONE, add_special_tokens=False)[0], tok.encode(ANSWER_PREFIX.strip(), add_special_tokens=False)[0]]
    if start[0] == start[1]:
        raise ValueError("'None' and 'Image' begin with the same token; cannot read p_none")
    return labels, start


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max()
    e = np.exp(z)
    return e / e.sum()


def rank(reader: Reader, builder: SequenceBuilder, processor, first_turn: Callable[[str], str],
         query_images: Sequence[EncodedImage], candidates: Sequence[EncodedImage], window: int = 4,
         progress: Callable[[int, int], None] | None = None) -> BestChoiceResult:
    """Order ``candidates`` by multi-turn best choice (module docstring).

    ``first_turn(gallery_block)`` renders the task prompt around a page's gallery block;
    ``query_images``: the images that prompt shows before the gallery (0 or 1).
    """
    window = min(window, len(candidates)) if candidates else window
    labels, start = label_tokens(processor, max(window, 1))
    n_prefix = len(processor.tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False))
    order: list[int] = []
    conf: list[float] = []
    p_none: list[float] = []
    turns = sum(max(len(candidates[i:i + window]) - 1, 0) for i in range(0, len(candidates), window))
    done = 0
    for page_start in range(0, len(candidates), window):
        page = list(range(page_start, min(page_start + window, len(candidates))))
        images = list(query_images) + [candidates[i] for i in page]
        first = first_turn(prompts.gallery_block(len(page)))
        history: list[tuple[str, str]] = []
        left = list(range(len(page)))  # page-local label indices not yet picked
        user = first
        while len(left) > 1:
            chat = chat_prompt(processor, user, answer_prefix=ANSWER_PREFIX, history=history)
            item = Item(builder.build(chat, images), images)
            label_logits, start_logits = reader.read([item], [(1, labels[:len(page)]), (n_prefix + 1, start)])
            probs = _softmax(label_logits[0][left])
            j = int(np.argmax(probs))
            pick = left.pop(j)
            order.append(page[pick])
            conf.append(float(probs[j]))
            p_none.append(float(_softmax(start_logits[0])[0]))
            history.append((user, prompts.answer_best_choice(pick)))
            user = prompts.render("best_choice_next")
            done += 1
            if progress is not None:
                progress(done, turns)
        if left:
            order.append(page[left[0]])
            conf.append(1.0)
            p_none.append(float("nan"))
    return BestChoiceResult(order, conf, p_none)
