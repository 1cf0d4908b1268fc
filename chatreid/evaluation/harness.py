"""Evaluation runs, as ``eval/run.py`` makes them: rank every query of each trial with the
engine (resumable, sharded over ``accelerate`` processes), score the rankings with the metric
module, write ``results.json``, ``table.md``, ``cmc.png`` and ranked-list images per model.

``run(args)`` is the whole command (``arguments.parse_args`` makes ``args``); ``run_model`` is one
model; ``rank_trial`` / ``read_cache`` / ``score_trial`` / ``mean_metrics`` are its steps, and
``scoring_record`` says which prompts the scores are read from and whether the checkpoint's last
stage trained them.

Trials without leaks: RegDB's trials and CUHK03 classic's splits each have their own training
identities, so each is scored by a checkpoint and pre-filter trained on that split: ``--model``
and ``--prefilter`` may name ``{trial}`` (``checkpoint_path``), and a model that records another
split of the benchmark (``chatreid.data.trials``) is refused before anything loads
(``check_trials``) and again once loaded (``trial_record``). results.json says, per trial, what
scored it. ``--tau`` takes a number, ``auto`` (the calibration stored with the pre-filter) or a
calibration file; what falls below it is counted per query (``below_tau``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from chatreid.evaluation.arguments import prefilter_for
from chatreid.evaluation.benchmarks import (Trial, check_protocol, load_trials, num_trials, parse_dataset,
                                            resolve_options)
from chatreid.evaluation.tables import render
from chatreid.tasks import PROTOCOL_TASK


def label_of(model: str) -> str:
    return Path(model.rstrip("/")).name or model


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120]


class ImageReadError(ValueError):
    """A benchmark image that cannot be decoded; the message names the file, not the model."""


def load_images(paths) -> list:
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(im.convert("RGB"))
        except (OSError, SyntaxError) as err:  # PIL: truncated or corrupt files, unknown formats
            raise ImageReadError(f"{p}: cannot read this image ({err}); replace or remove the file") from None
    return out


def read_cache(folder: Path) -> dict[str, dict]:
    """Finished queries of a trial, from every process's shard file (a partial last line, left by
    a kill mid-write, is ignored and that query runs again)."""
    done = {}
    for f in sorted(folder.glob("rankings.*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["qid"]] = row
    return done


def rank_trial(engine, trial: Trial, folder: Path, args, protocol: str, state, tau: float | None = None) -> None:
    """Rank every pending query of ``trial``; this process's shard only. ``tau``: the threshold
    this trial's pre-filter keeps (``--tau`` as a number, or its calibration). Each row records
    ``below_tau``: how many gallery images fell below it; they end the ranking, in pre-filter order."""
    from tqdm import tqdm

    from chatreid.retrieval import Query

    folder.mkdir(parents=True, exist_ok=True)
    done = read_cache(folder)
    pending = [q for q in trial.queries if q.qid not in done]
    # every process must split the same pending list: nobody writes before all have read
    state.wait_for_everyone()
    if state.is_main_process:
        print(f"trial {trial.name}: {len(trial.queries)} queries, {len(done)} cached, {len(pending)} to run, "
              f"gallery {len(trial.gallery)}", flush=True)
    if not pending:
        return
    gallery = load_images([r.path for r in trial.gallery])
    text_queries = protocol == "t2i"
    text_prefilter = getattr(engine.prefilter, "supports_text", False)
    top_k, tau = (None, None) if text_queries and not text_prefilter else (args.top_k, tau)
    with state.split_between_processes(pending) as mine:
        shard = folder / f"rankings.{state.process_index}.jsonl"
        if shard.exists() and shard.stat().st_size and not shard.read_bytes().endswith(b"\n"):
            with open(shard, "a") as f:  # a line cut short by a kill: end it, so it stays one bad line
                f.write("\n")
        with open(shard, "a") as f:
            bar = tqdm(mine, desc=f"{label_of(engine.model_info['name_or_path'])} trial {trial.name}",
                       unit="query", position=state.process_index, disable=len(mine) == 0)
            for q in bar:
                if text_queries:
                    query = Query(text=q.text, task="text_to_image")
                else:
                    query = Query(images=load_images([q.path]), task=PROTOCOL_TASK[protocol])
                res = engine.search(query, gallery, strategy=args.strategy, top_k=top_k, tau=tau,
                                    batch_size=args.batch_size)
                row = {"qid": q.qid, "ranking": res.ranking, "scores": [round(s, 6) for s in res.scores[:res.num_scored]],
                       "num_scored": res.num_scored, "answer": res.answer}
                if tau is not None:
                    row["below_tau"] = sum(1 for s in res.prefilter_scores if s < tau)
                f.write(json.dumps(row) + "\n")
                f.flush()  # one finished query is never lost to a later crash


def below_tau(trial: Trial, rows: dict[str, dict]) -> dict:
    """Of one trial's rankings: the mean share of the gallery below tau (``below_tau``), and the
    share of true matches among them (``matches_below_tau``): images the VLM never saw, ranked
    after every scored one. Below-tau images are a ranking's last ``below_tau`` entries (the
    unscored rest is in descending similarity)."""
    shares, missed, matches = [], 0, 0
    for q in trial.queries:
        row = rows[q.qid]
        n = row.get("below_tau", 0)
        tail = row["ranking"][len(row["ranking"]) - n:] if n else []
        shares.append(n / len(row["ranking"]))
        missed += sum(trial.gallery[g].pid == q.pid for g in tail)
        matches += sum(g.pid == q.pid for g in trial.gallery)
    return {"below_tau": sum(shares) / len(shares), "matches_below_tau": missed / matches if matches else 0.0}


def load_metric(path: str):
    import evaluate

    return evaluate.load(str(Path(path).resolve()))


def score_trial(metric, trial: Trial, rows: dict[str, dict], protocol: str) -> dict:
    """CMC / mAP / mINP of one trial from its cached rankings."""
    missing = [q.qid for q in trial.queries if q.qid not in rows]
    if missing:
        raise RuntimeError(f"trial {trial.name}: {len(missing)} queries have no ranking (e.g. {missing[0]})")
    kwargs = dict(
        rankings=[rows[q.qid]["ranking"] for q in trial.queries],
        q_pids=[q.pid for q in trial.queries],
        g_pids=[r.pid for r in trial.gallery],
        protocol=protocol,
    )
    if protocol != "t2i":
        kwargs.update(q_camids=[q.camid for q in trial.queries], g_camids=[r.camid for r in trial.gallery])
    if protocol in ("cc", "sc"):
        kwargs.update(q_clothes=[q.clothes for q in trial.queries], g_clothes=[r.clothes_id for r in trial.gallery])
    kwargs.update(trial.options)
    return metric.compute(**kwargs)


def mean_metrics(per_trial: dict[str, dict]) -> dict:
    keys = [k for k, v in next(iter(per_trial.values())).items() if isinstance(v, (int, float))]
    n = len(per_trial)
    out = {k: sum(m[k] for m in per_trial.values()) / n for k in keys}
    cmcs = [m["cmc"] for m in per_trial.values()]
    out["cmc"] = [sum(c[i] for c in cmcs) / n for i in range(min(map(len, cmcs)))]
    return out


def draw_ranked_lists(trial: Trial, rows: dict, folder: Path, n: int, k: int, protocol: str) -> None:
    from chatreid.viz import ranked_list_image

    folder.mkdir(parents=True, exist_ok=True)
    for i, q in enumerate(trial.queries[:n]):
        row = rows[q.qid]
        top = row["ranking"][:k]
        gal = load_images([trial.gallery[g].path for g in top])
        flags = [trial.gallery[g].pid == q.pid for g in top]
        scores = [row["scores"][j] if j < len(row["scores"]) else float("nan") for j in range(len(top))]
        query = q.text if protocol == "t2i" else load_images([q.path])[0]
        img = ranked_list_image(query, gal, flags, scores, query_caption=f"query pid {q.pid}")
        img.save(folder / f"{i:03d}_{_slug(q.qid)}.png")


def scoring_record(engine, protocol: str, strategy: str) -> dict:
    """Which prompts the scores are read from, and whether the checkpoint's last stage trained them."""
    from PIL import Image

    from chatreid.retrieval import Query

    # the prompts depend on the kind of query only, so one stand-in query of the protocol's kind
    probe = (Query(text="x", task="text_to_image") if protocol == "t2i"
             else Query(images=[Image.new("RGB", (1, 1))], task=PROTOCOL_TASK[protocol]))
    untrained = engine.untrained_scoring(probe, strategy)
    return {"prompts": list(engine.scoring_prompts(probe, strategy)),
            "trained": None if engine.trained_tasks is None else not untrained, "untrained": untrained,
            "stage": getattr(engine.model.config, "chatreid_stage", None)}


