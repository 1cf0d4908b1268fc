"""Identity splits that a protocol averages over (RegDB's 10 trials, CUHK03 classic's 20 splits),
and what a store, a checkpoint and a pre-filter record of them.

Each such split holds its own train/test identities, so a model trained on split 1 has seen the
test people of split 2. A reader sets ``Records.trial`` to the split it read; the store build
records it per dataset (``chatreid_build.json``: ``"trials": {"regdb": 3}``); a checkpoint
(``train/sft.py``: ``config.chatreid_trials``) and a Re-ID baseline (``config.json``:
``training.trials``) record the splits they trained on, as ``{dataset: [split, ...]}`` (a list,
since a stage inherits its previous stage's). The evaluation harness scores split t only with
a model whose record for that dataset is absent or exactly ``[t]`` (``refusal``).
"""

from __future__ import annotations

# benchmark -> the reader option naming its identity split
TRIAL_OPTION = {"regdb": "trial", "cuhk03": "split"}


def merge(*records: dict | None) -> dict[str, list[int]]:
    """The union of trial records ``{dataset: int or [int]}``, as ``{dataset: sorted list}``."""
    out: dict[str, set] = {}
    for rec in records:
        for name, value in (rec or {}).items():
            out.setdefault(name, set()).update(value if isinstance(value, (list, tuple)) else [value])
    return {k: sorted(v) for k, v in sorted(out.items())}


def status(record: dict | None, dataset: str, split: int | None) -> str:
    """How a model's training relates to scoring ``dataset``'s split ``split``: "own trial",
    "not trained on it" (recorded, and this dataset absent), "not recorded" (a model trained by
    us without a record), or "other trial" (refused by ``refusal``). ``record`` None means the
    model says nothing; ``{}`` that it trained on no split benchmark."""
    if split is None:
        return "single split"
    if record is None:
        return "not recorded"
    trained = record.get(dataset)
    if not trained:
        return "not trained on it"
    return "own trial" if list(trained) == [split] else "other trial"


def refusal(record: dict | None, dataset: str, split: int | None, what: str) -> str | None:
    """One line saying why ``what`` (a checkpoint or pre-filter) may not score this split, or None."""
    if status(record, dataset, split) != "other trial":
        return None
    word = TRIAL_OPTION.get(dataset, "trial")
    return (f"{what} trained on {dataset} {word}(s) {', '.join(map(str, record[dataset]))}, so it has seen the test "
            f"identities of {word} {split}; give one per trial, e.g. --model 'ckpt/{dataset}-trial{{trial}}'")
