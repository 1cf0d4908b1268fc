"""The demo build's configuration: ``DemoConfig`` (everything the build depends on), the named
configurations ``CONFIGS`` (full, ship, small), ``override`` (``--set FIELD=VALUE``), and the names
the driver and the report share (layouts, settings, stage chains, seed labels).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field

from chatreid.evaluation.benchmarks import SYNTH_PROTOCOLS
from chatreid.tasks import PROTOCOL_TASK, setting_name

LAYOUTS = ("market", "ltcc", "sysu", "pedes")
# The demo measures each world in its setting: the LTCC-layout world under `cc` (cloth-changing
# queries only), not the `general` default that the paper's Table 2 compares on LTCC.
PROTOCOL = {"ltcc": "cc"}
SETTING = {l: setting_name(PROTOCOL_TASK[PROTOCOL.get(l) or SYNTH_PROTOCOLS[l][0]]) for l in LAYOUTS}  # layout -> words
# The ablation rows of Table 4 (stage chains), plus "1+2" (the demo chain before stage 3) as a diagnostic.
CHAINS = {"1+2+3": (1, 2, 3), "2+3": (2, 3), "3": (3,), "1+2": (1, 2)}


@dataclass
class DemoConfig:
    """Everything the build depends on; the seed fixes every random choice."""

    name: str
    # The stage data's worlds: enough identities and rows that no row repeats within a stage
    # (fine-tuning the pretrained base on a few dozen people memorises them and forgets the rest)
    ids: dict = field(default_factory=lambda: {"market": 300, "ltcc": 150, "sysu": 150, "pedes": 300})
    images_per_id: dict | None = None  # None: chatreid synth's defaults per layout
    # model (random init): decoder width/depth, vision tower depth/width, patch size
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    vision_depth: int = 4
    vision_embed: int = 96
    vision_heads: int = 4
    patch: int = 16
    # The image processor's pixel cap: 128x64 crops are read at 64x32, 4x2 patches of 16 pixels,
    # 2 tokens after the 2x2 merger. Comparing two images is then a token-against-token match, and
    # at equal wall time it learns faster than 8 tokens a crop (docs/demo-learning.md).
    max_pixels: int = 64 * 32
    # stage 1's pixel cap (0: max_pixels): the paper reads stage 1 at a higher resolution than
    # stages 2-3; 128 * 64 reads a crop as 8 tokens
    stage1_max_pixels: int = 0
    # instruction rows per stage (train + validation)
    rows: dict = field(default_factory=lambda: {1: 6000, 2: 12000, 3: 3000})
    # stage 2: the pairwise scorer reads the one-to-one Yes/No answers, so they get more weight
    # than the paper's mixture (27.5% / 9%); the other five tasks stay in.
    mix2: tuple = ("i2i_one_to_one=0.35", "i2i_many_to_many=0.15", "t2i_one_to_one=0.2",
                   "t2i_many_to_one=0.075", "t2i_one_to_many=0.075", "attr_compare=0.075",
                   "attr_predict=0.075")
    gallery2: tuple = (2, 4)  # stage-2 gallery N ~ U{a..b}: few images a row keeps rows short
    gallery3: tuple = (2, 5)
    # stage 3's mixture over its default (--mix of build-data; empty: the default, whose Yes/No
    # replay is 20% of the rows)
    mix3: tuple = ()
    # share of the stages' one-to-one image negatives drawn from people dressed alike (build-data
    # --lookalike-negatives); the pretraining draws half of its negatives that way
    lookalike_negatives: float = 0.0
    # Stage 1 needs hundreds of steps before colour words come from the image (docs/demo-learning.md)
    # stage 2's held-out AUC peaks near step 200 and then falls (docs/demo-learning.md, fourth round)
    steps: dict = field(default_factory=lambda: {1: 800, 2: 200, 3: 150})
    batch: int = 8
    # Fine-tuning rates: at 1e-3 the stages wipe out the pretrained comparison within 200 steps,
    # stage 2 at 2e-4 still takes most of it (third round), stage 3 at 1e-4 a tenth of the AUC
    # after stage 2 (fourth round), stage 1 at 2e-4 costs the visible-infrared setting 6 mAP points
    # over three seeds that 5e-5 keeps (fifth round; docs/demo-learning.md)
    lr: dict = field(default_factory=lambda: {1: 5e-5, 2: 5e-5, 3: 3e-5})
    schedule: str = "constant_with_warmup"  # transformers' lr_scheduler_type, after a 5% warmup
    # Stage 2's decoder. The paper's surgery ("base") puts the stage-1 encoder into a fresh copy of
    # the *pretrained* base decoder, which already speaks. Our base is random, so a fresh decoder
    # throws away everything stage 1 taught it, including how to read image tokens; "stage1"
    # keeps the stage-1 decoder (see docs/demo-learning.md).
    stage2_decoder: str = "base"
    # Stage 2's comparison curriculum (our engineering, not the paper's): after its instruction rows,
    # stage 2 goes on with ``chatreid.training.compare``'s pair curriculum (up to the camera level:
    # another camera, other clothes, infrared against visible) on the stage data's own people, fresh
    # pairs every step. Row-based stage 2 alone does not teach a generic base to compare new people
    # (docs/demo-learning.md, (25)-(26)); 0 steps: rows only.
    stage2_compare_steps: int = 0
    stage2_compare_lr: float = 1e-3
    stage2_compare_match: int = 6  # caption-matching rows per curriculum batch (text against image)
    stage2_hard_positives: float = 0.0  # CompareConfig.hard_positives: positives in other clothes or light
    # pre-filter head the VLM re-ranks: the ImageNet pre-filter's top 10 holds too few of the
    # matches (a perfect re-ranker of it reaches market mAP 23.6; of its top 100, 61.0)
    top_k: int = 100
    prefilter: str = "efficientnet_lite0"  # eval/run.py's default (pip-shipped ImageNet weights)
    sysu_trials: int = 1
    ablation: bool = True
    diagnostic: bool = True  # also evaluate 1+2 (the demo chain before stage 3)
    seed: int = 0
    # Comparison pretraining (chatreid.training.compare): the miniature's stand-in for the
    # pretrained VLM the paper starts from, on worlds of its own (no person of the stage data or of
    # the evaluation). Every chain of the ablation starts from this one base. 0 steps: random base.
    pretrain_ids: dict = field(default_factory=lambda: {"market": 3000, "sysu": 800, "ltcc": 800})
    pretrain_images_per_id: dict = field(default_factory=lambda: {"market": 4, "sysu": 6, "ltcc": 6})
    # at 2,000 steps the default build's comparator was too weak to re-rank a top 100 (below the
    # pre-filter); 5,000 fits the default build's 30 minutes (docs/benchmarks.md, "Demo build")
    pretrain_steps: int = 5000
    pretrain_batch: int = 32
    pretrain_lr: float = 1e-3
    pretrain_describe: int = 6  # caption rows per pretraining batch, beside the pairs: the base describes too
    pretrain_hard_negatives: float = 0.5  # CompareConfig.hard_negatives (docs/demo-learning.md, (13))
    # CompareConfig.mode: "reid" pretrains on real Re-ID pairs (across cameras, clothes and
    # modalities), "generic" only on what a general VLM brings (one picture against an edited copy
    # of it, describing, caption matching) and leaves Re-ID to the stages (docs/demo-learning.md)
    pretrain_mode: str = "reid"
    pretrain_match: int = 0  # caption-matching rows per pretraining batch (CompareConfig.match)
    pretrain_grey: float = 0.0  # share of pretraining pairs with a grey-scale second image (CompareConfig.grey)
    # The text-to-image pre-filter shipped with the model (chatreid.demo.text_prefilter): a pedes
    # world of its own with this many identities (0: none; text queries then have no pre-filter),
    # and the epochs of its Re-ID baseline (docs/benchmarks.md, "Text-to-image pre-filter")
    text_prefilter_ids: int = 600
    text_prefilter_epochs: int = 11
    # Evaluation on fresh worlds (their held-out identities; never trained on, never pretrained on)
    eval_ids: dict = field(default_factory=lambda: {"market": 100, "ltcc": 60, "sysu": 60, "pedes": 200})
    # stage 1's attribute answers and descriptions (chatreid.demo.attributes), on this many held-out
    # images of the market evaluation world, for the stage-1 model and the demo model (0: not measured)
    attribute_images: int = 60
    seeds: int = 1  # stage-training seeds of the ablation (one shared base); the demo is seed 0's 1+2+3
    # the first stage seed's offset: builds with --reuse-pretraining and stage_seed 1, 2 ... train
    # further stage seeds of one base side by side (one core each)
    stage_seed: int = 0
    curve_every: int = 100  # held-out P(Yes) AUC every this many steps of each stage
    curve_pairs: int = 100  # same and other pairs per layout for the learning curves

    def __post_init__(self):
        if self.pretrain_mode not in ("reid", "generic"):
            raise ValueError(f"pretrain_mode must be 'reid' or 'generic', not {self.pretrain_mode!r}")
        if self.stage2_decoder not in ("base", "stage1"):
            raise ValueError(f"stage2_decoder must be 'base' (the paper's surgery) or 'stage1', not {self.stage2_decoder!r}")

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    # the default build: the whole recipe, sized for 30 minutes on 2 CPU cores
    "full": DemoConfig("full"),
    # the shipped demo model (models/chatreid-demo, docs/demo-report.md): the same recipe with a
    # longer pretraining (12,000 steps: the held-out AUC still rises past 6,000), the ablation over
    # three stage seeds and SYSU over all ten gallery trials; under 2 hours on 2 loaded CPU cores
    # (docs/demo-learning.md, round five)
    "ship": DemoConfig("ship", pretrain_steps=12000, seeds=3, sysu_trials=10),
    # the generic recipe (docs/demo-learning.md, rounds six and seven): the base learns only what a
    # general VLM brings (one picture against an edited or grey copy, describing, caption matching),
    # so the stages must teach Re-ID. Stage 1 reads 8 tokens a crop; stage 2's rows are followed by
    # its comparison curriculum on the stage data's people (other cameras, clothes and light), which
    # is why the stage worlds are as large as the pretraining's
    "generic": DemoConfig("generic", pretrain_mode="generic", pretrain_steps=2000, pretrain_match=6,
                          pretrain_grey=0.2, pretrain_hard_negatives=0.0, stage1_max_pixels=128 * 64,
                          ids={"market": 2000, "ltcc": 600, "sysu": 600, "pedes": 300},
                          images_per_id={"market": 4, "ltcc": 6, "sysu": 6, "pedes": 4},
                          steps={1: 400, 2: 200, 3: 300}, lr={1: 1e-4, 2: 1e-4, 3: 3e-5},
                          stage2_compare_steps=2500, stage2_hard_positives=0.5,
                          diagnostic=False, curve_every=200),
    # a quick end-to-end run (a few minutes): the same pipeline with fewer identities, rows and
    # training steps, and a smaller model
    "small": DemoConfig("small", ids={"market": 16, "ltcc": 30, "sysu": 20, "pedes": 30},
                        images_per_id={"market": 6, "ltcc": 12, "sysu": 8, "pedes": 3},
                        hidden=64, layers=2, vision_depth=2, vision_embed=32, vision_heads=2,
                        rows={1: 120, 2: 160, 3: 80}, steps={1: 10, 2: 10, 3: 6}, batch=4, top_k=5,
                        pretrain_ids={"market": 30, "sysu": 12, "ltcc": 12},
                        pretrain_images_per_id={"market": 4, "sysu": 6, "ltcc": 6}, pretrain_steps=20,
                        pretrain_batch=8, eval_ids={"market": 16, "ltcc": 24, "sysu": 15, "pedes": 30},
                        text_prefilter_ids=30, text_prefilter_epochs=1, attribute_images=4,
                        seeds=2, curve_every=5, curve_pairs=10),
}


def seed_label(chain: str, k: int) -> str:
    """The results key of ``chain`` trained with the build's ``k``-th stage seed."""
    return chain if k == 0 else f"{chain}@{k}"


