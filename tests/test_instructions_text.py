"""Text for every dataset: images without captions or attributes (LTCC, SYSU-MM01, Market-1501
without its attribute file) are captioned once, the captions are kept beside the store, and every
stage-2/3 text task draws on them."""

import json
from collections import Counter

import numpy as np
import pytest

from chatreid import cli
from chatreid.data.builder import build as build_store
from chatreid.data.store import ImageStore
from chatreid.data.synthpeds import generate
from chatreid.instructions import BuildConfig, build, load, push_to_hub, validate
from chatreid.instructions.captioners import captioners_in, default_cache
from hub_fakes import FakeHub

DATASETS = ("ltcc", "market1501", "sysu_mm01")
TEXT_TASKS = {2: ("t2i_one_to_one", "t2i_many_to_one", "t2i_one_to_many"),
              3: ("reid_t2i", "multimodal_retrieval")}
# Nothing here is annotated with attributes, so the attribute tasks (and multi-modal
# conversations, which start from attributes) are left out.
NO_ATTRIBUTES = {2: dict(mix={"i2i_one_to_one": 0.2, "i2i_many_to_many": 0.2, "t2i_one_to_one": 0.2,
                              "t2i_many_to_one": 0.2, "t2i_one_to_many": 0.2}),
                 3: dict(mix={"reid_standard": 0.2, "reid_cc": 0.2, "reid_vi": 0.2, "reid_t2i": 0.2,
                              "multimodal_retrieval": 0.2}, conversation_prob=0.0)}


class PixelCaptioner:
    """Describes a person by the mean colour of the upper and lower half of the picture (almost
    every image gets its own sentence); counts its calls."""

    name = "pixel-captioner"

    def __init__(self):
        self.calls = 0

    def __call__(self, image, prompt):
        assert prompt.startswith("In the person image provided")
        self.calls += 1
        a = np.asarray(image.convert("RGB"), dtype=float)
        h = a.shape[0] // 2
        up, low = (tuple(int(v) for v in part.reshape(-1, 3).mean(0)) for part in (a[:h], a[h:]))
        return f"A pedestrian in a shirt of colour {up} and trousers of colour {low}."


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """SynthPeds worlds in the LTCC, Market-1501 and SYSU-MM01 layouts, read by the benchmarks'
    own readers: no captions, no attributes."""
    base = tmp_path_factory.mktemp("text")
    roots = {}
    for layout, name in (("ltcc", "ltcc"), ("market", "market1501"), ("sysu", "sysu_mm01")):
        roots[name] = base / layout
        generate(layout, roots[name], 12, seed=5, images_per_id=5)
    path = base / "store"
    build_store([f"{name}:{root}" for name, root in roots.items()], path, progress=False)
    return str(path)


def _train_images(store_path):
    meta = ImageStore.load(store_path).metadata()
    assert not any(any(c) for c in meta["captions"])
    assert not any(a and json.loads(a) for a in meta["attributes"])
    return sum(s == "train" for s in meta["split"])


def _text_rows(out, stage):
    """{dataset: text-task rows} counted from the rows themselves."""
    counts = Counter()
    for row in load(out)["train"].to_list():
        if row["task"] in TEXT_TASKS[stage] and ('"text":' in row["meta"] or '"texts":' in row["meta"]):
            counts[row["image_ids"][0].split("/")[0]] += 1
    return counts


def test_without_a_captioner_these_datasets_have_no_text(store_path, tmp_path):
    _train_images(store_path)
    with pytest.raises(ValueError, match="t2i_one_to_one: no image"):
        build(store_path, tmp_path / "s2", BuildConfig(stage=2, size=200), progress=False)
    info = build(store_path, tmp_path / "s2", BuildConfig(stage=2, size=200, mix={
        t: 1.0 for t in ("i2i_one_to_one", "i2i_many_to_many")}), progress=False)
    assert info["text_rows"]["train"] == dict.fromkeys(DATASETS, 0)


def test_every_dataset_gets_text_rows_in_stages_2_and_3(store_path, tmp_path, capsys):
    n_train = _train_images(store_path)
    cap = PixelCaptioner()
    infos = {}
    for stage, size in ((2, 900), (3, 900)):
        out = tmp_path / f"stage{stage}"
        infos[stage] = build(store_path, out, BuildConfig(stage=stage, size=size, seed=1,
                                                          val_fraction=0.2, **NO_ATTRIBUTES[stage]),
                             captioner=cap, progress=False)
        # every dataset's images appear with text, in every text task
        counted = _text_rows(out, stage)
        assert set(counted) == set(DATASETS), counted
        assert all(infos[stage]["text_rows"]["train"][d] >= counted[d] > 0 for d in DATASETS)
        report = validate(str(out), store_path, progress=False)
        assert report.ok, report.format(limit=5)
        for task in TEXT_TASKS[stage]:
            seen = {r["image_ids"][0].split("/")[0] for r in load(out)["train"].to_list()
                    if r["task"] == task and '"text' in r["meta"]}
            assert seen == set(DATASETS), (task, seen)
    # Each image captioned once: stage 2 asked for every train image, stage 3 for none.
    assert cap.calls == n_train
    cache = default_cache(store_path, tmp_path / "x")
    assert cache.startswith(store_path) and captioners_in(cache) == [cap.name]
    assert infos[3]["captions"] == {"file": cache, "images": n_train}

    # A later build needs no captioner: the store's captions are there (here from the CLI).
    out = tmp_path / "again"
    assert cli.main(["build-data", "--stage", "2", "--store", store_path, "--out", str(out),
                     "--size", "300", "--val-fraction", "0.2", "--mix", "attr_compare=0",
                     "attr_predict=0"]) == 0
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if "train text rows:" in ln)
    assert all(f"{d}=" in line and f"{d}=0" not in line for d in DATASETS), line
    assert cli.main(["data", "validate", str(out), "--store", store_path]) == 0


