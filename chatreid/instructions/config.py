"""The knobs of an instruction build, with the paper's defaults, and the task mixtures.

Mixture (section 3.2): "The two image-to-image tasks account for approximately 25% to 30% of the
overall data volume, while the remaining tasks each contribute roughly 10%." Two tasks at 27.5%
and five at 9% sum to 100%, inside both ranges. Stage 3's four Re-ID tasks and two retrieval
objectives have no published mixture; we weight them equally, and add the stage-2 Yes/No rows the
pairwise scorer reads (``prompts.SCORING_TASKS``) as a replay of 20% (``--mix i2i_one_to_one=0
t2i_one_to_one=0`` gives the paper's stage 3 alone), so the final checkpoint is scored in a format
it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from chatreid.instructions.sampling import EQ1_READINGS
from chatreid.prompts import SCORING_TASKS, STAGE_TASKS

DEFAULT_MIX: dict[int, dict[str, float]] = {
    1: {"caption": 1.0},
    2: {"i2i_one_to_one": 0.275, "i2i_many_to_many": 0.275, "t2i_one_to_one": 0.09,
        "t2i_many_to_one": 0.09, "t2i_one_to_many": 0.09, "attr_compare": 0.09,
        "attr_predict": 0.09},
    3: {**{t: 0.8 / 6 for t in STAGE_TASKS[3]}, SCORING_TASKS[0]: 0.12, SCORING_TASKS[1]: 0.08},
}


def parse_mix(stage: int, items: list[str] | None) -> dict[str, float]:
    """``["i2i_one_to_one=0.3", ...]`` over the stage's default mixture; weights are renormalised.

    A task set to 0 is left out. Unknown task names and negative weights are errors.
    """
    mix = dict(DEFAULT_MIX[stage])
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--mix {item!r}: expected TASK=WEIGHT")
        if name not in mix:
            raise ValueError(f"--mix {item!r}: stage {stage} has no task {name!r}; "
                             f"tasks: {', '.join(mix)}")
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"--mix {item!r}: weight {value!r} is not a number") from None
        if w < 0:
            raise ValueError(f"--mix {item!r}: negative weight")
        mix[name] = w
    total = sum(mix.values())
    if total <= 0:
        raise ValueError(f"stage {stage}: every task weight is 0")
    return {k: v / total for k, v in mix.items() if v > 0}


def parse_dataset_weights(items: list[str] | None) -> dict[str, float]:
    """``["sysu_mm01=2", ...]`` -> ``{"sysu_mm01": 2.0}``: each dataset's weight on query
    sampling (1 = unchanged; unnamed datasets keep 1). Not ``NAME=WEIGHT``, a weight that is not
    a positive finite number, or a dataset named twice is an error; whether the store holds the
    dataset is checked by ``build``."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--dataset-weight {item!r}: expected DATASET=WEIGHT, e.g. sysu_mm01=2")
        name = name.strip()
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"--dataset-weight {item!r}: weight {value!r} is not a number") from None
        if not math.isfinite(w) or w <= 0:
            raise ValueError(f"--dataset-weight {item!r}: the weight must be a positive number "
                             "(to leave a dataset out, build from a store without it)")
        if name in out:
            raise ValueError(f"--dataset-weight: {name!r} is given twice")
        out[name] = w
    return out


@dataclass
class BuildConfig:
    stage: int
    size: int | None = None              # rows in total (train + validation); stage 1: None = all
    seed: int = 0
    mix: dict[str, float] | None = None  # None: DEFAULT_MIX[stage]
    val_fraction: float = 0.05           # share of identities (and of rows) in validation
    paraphrase_prob: float = 0.0         # 0: the paper's verbatim prompts only
    # Stage 2.
    gallery: tuple[int, int] = (2, 8)    # N ~ Uniform{a..b}; with the query, <= 9 images a row
    # Eq. 1 (sampling.py): "per_step" keeps k = 2..N with probability 1/(k-1) each, a uniform
    # number of matches, as the paper's sentence asks; "inverse": P(m) ~ m^-match_power.
    eq1_reading: str = "per_step"
    match_power: float = 1.0             # the "inverse" reading's exponent
    positive_prob: float = 0.5           # one-to-one Yes/No tasks (section 3.1.2)
    # Share of the one-to-one image pairs' negatives drawn from people dressed alike (same upper
    # and lower colours, where the query is annotated; else uniform). The paper names no rule
    # for negatives, so 0 (uniform) is the default (docs/instructions.md).
    lookalike_negatives: float = 0.0
    captions: tuple[int, int] = (2, 4)   # many-to-one: number of captions offered
    same_identity_compare: float = 0.5   # attr_compare: share of pairs of one person
    # Stage 3.
    reid_gallery: tuple[int, int] = (1, 10)
    best_choice_prob: float = 0.5        # share of Re-ID rows in the multi-turn best-choice format
    # Share of those best-choice rows whose page holds no match (one turn, answered "None"). At
    # inference most pages of the pre-filter's head hold none; the paper's own galleries always
    # hold one ("ensuring at least one image matches the query identity"), so this departs from
    # it by design and stays a minority (docs/instructions.md).
    best_choice_none_prob: float = 0.3
    conversation_prob: float = 0.5       # multimodal_retrieval: share of multi-turn conversations
    max_query_attributes: int = 3        # attribute-based retrieval: 1..this many attributes
    # Stage 1.
    min_width: int = 32
    min_height: int = 64
    min_pixels: int = 32 * 64
    # Per-dataset weights on query sampling, stages 2 and 3 (e.g. {"sysu_mm01": 1.5}: the paper
    # "slightly increased the proportion of VI data"); --dataset-weight on the command line.
    dataset_weights: dict[str, float] = field(default_factory=dict)
    shard_size: int = 50_000

    def __post_init__(self):
        if self.stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {self.stage}")
        if self.mix is None:
            self.mix = dict(DEFAULT_MIX[self.stage])
        unknown = set(self.mix) - set(DEFAULT_MIX[self.stage])
        if unknown:
            raise ValueError(f"stage {self.stage} has no task(s) {sorted(unknown)}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if self.stage == 2 and self.gallery[0] < 2:
            raise ValueError("stage 2 galleries need at least 2 images (one match, one distractor)")
        for name in ("paraphrase_prob", "positive_prob", "best_choice_prob", "best_choice_none_prob",
                     "conversation_prob",
                     "same_identity_compare", "lookalike_negatives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.eq1_reading not in EQ1_READINGS:
            raise ValueError(f"eq1_reading must be one of {EQ1_READINGS}, got {self.eq1_reading!r}")
        if not 2 <= self.captions[0] <= self.captions[1] <= 10:
            raise ValueError(f"captions range must be within 2..10, got {self.captions}")
        if self.dataset_weights and self.stage == 1:
            raise ValueError("dataset weights (--dataset-weight) apply to stages 2 and 3, whose rows "
                             "sample queries; stage 1 captions every image")
        for name, w in self.dataset_weights.items():
            if not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise ValueError(f"dataset weight {name}={w!r}: expected a positive number")

    def to_dict(self) -> dict:
        return asdict(self)
