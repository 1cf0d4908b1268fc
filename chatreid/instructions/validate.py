"""``chatreid data validate``: re-check a built instruction dataset against its image store.

Every answer is derived again from the store's ground truth (identity, attributes, captions) and
compared with the row's answer as the prompts' parsers read it. Reported, each with split, row,
task and a message: malformed rows, missing images, test-split (query/gallery) images, wrong
Yes/No, wrong indices (image numbers, caption choices, best-choice turns), wrong texts
(captions, attribute answers), and identities present in both splits.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chatreid import prompts as P
from chatreid.data.attributes import to_text
from chatreid.instructions.rows import turns_of
from chatreid.instructions.pool import columns
from chatreid.instructions.stage1 import source_of, with_captions


@dataclass
class Report:
    rows: int = 0
    errors: list[tuple[str, int, str, str]] = field(default_factory=list)  # split, row, kind, message

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, _, kind, _ in self.errors))

    def format(self, limit: int | None = 50) -> str:
        lines = [f"{self.rows} rows checked, {len(self.errors)} error(s)"]
        lines += [f"  {k}: {v}" for k, v in sorted(self.counts().items())]
        shown = self.errors if limit is None else self.errors[:limit]
        lines += [f"{s}[{i}] {kind}: {msg}" for s, i, kind, msg in shown]
        if limit is not None and len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return "\n".join(lines)


class RowError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Truth:
    """Ground truth lookups by image id, from the store's metadata and the captioner's texts the
    build used (``captioned``: {image id: text}; None when unknown)."""

    def __init__(self, store, captioned: dict[str, str] | None = None):
        self.meta = with_captions(columns(store.metadata()), captioned or {})
        self.captioned = captioned
        self.index = {iid: i for i, iid in enumerate(self.meta["image_id"])}
        self._attrs: dict[int, dict] = {}

    def row(self, iid: str) -> int:
        try:
            return self.index[iid]
        except KeyError:
            raise RowError("missing_image", f"image {iid!r} is not in the store") from None

    def identity(self, iid: str) -> tuple:
        i = self.row(iid)
        return self.meta["dataset"][i], int(self.meta["pid"][i])

    def attrs(self, iid: str) -> dict:
        i = self.row(iid)
        if i not in self._attrs:
            s = self.meta["attributes"][i]
            self._attrs[i] = json.loads(s) if s else {}
        return self._attrs[i]

    def captions(self, iid: str) -> list[str]:
        return [c for c in self.meta["captions"][self.row(iid)] or [] if c and c.strip()]

    def text(self, ref: dict) -> str | None:
        """The description a row's meta points at ({"image_id", "caption"}); None: captioner."""
        iid, k = ref["image_id"], int(ref["caption"])
        if k < 0:
            return to_text(self.attrs(iid))
        caps = self.meta["captions"][self.row(iid)] or []
        if k >= len(caps):
            raise RowError("wrong_text", f"{iid!r} has no caption {k}")
        return caps[k]

    def describes(self, text: str, owner: str, image: str) -> bool:
        """May ``text`` (a description of ``owner``) describe ``image``? (``sampling.describes``)"""
        if self.identity(owner) == self.identity(image):
            return True
        if text in self.captions(image) or (not self.captions(image) and text == to_text(self.attrs(image))):
            return True
        a, b = self.attrs(owner), self.attrs(image)
        return bool(a) and a == b


def _check_refs(answer: str, expected: list[int], what: str):
    try:
        got = P.parse_image_refs(answer)
    except ValueError as err:
        raise RowError("malformed", str(err)) from None
    if sorted(got) != sorted(expected):
        raise RowError("wrong_index", f"{what}: answer names {[g + 1 for g in got]}, "
                                      f"ground truth {[e + 1 for e in expected]}")


