"""What the chat layer and the app use of a retrieval engine: ``ChatEngine``.

``chatreid.retrieval.ReIDEngine`` is the engine they run; tests run stand-ins with known outputs.
Both satisfy this Protocol. The optional abilities (a pre-filter, kept encodings, a token count,
images the processor refuses) have defaults here that say "not this engine": a stand-in that
subclasses ``ChatEngine`` inherits them, and the chat asks the engine, never ``getattr``.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from chatreid.retrieval.query import Query, SearchResult


class ChatEngine(Protocol):
    # {"name_or_path", "origin" ("hub" | "local"), "architecture"}: what the page says of the model
    model_info: dict = {}
    # The most pixels the model's processor reads of one image (None: it does not say); the app
    # reduces images to this on arrival. Not the upload cap (``Limits.upload_max_pixels``).
    max_pixels: int | None = None

    def search(self, query: Query, gallery: Sequence, strategy: str = "pairwise", top_k: int | None = None,
               tau: float | None = None, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None, **kept) -> SearchResult:
        """Rank ``gallery`` for ``query``; ``kept`` is what the caller keeps for the engine
        (``gallery_features``, ``gallery_encodings``) where the engine has those."""
        ...

    def compare(self, image_a, image_b) -> str:
        """Why two people are or are not the same, in the model's words."""
        ...

    def describe(self, image) -> str:
        """The person in ``image``, in the model's words."""
        ...

    def predict_attributes(self, image) -> str:
        """The model's answer to the attribute question for ``image`` ("" if it has none)."""
        return ""

    def can_prefilter(self, query: Query) -> bool:
        """Whether a pre-filter can rank the gallery for ``query`` (and so cut it to a head)."""
        return bool(query.images)

    def prefilter_features(self, images: Sequence):
        """The pre-filter's features of ``images``, for the caller to keep; None without one."""
        return None

    def encoding_bytes(self, images: Sequence) -> int | None:
        """Memory the VLM's encodings of ``images`` will take when the caller keeps them (passed
        back as ``search(gallery_encodings=...)``); None: this engine keeps none."""
        return None

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` for the model's tokenizer; None: it has none to count with."""
        return None

    def image_refusal(self, image) -> str | None:
        """Why the model's processor cannot read ``image``; None: it can."""
        return None


def keeps_encodings(engine: ChatEngine) -> bool:
    """Whether ``engine`` takes the gallery's encodings back from its caller (and so a session
    keeps and budgets them)."""
    return engine.encoding_bytes([]) is not None
