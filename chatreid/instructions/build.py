"""Build, save, push and load instruction datasets.

How a build runs: the store's metadata becomes two pools (train / validation identities); the
rows of each split are cut into shards of ``shard_size``; each shard is generated (vectorised
sampling, ``stage2``/``stage3``/``stage1``) and streamed to its own Arrow file by a worker
(``num_proc`` processes), so memory holds one shard's batch at a time. The shards are then saved
as one ``DatasetDict`` with ``save_to_disk``.

Atomic and resumable: everything is written under a hidden work folder next to ``out`` named by a
hash of the store and the config; a shard file appears (by rename) only once complete; ``out``
appears (by rename) only once the whole dataset is saved. Running the same command again after an
interruption reuses the finished shards and writes the rest; any other command starts its own
work folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chatreid.atomic import install_dir
from chatreid.hub import check_local, load_hub_dataset, looks_local, offline, push_dataset, push_failed
from chatreid.instructions import stage1, stage2, stage3
from chatreid.instructions.config import BuildConfig
from chatreid.instructions.pool import SPLITS, build_pool, columns, split_identities
from chatreid.instructions.rows import features

log = logging.getLogger(__name__)
BUILD_INFO = "chatreid_instructions.json"
CAPTIONS = "chatreid_captions.json"  # {"captioner", "captions": {image id: text}} the rows draw on


def allocate(mix: dict[str, float], n: int) -> dict[str, int]:
    """Rows per task: ``n * weight`` rounded by largest remainder (the counts sum to ``n``)."""
    names = list(mix)
    raw = np.array([mix[k] for k in names]) * n
    base = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - base), kind="stable")[: n - base.sum()]:
        base[i] += 1
    return dict(zip(names, base.tolist()))


def _fingerprint(store, cfg: BuildConfig, extra: str) -> str:
    meta = store.metadata()
    h = hashlib.sha256()
    h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    h.update(str(store.source).encode())
    h.update(str(len(meta["image_id"])).encode())
    h.update("\n".join(meta["image_id"][:1000] + meta["image_id"][-1000:]).encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


@dataclass
class _ShardPlan:
    """What every shard worker reads: the config, the split contexts and, per split, the rows to
    write (stage 1: the (image, caption) items; stages 2/3: a task code per row)."""

    config: BuildConfig
    contexts: dict
    captioned: set
    items: dict = field(default_factory=dict)  # stage 1
    tasks: dict = field(default_factory=dict)  # stages 2/3
    task_names: list = field(default_factory=list)  # stages 2/3: task code -> name


_PLAN: _ShardPlan | None = None  # the plan of this process's shards, set by _init_worker


def _init_worker(plan: _ShardPlan | None) -> None:
    """The worker pool's initializer (and the one-process path's): the plan ``_run_shard`` reads.
    Forked workers receive it without pickling, so the contexts are shared copy-on-write."""
    global _PLAN
    _PLAN = plan


def _run_shard(job) -> tuple[str, int, int]:
    """Generate and write one shard; returns (split, shard index, rows)."""
    import pyarrow as pa

    split, index, path = job["split"], job["index"], job["path"]
    plan = _PLAN
    cfg = plan.config
    ctx = plan.contexts[split]
    rng = np.random.default_rng([cfg.seed, cfg.stage, SPLITS.index(split), index])
    if cfg.stage == 1:
        rows = stage1.rows(ctx, rng, plan.items[split][job["lo"]:job["hi"]], plan.captioned)
    else:
        tasks = plan.tasks[split][job["lo"]:job["hi"]]
        builders = stage2.BUILDERS if cfg.stage == 2 else stage3.BUILDERS
        rows = [None] * len(tasks)
        for code, name in enumerate(plan.task_names):
            where = np.flatnonzero(tasks == code)
            if len(where):
                for i, row in zip(where, builders[name](ctx, rng, len(where))):
                    rows[i] = row
    schema = features().arrow_schema
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for lo in range(0, len(rows), 5000):
            writer.write_batch(pa.RecordBatch.from_pylist(rows[lo:lo + 5000], schema=schema))
    # the shard's text rows per dataset, beside it (written first: a resumed build reads both)
    Path(path + ".text.json").write_text(json.dumps(text_rows_by_dataset(rows)))
    os.replace(tmp, path)
    return split, index, len(rows)


def text_rows_by_dataset(rows) -> dict[str, int]:
    """{dataset: rows that show a description} (captions, t2i tasks, reid_t2i, image+text
    queries); a row's images are all of one dataset, named by its image ids' first part."""
    out: dict[str, int] = {}
    for row in rows:
        if row["task"] == "caption" or '"text":' in row["meta"] or '"texts":' in row["meta"]:
            d = row["image_ids"][0].split("/", 1)[0]
            out[d] = out.get(d, 0) + 1
    return out


def build(store_path, out, config: BuildConfig, *, num_proc: int = 1, overwrite: bool = False,
          captioner=None, caption_cache: str | None = None, progress: bool = True) -> dict:
    """Build the stage ``config.stage`` dataset from the image store at ``store_path`` into ``out``.

    Returns the build info (also written to ``out/chatreid_instructions.json``): counts per split
    and task, filter counts (stage 1), the config, the sources.
    """
    from chatreid.data.store import ImageStore

    t0 = time.time()
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True / --overwrite)")
    store = store_path if isinstance(store_path, ImageStore) else ImageStore.load(store_path)
    contexts, filter_counts, captioned, cached = _contexts(store, out, config, captioner, caption_cache, progress)
    plan, counts = _plan_rows(config, contexts, captioned)

    work = out.parent / f".{out.name}.partial-{_fingerprint(store, config, json.dumps(sorted(captioned.items())))}"
    (work / "shards").mkdir(parents=True, exist_ok=True)
    jobs = _shard_jobs(counts, config.shard_size, work / "shards")
    _run_shards(plan, jobs, num_proc, progress, work)
    t_rows = time.time() - t0

    final = work / "dataset"
    rows = _save_shards(jobs, final, progress)
    text_rows = _text_rows(jobs, contexts)
    info = {
        "stage": config.stage,
        "store": str(store.source),
        "datasets": {s: contexts[s].pool.dataset_names for s in SPLITS},
        "images": {s: len(contexts[s].pool) for s in SPLITS},
        "identities": {s: len(contexts[s].pool.id_count) for s in SPLITS},
        "rows": rows,
        "tasks": counts,
        "filters": filter_counts,
        "captioner": getattr(cached, "name", None),
        "captions": {"file": getattr(cached, "path", None), "images": len(captioned)},
        "text_rows": text_rows,
        "config": config.to_dict(),
        "seconds": {"rows": round(t_rows, 2), "total": round(time.time() - t0, 2)},
    }
    (final / BUILD_INFO).write_text(json.dumps(info, indent=1, default=str))
    if captioned:  # the captioner's texts the rows use, for `chatreid data validate`
        (final / CAPTIONS).write_text(json.dumps({"captioner": info["captioner"], "captions": captioned}))
    for split, per_ds in text_rows.items():
        silent = [d for d, n in per_ds.items() if n == 0]
        if silent and config.stage > 1 and sum(rows.values()):
            log.warning("%s split: no text rows for %s (their images have no captions or "
                        "attributes; give --captioner to describe them)", split, ", ".join(silent))
    (final / "README.md").write_text(dataset_card(info))
    install_dir(final, out)  # overwrite: the old dataset goes only once the new one is in
    shutil.rmtree(work, ignore_errors=True)
    info["seconds"]["total"] = round(time.time() - t0, 2)
    return info


def _contexts(store, out: Path, config: BuildConfig, captioner, caption_cache, progress):
    """The train and validation sampling contexts (stage 1: after its quality filters), every
    image without text of its own captioned once (``captioners.open_cache``).
    Returns (contexts, filter counts or None, {image: caption} from the captioner, the cache)."""
    from chatreid.instructions.captioners import caption_images, default_cache, open_cache

    meta = columns(store.metadata())
    assignment = split_identities(meta, config.val_fraction, config.seed)
    cached = open_cache(captioner, caption_cache or default_cache(store.source, out))
    keep, filter_counts, captioned = None, None, {}
    if config.stage == 1:
        keep, filter_counts, captioned = stage1.filter_images(meta, config, cached, store, progress)
    elif cached is not None:
        # The text tasks draw on every image with a description: images with neither captions
        # nor attributes (LTCC, SYSU-MM01, PRCC, ... ) get the captioner's.
        todo = [iid for iid, s, caps, a in zip(meta["image_id"], meta["split"], meta["captions"],
                                               meta["attributes"])
                if s == "train" and not any(c and c.strip() for c in caps or [])
                and not (a and json.loads(a))]
        captioned = {k: v for k, v in caption_images(cached, todo, store.image, progress).items()
                     if v.strip()}
    meta = stage1.with_captions(meta, captioned)
    contexts = {s: stage2.Context(build_pool(meta, s, assignment, keep), config) for s in SPLITS}
    if len(contexts["train"].pool) == 0:
        raise ValueError(f"{store.source}: no train-split images to build from"
                         + (f" (filters: {filter_counts})" if filter_counts else ""))
    weighed = contexts["train"].pool.dataset_names
    unknown = sorted(set(config.dataset_weights) - set(weighed))
    if unknown:
        # a misspelt name would otherwise weigh nothing, silently
        raise ValueError(f"--dataset-weight {unknown[0]}: {store.source} has no train images of a "
                         f"dataset {unknown[0]!r}; it holds: {', '.join(weighed)}")
    return contexts, filter_counts, captioned, cached


def _plan_rows(config: BuildConfig, contexts: dict, captioned: dict) -> tuple[_ShardPlan, dict]:
    """Which rows each split gets: stage 1, its captioning items (``--size`` picks a seeded subset);
    stages 2/3, ``--size`` rows allocated to the tasks by the mixture, in a seeded order.
    Returns the plan and the row counts per split and task."""
    plan = _ShardPlan(config=config, contexts=contexts, captioned=set(captioned))
    counts = {}
    if config.stage == 1:
        for s in SPLITS:
            pairs = stage1.items(contexts[s].pool)
            if config.size is not None:
                want = config.size - round(config.size * config.val_fraction) if s == "train" \
                    else round(config.size * config.val_fraction)
                if want > len(pairs):
                    raise ValueError(f"--size {config.size}: the {s} split has only {len(pairs)} "
                                     f"captioning rows after filtering, {want} asked")
                pick = np.random.default_rng([config.seed, 1, SPLITS.index(s)]).permutation(len(pairs))
                pairs = pairs[np.sort(pick[:want])]
            plan.items[s] = pairs
            counts[s] = {"caption": len(pairs)}
        return plan, counts
    if config.size is None:
        raise ValueError(f"stage {config.stage}: --size is required")
    n_val = round(config.size * config.val_fraction) if len(contexts["validation"].pool) else 0
    sizes = {"train": config.size - n_val, "validation": n_val}
    names = list(config.mix)
    plan.task_names = names
    for s in SPLITS:
        alloc = allocate(config.mix, sizes[s])
        counts[s] = alloc
        arr = np.repeat(np.arange(len(names), dtype=np.int8), [alloc[k] for k in names])
        plan.tasks[s] = np.random.default_rng([config.seed, config.stage, 99, SPLITS.index(s)]).permutation(arr)
    return plan, counts


def _shard_jobs(counts: dict, shard_size: int, shards: Path) -> list[dict]:
    """Each split's rows cut into shards of ``shard_size``, each with the file it is written to."""
    jobs = []
    for s in SPLITS:
        total = sum(counts[s].values())
        for k, lo in enumerate(range(0, total, shard_size)):
            jobs.append({"split": s, "index": k, "lo": lo, "hi": min(lo + shard_size, total),
                         "path": str(shards / f"{s}-{k:05d}.arrow")})
    return jobs


