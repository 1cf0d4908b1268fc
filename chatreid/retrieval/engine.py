"""``ReIDEngine``: the one object the chat app and the evaluation harness talk to.

    engine = ReIDEngine.from_pretrained("Qwen/Qwen2-VL-2B-Instruct")      # or a local folder
    result = engine.search(Query(images=[photo]), gallery, top_k=50)
    result.ranking[:10], result.answer

Flow of ``search``: validate -> pre-filter (image queries) -> VLM scores the head (pairwise
Yes-probability or multi-turn best-choice) -> ranking = scored head, then the rest in pre-filter
order. See ``search`` for exactly which images the VLM sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from chatreid import prompts
from chatreid.retrieval import best_choice
from chatreid.retrieval.prefilter import build_prefilter, check_prefilter, select_head
from chatreid.retrieval.query import Query, SearchResult
from chatreid.retrieval.scorer import (EncodedImage, PairScorer, chat_prompt, encode, encoded_tokens,
                                       processor_refusal)
from chatreid.tasks import REID_PROMPT

STRATEGIES = ("pairwise", "best_choice")



def query_text(query: Query) -> str | None:
    """The text side of a query: its description, its attributes as phrases, or both."""
    parts = []
    if query.text and query.text.strip():
        parts.append(query.text.strip())
    if query.attributes:
        parts.append(prompts.attribute_query(query.attributes))
    return "; ".join(parts) or None


def _check_images(images, what: str) -> None:
    from PIL import Image

    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise TypeError(f"{what}[{i}] is a {type(im).__name__}, not a PIL image")


class ReIDEngine:
    """A VLM (Qwen2-VL family) plus a pre-filter, answering Re-ID queries over a gallery.

    ``model_info``: ``{"name_or_path", "origin" ("hub" | "local"), "architecture"}``.
    ``window``: best-choice page size, at most 9; ``ranking``: how best-choice makes its final
    list, ``"confidence"`` (the paper's) or ``"merge"`` (ours); ``debias``: ``"rotate"`` (read each
    page in all its cyclic rotations) or ``"none"`` (see ``chatreid.retrieval.best_choice``).
    """

    def __init__(self, model, processor, prefilter: str = "efficientnet_lite0", name_or_path: str = "",
                 window: int = 4, ranking: str = "confidence", debias: str = "rotate"):
        self.model = model.eval()
        self.processor = processor
        self.scorer = PairScorer(model, processor)  # raises now if tokens are missing
        best_choice.label_tokens(processor, window)  # likewise for best-choice labels
        best_choice.check_options(ranking, debias)
        self.window, self.ranking, self.debias = window, ranking, debias
        check_prefilter(prefilter)
        self.prefilter_name = prefilter
        self.prefilter = build_prefilter(prefilter, model=model, processor=processor, device=model.device)
        origin = "local" if name_or_path and Path(name_or_path).exists() else "hub"
        archs = getattr(model.config, "architectures", None) or [type(model).__name__]
        self.model_info = {"name_or_path": str(name_or_path), "origin": origin, "architecture": archs[0]}
        self._gallery_key = None  # identity of the last gallery whose features are cached
        self._gallery_feats = None

    @classmethod
    def from_pretrained(cls, name_or_path: str, prefilter: str = "efficientnet_lite0",
                        device=None, dtype=None, window: int = 4, ranking: str = "confidence",
                        debias: str = "rotate") -> "ReIDEngine":
        """Load the VLM and processor (Hub id or local folder) and the named pre-filter.

        ``prefilter``: ``efficientnet_lite0`` (default, pip-shipped ImageNet weights),
        ``resnet50`` (torchvision, where importable), ``vlm`` (the VLM's own vision encoder,
        mean-pooled), ``color_histogram``, ``none``, or the folder / Hub id of a trained Re-ID
        baseline or text-to-image pre-filter (``chatreid.baseline``; the latter also ranks the
        gallery for text queries). ``device``: default CUDA when available.
        ``dtype``: default the checkpoint's. The vision tower's attention is batched over
        equal-size images (``chatreid.model.fast``; same outputs, fewer calls). Raises ValueError at once if the model lacks the
        tokens scoring needs (single-token "Yes"/"No", an image token).
        """
        from chatreid.model import family_of, load_model_and_processor

        check_prefilter(prefilter)  # a bad path fails before the VLM loads
        model, processor = load_model_and_processor(name_or_path, dtype=dtype or "auto")
        # one attention call per group of equal-size images instead of one per image (same outputs)
        family_of(model).enable_fast_attention(model)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(model.to(device), processor, prefilter=prefilter, name_or_path=name_or_path, window=window,
                   ranking=ranking, debias=debias)

    # ------------------------------------------------------------------------------------------
    @property
    def max_pixels(self) -> int | None:
        """The most pixels the processor lets the model read of one image (Qwen2-VL's
        ``max_pixels``, stored as ``size["longest_edge"]``); None if the processor does not say.
        A caller may reduce images to this on arrival without changing what the model sees."""
        ip = getattr(self.processor, "image_processor", None)
        size = getattr(ip, "size", None) or {}
        value = getattr(ip, "max_pixels", None) or (size.get("longest_edge") if hasattr(size, "get")
                                                     else getattr(size, "longest_edge", None))
        return int(value) if value else None

    def image_refusal(self, image) -> str | None:
        """Why the model's processor cannot read ``image`` (Qwen2-VL's resize refuses an aspect
        ratio over 200), in the processor's words, or None: asked of the processor itself, so a
        caller can refuse such an image on arrival instead of failing every search that holds it."""
        return processor_refusal(self.processor.image_processor, image.width, image.height)

    def encoding_bytes(self, images: Sequence) -> int:
        """Memory the VLM's encodings of ``images`` take (what ``search(gallery_encodings=...)``
        keeps): each image's merged-patch tokens, from its size alone (the processor's resize
        rule; no pixel is read), times the language model's hidden size and the model's dtype.
        A caller that keeps a gallery's encodings budgets them with this before they exist."""
        ip = self.processor.image_processor
        cfg = self.model.config
        hidden = getattr(getattr(cfg, "text_config", None), "hidden_size", None) or cfg.hidden_size
        per_token = int(hidden) * torch.empty((), dtype=self.model.dtype).element_size()
        return sum(encoded_tokens(ip, im.width, im.height) for im in images) * per_token

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model's tokenizer (to bound a request before it runs)."""
        return len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prefilter_features(self, images: Sequence) -> np.ndarray | None:
        """Pre-filter features of ``images``, computed now and not cached here (None without a
        pre-filter): a caller that keeps a gallery, such as one chat session among many, keeps
        its features with it and passes them to ``search(gallery_features=...)``."""
        _check_images(images, "images")
        return None if self.prefilter is None else self.prefilter.features(images)

    def gallery_features(self, gallery: Sequence) -> np.ndarray:
        """Pre-filter features of the gallery, cached while the same image objects come back
        (the harness asks thousands of queries against one gallery)."""
        key = tuple(id(im) for im in gallery)
        if key != self._gallery_key:
            self._gallery_feats = self.prefilter.features(gallery)
            self._gallery_key, self._gallery_ref = key, list(gallery)  # the ref keeps ids valid
        return self._gallery_feats

    def can_prefilter(self, query: Query) -> bool:
        """Whether the pre-filter can rank the gallery for ``query``: by its images, or by its
        text where the pre-filter has a text side (``train/text_prefilter.py``)."""
        if self.prefilter is None:
            return False
        return query.has_image or (self.prefilter.supports_text and query_text(query) is not None)

    def _validate(self, query, gallery, strategy, top_k, tau, batch_size):
        if not isinstance(query, Query):
            raise TypeError(f"query must be a Query, got {type(query).__name__}")
        query.validate()
        _check_images(query.images, "query.images")
        if gallery is None or len(gallery) == 0:
            raise ValueError("the gallery is empty")
        _check_images(gallery, "gallery")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (top_k is not None or tau is not None) and not self.can_prefilter(query):
            why = "prefilter='none'" if self.prefilter is None else f"a {query.task!r} query without an image"
            raise ValueError(f"top_k/tau need pre-filter similarities, and {why} has none: the VLM scores the "
                             f"whole gallery; pass top_k=None and tau=None")

    def search(self, query: Query, gallery: Sequence, strategy: str = "pairwise",
               top_k: int | None = None, tau: float | None = None, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None,
               gallery_features: np.ndarray | None = None,
               gallery_encodings: dict[int, EncodedImage] | None = None) -> SearchResult:
        """Rank ``gallery`` (PIL images) for ``query``.

        1. Pre-filter, image queries only: cosine similarity of the query's features (mean over
           its images) to every gallery image. The head kept for the VLM is the top ``top_k``
           and/or those with similarity >= ``tau`` (both: the intersection; neither: the whole
           gallery). Text- and attribute-only queries are ranked by a text-to-image pre-filter
           (``train/text_prefilter.py``) where one is loaded; otherwise they, and
           ``prefilter="none"``, have no similarity: the VLM scores the whole gallery, and
           giving ``top_k``/``tau`` is an error (rather than an arbitrary cut). A caption with
           neither ``top_k`` nor ``tau`` gets the text pre-filter's own head (``text_head``, the
           ``head`` of its config.json; none there: the whole gallery).
        2. The head is scored by the VLM. ``"pairwise"``: each candidate's P(Yes) to the Yes/No
           question (``chatreid.retrieval.scorer.yes_no_prompt``); an adaptive query with both an
           image and text gets the mean of the image question's and the caption question's
           P(Yes). ``"best_choice"``: ``chatreid.retrieval.best_choice`` with the task's
           stage-3 prompt; an image's score is its confidence, P(Image k) in the turn that picked it.
        3. Ranking: pairwise, the head by descending P(Yes) (ties: pre-filter order); best-choice,
           by descending confidence (``ranking="confidence"``) or the merge's pick order
           (``"merge"``). Then the rest of the gallery in pre-filter order, with score
           ``similarity - 2`` (below every VLM score, which lie in [0, 1]).

        Only the first query image is shown to the VLM (the paper's prompts name one person
        image); the pre-filter uses all. ``progress(done, total)`` follows VLM scoring.
        ``gallery_features``: the gallery's pre-filter features from ``prefilter_features``, when
        the caller keeps them (else the engine caches those of the last gallery searched).
        ``gallery_encodings``: a dict (gallery index -> ``EncodedImage``) the caller keeps with
        the gallery, as a chat session does: head images found in it are not encoded again, the
        others are encoded and added (on the CPU, so it can outlive a GPU worker); a query photo
        that is one of the gallery's image objects (a result used as the query) reuses its
        encoding too. The caller bounds its memory (``encoding_bytes``) and starts a new dict for
        a new gallery. Without it, every image the VLM sees is encoded for this search alone.
        """
        self._validate(query, gallery, strategy, top_k, tau, batch_size)
        if top_k is None and tau is None and not query.has_image and self.can_prefilter(query):
            top_k = self.prefilter.text_head  # the text pre-filter's own head (None: the whole gallery)
        n = len(gallery)
        if gallery_features is not None and len(gallery_features) != n:
            raise ValueError(f"gallery_features has {len(gallery_features)} rows for a gallery of {n}")
        if self.prefilter is not None and query.has_image:
            feats = gallery_features if gallery_features is not None else self.gallery_features(gallery)
            sim = self.prefilter.similarity(query.images, feats)
        elif self.can_prefilter(query):  # a text pre-filter ranks the gallery for the caption
            feats = gallery_features if gallery_features is not None else self.gallery_features(gallery)
            sim = self.prefilter.text_similarity(query_text(query), feats)
        else:
            sim = np.zeros(n, dtype=np.float32)
        head, rest = select_head(sim, top_k, tau)
        text = query_text(query)
        if len(head) == 0:
            return SearchResult([int(i) for i in rest], [float(sim[i]) - 2 for i in rest], 0,
                                f"No gallery image passed the pre-filter (tau={tau}).", [float(s) for s in sim])
        q_enc, cands = self._encode(query, gallery, [int(i) for i in head], batch_size, gallery_encodings)
        if strategy == "pairwise":
            scores = self._pairwise(q_enc, cands, text, batch_size, progress)
            order = np.argsort(-scores, kind="stable")
            head_scores = scores[order]
            head_order = head[order]
            matches = [int(head[i]) for i in order if scores[i] > 0.5]
        else:
            res = best_choice.rank(self.scorer.reader, self.scorer.builder, self.processor,
                                   self._first_turn(query, text), [q_enc] if q_enc is not None else [],
                                   cands, window=self.window, progress=progress, ranking=self.ranking,
                                   debias=self.debias)
            head_order = head[res.order]
            head_scores = np.asarray(res.confidence)
            # the model's matches: the images it named before it would rather say "None"
            matches = [int(i) for i, m in zip(head_order, res.matched) if m]
        ranking = [int(i) for i in head_order] + [int(i) for i in rest]
        scores_out = [float(s) for s in head_scores] + [float(sim[i]) - 2 for i in rest]
        answer = self._answer(matches, head_order, head_scores, strategy)
        return SearchResult(ranking, scores_out, len(head), answer, [float(s) for s in sim])

    def _encode(self, query: Query, gallery: Sequence, head: list[int], batch_size: int,
                kept: dict[int, EncodedImage] | None):
        """(query encoding or None, encodings of the head): every image the VLM sees goes through
        the vision tower once per search, or once per gallery when the caller keeps ``kept``."""
        shown = query.images[0] if query.has_image else None
        if kept is None:
            encoded = encode(self.model, self.processor, ([shown] if shown is not None else [])
                             + [gallery[i] for i in head], batch_size)
            return (encoded[0], encoded[1:]) if shown is not None else (None, encoded)
        # a query photo that is one of the gallery's images (a result used as the query) is
        # encoded, and kept, as that gallery image
        at = next((i for i, im in enumerate(gallery) if im is shown), None) if shown is not None else None
        missing = [i for i in head if i not in kept]
        if at is not None and at not in kept and at not in missing:
            missing.append(at)
        own = shown is not None and at is None  # a photo of its own: encoded for this search only
        encoded = encode(self.model, self.processor, ([shown] if own else []) + [gallery[i] for i in missing],
                         batch_size) if own or missing else []
        q_enc = encoded[0] if own else None
        for i, e in zip(missing, encoded[1:] if own else encoded):
            kept[i] = EncodedImage(e.embeds.cpu(), e.grid_thw.cpu(), e.thw)
        if at is not None:
            q_enc = kept[at]
        return q_enc, [kept[i] for i in head]

    def _pairwise(self, q_enc, cands, text, batch_size, progress):
        if q_enc is not None and text is not None:  # adaptive: image and text questions, averaged
            total = 2 * len(cands)
            a = self.scorer.score(cands, query_image=q_enc, batch_size=batch_size,
                                  progress=progress and (lambda d, t: progress(d, total)))
            b = self.scorer.score(cands, text=text, batch_size=batch_size,
                                  progress=progress and (lambda d, t: progress(len(cands) + d, total)))
            return (a + b) / 2
        if q_enc is not None:
            return self.scorer.score(cands, query_image=q_enc, batch_size=batch_size, progress=progress)
        return self.scorer.score(cands, text=text, batch_size=batch_size, progress=progress)

    @staticmethod
    def _best_choice_prompt(query: Query, text: str | None) -> str:
        """The task's stage-3 prompt (chatreid.prompts name) that best-choice pages are read with."""
        if query.task in REID_PROMPT:
            return REID_PROMPT[query.task]
        if query.task == "attribute":
            return "attr_retrieval"
        if query.task == "adaptive" and query.has_image:  # whatever the query holds
            return "multimodal_retrieval" if text else "reid_standard"
        return "reid_t2i"

    @classmethod
    def _first_turn(cls, query: Query, text: str | None) -> Callable[[str], str]:
        """The task's stage-3 prompt around a gallery block (chatreid.prompts)."""
        name = cls._best_choice_prompt(query, text)
        if name == "attr_retrieval":
            return lambda g: prompts.render(name, attributes=prompts.attribute_query(query.attributes), gallery=g)
        if name in ("reid_t2i", "multimodal_retrieval"):
            words = query.text.strip() if query.task == "text_to_image" else text
            return lambda g: prompts.render(name, text=words, gallery=g)
        return lambda g: prompts.render(name, gallery=g)

    @classmethod
    def scoring_prompts(cls, query: Query, strategy: str) -> tuple[str, ...]:
        """The prompts (``chatreid.prompts`` task names) ``search`` reads scores from for this
        query: the Yes/No questions for ``pairwise``, the stage-3 task prompt for best-choice."""
        text = query_text(query)
        if strategy == "best_choice":
            return (cls._best_choice_prompt(query, text),)
        return (("i2i_one_to_one",) if query.has_image else ()) + (("t2i_one_to_one",) if text else ())

    @property
    def trained_tasks(self) -> tuple[str, ...] | None:
        """The tasks the checkpoint's last training stage had rows of (``chatreid_tasks`` in its
        config, written by ``train/sft.py``); None when the checkpoint does not say (a base model)."""
        tasks = getattr(self.model.config, "chatreid_tasks", None)
        return tuple(tasks) if tasks else None

    def untrained_scoring(self, query: Query, strategy: str) -> list[str]:
        """The prompts this search would score with that the checkpoint's last stage never
        trained: its scores then measure how a format transfers, not what training taught."""
        trained = self.trained_tasks
        return [] if trained is None else [t for t in self.scoring_prompts(query, strategy) if t not in trained]

    @staticmethod
    def _answer(matches, head_order, head_scores, strategy) -> str:
        """The answer in words; images are named by gallery position ("Image k", 1-based)."""
        if matches:
            return prompts.answer_reid(matches)
        best = int(head_order[0])
        what = "P(same person)" if strategy == "pairwise" else "confidence"
        return (f"{prompts.NONE}: no candidate was judged the same person; the closest is "
                f"{prompts.image_ref(best)} ({what} {float(head_scores[0]):.2f}).")

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, text: str, images: list, max_new_tokens: int) -> str:
        _check_images(images, "images")
        chat = chat_prompt(self.processor, text)
        inputs = self.processor(text=[chat], images=[im.convert("RGB") for im in images], return_tensors="pt")
        inputs = inputs.to(self.model.device)
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def compare(self, image_a, image_b, max_new_tokens: int = 128) -> str:
        """The attribute commonality/uniqueness comparison of two people (``attr_compare``), generated."""
        return self._generate(prompts.render("attr_compare"), [image_a, image_b], max_new_tokens)

    def predict_attributes(self, image, max_new_tokens: int = 96) -> str:
        """The model's attribute annotation of one pedestrian (the stage-1 ``attr_predict``
        prompt), generated; ``chatreid.prompts.parse_attributes`` reads a well-formed answer."""
        return self._generate(prompts.render("attr_predict"), [image], max_new_tokens)

    def describe(self, image, max_new_tokens: int = 128) -> str:
        """A description of the pedestrian (the stage-1 ``caption`` prompt), generated."""
        return self._generate(prompts.render("caption"), [image], max_new_tokens)
