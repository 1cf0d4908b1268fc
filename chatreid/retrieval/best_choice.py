"""Multi-turn best-choice ranking (paper sec. 3.3 and 4.1), read from logits, no generation.

The paper turns retrieval into "a multi-turn best-choice problem": at each step the model picks
the most similar image (sec. 3.3), and for evaluation "we sample non-overlapping images from the
filtered gallery, pairing each selected image with the query and ranking them based on response
confidence, ultimately producing the final similarity list" (sec. 4.1). Exactly what runs here:

1. **Pages.** The candidates (the pre-filter's head, in pre-filter order) are cut into
   consecutive, non-overlapping pages of ``window`` images (at most 9, so every label "Image k"
   ends in a single digit token). Every candidate is on exactly one page.
2. **Turns.** A page is one conversation. Turn 1 is the task's stage-3 prompt (``reid_standard``,
   ``reid_cc``, ``reid_vi``, ``reid_t2i``, ``attr_retrieval`` or ``multimodal_retrieval`` of
   ``chatreid.prompts``) with the query and the page's images as "Image 1: <image>" ...; each
   later turn is ``best_choice_next`` ("Which of the remaining images is the best match? ..."),
   after the model's earlier picks written as its answers ("Image 3").
3. **The answer distribution of a turn.** The answer is begun for the model ("Image ") and one
   forward pass gives the logits of the digit tokens "1".."m" and, at the answer's first token,
   of "None" against "Image". P(None) is the two-way softmax of those two; each remaining image
   k gets P(Image k) = (1 - P(None)) * softmax over the remaining labels only [k]. Images already
   picked are not labels any more.
4. **Position bias** (``debias``). ``"rotate"`` (default): the page is shown in each of its
   cyclic rotations (a conversation each, picks written with each rotation's own labels) and the
   distribution of step 3 is averaged over them, so every image is read once at every position
   and the model's preference for a position cancels out. ``"none"``: one conversation, the page
   as cut. Rotation costs ``window`` times the passes.
5. **The pick** of a turn is the remaining image of highest P(Image k); it leaves the page and the
   next turn asks again, until every image is picked (the last one gets a pass too: its P(Image)
   is 1 - P(None)). Each image's **confidence** is its P(Image k) in the turn that picked it.
6. **The final list** (``ranking="confidence"``, the paper's): every candidate by descending
   confidence across all pages; ties keep page order, then pick order. The model's *matches*
   (for the chat answer) are, in each page, the picks before the first turn whose P(None) > 0.5.

``ranking="merge"`` is **ours, not the paper's**: each page keeps its pick order and the pages are
merged ``window`` at a time by more first-turn conversations whose gallery is the best remaining
image of each page ("Image 1" = page 1's, ...); the model's pick is emitted next and its page
moves on, until one ordering remains (a ``window``-way merge sort whose leaves are the
multi-turn pages, about n passes per level). It orders the head by the model's relative
judgements only and never compares confidences across pages. Its matches: the picks up to the
first turn where P(None) > 0.5. The engine appends the gallery images the pre-filter left out, in
pre-filter order, after either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from chatreid import prompts
from chatreid.retrieval.scorer import EncodedImage, Item, Reader, SequenceBuilder, TurnReader, chat_prompt

MAX_WINDOW = 9
ANSWER_PREFIX = "Image "
RANKINGS = ("confidence", "merge")  # the paper's (sec. 4.1); ours
DEBIAS = ("rotate", "none")


@dataclass
class BestChoiceResult:
    order: list[int]  # indices into the candidate list, best first
    confidence: list[float]  # aligned with order: P(Image k) in the turn that picked it (module docstring)
    p_none: list[float]  # aligned with order: P("None") in that turn
    matched: list[bool]  # aligned with order: the model named it before it would rather say "None"


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


def check_options(ranking: str, debias: str) -> None:
    if ranking not in RANKINGS:
        raise ValueError(f"best-choice ranking {ranking!r}: expected one of {', '.join(RANKINGS)}")
    if debias not in DEBIAS:
        raise ValueError(f"best-choice debias {debias!r}: expected one of {', '.join(DEBIAS)}")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max()
    e = np.exp(z)
    return e / e.sum()


class Picker:
    """The answer distribution of one turn of a page (module docstring, steps 3-4), counted for
    progress. With ``debias="rotate"`` one turn is read in every cyclic rotation of the page."""

    def __init__(self, reader: Reader, builder: SequenceBuilder, processor, first_turn, query_images,
                 window: int, progress=None, total: int = 0, reuse_cache: bool = True, debias: str = "rotate"):
        check_options("confidence", debias)
        self.reader, self.builder, self.processor = reader, builder, processor
        # a page's later turns extend its earlier ones: keep each rotation's key/value cache
        # (it needs the model behind a Reader; any other reader is asked turn by turn)
        self.reuse = reuse_cache and isinstance(reader, Reader)
        self.turns: dict[int, TurnReader] = {}
        self.first_turn, self.query_images = first_turn, list(query_images)
        self.labels, self.start = label_tokens(processor, window)
        self.n_prefix = len(processor.tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False))
        self.debias = debias
        self.progress, self.total, self.done = progress, total, 0

    def rotations(self, n: int) -> int:
        return n if self.debias == "rotate" else 1

    def _read(self, r: int, chat: str, images) -> tuple[np.ndarray, np.ndarray]:
        item = Item(self.builder.build(chat, images), images)
        reads = [(1, self.labels[:len(images) - len(self.query_images)]), (self.n_prefix + 1, self.start)]
        if self.reuse:
            label_logits, start_logits = self.turns.setdefault(r, TurnReader(self.reader)).read(item, reads)
        else:
            label_logits, start_logits = self.reader.read([item], reads)
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        return label_logits[0], start_logits[0]

    def turn(self, shown: Sequence[EncodedImage], picked: Sequence[int] = ()) -> tuple[np.ndarray, float]:
        """(P(Image k) per page-local image k, 0 for those in ``picked``; P(None)) of the turn
        after ``picked`` (page-local, in pick order), averaged over the rotations read."""
        n = len(shown)
        left = [k for k in range(n) if k not in picked]
        probs, p_none = np.zeros(n), 0.0
        rots = self.rotations(n)
        for r in range(rots):
            at = [(k + r) % n for k in range(n)]  # image at[j] is shown as "Image j+1"
            where = {k: j for j, k in enumerate(at)}
            first = self.first_turn(prompts.gallery_block(n))
            history, user = [], first
            for k in picked:
                history.append((user, prompts.answer_best_choice(where[k])))
                user = prompts.render("best_choice_next")
            chat = chat_prompt(self.processor, user, answer_prefix=ANSWER_PREFIX, history=history)
            label_logits, start_logits = self._read(r, chat, self.query_images + [shown[k] for k in at])
            pn = float(_softmax(start_logits)[0])
            probs[left] += (1 - pn) * _softmax(label_logits[[where[k] for k in left]])
            p_none += pn
        return probs / rots, p_none / rots


# one entry of an ordering: (candidate index, confidence, p_none)
_Entry = tuple[int, float, float]


def _order_page(picker: Picker, page: list[int], candidates, last_pass: bool) -> list[_Entry]:
    """The multi-turn best choice inside one page (module docstring, steps 2-5). ``last_pass``:
    read the last image's turn too (confidence ranking); else it is picked without one."""
    shown = [candidates[i] for i in page]
    picked: list[int] = []
    out: list[_Entry] = []
    while len(picked) < len(page):
        if len(page) - len(picked) == 1 and not last_pass:
            k = next(k for k in range(len(page)) if k not in picked)
            out.append((page[k], 1.0, float("nan")))
            break
        probs, p_none = picker.turn(shown, picked)
        k = int(np.argmax(np.where(np.isin(np.arange(len(page)), picked), -1.0, probs)))
        picked.append(k)
        out.append((page[k], float(probs[k]), p_none))
    return out