def _run_shards(plan: _ShardPlan, jobs: list[dict], num_proc: int, progress: bool, work: Path) -> None:
    """Write the shards not written yet (a resumed build reuses the others), in ``num_proc``
    forked workers when there is more than one to write."""
    from tqdm.auto import tqdm

    todo = [j for j in jobs if not os.path.exists(j["path"])]
    done_rows = sum(j["hi"] - j["lo"] for j in jobs if j not in todo)
    if done_rows:
        log.info("resuming %s: %d of %d shards already written", work, len(jobs) - len(todo), len(jobs))
    bar = tqdm(total=sum(j["hi"] - j["lo"] for j in jobs), initial=done_rows,
               desc=f"stage {plan.config.stage} rows", unit="row", disable=not progress)
    try:
        if num_proc > 1 and len(todo) > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(num_proc, len(todo)), initializer=_init_worker, initargs=(plan,)) as workers:
                for _, _, n in workers.imap_unordered(_run_shard, todo):
                    bar.update(n)
        else:
            _init_worker(plan)
            for job in todo:
                bar.update(_run_shard(job)[2])
    finally:
        bar.close()
        _init_worker(None)


def _text_rows(jobs: list[dict], contexts: dict) -> dict[str, dict[str, int]]:
    """{split: {dataset: text rows}} over the shards, every dataset of the split listed."""
    out = {s: dict.fromkeys(contexts[s].pool.dataset_names, 0) for s in SPLITS}
    for j in jobs:
        for d, n in json.loads(Path(j["path"] + ".text.json").read_text()).items():
            out[j["split"]][d] = out[j["split"]].get(d, 0) + n
    return out