def checkpoint_path(template: str, trial: Trial, flag: str) -> str:
    """``template`` with ``{trial}`` replaced by the trial's identity split (RegDB 1..10, CUHK03
    classic 0..19): one checkpoint or pre-filter per trial."""
    if "{trial}" not in template:
        return template
    if trial.split is None:
        raise ValueError(f"{flag} {template!r} names {{trial}}, and this benchmark has one fixed split")
    return template.replace("{trial}", str(trial.split))


def model_trials(config: dict) -> dict | None:
    """The identity splits a checkpoint's config says it trained on (``chatreid.data.trials``):
    ``{}`` for a model never trained by train/sft.py (a base model), None where a trained one
    does not say."""
    if "chatreid_trials" in config:
        return config["chatreid_trials"]
    return None if config.get("chatreid_stage") is not None else {}


def _local_config(path: str) -> dict | None:
    for p in (Path(path) / "final" / "config.json", Path(path) / "config.json"):
        if p.is_file():
            return json.loads(p.read_text())
    return None


def check_trials(args, trials: list[Trial], name: str) -> None:
    """Before any model loads: every trial's checkpoint (local folders) and pre-filter may score
    it, and its ``--tau`` can be read; ValueError with the one-line reason otherwise
    (``chatreid.data.trials.refusal``)."""
    from chatreid.data.trials import refusal
    from chatreid.retrieval.prefilter import check_prefilter, trained_trials

    for trial in trials:
        for template in args.model:
            model = checkpoint_path(template, trial, "--model")
            pf = checkpoint_path(prefilter_for(args, template), trial, "--prefilter")
            check_prefilter(pf)
            trial_tau(args.tau, pf)
            config = _local_config(model)
            why = (refusal(trained_trials(pf), name, trial.split, f"pre-filter {pf}")
                   or (config is not None and refusal(model_trials(config), name, trial.split, f"checkpoint {model}")))
            if why:
                raise ValueError(why)


