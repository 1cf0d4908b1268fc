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
5. Pages are then compared against each other, so that the model, not the pre-filter, orders the
   whole head: the ordered pages are merged ``window`` at a time, and each step of a merge is one
   more first-turn conversation whose gallery is the best remaining image of each page in the
   merge ("Image 1" = page 1's, ...). The model's pick is emitted next and its page moves on; a
   page left alone is appended as it stands. Merges repeat until one ordering remains (a
   ``window``-way merge sort whose leaves are the multi-turn pages). With a comparator that is
   consistent, the result is the full sort of the head whatever order the pre-filter gave it; a
   head of n images costs about n forward passes per level, log_window(n / window) levels. With
   ``window >= len(candidates)`` there is one page and nothing to merge. The engine then appends
   the gallery images the pre-filter left out, in pre-filter order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from chatreid import prompts
from chatreid.retrieval.scorer import EncodedImage, Item, Reader, SequenceBuilder, TurnReader, chat_prompt

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


class _Picker:
    """One forward pass per pick: the label logits of a page's conversation, counted for progress."""

    def __init__(self, reader: Reader, builder: SequenceBuilder, processor, first_turn, query_images,
                 window: int, progress, total: int, reuse_cache: bool = True):
        self.reader, self.builder, self.processor = reader, builder, processor
        # a page's later turns extend its earlier ones: keep the conversation's key/value cache
        # (it needs the model behind a Reader; any other reader is asked turn by turn)
        self.turns = TurnReader(reader) if reuse_cache and isinstance(reader, Reader) else None
        self.first_turn, self.query_images = first_turn, list(query_images)
        self.labels, self.start = label_tokens(processor, window)
        self.n_prefix = len(processor.tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False))
        self.progress, self.total, self.done = progress, total, 0

    def pick(self, shown: Sequence[EncodedImage], left: Sequence[int], user: str | None = None,
             history: Sequence[tuple[str, str]] = ()) -> tuple[int, float, float]:
        """(page-local label picked among ``left``, its probability among them, p_none)."""
        user = user if user is not None else self.first_turn(prompts.gallery_block(len(shown)))
        images = self.query_images + list(shown)
        chat = chat_prompt(self.processor, user, answer_prefix=ANSWER_PREFIX, history=list(history))
        item = Item(self.builder.build(chat, images), images)
        reads = [(1, self.labels[:len(shown)]), (self.n_prefix + 1, self.start)]
        if self.turns is not None:
            label_logits, start_logits = self.turns.read(item, reads)
        else:
            label_logits, start_logits = self.reader.read([item], reads)
        probs = _softmax(label_logits[0][list(left)])
        j = int(np.argmax(probs))
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        return left[j], float(probs[j]), float(_softmax(start_logits[0])[0])


# one entry of an ordering: (candidate index, confidence, p_none)
_Entry = tuple[int, float, float]


def _order_page(picker: _Picker, page: list[int], candidates) -> list[_Entry]:
    """The paper's multi-turn best choice inside one page (module docstring, steps 2-4)."""
    shown = [candidates[i] for i in page]
    history: list[tuple[str, str]] = []
    left = list(range(len(page)))
    user = None
    out: list[_Entry] = []
    while len(left) > 1:
        label, conf, p_none = picker.pick(shown, left, user, history)
        left.remove(label)
        out.append((page[label], conf, p_none))
        history.append((user or picker.first_turn(prompts.gallery_block(len(page))), prompts.answer_best_choice(label)))
        user = prompts.render("best_choice_next")
    if left:
        out.append((page[left[0]], 1.0, float("nan")))
    return out


def _merge(picker: _Picker, runs: list[list[_Entry]], candidates) -> list[_Entry]:
    """Merge ordered runs by asking the model which run's best remaining image is the best match."""
    runs = [list(r) for r in runs if r]
    out: list[_Entry] = []
    while len(runs) > 1:
        heads = [r[0][0] for r in runs]
        label, conf, p_none = picker.pick([candidates[i] for i in heads], list(range(len(heads))))
        out.append((heads[label], conf, p_none))
        runs[label].pop(0)
        runs = [r for r in runs if r]
    return out + (runs[0] if runs else [])


def _passes(n: int, window: int) -> int:
    """Forward passes ``rank`` makes at most for n candidates (for progress)."""
    pages = [min(window, n - i) for i in range(0, n, window)]
    total, runs = sum(max(p - 1, 0) for p in pages), len(pages)
    while runs > 1:
        total += n - 1
        runs = -(-runs // window)
    return total


def rank(reader: Reader, builder: SequenceBuilder, processor, first_turn: Callable[[str], str],
         query_images: Sequence[EncodedImage], candidates: Sequence[EncodedImage], window: int = 4,
         progress: Callable[[int, int], None] | None = None, reuse_cache: bool = True) -> BestChoiceResult:
    """Order ``candidates`` by multi-turn best choice, pages merged by the model (module docstring).

    ``first_turn(gallery_block)`` renders the task prompt around a page's gallery block;
    ``query_images``: the images that prompt shows before the gallery (0 or 1). ``reuse_cache``:
    a page's later turns run only their new tokens on the earlier turns' key/value cache
    (``scorer.TurnReader``; the same picks up to float rounding); False re-reads every turn.
    """
    if window < 2 and len(candidates) > 1:
        raise ValueError("best-choice needs a window of at least 2 images: with one image a page "
                         "there is no choice to read")
    window = min(window, len(candidates)) if candidates else window
    total = _passes(len(candidates), max(window, 1))
    picker = _Picker(reader, builder, processor, first_turn, query_images, max(window, 1), progress, total,
                     reuse_cache)
    runs = [_order_page(picker, list(range(s, min(s + window, len(candidates)))), candidates)
            for s in range(0, len(candidates), window)]
    while len(runs) > 1:
        runs = [_merge(picker, runs[i:i + window], candidates) for i in range(0, len(runs), window)]
    if progress is not None and picker.done < total:
        progress(total, total)  # merges end early when a run empties: the bar still ends full
    order = runs[0] if runs else []
    return BestChoiceResult([e[0] for e in order], [e[1] for e in order], [e[2] for e in order])
