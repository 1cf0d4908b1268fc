"""The embedded demo: the whole method in miniature on SynthPeds, from scratch, on CPUs.

    python -m chatreid.demo build [--out models/chatreid-demo] [--config full|ship|small] [--work runs/demo]
                                  [--set FIELD=VALUE ...]   (any DemoConfig field: steps.1=1500)

One command, every step through the project's own entry points:

1. ``chatreid synth``: SynthPeds worlds, one per layout (market, ltcc, sysu, pedes), for three
   purposes drawn from separate seed ranges: the stage data, the comparison pretraining (market,
   ltcc, sysu) and the evaluation. No person is in two of them, so every model is measured on
   people that no step of the build trained or pretrained on.
2. ``chatreid store build``: one image store per purpose.
3. ``chatreid build-data``: stage 1, 2 and 3 instruction rows from the stage-data store.
4. A randomly initialised Qwen2-VL (``chatreid.model.tiny``'s tokenizer and config, with more
   capacity and 16x16 patches; crops are read at 64x32: 4x2 patches, 2 tokens after the merger).
5. The comparison pretraining (``chatreid.training.compare``): the miniature's stand-in for the
   pretrained VLM the paper starts from; every chain below starts from its result.
6. ``chatreid.training.sft`` (the run of ``train/sft.py``, in this process): stages 1 -> 2 -> 3 (the demo model), and for
   the Table 4 ablation stage 3 alone and stages 2 -> 3, for each stage seed, with held-out
   learning curves recorded by a callback.
7. ``chatreid.demo.text_prefilter``: the text-to-image pre-filter the model ships (a Re-ID
   baseline and a dual encoder, on a pedes world of its own); then ``chatreid.evaluation`` (the
   run of ``eval/run.py``): Rank-1 / mAP on the evaluation worlds' held-out identities for every
   model (text queries: the VLM re-ranks the text pre-filter's head), the pre-filter alone and
   the colour-histogram baseline; and ``chatreid.demo.ceilings``: each evaluation world's
   ground-truth ceilings (body traits only, clothes only) and chance.
8. The demo model (with the text pre-filter in its ``text-prefilter/``) is copied atomically to ``--out`` with its model card (whose first paragraph
   is the app's banner), and ``docs/demo-report.md`` (with ``docs/img/demo-curves.png``) is
   rewritten.

"Pre-filter alone" is eval/run.py with ``--top-k 1``: the VLM then scores only the pre-filter's
first image, which stays first, so the ranking is exactly the pre-filter's.

The package: ``config`` (``DemoConfig``, ``CONFIGS``, ``override``), ``driver`` (the steps above
and ``build``), ``separation`` (the report's "does the VLM tell people apart?" figures), ``report``
(the model card, ``docs/demo-report.md`` and its figure), ``text_prefilter``, ``ceilings`` and
``cli`` (the command; ``python -m chatreid.demo ceilings --world DIR`` for any world).
"""

from chatreid.demo.config import CHAINS, CONFIGS, LAYOUTS, SETTING, DemoConfig, override, seed_label
from chatreid.demo.driver import (DEFAULT_OUT, DEFAULT_REPORT, DEFAULT_WORK, Timer, build, evaluate, install,
                                  make_base_model, reusable_pretraining, train_chains, train_stage)
from chatreid.demo.report import CURVES_PNG, model_card, plot_curves, report, write_report
from chatreid.demo.separation import feature_separation, region_features, scored_pairs, yes_separation
from chatreid.demo.cli import main  # noqa: E402  (cli reads this package's docstring)

__all__ = [
    "CHAINS", "CONFIGS", "CURVES_PNG", "DEFAULT_OUT", "DEFAULT_REPORT", "DEFAULT_WORK", "LAYOUTS", "SETTING",
    "DemoConfig", "Timer", "build", "evaluate", "feature_separation", "install", "main", "make_base_model",
    "model_card", "override", "plot_curves", "region_features", "report", "reusable_pretraining", "scored_pairs",
    "seed_label", "train_chains", "train_stage", "write_report", "yes_separation",
]