def trial_record(engine, model: str, prefilter: str, name: str, trial: Trial) -> dict:
    """Which checkpoint and pre-filter scored ``trial`` and how their training relates to its
    identities; ValueError (one line) where one trained on another split of the benchmark."""
    from chatreid.data.trials import refusal, status
    from chatreid.retrieval.prefilter import trained_trials

    m_rec = model_trials(engine.model.config.to_dict())
    p_rec = m_rec if prefilter == "vlm" else trained_trials(prefilter)
    why = refusal(m_rec, name, trial.split, f"checkpoint {model}") or refusal(p_rec, name, trial.split,
                                                                               f"pre-filter {prefilter}")
    if why:
        raise ValueError(why)
    return {"model": model, "prefilter": prefilter, "split": trial.split,
            "model_trials": status(m_rec, name, trial.split), "prefilter_trials": status(p_rec, name, trial.split)}


def trial_tau(tau, prefilter: str) -> tuple[float | None, dict | None]:
    """(threshold, its calibration record or None) for ``--tau`` (None, a number, ``auto`` or a
    calibration file) and this trial's pre-filter."""
    if tau is None or isinstance(tau, (int, float)):
        return tau, None
    from chatreid.retrieval.prefilter import load_calibration

    record = load_calibration(tau, prefilter)
    return float(record["tau"]), record


