"""Evaluate ChatReID checkpoints on a Re-ID benchmark, as in the paper's Tables 1-5 and sec. 4.2.

    python eval/run.py --model PATH_OR_HUB [--model ...] --dataset market1501:/data/Market-1501 \\
        --protocol market [--strategy pairwise|best_choice] [--prefilter efficientnet_lite0] \\
        [--top-k 50] [--tau T] --out runs/market

    accelerate launch --multi_gpu --num_processes 8 eval/run.py ...   # queries sharded over processes

(On a CPU-only machine the same command, or ``torchrun --nproc_per_node N eval/run.py ...``,
starts N CPU processes; ``accelerate launch --cpu`` starts only one.)

What it does, per model (``--out/<model label>/``):

1. Checks everything that can be wrong before loading a model: the dataset spec, the benchmark
   options (``--search-mode``, ``--direction``, ``--boxes``, ``--cuhk03-layout``,
   ``--gallery-shot``: each only where it applies), that the protocol fits the benchmark, that
   there are queries and a gallery (``chatreid/evaluation/benchmarks.py``).
2. Loads the engine (``ReIDEngine``: its constructor checks the model's Yes/No/image tokens).
3. Per trial, ranks the gallery for every query. Each finished query is appended at once to
   ``trial_<t>/rankings.<process>.jsonl`` (qid, full ranking, VLM head scores, answer); a rerun
   skips queries found in any of those files, so an interrupted run resumes where it stopped.
   Under ``accelerate launch`` each process takes a contiguous shard of the pending queries; the
   main process waits for all, then reads every shard file.
4. Computes CMC / mAP / mINP with ``evaluate.load(<repo>/chatreid_metric)`` under the protocol,
   from the per-query rankings; averages over trials (SYSU-MM01: 10 galleries; RegDB: 10 splits).
5. Writes ``results.json``, ``table.md`` (the paper's layout), ``cmc.png`` and, for the first
   ``--vis`` queries of the first trial, ranked-list images in ``ranked/``.

With several ``--model``, ``--out/table.md`` also holds the stage ablation (Table 4); the same
table comes from ``python eval/table.py DIR ...`` over separate runs.

RegDB's trials and CUHK03 classic's splits each have their own training identities: ``{trial}`` in
``--model`` / ``--prefilter`` loads one checkpoint / pre-filter per trial, and a model that
records another split of the benchmark is refused (docs/evaluation.md, "Trials without leaks").
``--tau`` is a number, ``auto`` (the calibration stored with the pre-filter) or a calibration file;
``--task calibrate`` makes one. ``--task attribute`` and ``--task multimodal`` are the sec. 4.2
evaluations (attribute-based retrieval over N sampled images; image query plus text against image
alone).

Text queries (text-to-image) have no image to pre-filter with: the VLM scores the whole gallery
for each of them, and ``--top-k``/``--tau`` are not applied (the run says so), unless
``--prefilter`` is a text-to-image pre-filter (``train/text_prefilter.py``), which ranks the
gallery for each caption so that the VLM scores only its top.
"""

from __future__ import annotations

import os
import sys

from chatreid.evaluation.arguments import parse_args
from chatreid.evaluation.run import run


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