def override(cfg: DemoConfig, assignments: list[str]) -> DemoConfig:
    """``["steps.1=800", "schedule=\"constant\""]`` -> a copy of ``cfg`` with those fields set."""
    fields = cfg.to_dict()
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep:
            raise ValueError(f"--set {text!r}: expected FIELD=VALUE")
        with contextlib.suppress(json.JSONDecodeError):  # else a bare word, a string: schedule=constant
            value = json.loads(value)
        name, _, sub = key.partition(".")
        if name not in fields:
            raise ValueError(f"--set {text!r}: DemoConfig has no field {name!r} (fields: {', '.join(fields)})")
        if sub:
            if not isinstance(fields[name], dict):
                raise ValueError(f"--set {text!r}: {name} is not a per-stage or per-layout table")
            table = dict(fields[name])
            k = int(sub) if sub.isdigit() else sub
            if k not in table:
                raise ValueError(f"--set {text!r}: {name} has no entry {sub!r} (entries: {', '.join(map(str, table))})")
            table[k] = value
            value = table
        elif isinstance(fields[name], dict) and isinstance(value, dict):  # a whole table: JSON keys are strings
            value = {int(k) if k.isdigit() else k: v for k, v in value.items()}
        fields[name] = value
    return DemoConfig(**{k: tuple(v) if isinstance(getattr(cfg, k), tuple) else v for k, v in fields.items()})
