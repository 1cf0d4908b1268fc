"""The common record every reader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SPLITS = ("train", "query", "gallery")
MODALITIES = ("visible", "infrared")


@dataclass
class Record:
    """One image of one benchmark.

    ``path`` is absolute on disk. ``pid`` and ``camid`` are numbered as the benchmark's standard
    loaders number them (Market-1501 junk images keep pid -1 and distractors pid 0, if the reader
    is asked to keep them; SYSU-MM01 cameras are 1..6). ``clothes_id`` is a string unique within
    the dataset (None where the benchmark has no clothes labels). For text-to-image benchmarks the
    test images are ``gallery`` records carrying their ``captions``; each caption is a text query
    whose identity is the record's pid (so no image is ever stored twice).
    """

    path: str
    pid: int
    camid: int
    split: str
    dataset: str
    clothes_id: str | None = None
    modality: str = "visible"
    captions: list[str] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"{self.path}: split {self.split!r} not in {SPLITS}")
        if self.modality not in MODALITIES:
            raise ValueError(f"{self.path}: modality {self.modality!r} not in {MODALITIES}")

    def to_dict(self) -> dict:
        return asdict(self)
