"""What a search asks (``Query``) and what it answers (``SearchResult``).

These two dataclasses are the contract between the retrieval engine, the evaluation harness and
the chat app; keep them plain (no torch, no model objects) so any layer can build or read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatreid.tasks import IMAGE_TASKS, REID_TASKS, TASKS  # noqa: F401  (IMAGE_TASKS: re-exported)


@dataclass
class Query:
    """One retrieval request.

    - ``images``: the query photos (PIL images). Required for standard, cloth_changing and
      visible_infrared; optional for adaptive (image + text); unused by text_to_image/attribute.
      Only the first image is shown to the VLM (the paper's prompts name one "person image");
      the pre-filter averages the features of all of them.
    - ``text``: a free-form description (text_to_image, adaptive).
    - ``attributes``: partial attributes in the vocabulary of ``chatreid.data.attributes``
      (attribute task), e.g. ``{"upper_color": "red", "backpack": True}``.
    - ``task``: one of ``chatreid.tasks.TASKS``.
    """

    images: list = field(default_factory=list)
    text: str | None = None
    attributes: dict | None = None
    task: str = "standard"

    def validate(self) -> None:
        """Raise ValueError if the query cannot be answered under its task."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {TASKS}")
        if self.task in REID_TASKS and not self.images:
            raise ValueError(f"task {self.task!r} needs at least one query image")
        if self.task == "text_to_image" and not (self.text and self.text.strip()):
            raise ValueError("task 'text_to_image' needs a non-empty text description")
        if self.task == "attribute" and not self.attributes:
            raise ValueError("task 'attribute' needs a non-empty attributes dict")
        if self.task == "adaptive" and not (self.images or self.text or self.attributes):
            raise ValueError("task 'adaptive' needs an image, a text or attributes")

    @property
    def has_image(self) -> bool:
        return bool(self.images)


@dataclass
class SearchResult:
    """The ranked gallery.

    - ``ranking``: every gallery index exactly once, best first.
    - ``scores``: aligned with ``ranking``; higher is better. The first ``num_scored`` entries are
      VLM scores in [0, 1]: pairwise, P(Yes) (non-increasing along the ranking); best-choice,
      each pick's confidence among the labels of its turn (the ranking is the pick order, so
      these need not decrease). The rest are the pre-filter's similarities minus 2, below
      every VLM score. Rank by ``ranking``, not by sorting ``scores``.
    - ``num_scored``: how many of the head were scored by the VLM.
    - ``answer``: the model's answer in words (which gallery images match).
    - ``prefilter_scores``: the pre-filter similarity per gallery index (gallery order); all 0.0
      when no pre-filter ran (text/attribute-only queries or ``prefilter="none"``).
    """

    ranking: list[int]
    scores: list[float]
    num_scored: int
    answer: str
    prefilter_scores: list[float]
