"""Stage 1 sources and filters, the cached captioner, interrupted builds, and the Hub boundary."""

import json
import os
import sys

import pytest

from chatreid import prompts as P
from chatreid.data.attributes import to_text
from chatreid.data.store import ImageStore
from chatreid.hub import PushError
from chatreid.instructions import BuildConfig, build, load, push_to_hub, validate
from chatreid.instructions.rows import turns_of
from chatreid.instructions.standin import DatasetSpec, make_store, metadata
from hub_fakes import FakeHub

BUILD = sys.modules["chatreid.instructions.build"]
SPECS = [DatasetSpec("synthpeds", 12, images=(3, 5), outfits=2, infrared=0.3),
         DatasetSpec("market1501", 12, images=(3, 5), captions=False),
         DatasetSpec("prcc", 12, images=(3, 5), captions=False, attributes=False)]


@pytest.fixture(scope="module")
def stage1_store(tmp_path_factory):
    """Some images too small, some occluded (by annotation or by caption), some without text."""
    meta = metadata(SPECS, seed=1)
    plan = {}
    for i, (d, s) in enumerate(zip(meta["dataset"], meta["split"])):
        if s != "train" or i % 5:
            continue
        kind = ("small", "occluded_attrs", "occluded_caption")[(i // 5) % 3]
        if kind == "small":
            meta["width"][i], meta["height"][i] = 20, 40
        elif kind == "occluded_attrs" and d == "market1501":
            meta["attributes"][i] = json.dumps({"gender": "male", "hat": True})
        elif kind == "occluded_caption" and d == "synthpeds":
            meta["captions"][i] = ["A person standing behind a car, only the head visible."]
        else:
            continue
        plan[meta["image_id"][i]] = kind
    path = make_store(tmp_path_factory.mktemp("s1") / "store", SPECS, meta=meta)
    return path, meta, plan


class FakeCaptioner:
    """Describes clothing, except for one image it calls occluded; can fail after n calls."""

    def __init__(self, fail_after=None):
        self.calls = []
        self.fail_after = fail_after
        self.__name__ = "fake-vlm"

    def __call__(self, image, prompt):
        assert image.mode == "RGB" and "detailed description of the pedestrian" in prompt
        # the image travels apart from the text: the text names it once, as the paper does
        assert prompt.startswith("In the person image provided, can you give") and "<image>" not in prompt
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("endpoint went away")
        self.calls.append(prompt)
        if len(self.calls) == 1:
            return "The pedestrian is mostly hidden; nothing else can be made out."
        return f"A person in a grey coat and black trousers, number {len(self.calls)}."


def test_stage1_sources_filters_and_counts(stage1_store, tmp_path):
    path, meta, plan = stage1_store
    out = tmp_path / "s1"
    info = build(path, out, BuildConfig(stage=1, val_fraction=0.2), progress=False)
    f = info["filters"]
    n_train = meta["split"].count("train")
    assert f["train_images"] == n_train
    assert f["too_small"] == sum(k == "small" for k in plan.values())
    assert f["occluded"] == sum(k.startswith("occluded") for k in plan.values())
    no_text = sum(1 for i, d in enumerate(meta["dataset"]) if d == "prcc" and meta["split"][i] == "train"
                  and meta["image_id"][i] not in plan)
    assert f["no_text"] == no_text and f["captioned"] == 0
    rows = load(out)["train"].to_list() + load(out)["validation"].to_list()
    kept = {r["image_ids"][0] for r in rows}
    assert not kept & set(plan)  # every filtered image is gone
    assert len(kept) == n_train - f["too_small"] - f["occluded"] - f["no_text"]
    by_id = dict(zip(meta["image_id"], range(len(meta["image_id"]))))
    for r in rows:
        (prompt, answer), = turns_of(r)
        assert prompt == P.TEMPLATES["caption"]
        i = by_id[r["image_ids"][0]]
        src = json.loads(r["meta"])["source"]
        if meta["captions"][i]:
            assert src == "synthpeds" and answer in meta["captions"][i]
        else:
            assert src == "attributes" and answer == to_text(json.loads(meta["attributes"][i]))
    assert validate(out, path, progress=False).ok


def test_stage1_captioner_is_cached_and_resumes(stage1_store, tmp_path):
    path, meta, plan = stage1_store
    cache = tmp_path / "captions.jsonl"
    need = sum(1 for i, d in enumerate(meta["dataset"]) if d == "prcc" and meta["split"][i] == "train"
               and meta["image_id"][i] not in plan)
    broken = FakeCaptioner(fail_after=3)
    with pytest.raises(RuntimeError, match="endpoint went away"):
        build(path, tmp_path / "a", BuildConfig(stage=1, val_fraction=0.2), captioner=broken,
              caption_cache=str(cache), progress=False)
    assert not (tmp_path / "a").exists()
    assert len(cache.read_text().splitlines()) == 3
    # An interrupted write leaves half a line: ignored, that image is asked again.
    with open(cache, "a") as fh:
        fh.write('{"captioner": "fake-vlm", "image_id": "prcc/tr')
    cap = FakeCaptioner()
    cap.calls = ["x"] * 3  # continue its numbering; the first (occluded) answer is cached
    info = build(path, tmp_path / "a", BuildConfig(stage=1, val_fraction=0.2), captioner=cap,
                 caption_cache=str(cache), progress=False)
    assert len(cap.calls) - 3 == need - 3  # only the images not cached yet
    f = info["filters"]
    assert f["captioned"] == need and f["no_text"] == 0
    rows = load(tmp_path / "a")["train"].to_list() + load(tmp_path / "a")["validation"].to_list()
    captioned = [r for r in rows if json.loads(r["meta"])["source"] == "captioner"]
    assert len(captioned) == need - 1  # the "mostly hidden" answer was dropped as occluded
    assert all("coat" in turns_of(r)[0][1] for r in captioned)
    again = FakeCaptioner()
    build(path, tmp_path / "b", BuildConfig(stage=1, val_fraction=0.2), captioner=again,
          caption_cache=str(cache), progress=False)
    assert again.calls == []


def test_stage1_size_larger_than_available_is_an_error(stage1_store, tmp_path):
    with pytest.raises(ValueError, match="captioning rows after filtering"):
        build(stage1_store[0], tmp_path / "x", BuildConfig(stage=1, size=10**6), progress=False)


def test_interrupted_build_leaves_nothing_complete_and_resumes(stage1_store, tmp_path, monkeypatch):
    path = stage1_store[0]
    cfg = dict(stage=2, size=350, seed=2, val_fraction=0.2, shard_size=60)
    reference = tmp_path / "ref"
    build(path, reference, BuildConfig(**cfg), progress=False)

    out = tmp_path / "out"
    real = BUILD._run_shard
    calls = []

    def dies_after_two(job):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(job["path"])
        return real(job)

    monkeypatch.setattr(BUILD, "_run_shard", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        build(path, out, BuildConfig(**cfg), progress=False)
    assert not out.exists()
    work = [p for p in os.listdir(tmp_path) if p.startswith(".out.partial-")]
    assert len(work) == 1
    shards = os.listdir(tmp_path / work[0] / "shards")
    # two finished shards, each with its text-row counts; nothing half-written
    names = [os.path.basename(c) for c in calls]
    assert sorted(shards) == sorted(names + [n + ".text.json" for n in names])

    monkeypatch.setattr(BUILD, "_run_shard", lambda job: calls.append(job["path"]) or real(job))
    build(path, out, BuildConfig(**cfg), progress=False)
    assert len(calls) == 7  # 2 + the 5 missing of the 7 shards (280 train + 70 validation rows)
    assert load(out)["train"].to_list() == load(reference)["train"].to_list()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.")]


def test_push_to_hub_with_card(stage1_store, tmp_path, monkeypatch):
    import datasets

    out = tmp_path / "pushme"
    build(stage1_store[0], out, BuildConfig(stage=2, size=300, val_fraction=0.2), progress=False)
    assert not (out / "chatreid_captions.json").exists()  # no captioner: nothing else to push
    hub = FakeHub(tmp_path / "hub", monkeypatch)
    push_to_hub(out, "me/chatreid-stage2")
    assert [c[2] for c in hub.commits] == [["data", "README.md"], ["README.md"]]
    assert {k: len(v) for k, v in load("me/chatreid-stage2").items()} == {k: len(v) for k, v in load(out).items()}
    card = (hub.repo("me/chatreid-stage2") / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n---\n")  # the header datasets wrote is kept
    assert "i2i_many_to_many" in card and "## Sources" in card and stage1_store[0] in card
    train_counts = json.loads((out / "chatreid_instructions.json").read_text())["tasks"]["train"]
    assert f"| i2i_one_to_one | 0.275 | {train_counts['i2i_one_to_one']} |" in card
    # the Hub copy has no captions file, and needs none
    assert validate("me/chatreid-stage2", stage1_store[0], progress=False).ok

    def offline(self, repo_id, **kw):
        raise OSError("Cannot reach https://huggingface.co: offline mode is enabled")

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", offline)
    before = sorted(os.listdir(out))
    with pytest.raises(PushError, match="local copy at .* is intact") as info:
        push_to_hub(out, "me/chatreid-stage2")
    assert "reached the Hub" not in str(info.value)
    assert sorted(os.listdir(out)) == before and len(load(out)["train"]) > 0


def test_cli_push_failure_keeps_local_copy(stage1_store, tmp_path, monkeypatch, capsys):
    import datasets

    from chatreid.cli import main

    def offline(self, repo_id, **kw):
        raise OSError("offline")

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", offline)
    out = tmp_path / "o"
    code = main(["build-data", "--stage", "3", "--store", stage1_store[0], "--out", str(out),
                 "--size", "120", "--val-fraction", "0.2", "--push-to-hub", "me/x"])
    assert code == 1
    assert "intact" in capsys.readouterr().err
    assert validate(out, stage1_store[0], progress=False).ok


def test_load_from_a_hub_id_offline_says_so():
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        load("someone/chatreid-stage2")


def test_store_object_is_accepted(stage1_store, tmp_path):
    store = ImageStore.load(stage1_store[0])
    info = build(store, tmp_path / "o", BuildConfig(stage=3, size=60, val_fraction=0.2), progress=False)
    assert sum(info["rows"].values()) == 60


def test_a_store_too_small_for_validation_gives_an_empty_typed_split(tmp_path):
    """val_fraction rounds to no identity: the build still writes, and reads back, both splits."""
    store = make_store(tmp_path / "store", [DatasetSpec("synthpeds", 6, images=(3, 4))])
    out = tmp_path / "o"
    info = build(store, out, BuildConfig(stage=2, size=40, val_fraction=0.05), progress=False)
    assert info["rows"] == {"train": 40, "validation": 0}
    dsd = load(out)
    assert len(dsd["train"]) == 40 and len(dsd["validation"]) == 0
    assert dsd["validation"].features == dsd["train"].features
    assert validate(out, store, progress=False).ok


def test_load_of_a_missing_folder_names_it():
    # a bare name is not a Hub id (owner/name): named as a missing folder, the Hub not asked
    with pytest.raises(FileNotFoundError, match="instruction dataset stage2-missing: no such local path"):
        load("stage2-missing")
