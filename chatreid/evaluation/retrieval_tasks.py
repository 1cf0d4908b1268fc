"""The sec. 4.2 evaluations the paper reports without a table: attribute-based person retrieval
and adaptive multi-modal retrieval (``eval/run.py --task attribute`` / ``--task multimodal``).

**Attribute-based retrieval** (``attribute_eval``). As the paper reorganises its data: ``--sample``
N images are drawn (seeded) from the test side (query and gallery records) of an
attribute-annotated set, a SynthPeds world or Market-1501 with its attribute annotations. Each
query is a combination of ``--query-attributes`` K attributes that occurs in the sample (e.g.
``{"upper_color": "red"}``), and the images to retrieve are those whose annotations hold all of
them. The model ranks the N images for each query (``Query(attributes=..., task="attribute")``);
figures: mAP and Rank-1 over the queries (binary relevance), R-precision (the share of matches
among the first R, R = the number of matches), and chance (the mean share of matching images:
about the AP of a random order).

**Adaptive multi-modal retrieval** (``multimodal_eval``). The benchmark's own image queries, each
ranked twice: by its image alone (the benchmark's task), and by its image with added text
(``task="adaptive"``): the query image's own caption, or its attributes in words where it has no
caption. The benchmark's protocol scores both; the table shows the two rows and the change.

Both rank with a function ``rank(...) -> ranking``; ``run_task`` builds it from the engine, a test
from a fixed rule, so the figures can be checked by hand.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np


# -- attribute-based retrieval ------------------------------------------------------------------
def sample_annotated(records, n: int, seed: int) -> list:
    """N records of the test side (query and gallery) with attribute annotations, drawn without
    replacement; ValueError where fewer exist."""
    annotated = [r for r in records if r.split in ("query", "gallery") and r.attributes]
    if len(annotated) < n:
        raise ValueError(f"--sample {n}: the set holds {len(annotated)} attribute-annotated test images "
                         "(query and gallery)")
    pick = np.random.default_rng(seed).choice(len(annotated), size=n, replace=False)
    return [annotated[i] for i in sorted(pick)]


def attribute_queries(sample, k: int, limit: int | None = None, seed: int = 0) -> list[dict]:
    """Every combination of ``k`` (attribute, value) pairs that some sampled image holds, in a
    fixed order; at most ``limit`` of them, drawn with ``seed``."""
    found = set()
    for r in sample:
        items = sorted(r.attributes.items(), key=lambda kv: kv[0])
        found.update(itertools.combinations(items, k))
    queries = [dict(c) for c in sorted(found, key=lambda c: json.dumps(c))]
    if not queries:
        raise ValueError(f"--query-attributes {k}: no sampled image has {k} attributes")
    if limit is not None and limit < len(queries):
        pick = np.random.default_rng(seed).choice(len(queries), size=limit, replace=False)
        queries = [queries[i] for i in sorted(pick)]
    return queries


def holds(attributes: dict, query: dict) -> bool:
    return all(attributes.get(k) == v for k, v in query.items())


def retrieval_figures(ranking, relevant) -> dict:
    """AP, Rank-1 and R-precision of one ranking (indices) against a relevance list."""
    hits = np.asarray([relevant[i] for i in ranking], dtype=bool)
    total = int(hits.sum())
    if total == 0:
        raise ValueError("a query with no matching image")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return {"AP": float(precision[hits].sum() / total), "rank1": float(hits[0]),
            "r_precision": float(hits[:total].mean()), "chance": total / len(hits)}


def attribute_eval(rank, sample, queries) -> dict:
    """``rank(query attributes) -> ranking of range(len(sample))``; the figures over ``queries``."""
    per = []
    for q in queries:
        ranking = list(rank(q))
        if sorted(ranking) != list(range(len(sample))):
            raise ValueError(f"query {q}: the ranking is not a permutation of the {len(sample)} sampled images")
        per.append({"query": q, **retrieval_figures(ranking, [holds(r.attributes, q) for r in sample])})
    mean = {k: float(np.mean([p[k] for p in per])) for k in ("AP", "rank1", "r_precision", "chance")}
    mean["mAP"] = mean.pop("AP")
    return {"mean": mean, "per_query": per}


# -- adaptive multi-modal retrieval -------------------------------------------------------------
def added_text(record) -> tuple[str, str]:
    """(text added to an image query, where it came from): the image's own first caption, else its
    attributes in words; ValueError where it has neither."""
    from chatreid import prompts

    if record.captions:
        return record.captions[0], "caption"
    if record.attributes:
        return prompts.attribute_query(record.attributes), "attributes"
    raise ValueError(f"{record.path}: no caption or attributes to add to the query")


def multimodal_eval(rank, trials, texts: dict, metric, protocol: str) -> dict:
    """``rank(query item, text or None) -> ranking``; the protocol's figures (averaged over
    ``trials``) for the image alone and for the image with ``texts[qid]``."""
    from chatreid.evaluation.harness import mean_metrics, score_trial

    out = {}
    for mode, use_text in (("image", False), ("image_text", True)):
        per = {}
        for trial in trials:
            rows = {q.qid: {"ranking": list(rank(q, texts[q.qid] if use_text else None))} for q in trial.queries}
            per[trial.name] = score_trial(metric, trial, rows, protocol)
        out[mode] = mean_metrics(per)
    return out


# -- the command --------------------------------------------------------------------------------
def run_task(args) -> int:
    """``eval/run.py --task attribute|multimodal``: one results.json and table.md per model."""
    from chatreid.data import read
    from chatreid.evaluation.arguments import prefilter_for
    from chatreid.evaluation.benchmarks import check_protocol, load_trials, parse_dataset, resolve_options
    from chatreid.evaluation.harness import _slug, label_of, load_images, load_metric, trial_tau
    from chatreid.evaluation.tables import render
    from chatreid.tasks import PROTOCOL_TASK

    try:
        name, root = parse_dataset(args.dataset)
        options = resolve_options(name, root, {})
        if args.task == "attribute":
            sample = sample_annotated(read(name, root), args.sample, args.seed)
            queries = attribute_queries(sample, args.query_attributes, args.queries, args.seed)
        else:
            protocol = check_protocol(name, root, args.protocol, options)
            if protocol == "t2i":
                raise ValueError(f"--task multimodal adds text to image queries; {name} has text queries")
            trials = load_trials(name, root, protocol, args.trials, options)
            by_path = {r.path: r for r in read(name, str(Path(root).resolve()))}  # as load_trials reads it
            tau = trial_tau(args.tau, prefilter_for(args, args.model[0]))[0]
            texts, sources = {}, set()
            for q in trials[0].queries:
                texts[q.qid], source = added_text(by_path[q.path])
                sources.add(source)
    except (ValueError, FileNotFoundError) as err:
        print(f"eval/run.py: error: {err}", file=sys.stderr)
        return 2
    from chatreid.retrieval import Query, ReIDEngine

    labels = args.label or [label_of(m) for m in args.model]
    results = []
    for model, label in zip(args.model, labels):
        t0 = time.time()
        try:
            prefilter = prefilter_for(args, model)
            engine = ReIDEngine.from_pretrained(model, prefilter=prefilter, dtype=args.dtype, window=args.window,
                                                ranking=args.best_choice_ranking, debias=args.debias)
        except (ValueError, OSError) as err:
            print(f"eval/run.py: error: {model}: {err}", file=sys.stderr)
            return 2
        common = {"label": label, "task": args.task, "model": engine.model_info, "dataset": name, "root": root,
                  "strategy": args.strategy, "prefilter": prefilter, "command": " ".join(sys.argv)}
        if args.task == "attribute":
            images = load_images([r.path for r in sample])

            def rank(q):
                return engine.search(Query(attributes=q, task="attribute"), images, strategy=args.strategy,
                                     batch_size=args.batch_size).ranking

            res = attribute_eval(rank, sample, queries)
            result = {**common, **res, "sample": args.sample, "query_attributes": args.query_attributes,
                      "num_queries": len(queries), "seed": args.seed}
        else:
            galleries = {id(t): load_images([g.path for g in t.gallery]) for t in trials}
            current = {}

            def rank(q, text):
                task = "adaptive" if text else PROTOCOL_TASK[protocol]
                query = Query(images=load_images([q.path]), text=text, task=task)
                return engine.search(query, current["gallery"], strategy=args.strategy, top_k=args.top_k,
                                     tau=tau, batch_size=args.batch_size).ranking

            per = {}
            for t in trials:  # one trial at a time, so the rank function sees its gallery
                current["gallery"] = galleries[id(t)]
                per[t.name] = multimodal_eval(rank, [t], texts, load_metric(args.metric), protocol)
            mean = {m: {k: float(np.mean([p[m][k] for p in per.values()])) for k in ("mAP", "rank1", "mINP")}
                    for m in ("image", "image_text")}
            result = {**common, "protocol": protocol, "mean": mean, "trials": per, "text": sorted(sources),
                      "top_k": args.top_k, "tau": tau, "num_queries": len(trials[0].queries)}
        result["seconds"] = round(time.time() - t0, 1)
        out = Path(args.out) / _slug(label)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
        (out / "table.md").write_text(render([result]))
        results.append(result)
    text = render(results)
    Path(args.out, "table.md").write_text(text)
    print(text)
    return 0
