"""The state of one person's multi-turn Re-ID chat, and its turn.

``Conversation`` keeps what was said before (query photos, descriptive sentences, attributes, the
last ranking), turns each message into a ``Query`` for the engine (``chatreid.chat.intents`` reads
the words), runs the refinement actions (pick a result as the query, compare, describe, start
over) and writes the answer (``chatreid.chat.answers``). It knows nothing of Gradio: the app renders
a ``Reply``; tests drive ``Conversation`` with a fake engine.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from chatreid import prompts
from chatreid.chat.answers import (HELP_TEXT, answer_text, as_text, attribute_table,
                                   describe_attributes, describe_said, explain_invalid, gist,
                                   name_text, read_attribute_answer, unusable, words_used)
from chatreid.chat.engine import ChatEngine, keeps_encodings
from chatreid.chat.intents import KEPT_KEYS, Intent, infer_task, interpret, starts_new_search
from chatreid.data.attributes import VOCAB
from chatreid.retrieval.query import Query, SearchResult
from chatreid.tasks import AUTO, TASK_NAMES, TASKS



class ChatError(ValueError):
    """A request that cannot be answered as asked; its message is shown to the person as is."""


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
    # Where the gallery came from, in words ("the example “…”", "your upload"), for answers that
    # must say which gallery is loaded; "" when there is none.
    gallery_origin: str = ""
    # What the model said describing each gallery image (index -> ``gist``), to catch the same
    # words said of different people.
    described: dict = field(default_factory=dict)

    # -- state changes ------------------------------------------------------------------------
    def set_gallery(self, items: Sequence[GalleryItem], origin: str = "") -> None:
        """A new gallery starts a new query: the old ranking no longer refers to anything, and
        words written about another gallery's people (or another example's request) would be
        merged into the next one. ``origin``: where it came from, in words."""
        self.reset()
        self.gallery = list(items)
        self.gallery_origin = origin if self.gallery else ""
        self.gallery_features = None
        self.gallery_encodings = {}  # a new dict: a search still running fills the old one
        self.described = {}

    def gallery_line(self) -> str:
        """Which gallery is loaded, in words (for an answer that refused a new one)."""
        if not self.gallery:
            return "No gallery is loaded."
        return (f"The gallery loaded is still the earlier one: {len(self.gallery)} images from "
                f"{self.gallery_origin or 'an earlier upload'}.")

    def prepare(self, engine: ChatEngine) -> None:
        """Compute the gallery's pre-filter features now (the app does it on upload, outside the
        model queue), if the engine has a pre-filter and they are not computed yet."""
        if self.gallery and self.gallery_features is None:
            self.gallery_features = engine.prefilter_features([g.image for g in self.gallery])

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
        if task in KEPT_KEYS:
            # Another outfit (or an infrared camera) makes clothing colours meaningless, but what
            # survives it is scored beside the photo, as the paper's adaptive retrieval combines a
            # photo with text; what is left out is named in the answer (``words_used``).
            kept = {k: v for k, v in self.attributes.items() if k in KEPT_KEYS[task]}
            q.text, q.attributes = None, kept or None
        if task == "text_to_image":
            q.images = []
            if not q.text and self.attributes:
                q.text = _attributes_sentence(self.attributes)
        if task == "attribute":
            q.images = []
        return q

    # -- the turn -----------------------------------------------------------------------------
    def respond(self, text: str, engine: ChatEngine, *, images: Sequence = (), image_names: Sequence[str] = (),
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
            lead = (f"Using result{'s' if len(picked) > 1 else ''} "
                    f"{', '.join('#%d' % k for k in intent.indices)} ({', '.join(map(name_text, nms))}) "
                    f"{'added to' if intent.append else 'as'} the query")
            if intent.append:
                self.query_images += imgs
                self.query_names += nms
                lead += ". "
            else:
                lead += self._replace_photo(imgs, nms)
            extra = interpret(intent.text, has_query=True) if intent.text else Intent("search")
            return self._search(engine, extra, task, progress, top_k, strategy, lead=lead,
                                picked=True)
        # search
        if images:
            self.query_images, self.query_names = list(images), list(names) or [
                f"photo {i + 1}" for i in range(len(images))]
            # New photos start a new query; words in the same message describe it.
            self.description, self.attributes, self.task = "", {}, None
        elif not intent.refine or (not self.query_images and starts_new_search(text)):
            # A fresh text search replaces an earlier text-only query.
            self.description, self.attributes, self.task = "", {}, None
            self.query_images, self.query_names = [], []
        return self._search(engine, intent, task, progress, top_k, strategy)

    def _replace_photo(self, images: list, names: list[str]) -> str:
        """Make ``images`` the query's photos; what was said of the photos they replace is about
        someone else, so it goes. Returns the rest of the answer's lead: what went, what stays."""
        old = list(self.query_names) if self.query_images else []
        said = describe_said(self.description, self.attributes)
        self.query_images, self.query_names = images, names
        if not old:  # a text query: its words describe the person sought, and stay
            return (f". Kept: your description ({said}). " if said else ". ")
        lead = f", in place of {', '.join(map(name_text, old))}."
        if said:
            lead += f" Dropped what was said about {'them' if len(old) > 1 else 'it'} ({said})."
            self.description, self.attributes = "", {}
        kept = (f"the setting you asked for ({TASK_NAMES[self.task]})"
                if self.task in ("cloth_changing", "visible_infrared") else
                "nothing else of the earlier query")
        return lead + f" Kept: {kept}. "

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
            raise ChatError(explain_invalid(task, err)) from None
        if task == "attribute" and not self.attributes:
            raise ChatError("I could not find any attribute I know in that. Known: "
                            + "; ".join(f"{k} ({', '.join(map(str, v))})" for k, v in VOCAB.items()))
        try:
            # top_k cuts the pre-filter's ranking: image queries have one, and text queries
            # too when the pre-filter has a text side (a text-to-image pre-filter)
            can_cut = engine.can_prefilter(query)
            scored = min(top_k, len(self.gallery)) if can_cut and top_k else len(self.gallery)
            extra = {}
            if can_cut:
                self.prepare(engine)
                if self.gallery_features is not None:
                    extra["gallery_features"] = self.gallery_features
            if keeps_encodings(engine):  # the engine takes them back from us
                extra["gallery_encodings"] = self.gallery_encodings
            result = engine.search(query, [g.image for g in self.gallery], strategy=strategy,
                                   top_k=top_k if can_cut else None,
                                   progress=_in_images(progress, scored), **extra)
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

    def _said_of_another(self, gi: int, said: str) -> str | None:
        """Why a description is no description of this person: the model said the same words of
        a different image of this gallery (an exact duplicate photo may share them)."""
        words = gist(said)
        for j, earlier in self.described.items():
            if j != gi and earlier == words and self.gallery[j].digest != self.gallery[gi].digest:
                return (f"it said word for word the same of {name_text(self.gallery[j].name)}, a "
                        "different image, so it does not tell these people apart")
        return None

    def _describe(self, engine, k: int) -> Reply:
        gi = self.result_index(k)
        item = self.gallery[gi]
        lines = [f"Result #{k} ({name_text(item.name)}):"]
        said = engine.describe(item.image)
        why = unusable(said, min_words=3, sentences=True) or self._said_of_another(gi, said)
        self.described[gi] = gist(said)
        if why:
            lines.append(f"The model's description could not be used ({why}); it is not shown. "
                         "Its attribute answer and the search's scores below are what it offers "
                         "for this person.")
        else:
            lines.append(f"**The model's description:** {as_text(said.strip())}")
        attrs, why_attrs = read_attribute_answer(_attribute_answer(engine, item.image))
        if attrs:
            lines.append(f"**The model's attribute answer:** {describe_attributes(attrs)}.")
        else:
            lines.append(f"The model's attribute answer could not be used ({why_attrs}).")
        lines.append(self._standing(k))
        return Reply("\n\n".join(lines))


def _in_images(progress, n: int):
    """The engine's progress (done, total) in its own steps (a photo-plus-text search scores
    each image twice; best-choice counts forward passes) as the share of the ``n`` images it
    scores, so a progress bar labelled "images" never counts past the gallery."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(min(n, done * n // total) if total else n, n)
    return report


def _attribute_answer(engine: ChatEngine, image) -> str:
    return engine.predict_attributes(image)


def _attributes_sentence(attributes: dict) -> str:
    from chatreid.data.attributes import to_text
    return to_text(attributes)