def _save_shards(jobs: list[dict], final: Path, progress: bool) -> dict[str, int]:
    """The shard files saved as one ``DatasetDict`` at ``final``; returns the rows per split."""
    import datasets

    splits = {}
    for s in SPLITS:
        files = [j["path"] for j in jobs if j["split"] == s]
        parts = [datasets.Dataset.from_file(f) for f in files]
        # a split with no rows (a tiny store, val_fraction 0) is saved empty but typed;
        # from_list([]) cannot carry nested features, from_dict of empty columns can
        splits[s] = datasets.concatenate_datasets(parts) if parts else \
            datasets.Dataset.from_dict({k: [] for k in features()}, features=features())
    dsd = datasets.DatasetDict(splits)
    if final.exists():
        shutil.rmtree(final)
    bars_were_on = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        # a plain copy of the shard files: I/O-bound, one process. An empty split gets one (empty)
        # shard: with the default zero shards, datasets cannot load it back
        empty = {s: 1 for s, d in dsd.items() if len(d) == 0}
        dsd.save_to_disk(str(final), num_shards=empty or None)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return {s: len(d) for s, d in dsd.items()}


def dataset_card(info: dict) -> str:
    """Markdown body of the dataset card: sources, task mixture, counts per task."""
    cfg = info["config"]
    lines = [
        f"# ChatReID stage {info['stage']} instruction data", "",
        "Instruction rows for ChatReID's hierarchical progressive tuning (Niu et al., 2025), built "
        "by `chatreid build-data`. Rows hold TRL conversational `messages` with image placeholders, "
        "the `image_ids` they refer to in the image store (images are not copied), the `task` and "
        "the ground truth in `meta` (JSON). Splits are disjoint by identity; only `train`-split "
        "images of each benchmark are used.", "",
        "## Sources", "",
        f"Image store: `{info['store']}`", "",
        "| split | datasets | identities | images |", "|---|---|---|---|",
    ]
    for s in SPLITS:
        lines.append(f"| {s} | {', '.join(info['datasets'][s])} | {info['identities'][s]} | "
                     f"{info['images'][s]} |")
    lines += ["", "## Task mixture and counts", "", "| task | weight | train | validation |",
              "|---|---|---|---|"]
    for task, w in cfg["mix"].items():
        lines.append(f"| {task} | {w:.3f} | {info['tasks']['train'].get(task, 0)} | "
                     f"{info['tasks']['validation'].get(task, 0)} |")
    lines.append(f"| total | | {info['rows']['train']} | {info['rows']['validation']} |")
    if info.get("text_rows"):
        lines += ["", "## Rows with a description, per dataset", "",
                  "Rows that show a caption, a captioner's description or rendered attributes "
                  f"(captioner: {info.get('captioner') or 'none'}).", "",
                  "| dataset | train | validation |", "|---|---|---|"]
        names = sorted(set().union(*(info["text_rows"][s] for s in SPLITS)))
        lines += [f"| {d} | {info['text_rows']['train'].get(d, 0)} | "
                  f"{info['text_rows']['validation'].get(d, 0)} |" for d in names]
    if info.get("filters"):
        lines += ["", "## Stage 1 quality filters (train-split images)", "",
                  "| filter | images |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in info["filters"].items()]
    lines += ["", "## Settings", "", "```json", json.dumps(cfg, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def push_to_hub(path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Push a built dataset (a folder written by ``build``), its card and, when the build has one,
    its ``chatreid_captions.json`` beside the data (``chatreid.hub.push_dataset``), so a dataset
    loaded from the Hub validates as its folder does (``captions_file``). The local folder is only
    read; on failure ``chatreid.hub.PushError`` says so and where it is."""
    import datasets

    path = str(path)
    try:
        dsd = datasets.load_from_disk(path)
        info = json.loads(Path(path, BUILD_INFO).read_text())
    except Exception as err:  # noqa: BLE001 - not a built dataset: the same error as a failed upload
        raise push_failed("instruction data", repo_id, path, err) from err
    captions = Path(path, CAPTIONS)
    return push_dataset(dsd, repo_id, local=path, what="instruction data", card=dataset_card(info),
                        files={CAPTIONS: captions} if captions.is_file() else None,
                        private=private, token=token, commit_message="Upload ChatReID instruction data",
                        card_message="Dataset card (sources, task mixture, counts per task)"
                        + (f" and {CAPTIONS}" if captions.is_file() else ""))


def captions_file(path_or_repo, *, revision: str | None = None, token: str | None = None) -> str | None:
    """The build's ``chatreid_captions.json`` (the captioner's texts its rows use) of a dataset
    folder or Hub dataset id, as a local path (a Hub copy is downloaded to the Hub cache); ``None``
    when the build has none (no row draws on a captioner). A Hub file that cannot be fetched is a
    ``ValueError`` naming the repo: without it the text rows cannot be checked."""
    text = os.fspath(path_or_repo)
    if looks_local(text):
        local = os.path.join(os.path.expanduser(text), CAPTIONS)
        return local if os.path.isfile(local) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return hf_hub_download(text, CAPTIONS, repo_type="dataset", revision=revision, token=token)
    except RemoteEntryNotFoundError:  # the repo has no such file: a build without a captioner's texts
        return None
    except Exception as err:  # noqa: BLE001 - offline, network, auth: one clear line
        hint = " (HF_HUB_OFFLINE is set and no cached copy exists)" if offline() else ""
        raise ValueError(f"cannot fetch {CAPTIONS} of instruction dataset {text!r} from the Hub{hint}: "
                         f"{type(err).__name__}: {err}".splitlines()[0]
                         + "; give the file with --captions FILE") from err


def load(path_or_repo, *, revision: str | None = None, token: str | None = None):
    """A built instruction dataset (``DatasetDict``) from a local folder or a Hub dataset id."""
    import datasets

    text = os.fspath(path_or_repo)
    if os.path.isdir(text):
        dsd = datasets.load_from_disk(text)
    elif check_local(text, "instruction dataset", hint="build one with `chatreid build-data`"):
        raise FileNotFoundError(f"{text}: not a built instruction dataset folder (a file)")
    else:
        dsd = load_hub_dataset(text, "instruction dataset", revision=revision, token=token)
    if not isinstance(dsd, datasets.DatasetDict) or set(dsd) != set(SPLITS):
        raise ValueError(f"{text}: expected a DatasetDict with splits {SPLITS}")
    missing = [c for c in ("messages", "image_ids", "task", "meta") if c not in dsd["train"].column_names]
    if missing:
        raise ValueError(f"{text}: not an instruction dataset, missing column(s) {missing}")
    return dsd