def _check_retrieval(turns, matches: list[int]):
    """One answer naming every match, or best-choice turns naming them one by one, then None;
    a best-choice page without a match is one turn answered None."""
    if not matches:
        try:
            said = P.parse_best_choice(turns[0][1]) if len(turns) == 1 else ()
        except ValueError:
            said = ()
        if said is None:
            return
        raise RowError("wrong_index", "no gallery image matches the query, and the answer is not "
                                      f"{P.answer_best_choice(None)!r}")
    if len(turns) == 1:
        _check_refs(turns[0][1], matches, "matches")
        return
    left = set(matches)
    for t, (_, answer) in enumerate(turns):
        try:
            pick = P.parse_best_choice(answer)
        except ValueError as err:
            raise RowError("malformed", f"turn {t + 1}: {err}") from None
        if pick is None:
            if left:
                raise RowError("wrong_index", f"turn {t + 1}: answers None but Image(s) "
                                              f"{sorted(i + 1 for i in left)} still match")
            if t != len(turns) - 1:
                raise RowError("malformed", f"turn {t + 1}: None before the last turn")
            return
        if pick not in left:
            raise RowError("wrong_index", f"turn {t + 1}: Image {pick + 1} is not a remaining match")
        left.discard(pick)
    raise RowError("wrong_index", "best-choice turns never end with None")


def _check_text_in(prompt: str, text: str):
    if text not in prompt:
        raise RowError("wrong_text", f"the prompt does not carry the description {text[:60]!r}...")


def check_row(row: dict, truth: _Truth, split: str = "train") -> None:
    """Raise RowError describing the first problem of ``row``; return None if it is right.

    First the row's shape (turns, task, meta, image placeholders, train-split images), then its
    task's own check (``_TASK_CHECKS``), which derives the answer again from the store."""
    turns, task, meta, ids = _check_shape(row, truth)
    check = _TASK_CHECKS.get(task)
    if check is not None:
        check(task, truth, turns, meta, ids)


def _check_shape(row: dict, truth: _Truth) -> tuple[list, str, dict, list[str]]:
    """The row's (turns, task, meta, image ids), or RowError if it is malformed or uses an image
    outside the train split of its benchmark."""
    try:
        turns = turns_of(row)
    except ValueError as err:
        raise RowError("malformed", str(err)) from None
    task = row.get("task")
    if task not in P.INSTRUCTION_TASKS:
        raise RowError("malformed", f"unknown task {task!r}")
    try:
        meta = json.loads(row.get("meta") or "")
        assert isinstance(meta, dict)
    except (ValueError, AssertionError):
        raise RowError("malformed", "meta is not a JSON object") from None
    ids = list(row.get("image_ids") or [])
    n_markers = sum(P.count_images(u) for u, _ in turns)
    if n_markers != len(ids):
        raise RowError("malformed", f"{n_markers} image placeholders but {len(ids)} image ids")
    for iid in ids:
        r = truth.row(iid)
        if truth.meta["split"][r] != "train":
            raise RowError("test_split_image",
                           f"{iid!r} is a {truth.meta['split'][r]!r} image of its benchmark")
    return turns, task, meta, ids


def _parsed(parse, answer: str):
    """``parse(answer)``, a parse failure being a malformed row."""
    try:
        return parse(answer)
    except ValueError as err:
        raise RowError("malformed", str(err)) from None


# Each task's check: (task, truth, turns, meta, image ids) -> None, or RowError.

