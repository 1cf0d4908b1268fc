"""``ReIDEngine``: the one object the chat app and the evaluation harness talk to."""

from __future__ import annotations

from typing import Callable, Sequence

from chatreid.retrieval.query import Query, SearchResult


class ReIDEngine:
    """A VLM (Qwen2-VL family) plus a pre-filter, answering Re-ID queries over a gallery.

    ``model_info``: ``{"name_or_path", "origin" ("hub" | "local"), "architecture"}``.
    """

    model_info: dict

    @classmethod
    def from_pretrained(cls, name_or_path: str, prefilter: str = "efficientnet_lite0",
                        device=None, dtype=None) -> "ReIDEngine":
        """Load the VLM and processor (Hub id or local folder) and the named pre-filter.

        ``prefilter``: ``efficientnet_lite0`` (default, pip-shipped ImageNet weights),
        ``resnet50`` (torchvision, where importable), ``vlm`` (the VLM's own vision encoder,
        mean-pooled), ``color_histogram``, or ``none``. Raises ValueError at once if the model
        lacks the tokens scoring needs (single-token "Yes"/"No", an image token).
        """
        raise NotImplementedError

    def search(self, query: Query, gallery: Sequence, strategy: str = "pairwise",
               top_k: int | None = None, tau: float | None = None, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None) -> SearchResult:
        """Rank ``gallery`` (PIL images) for ``query``.

        1. Pre-filter (image queries only): similarity of the query's features to every gallery
           image; the head kept for the VLM is the top ``top_k`` and/or those with similarity
           >= ``tau`` (both given: the intersection; neither: the whole gallery). Text- and
           attribute-only queries are not pre-filtered: the VLM scores the first ``top_k``
           gallery images in gallery order (all of them when ``top_k`` is None).
        2. The head is scored by the VLM: ``strategy="pairwise"`` gives each candidate the
           probability of "Yes" to the task's same-person question; ``"best_choice"`` runs the
           paper's multi-turn best-choice (see ``chatreid.retrieval.best_choice``).
        3. Ranking: the scored head by VLM score, then the rest in pre-filter order.

        ``progress(done, total)`` is called as VLM scoring advances.
        """
        raise NotImplementedError

    def compare(self, image_a, image_b) -> str:
        """The attribute commonality/uniqueness comparison of two people, generated."""
        raise NotImplementedError

    def describe(self, image) -> str:
        """A description of the pedestrian (the stage-1 captioning prompt), generated."""
        raise NotImplementedError