def test_validation_needs_the_captions_the_rows_used(store_path, tmp_path):
    out = tmp_path / "s2"
    cache = tmp_path / "captions.jsonl"
    build(store_path, out, BuildConfig(stage=2, size=300, val_fraction=0.2,
                                       mix={"t2i_one_to_many": 1.0}),
          captioner=PixelCaptioner(), caption_cache=str(cache), progress=False)
    dsd = load(out)  # a DatasetDict alone carries no captions: its rows cannot be checked
    assert validate(dsd, store_path, progress=False).counts().get("wrong_text")
    assert validate(dsd, store_path, captions=str(out / "chatreid_captions.json"),
                    progress=False).ok
    # a row's caption swapped with another image's in the file is caught
    path = out / "chatreid_captions.json"
    data = json.loads(path.read_text())
    a = json.loads(dsd["train"][0]["meta"])["text"]["image_id"]
    b = next(k for k, v in data["captions"].items() if v != data["captions"][a])
    data["captions"][a], data["captions"][b] = data["captions"][b], data["captions"][a]
    path.write_text(json.dumps(data))
    assert not validate(str(out), store_path, progress=False).ok


def test_a_cache_of_several_captioners_needs_one_named(store_path, tmp_path):
    cache = tmp_path / "two.jsonl"
    cache.write_text("\n".join(json.dumps({"captioner": n, "image_id": "ltcc/x", "caption": "c"})
                               for n in ("a", "b")) + "\n")
    with pytest.raises(ValueError, match="several captioners"):
        build(store_path, tmp_path / "o", BuildConfig(stage=2, size=50), caption_cache=str(cache),
              progress=False)


def _digest(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_pushed_dataset_validates_from_the_hub_with_its_captions(store_path, tmp_path, monkeypatch):
    out = tmp_path / "s2"
    build(store_path, out, BuildConfig(stage=2, size=300, val_fraction=0.2, mix={"t2i_one_to_many": 1.0}),
          captioner=PixelCaptioner(), caption_cache=str(tmp_path / "captions.jsonl"), progress=False)
    hub = FakeHub(tmp_path / "hub", monkeypatch)
    push_to_hub(out, "me/s2")
    # the captions go beside the data, in the card's commit
    assert hub.commits[-1][2] == ["chatreid_captions.json", "README.md"]
    assert "chatreid_captions.json" in hub.commits[-1][1]
    assert (hub.repo("me/s2") / "chatreid_captions.json").read_bytes() == (out / "chatreid_captions.json").read_bytes()
    assert validate("me/s2", store_path, progress=False).ok
    assert cli.main(["data", "validate", "me/s2", "--store", store_path]) == 0
    # without the file on the Hub, the same rows cannot be checked
    (hub.repo("me/s2") / "chatreid_captions.json").unlink()
    assert validate("me/s2", store_path, progress=False).counts().get("wrong_text")


def test_a_failed_captions_upload_says_so_and_keeps_the_folder(store_path, tmp_path, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from chatreid.hub import PushError
    from hub_fakes import hub_error

    out = tmp_path / "s2"
    build(store_path, out, BuildConfig(stage=2, size=300, val_fraction=0.2, mix={"t2i_one_to_many": 1.0}),
          captioner=PixelCaptioner(), caption_cache=str(tmp_path / "captions.jsonl"), progress=False)
    before = _digest(out)
    hub = FakeHub(tmp_path / "hub", monkeypatch, fail_commit=hub_error(403))
    with pytest.raises(PushError) as info:
        push_to_hub(out, "me/s2")
    message = str(info.value)
    assert "no write access" in message and "the rows reached the Hub but chatreid_captions.json" in message
    assert f"local copy at {out} is intact" in message and "\n" not in message
    assert _digest(out) == before and validate(str(out), store_path, progress=False).ok
    # a captions file the Hub cannot give (offline, not cached) is one clear error, not a silent gap
    import huggingface_hub

    def not_cached(*a, **k):
        raise LocalEntryNotFoundError("offline and not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_cached)
    with pytest.raises(ValueError, match="cannot fetch chatreid_captions.json of instruction dataset 'me/s2'.*"
                                         "--captions FILE"):
        validate("me/s2", store_path, progress=False)
    assert len(hub.commits) == 1  # only the rows went up