def load_engine(model: str, prefilter: str, protocol: str, args, state):
    from chatreid.retrieval import ReIDEngine

    engine = ReIDEngine.from_pretrained(model, prefilter=prefilter, device=state.device,
                                        dtype=args.dtype, window=args.window, ranking=args.best_choice_ranking,
                                        debias=args.debias)
    if (protocol == "t2i" and state.is_main_process and (args.top_k or args.tau is not None)
            and not getattr(engine.prefilter, "supports_text", False)):
        print("text queries cannot be pre-filtered by image features: --top-k/--tau not applied; "
              "the VLM scores the whole gallery for each caption", flush=True)
    return engine


def run_model(template: str, label: str, trials: list[Trial], name: str, root: str, protocol: str, args,
              state) -> dict | None:
    """One ``--model`` over every trial: with ``{trial}`` in it (or in ``--prefilter``), each
    trial loads its own checkpoint / pre-filter (``checkpoint_path``)."""
    from chatreid.viz import plot_cmc

    out = Path(args.out) / _slug(label)
    engine, loaded, scoring, checkpoints, taus = None, None, None, {}, {}
    t0 = time.time()
    for trial in trials:
        model = checkpoint_path(template, trial, "--model")
        prefilter = checkpoint_path(prefilter_for(args, template), trial, "--prefilter")
        if (model, prefilter) != loaded:
            engine = None  # the previous trial's model goes before the next one loads
            engine, loaded = load_engine(model, prefilter, protocol, args, state), (model, prefilter)
            first = scoring is None
            scoring = scoring or scoring_record(engine, protocol, args.strategy)
            if first and scoring["untrained"] and state.is_main_process:
                print(f"WARNING: {label}: --strategy {args.strategy} scores with {', '.join(scoring['untrained'])}, "
                      f"which the checkpoint's last stage (stage {scoring['stage']}) did not train; these numbers "
                      f"measure how that format transfers, not what training taught", file=sys.stderr, flush=True)
            info = engine.model_info if first else info
        checkpoints[trial.name] = trial_record(engine, model, prefilter, name, trial)
        tau, calibration = trial_tau(args.tau, prefilter)
        taus[trial.name] = {"tau": tau, "calibration": calibration}
        rank_trial(engine, trial, out / f"trial_{trial.name}", args, protocol, state, tau)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    metric = load_metric(args.metric)
    per_trial, rows0 = {}, None
    for trial in trials:
        rows = read_cache(out / f"trial_{trial.name}")
        per_trial[trial.name] = score_trial(metric, trial, rows, protocol)
        if taus[trial.name]["tau"] is not None and protocol != "t2i":
            per_trial[trial.name].update(below_tau(trial, rows))
        rows0 = rows0 or rows
    mean = mean_metrics(per_trial)
    values = sorted({t["tau"] for t in taus.values() if t["tau"] is not None})
    calibrations = {k: t["calibration"] for k, t in taus.items() if t["calibration"]}
    # the --prefilter template where each trial has its own, else the one every trial used
    prefilter_label = prefilter_for(args, template) if len({c["prefilter"] for c in checkpoints.values()}) > 1 else prefilter
    result = {
        "label": label, "model": info, "dataset": name, "root": root, "protocol": protocol,
        "strategy": args.strategy, "prefilter": prefilter_label, "top_k": args.top_k,
        "tau": (values[0] if len(values) == 1 else "per trial") if values else None,
        "tau_calibration": next(iter(calibrations.values())) if calibrations else None,
        "window": args.window if args.strategy == "best_choice" else None,
        "best_choice": ({"ranking": args.best_choice_ranking, "debias": args.debias}
                        if args.strategy == "best_choice" else None),
        "num_queries": len(trials[0].queries), "num_gallery": [len(t.gallery) for t in trials],
        "trials": per_trial, "mean": mean, "seconds": round(time.time() - t0, 1),
        "command": " ".join(sys.argv), "processes": state.num_processes,
        "options": args.benchmark_options, "trials_of": num_trials(name, args.benchmark_options), "scoring": scoring,
        "text_prefilter": bool(getattr(engine.prefilter, "supports_text", False)),
        "checkpoints": checkpoints,
        "text_head": getattr(engine.prefilter, "text_head", None) if protocol == "t2i" else None,
    }
    if len(calibrations) > 1:
        result["tau_per_trial"] = {k: t["tau"] for k, t in taus.items()}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot_cmc({label: mean["cmc"]}, out / "cmc.png", title=f"CMC: {name} ({protocol})")
    if args.vis:
        draw_ranked_lists(trials[0], rows0, out / "ranked", args.vis, args.vis_k, protocol)
    (out / "table.md").write_text(render([result]))
    print(f"{label} on {name} ({protocol}): mAP {100 * mean['mAP']:.1f}  Rank-1 {100 * mean['rank1']:.1f}  "
          f"mINP {100 * mean['mINP']:.1f}  ({len(trials)} trial(s)) -> {out}", flush=True)
    return result


