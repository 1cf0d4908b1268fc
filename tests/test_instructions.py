"""The instruction engine: every task's rows against ground truth, the mixture, gallery and match
distributions, determinism, the identity split, the disk round trip, the validator."""

import functools
import json
import os
from collections import Counter

import numpy as np
import pytest

from chatreid import prompts as P
from chatreid.data.store import ImageStore
from chatreid.instructions import BuildConfig, DEFAULT_MIX, build, load, parse_mix, validate
from chatreid.instructions import sampling
from chatreid.instructions.build import allocate
from chatreid.instructions.rows import turns_of
from chatreid.instructions.standin import DatasetSpec, make_store

SPECS = [
    DatasetSpec("synthpeds", 40, images=(4, 10), infrared=0.3, outfits=2, test_identities=4),
    DatasetSpec("market1501", 30, images=(3, 8), captions=False, test_identities=4),
    DatasetSpec("cuhk_pedes", 30, images=(2, 5), attributes=False, test_identities=3),
    DatasetSpec("sysu_mm01", 20, images=(4, 8), captions=False, attributes=False, infrared=0.5),
]
VAL = 0.2


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("instr") / "store", SPECS, seed=3)


@pytest.fixture(scope="module")
def store(store_path):
    return ImageStore.load(store_path)


@pytest.fixture(scope="module")
def built(store_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    out = {}
    for stage, size in ((1, None), (2, 1400), (3, 700)):
        path = root / f"stage{stage}"
        build(store_path, path, BuildConfig(stage=stage, size=size, seed=5, val_fraction=VAL,
                                            shard_size=700), num_proc=1, progress=False)
        out[stage] = str(path)
    return out


@functools.lru_cache(maxsize=None)
def _cached_rows(path, split):
    return load(path)[split].to_list()


def _rows(path, split="train"):
    return _cached_rows(str(path), split)


def _truth(store):
    meta = store.metadata()
    return {iid: (d, p, s, c, m, json.loads(a) if a else {}, caps)
            for iid, d, p, s, c, m, a, caps in zip(meta["image_id"], meta["dataset"], meta["pid"],
                                                   meta["split"], meta["clothes_id"], meta["modality"],
                                                   meta["attributes"], meta["captions"])}


def test_every_built_stage_validates_clean(built, store):
    for stage, path in built.items():
        report = validate(path, store, progress=False)
        assert report.rows > 0
        assert report.ok, report.format()


def test_rows_have_the_architecture_format(built, store):
    for path in built.values():
        dsd = load(path)
        assert set(dsd) == {"train", "validation"} and len(dsd["validation"]) > 0
        for row in _rows(path)[:300]:
            assert set(row) == {"messages", "image_ids", "task", "meta"}
            assert row["task"] in P.INSTRUCTION_TASKS
            n = sum(c["type"] == "image" for m in row["messages"] for c in m["content"])
            assert n == len(row["image_ids"]) and n >= 1
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * (len(row["messages"]) // 2)
            assert isinstance(json.loads(row["meta"]), dict)
            assert all(i in store for i in row["image_ids"])


def test_only_train_images_and_identity_split(built, store):
    truth = _truth(store)
    for path in built.values():
        ids = {}
        for split in ("train", "validation"):
            people = set()
            for row in _rows(path, split):
                for iid in row["image_ids"]:
                    d, p, s = truth[iid][:3]
                    assert s == "train", iid
                    people.add((d, p))
            ids[split] = people
        assert ids["train"] and ids["validation"] and not ids["train"] & ids["validation"]


def test_image_tasks_answers_from_identity(built, store):
    truth = _truth(store)
    person = {k: v[:2] for k, v in truth.items()}
    seen = Counter()
    for path in (built[2], built[3]):
        for row in _rows(path):
            task, ids, turns = row["task"], row["image_ids"], turns_of(row)
            seen[task] += 1
            if task == "i2i_one_to_one":
                assert P.parse_yes_no(turns[0][1]) == (person[ids[0]] == person[ids[1]])
            elif task in ("i2i_many_to_many", "reid_standard", "reid_cc", "reid_vi"):
                want = sorted(j for j, g in enumerate(ids[1:]) if person[g] == person[ids[0]])
                if not want:  # only a best-choice page may hold no match: one turn, "None"
                    assert task != "i2i_many_to_many" and json.loads(row["meta"])["best_choice"]
                    assert [a for _, a in turns] == [P.NONE]
                    continue
                if len(turns) == 1:
                    assert sorted(P.parse_image_refs(turns[0][1])) == want
                else:  # best choice: each match once, then None
                    picks = [P.parse_best_choice(a) for _, a in turns]
                    assert sorted(picks[:-1]) == want and picks[-1] is None
                if task == "i2i_many_to_many":
                    assert len(want) <= len(ids) - 2  # at least one distractor
                if task == "reid_vi":
                    mods = {truth[g][4] for g in ids[1:]}
                    assert mods == {"visible", "infrared"} - {truth[ids[0]][4]}
                if task == "reid_cc":
                    assert any(truth[ids[1 + j]][3] != truth[ids[0]][3] for j in want)
    assert all(seen[t] > 0 for t in P.STAGE_TASKS[2] + P.STAGE_TASKS[3])


def test_text_and_attribute_tasks_from_ground_truth(built, store):
    truth = _truth(store)
    for row in _rows(built[2]):
        task, ids, turns = row["task"], row["image_ids"], turns_of(row)
        meta = json.loads(row["meta"])
        if task == "attr_predict":
            assert P.parse_attributes(turns[0][1]) == truth[ids[0]][5]
        elif task == "attr_compare":
            a, b = truth[ids[0]][5], truth[ids[1]][5]
            common, first, second = P.parse_attr_compare(turns[0][1])
            for k, v in common.items():
                assert a[k] == v == b[k]
            for k, v in first.items():
                assert a[k] == v
        elif task == "t2i_many_to_one":
            pick = P.parse_caption_choice(turns[0][1])
            owner = meta["texts"][pick]["image_id"]
            assert truth[owner][:2] == truth[ids[0]][:2]
            others = [t["image_id"] for j, t in enumerate(meta["texts"]) if j != pick]
            assert all(truth[o][:2] != truth[ids[0]][:2] for o in others)
        elif task == "t2i_one_to_one":
            owner = meta["text"]["image_id"]
            assert P.parse_yes_no(turns[0][1]) == (truth[owner][:2] == truth[ids[0]][:2])
    for row in _rows(built[3]):
        if row["task"] == "attr_retrieval":
            q = json.loads(row["meta"])["query_attributes"]
            turns = turns_of(row)
            want = [j for j, g in enumerate(row["image_ids"])
                    if all(truth[g][5].get(k) == v for k, v in q.items())]
            named = P.parse_image_refs(" ".join(a for _, a in turns))
            assert sorted(named) == want and 1 <= len(q) <= 3


def test_stage3_multi_turn_conversations(built):
    kinds = Counter()
    for row in _rows(built[3]):
        meta = json.loads(row["meta"])
        if row["task"] == "multimodal_retrieval":
            kinds[meta["variant"]] += 1
            turns = turns_of(row)
            if meta["variant"] == "conversation":
                pick = P.parse_best_choice(turns[0][1])
                assert f"Image {pick + 1} " in turns[1][0]
            else:
                assert P.count_images(turns[0][0]) == len(row["image_ids"])
        kinds["best_choice" if meta.get("best_choice") else "one_answer"] += 1
    assert kinds["conversation"] and kinds["image_text"] and kinds["best_choice"] and kinds["one_answer"]


def test_mixture_counts_follow_the_configured_weights(built):
    info = json.loads(open(os.path.join(built[2], "chatreid_instructions.json")).read())
    for split in ("train", "validation"):
        counts = Counter(load(built[2])[split]["task"])
        n = sum(counts.values())
        assert dict(counts) == allocate(DEFAULT_MIX[2], n) == info["tasks"][split]
    mix = DEFAULT_MIX[2]
    assert 0.25 <= mix["i2i_one_to_one"] <= 0.30 and 0.25 <= mix["i2i_many_to_many"] <= 0.30
    assert all(abs(w - 0.10) <= 0.011 for k, w in mix.items() if not k.startswith("i2i"))
    assert abs(sum(mix.values()) - 1) < 1e-9
    custom = parse_mix(2, ["attr_predict=0", "i2i_one_to_one=2"])
    assert "attr_predict" not in custom and abs(sum(custom.values()) - 1) < 1e-9
    with pytest.raises(ValueError, match="no task 'nope'"):
        parse_mix(2, ["nope=1"])
    with pytest.raises(ValueError, match="TASK=WEIGHT"):
        parse_mix(3, ["reid_cc"])


def test_allocate_is_exact():
    assert sum(allocate(DEFAULT_MIX[2], 1001).values()) == 1001
    assert allocate({"a": 0.5, "b": 0.5}, 3) in ({"a": 2, "b": 1}, {"a": 1, "b": 2})


def test_gallery_size_and_eq1_match_distributions():
    rng = np.random.default_rng(0)
    n = 200_000
    sizes = sampling.gallery_sizes(rng, n, 2, 8)
    freq = np.bincount(sizes, minlength=9)[2:] / n
    assert np.allclose(freq, 1 / 7, atol=0.006)
    # Eq. 1 per step (the default): k = 2..N kept with probability 1/(k-1) each records every
    # number equally often, as the paper's sentence asks: m = k - 1 uniform on 1..N-1.
    m = sampling.match_counts(rng, np.full(n, 8), np.full(n, 50))
    assert np.allclose(np.bincount(m, minlength=8)[1:] / n, 1 / 7, atol=0.006)
    # ... also where the identity cuts the walk short, per row.
    m = sampling.match_counts(rng, np.full(n, 8), np.where(np.arange(n) % 2, 50, 3))
    assert np.allclose(np.bincount(m[1::2], minlength=8)[1:] / (n // 2), 1 / 7, atol=0.008)
    assert np.allclose(np.bincount(m[::2], minlength=4)[1:] / (n // 2), 1 / 3, atol=0.008)
    # The inverse reading stays an option: P(m) ~ m^-power.
    m = sampling.match_counts(rng, np.full(n, 6), np.full(n, 50), "inverse", power=1.0)
    p = 1 / np.arange(1, 6)
    assert np.allclose(np.bincount(m, minlength=6)[1:] / n, p / p.sum(), atol=0.006)
    m0 = sampling.match_counts(rng, np.full(n, 6), np.full(n, 50), "inverse", power=0.0)
    assert np.allclose(np.bincount(m0, minlength=6)[1:] / n, 0.2, atol=0.006)
    # The support is cut at what the identity has (here 2 other images).
    assert sampling.match_counts(rng, np.full(1000, 8), np.full(1000, 2)).max() == 2
    assert sampling.match_counts(rng, np.full(1000, 8), np.full(1000, 2), "inverse").max() == 2
    with pytest.raises(ValueError, match="reading"):
        sampling.match_counts(rng, np.full(3, 8), np.full(3, 2), "harmonic")


def test_eq1_reading_reaches_the_built_rows(store_path, tmp_path):
    """Stage-2 many-to-many galleries: the default gives m = 1 to about 1/(N-1) of the rows of
    each gallery size N, the inverse reading to 1/H(N-1)."""
    def share_of_one_match(reading):
        out = tmp_path / reading
        build(store_path, out, BuildConfig(stage=2, size=1500, seed=2, val_fraction=0.0,
                                           mix={"i2i_many_to_many": 1.0}, eq1_reading=reading),
              progress=False)
        rows = [json.loads(r["meta"]) for r in _rows(out)]
        expected = {"per_step": lambda g: 1 / (g - 1),
                    "inverse": lambda g: 1 / sum(1 / j for j in range(1, g))}[reading]
        ones = sum(len(r["matches"]) == 1 for r in rows)
        return ones / len(rows), np.mean([expected(r["gallery_size"]) for r in rows])

    got, want = share_of_one_match("per_step")
    assert abs(got - want) < 0.04 and got < 0.45
    got, want = share_of_one_match("inverse")
    assert abs(got - want) < 0.04 and got > 0.5
    with pytest.raises(ValueError, match="eq1_reading"):
        BuildConfig(stage=2, size=10, eq1_reading="harmonic")


def test_built_gallery_sizes_span_the_configured_range(built):
    sizes = Counter()
    for row in _rows(built[2]):
        if row["task"] == "i2i_many_to_many":
            g = len(row["image_ids"]) - 1
            assert 2 <= g <= 8
            sizes[g] += 1
    assert set(sizes) == set(range(2, 9))


def test_deterministic_by_seed(store, tmp_path):
    def make(name, seed, num_proc):
        build(store, tmp_path / name, BuildConfig(stage=3, size=300, seed=seed, val_fraction=VAL,
                                                  shard_size=100), num_proc=num_proc, progress=False)
        return _rows(tmp_path / name)

    a = make("a", 5, 1)
    assert make("b", 5, 2) == a  # other worker count, same rows
    assert make("c", 6, 1) != a


def test_paraphrases_are_sampled_when_asked(store_path, tmp_path):
    out = tmp_path / "para"
    build(store_path, out, BuildConfig(stage=2, size=600, seed=1, val_fraction=VAL,
                                       paraphrase_prob=0.5), progress=False)
    prompts = [turns_of(r)[0][0] for r in _rows(out) if r["task"] == "i2i_one_to_one"]
    verbatim = sum(p == P.TEMPLATES["i2i_one_to_one"] for p in prompts)
    assert 0.3 < verbatim / len(prompts) < 0.7


def test_round_trip_and_load_errors(built, tmp_path):
    dsd = load(built[2])
    row = dsd["train"][0]
    assert row == load(built[2])["train"][0]
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "missing"))
    assert "Task mixture" in open(os.path.join(built[2], "README.md")).read()


def test_existing_output_is_not_overwritten(store_path, built):
    with pytest.raises(FileExistsError):
        build(store_path, built[2], BuildConfig(stage=2, size=10), progress=False)


def _plant(dsd, split, index, change):
    """A small copy of ``dsd`` (row ``index`` and 20 others per split) with ``change`` applied to
    row ``index``, which becomes row 0."""
    import datasets

    out = {}
    for s in dsd:
        keep = [index] + [i for i in range(20) if i != index] if s == split else list(range(20))
        rows = dsd[s].select(keep).to_list()
        if s == split:
            change(rows[0])
        out[s] = datasets.Dataset.from_list(rows, features=dsd[s].features)
    return datasets.DatasetDict(out)


def _find(dsd, task, split="train"):
    return next(i for i, t in enumerate(dsd[split]["task"]) if t == task)


def test_validator_finds_planted_errors(built, store):
    dsd2, dsd3 = load(built[2]), load(built[3])

    def flip_yes_no(row):
        a = row["messages"][1]["content"][0]
        a["text"] = "No" if a["text"] == "Yes" else "Yes"

    def shift_index(row):
        a = row["messages"][1]["content"][0]
        refs = P.parse_image_refs(a["text"])
        a["text"] = P.answer_matches([(refs[0] + 1) % (len(row["image_ids"]) - 1)] + refs[1:])

    def missing_image(row):
        row["image_ids"][0] = "synthpeds/nowhere.png"

    def malformed(row):
        row["messages"] = row["messages"][:1]

    def wrong_caption(row):
        a = row["messages"][1]["content"][0]
        a["text"] = P.answer_caption_choice((P.parse_caption_choice(a["text"]) + 1) % 2)

    cases = [(dsd2, "i2i_one_to_one", flip_yes_no, "wrong_yes_no"),
             (dsd2, "t2i_one_to_one", flip_yes_no, "wrong_yes_no"),
             (dsd2, "i2i_many_to_many", shift_index, "wrong_index"),
             (dsd2, "attr_predict", missing_image, "missing_image"),
             (dsd2, "t2i_many_to_one", wrong_caption, "wrong_index"),
             (dsd3, "reid_standard", malformed, "malformed")]
    for dsd, task, change, kind in cases:
        i = _find(dsd, task)
        report = validate(_plant(dsd, "train", i, change), store, progress=False)
        assert [(e[1], e[2]) for e in report.errors] == [(0, kind)], (task, report.format())

    # A query/gallery image of a benchmark, and an identity in both splits.
    meta = store.metadata()
    test_img = next(i for i, s in zip(meta["image_id"], meta["split"]) if s == "gallery")
    i = _find(dsd2, "attr_predict")
    report = validate(_plant(dsd2, "train", i, lambda r: r["image_ids"].__setitem__(0, test_img)),
                      store, progress=False)
    assert "test_split_image" in report.counts()
    val_img = dsd2["validation"][0]["image_ids"][0]
    report = validate(_plant(dsd2, "train", i, lambda r: r["image_ids"].__setitem__(0, val_img)),
                      store, progress=False)
    assert "identity_leak" in report.counts()


def test_cli_build_and_validate(store_path, tmp_path, capsys):
    from chatreid.cli import main

    out = tmp_path / "cli"
    assert main(["build-data", "--stage", "2", "--store", store_path, "--out", str(out),
                 "--size", "300", "--mix", "attr_predict=0", "--val-fraction", "0.2"]) == 0
    assert "attr_predict" not in set(load(out)["train"]["task"])
    assert main(["data", "validate", str(out), "--store", store_path]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    assert main(["build-data", "--stage", "2", "--store", store_path, "--out", str(out),
                 "--size", "10", "--mix", "bogus=1"]) == 2
    assert "no task 'bogus'" in capsys.readouterr().err


def test_bad_store_metadata_names_the_image(tmp_path):
    from chatreid.instructions.standin import metadata

    meta = metadata(SPECS[:1], seed=0)
    meta["attributes"][3] = json.dumps({"gender": "robot"})
    path = make_store(tmp_path / "bad", SPECS[:1], meta=meta)
    with pytest.raises(ValueError, match=meta["image_id"][3].replace("/", ".")):
        build(path, tmp_path / "o", BuildConfig(stage=2, size=10), progress=False)


def test_stage_3_replays_the_yes_no_rows_the_pairwise_scorer_reads(built):
    """The engine scores with the one-to-one Yes/No prompts (scorer.yes_no_prompt); the default
    stage 3 trains that very format, with answers from ground truth, so the final checkpoint is
    scored in a format it was trained on. ``--mix`` can still turn the replay off."""
    from chatreid.retrieval.scorer import yes_no_prompt

    rows = [r for r in _rows(built[3]) if r["task"] in P.SCORING_TASKS]
    assert {r["task"] for r in rows} == set(P.SCORING_TASKS)
    i2i = [r for r in rows if r["task"] == "i2i_one_to_one"]
    prompt, _ = yes_no_prompt("standard")
    assert all("".join(turns_of(r)[0][0]) == prompt for r in i2i)
    assert {turns_of(r)[0][1] for r in i2i} == {P.YES, P.NO}
    assert set(parse_mix(3, ["i2i_one_to_one=0", "t2i_one_to_one=0"])) == set(P.STAGE_TASKS[3])


def test_lookalike_negatives_pair_people_dressed_alike(store_path, store, tmp_path):
    """``lookalike_negatives``: that share of the one-to-one image negatives shows two people with
    the same upper and lower colours (where the query is annotated); off by default, as the paper."""
    truth = _truth(store)

    def dressed(iid):
        a = truth[iid][5]
        return (a.get("upper_color"), a.get("lower_color")) if a.get("upper_color") and a.get("lower_color") else None

    def alike_share(share):
        path = tmp_path / f"lookalike{share}"
        build(store_path, path, BuildConfig(stage=2, size=600, seed=5, val_fraction=VAL, mix={"i2i_one_to_one": 1.0},
                                            lookalike_negatives=share), num_proc=1, progress=False)
        pairs = [r["image_ids"] for r in _rows(path) if not json.loads(r["meta"])["same"]]
        both = [(dressed(a), dressed(b)) for a, b in pairs if dressed(a) and dressed(b)]
        assert len(both) > 50
        for a, b in pairs:
            assert truth[a][:2] != truth[b][:2]  # still two different people
        return sum(x == y for x, y in both) / len(both)

    # a query with no one else dressed alike among 40 people keeps its uniform draw, so the share
    # stays well under 1 in this small store; uniform draws are alike about 1 time in 50
    on, off = alike_share(1.0), alike_share(0.0)
    assert on > 0.25 and on > 10 * off, (on, off)
    with pytest.raises(ValueError, match="lookalike_negatives"):
        BuildConfig(stage=2, lookalike_negatives=1.5)


def test_dataset_weights_from_the_command_line(store_path, tmp_path, capsys):
    from chatreid.cli import main

    def sysu_share(out):
        rows = [r for r in load(out)["train"].to_list() if r["task"].startswith("i2i")]
        return np.mean([r["image_ids"][0].startswith("sysu_mm01/") for r in rows])  # the query comes first

    common = ["build-data", "--stage", "2", "--store", store_path, "--size", "800", "--seed", "5",
              "--val-fraction", "0.2"]
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert main(common + ["--out", str(tmp_path / "vi"), "--dataset-weight", "sysu_mm01=4", "market1501=1"]) == 0
    plain, vi = sysu_share(tmp_path / "plain"), sysu_share(tmp_path / "vi")
    assert 0.1 < plain < 0.3 and vi > 2 * plain  # the paper's up-weighting of visible-infrared data
    info = json.loads((tmp_path / "vi" / "chatreid_instructions.json").read_text())
    assert info["config"]["dataset_weights"] == {"sysu_mm01": 4.0, "market1501": 1.0}
    capsys.readouterr()
    for bad, words in ((["regdb=2"], "--dataset-weight regdb: "),
                       (["sysu_mm01"], "expected DATASET=WEIGHT"),
                       (["sysu_mm01=lots"], "weight 'lots' is not a number"),
                       (["sysu_mm01=0"], "must be a positive number"),
                       (["sysu_mm01=-2"], "must be a positive number"),
                       (["sysu_mm01=inf"], "must be a positive number"),
                       (["sysu_mm01=nan"], "must be a positive number"),
                       (["sysu_mm01=2", "sysu_mm01=3"], "'sysu_mm01' is given twice")):
        out = tmp_path / "bad"
        assert main(common + ["--out", str(out), "--dataset-weight", *bad]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert not out.exists()
    assert "it holds: cuhk_pedes, market1501, synthpeds, sysu_mm01" in (
        main(common + ["--out", str(tmp_path / "bad"), "--dataset-weight", "regdb=2"]) and capsys.readouterr().err)
    assert main(["build-data", "--stage", "1", "--store", store_path, "--out", str(tmp_path / "s1"),
                 "--dataset-weight", "sysu_mm01=2"]) == 2
    assert "apply to stages 2 and 3" in capsys.readouterr().err


def test_best_choice_pages_without_a_match_and_uniform_positions(store_path, store, tmp_path):
    """Best-choice pages: the configured share holds no match (one turn, "None"); on the others
    the first image named is equally likely at every position of a page of N images."""
    from scipy.stats import chi2

    tasks = ("reid_standard", "reid_cc", "reid_vi", "reid_t2i", "attr_retrieval",
             "multimodal_retrieval")
    out = tmp_path / "pages"
    build(store_path, out, BuildConfig(stage=3, size=3000, seed=4, val_fraction=0.1,
                                       mix={t: 1.0 for t in tasks}, best_choice_prob=1.0,
                                       best_choice_none_prob=0.3, conversation_prob=0.0),
          progress=False)
    report = validate(str(out), store, progress=False)
    assert report.ok, report.format(limit=5)
    pages, empty = Counter(), Counter()
    by_size: dict[int, Counter] = {}
    for row in _rows(out):
        meta = json.loads(row["meta"])
        assert meta["best_choice"]
        turns = turns_of(row)
        first = P.parse_best_choice(turns[0][1])
        pages[row["task"]] += 1
        if not meta["matches"]:
            assert [a for _, a in turns] == [P.NONE] and first is None
            empty[row["task"]] += 1
            continue
        assert first in meta["matches"]
        n = P.count_images(turns[0][0]) - (row["task"] in ("reid_standard", "reid_cc", "reid_vi",
                                                           "multimodal_retrieval"))
        by_size.setdefault(n, Counter())[first] += 1
    for task in tasks:
        assert abs(empty[task] / pages[task] - 0.3) < 0.07, (task, empty[task], pages[task])
    stat, dof = 0.0, 0
    for n, counts in by_size.items():
        total = sum(counts.values())
        observed = np.array([counts[k] for k in range(n)])
        assert observed.sum() == total  # every pick lies on the page
        stat += float(((observed - total / n) ** 2 / (total / n)).sum())
        dof += n - 1
    assert chi2.sf(stat, dof) > 1e-3, (stat, dof)
    assert len(by_size) >= 8  # pages of many sizes took part