def _check_caption(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    answer = turns[0][1]
    iid = ids[0]
    k = int(meta.get("caption", -1))
    by_captioner = meta.get("source") == "captioner" if truth.captioned is None \
        else iid in truth.captioned
    expected_source = source_of(truth.meta["dataset"][truth.row(iid)], truth.captions(iid),
                                truth.attrs(iid), by_captioner)
    if meta.get("source") != expected_source:
        raise RowError("wrong_text", f"caption source {meta.get('source')!r}, expected {expected_source!r}")
    if (truth.captioned is not None or expected_source != "captioner") \
            and answer != truth.text({"image_id": iid, "caption": k}):
        raise RowError("wrong_text", "the caption is not the image's own text")


def _check_one_to_one(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    prompt, answer = turns[0]
    ident = truth.identity
    said = _parsed(P.parse_yes_no, answer)
    if task == "i2i_one_to_one":
        same = ident(ids[0]) == ident(ids[1])
    else:
        text = truth.text(meta["text"])
        _check_text_in(prompt, text)
        same = ident(meta["text"]["image_id"]) == ident(ids[0])
        if not same and truth.describes(text, meta["text"]["image_id"], ids[0]):
            raise RowError("wrong_yes_no", "a 'No' caption that also fits the image")
    if said != same:
        raise RowError("wrong_yes_no", f"answer {answer!r}, ground truth {P.answer_yes_no(same)}")


def _check_i2i_many_to_many(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    matches = [j for j, g in enumerate(ids[1:]) if truth.identity(g) == truth.identity(ids[0])]
    _check_refs(turns[0][1], matches, "matches")


def _check_t2i_many_to_one(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    prompt, answer = turns[0]
    texts = [truth.text(t) for t in meta["texts"]]
    if P.caption_options(texts) not in prompt:
        raise RowError("wrong_text", "the captions offered are not the ones in meta")
    fit = [j for j, (t, ref) in enumerate(zip(texts, meta["texts"]))
           if truth.describes(t, ref["image_id"], ids[0])]
    said = _parsed(P.parse_caption_choice, answer)
    if fit != [said]:
        raise RowError("wrong_index", f"answer caption {said + 1}, captions that fit: "
                                      f"{[f + 1 for f in fit]}")


def _check_t2i_one_to_many(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    prompt, answer = turns[0]
    text = truth.text(meta["text"])
    _check_text_in(prompt, text)
    fit = [j for j, g in enumerate(ids) if truth.describes(text, meta["text"]["image_id"], g)]
    if len(fit) != 1:
        raise RowError("wrong_index", f"{len(fit)} gallery images fit the description")
    _check_refs(answer, fit, "best match")


def _check_attr_compare(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    got = _parsed(P.parse_attr_compare, turns[0][1])
    if got != P.parse_attr_compare(P.answer_attr_compare(truth.attrs(ids[0]), truth.attrs(ids[1]))):
        raise RowError("wrong_text", "attribute comparison differs from the annotations")


def _check_attr_predict(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    got = _parsed(P.parse_attributes, turns[0][1])
    if got != truth.attrs(ids[0]):
        raise RowError("wrong_text", "predicted attributes differ from the annotation")


def _check_reid(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    _check_retrieval(turns, [j for j, g in enumerate(ids[1:]) if truth.identity(g) == truth.identity(ids[0])])


def _check_reid_t2i(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    _check_text_in(turns[0][0], truth.text(meta["text"]))
    owner = truth.identity(meta["text"]["image_id"])
    _check_retrieval(turns, [j for j, g in enumerate(ids) if truth.identity(g) == owner])


def _check_multimodal(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    """multimodal_retrieval: the conversation variant is an attribute retrieval in two turns."""
    if meta.get("variant") == "conversation":
        _check_attr_retrieval(task, truth, turns, meta, ids)
        return
    _check_text_in(turns[0][0], truth.text(meta["text"]))
    _check_retrieval(turns, [j for j, g in enumerate(ids[1:]) if truth.identity(g) == truth.identity(ids[0])])


def _check_attr_retrieval(task, truth: _Truth, turns, meta: dict, ids: list[str]) -> None:
    """attr_retrieval, and multimodal_retrieval's conversation (turn 1 picks one image with the
    queried attributes, turn 2 retrieves that person's other images)."""
    prompt, answer = turns[0]
    query = meta.get("query_attributes") or {}
    if not query or P.attribute_query(query) not in prompt:
        raise RowError("wrong_text", "the prompt does not state the queried attributes")
    matches = []
    for j, g in enumerate(ids):
        a = truth.attrs(g)
        if any(k not in a for k in query):
            raise RowError("wrong_index", f"Image {j + 1} is not annotated for {sorted(query)}")
        if all(a[k] == v for k, v in query.items()):
            matches.append(j)
    if task == "attr_retrieval":
        _check_retrieval(turns, matches)
        return
    if len(turns) != 2:
        raise RowError("malformed", "a retrieval conversation has two turns")
    pick = _parsed(P.parse_best_choice, answer)
    if pick not in matches:
        raise RowError("wrong_index", f"turn 1: Image {None if pick is None else pick + 1} "
                                      "does not have the queried attributes")
    follow, answer2 = turns[1]
    if f"Image {pick + 1} " not in follow:
        raise RowError("wrong_index", "turn 2 does not take the picked image as the query")
    same = [j for j, g in enumerate(ids) if j != pick and truth.identity(g) == truth.identity(ids[pick])]
    _check_refs(answer2, same, "turn 2 matches")


_TASK_CHECKS = {
    "caption": _check_caption,
    "i2i_one_to_one": _check_one_to_one,
    "t2i_one_to_one": _check_one_to_one,
    "i2i_many_to_many": _check_i2i_many_to_many,
    "t2i_many_to_one": _check_t2i_many_to_one,
    "t2i_one_to_many": _check_t2i_one_to_many,
    "attr_compare": _check_attr_compare,
    "attr_predict": _check_attr_predict,
    "reid_standard": _check_reid,
    "reid_cc": _check_reid,
    "reid_vi": _check_reid,
    "reid_t2i": _check_reid_t2i,
    "attr_retrieval": _check_attr_retrieval,
    "multimodal_retrieval": _check_multimodal,
}


def validate(dataset, store, *, captions=None, max_errors: int | None = None,
             progress: bool = True) -> Report:
    """Check every row of ``dataset`` (a path, Hub id or DatasetDict) against ``store`` (a path,
    Hub id or ImageStore). Returns a Report; ``report.ok`` is True when nothing is wrong.

    ``captions``: the captioner's texts the rows draw on ({image id: text}, or the path of a
    build's ``chatreid_captions.json``); by default that file of the dataset folder or Hub
    dataset (``build.captions_file``), if any.
    Without them, rows describing a captioned image cannot be checked and are reported."""
    from tqdm.auto import tqdm

    from chatreid.data.store import ImageStore
    from chatreid.instructions.build import captions_file, load

    is_path = isinstance(dataset, (str, bytes)) or hasattr(dataset, "__fspath__")
    dsd = load(dataset) if is_path else dataset
    if captions is None and is_path:
        captions = captions_file(os.fsdecode(dataset))
    if isinstance(captions, (str, os.PathLike)):
        try:
            captions = json.loads(Path(captions).read_text())["captions"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{captions}: not a captions file written by build-data ({err})") from None
    store = store if isinstance(store, ImageStore) else ImageStore.load(store)
    truth = _Truth(store, captions)
    report = Report()
    identities: dict[str, set] = {}
    for split in dsd:
        seen = identities.setdefault(split, set())
        bar = tqdm(total=len(dsd[split]), desc=f"validate {split}", unit="row", disable=not progress)
        for start in range(0, len(dsd[split]), 2000):
            batch = dsd[split][start:start + 2000]
            for j in range(len(batch["task"])):
                row = {k: batch[k][j] for k in batch}
                report.rows += 1
                try:
                    check_row(row, truth, split)
                except RowError as err:
                    report.errors.append((split, start + j, err.kind, f"{row.get('task')}: {err}"))
                except (KeyError, TypeError, IndexError, ValueError) as err:
                    report.errors.append((split, start + j, "malformed",
                                          f"{row.get('task')}: {type(err).__name__}: {err}"))
                for iid in row.get("image_ids") or []:
                    if iid in truth.index:
                        seen.add(truth.identity(iid))
                if max_errors is not None and len(report.errors) >= max_errors:
                    bar.close()
                    return report
            bar.update(len(batch["task"]))
        bar.close()
    splits = list(identities)
    for a_i, a in enumerate(splits):
        for b in splits[a_i + 1:]:
            for d, p in sorted(identities[a] & identities[b]):
                report.errors.append((b, -1, "identity_leak",
                                      f"identity {d}/{p} appears in both {a} and {b}"))
    return report