def run_reid(args) -> int:
    """``eval/run.py --task reid`` from its parsed ``args`` (``arguments.parse_args``); returns the
    exit code (2: bad input, one line on stderr, before any model where it can be)."""
    return evaluate_reid(args)[0]


def evaluate_reid(args) -> tuple[int, list[dict]]:
    """``run_reid``, for callers in the same process: its exit code and each model's result (what
    its results.json holds; on the main process, and only with exit code 0)."""
    try:
        # everything that can be checked without a model, checked first
        name, root = parse_dataset(args.dataset)
        args.benchmark_options = resolve_options(name, root, {
            "search_mode": args.search_mode, "direction": args.direction, "boxes": args.boxes,
            "cuhk03_layout": args.cuhk03_layout, "gallery_shot": args.gallery_shot})
        protocol = check_protocol(name, root, args.protocol, args.benchmark_options)
        trials = load_trials(name, root, protocol, args.trials, args.benchmark_options)
        from chatreid.hub import check_local

        for trial in trials:  # a mistyped local path: named at once, no Hub request
            for template in args.model:
                check_local(checkpoint_path(template, trial, "--model"), "--model")
        # a path that is not a baseline, a checkpoint or pre-filter trained on another trial's
        # identities, a missing calibration: one line, before any model
        check_trials(args, trials, name)
        if not Path(args.metric).is_dir():
            raise FileNotFoundError(f"the metric module is missing: {args.metric}")
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"eval/run.py: error: {err}", file=sys.stderr)
        return 2, []
    import torch
    from accelerate import PartialState

    # cpu=True lets processes started by a torchrun-style launcher form a gloo group on CPU
    state = PartialState(cpu=not torch.cuda.is_available())
    labels = args.label or [label_of(m) for m in args.model]
    if len(set(labels)) != len(labels):
        print(f"eval/run.py: error: two models share the label {labels}; pass --label", file=sys.stderr)
        return 2, []
    results = []
    for model, label in zip(args.model, labels):
        try:
            res = run_model(model, label, trials, name, root, protocol, args, state)
        except ImageReadError as err:  # the benchmark's file, not the model, is at fault
            print(f"eval/run.py: error: {err}", file=sys.stderr)
            return 2, []
        except (ValueError, OSError) as err:  # e.g. a model without Yes/No tokens, a missing checkpoint
            print(f"eval/run.py: error: {model}: {err}", file=sys.stderr)
            return 2, []
        results.append(res)
    if state.is_main_process:
        text = render(results)
        Path(args.out, "table.md").write_text(text)
        print(text)
    return 0, results