def _merge(picker: Picker, runs: list[list[_Entry]], candidates) -> list[_Entry]:
    """Merge ordered runs by asking the model which run's best remaining image is the best match
    (``ranking="merge"``, ours)."""
    runs = [list(r) for r in runs if r]
    out: list[_Entry] = []
    while len(runs) > 1:
        heads = [r[0][0] for r in runs]
        probs, p_none = picker.turn([candidates[i] for i in heads])
        label = int(np.argmax(probs))
        out.append((heads[label], float(probs[label]), p_none))
        runs[label].pop(0)
        runs = [r for r in runs if r]
    return out + (runs[0] if runs else [])


def passes(n: int, window: int, ranking: str = "confidence", debias: str = "rotate") -> int:
    """Forward passes ``rank`` makes at most for n candidates (for progress and cost)."""
    pages = [min(window, n - i) for i in range(0, n, window)]
    rot = (lambda m: m) if debias == "rotate" else (lambda m: 1)
    if ranking == "confidence":
        return sum(p * rot(p) for p in pages)
    total, runs = sum(max(p - 1, 0) * rot(p) for p in pages), len(pages)
    while runs > 1:
        total += (n - 1) * rot(min(window, runs))
        runs = -(-runs // window)
    return total


def _matched_in_pages(entries: list[_Entry], page_of: dict[int, int]) -> set[int]:
    """Per page, the picks before the first turn whose P(None) > 0.5."""
    out, stopped = set(), set()
    for i, _, p in entries:
        pg = page_of[i]
        if pg in stopped or (not np.isnan(p) and p > 0.5):
            stopped.add(pg)
            continue
        out.add(i)
    return out


def rank(reader: Reader, builder: SequenceBuilder, processor, first_turn: Callable[[str], str],
         query_images: Sequence[EncodedImage], candidates: Sequence[EncodedImage], window: int = 4,
         progress: Callable[[int, int], None] | None = None, reuse_cache: bool = True,
         ranking: str = "confidence", debias: str = "rotate") -> BestChoiceResult:
    """Order ``candidates`` by multi-turn best choice (module docstring).

    ``first_turn(gallery_block)`` renders the task prompt around a page's gallery block;
    ``query_images``: the images that prompt shows before the gallery (0 or 1). ``ranking``:
    ``"confidence"`` (the paper's) or ``"merge"`` (ours); ``debias``: ``"rotate"`` or ``"none"``.
    ``reuse_cache``: a page's later turns run only their new tokens on the earlier turns'
    key/value cache (``scorer.TurnReader``; the same picks up to float rounding); False re-reads
    every turn.
    """
    check_options(ranking, debias)
    if window < 2 and len(candidates) > 1:
        raise ValueError("best-choice needs a window of at least 2 images: with one image a page "
                         "there is no choice to read")
    window = min(window, len(candidates)) if candidates else window
    total = passes(len(candidates), max(window, 1), ranking, debias)
    picker = Picker(reader, builder, processor, first_turn, query_images, max(window, 1), progress, total,
                    reuse_cache, debias)
    pages = [list(range(s, min(s + window, len(candidates)))) for s in range(0, len(candidates), window)]
    page_of = {i: p for p, page in enumerate(pages) for i in page}
    runs = [_order_page(picker, page, candidates, last_pass=ranking == "confidence") for page in pages]
    if ranking == "confidence":
        flat = [e for run in runs for e in run]
        order = [flat[j] for j in np.argsort([-e[1] for e in flat], kind="stable")]
        matched = _matched_in_pages(flat, page_of)
    else:
        while len(runs) > 1:
            runs = [_merge(picker, runs[i:i + window], candidates) for i in range(0, len(runs), window)]
        order = runs[0] if runs else []
        matched = set()
        for i, _, p in order:
            if not np.isnan(p) and p > 0.5:
                break
            matched.add(i)
    if progress is not None and picker.done < total:
        progress(total, total)  # merges end early when a run empties: the bar still ends full
    return BestChoiceResult([e[0] for e in order], [e[1] for e in order], [e[2] for e in order],
                            [e[0] in matched for e in order])
