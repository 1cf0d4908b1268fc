"""`python -m chatreid.demo build`: the demo model's shape, the stage chains' wiring, the atomic
install, the report; and (slow) the whole pipeline end to end on a minimal configuration."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from chatreid import demo
from chatreid.demo import driver

# The smallest configuration that still exercises every step: four layouts, three stages, every
# chain of the ablation, every evaluation row. Colour-histogram pre-filter: no ImageNet network.
MINIMAL = replace(
    demo.CONFIGS["small"], name="minimal",
    ids={"market": 8, "ltcc": 24, "sysu": 15, "pedes": 30},
    images_per_id={"market": 4, "ltcc": 12, "sysu": 6, "pedes": 2},
    hidden=32, layers=1, heads=2, kv_heads=1, vision_depth=1, vision_embed=16, vision_heads=2,
    rows={1: 24, 2: 24, 3: 24}, steps={1: 2, 2: 2, 3: 2}, batch=2, top_k=3, prefilter="color_histogram",
)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    return demo.make_base_model(MINIMAL, tmp_path_factory.mktemp("demo") / "base")


def test_base_model_reads_every_crop_on_the_grid_of_its_pixel_cap(base_model):
    """16-pixel patches and a 64x32 pixel cap: a Market-sized 128x64 crop and stage 1's upsizing to
    256x128 are both read as 4x2 patches (2 tokens after the 2x2 merger)."""
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval.scorer import check_model

    assert MINIMAL.max_pixels == 64 * 32
    model, processor = load_model_and_processor(str(base_model))
    assert model.config.vision_config.patch_size == 16
    for size in ((64, 128), (128, 256)):  # (width, height)
        feats = processor.image_processor(images=[Image.new("RGB", size, (200, 30, 30))], return_tensors="pt")
        assert feats["image_grid_thw"].tolist() == [[1, 4, 2]]
    assert processor.image_processor.size["shortest_edge"] == 32 * 32  # min_pixels: one merged token, never 6
    assert {"yes", "no", "image"} <= set(check_model(model, processor))  # the engine can score with it


def test_region_features_tell_different_colours_apart(base_model):
    """The feature probe of the report: unit vectors, one per image, and an image is closer to
    itself with a little noise than to a crop of other colours."""
    import numpy as np

    from chatreid.model import load_model_and_processor

    model, processor = load_model_and_processor(str(base_model))
    rng = np.random.default_rng(0)
    red = Image.new("RGB", (64, 128), (200, 30, 30))
    noisy = Image.fromarray(np.clip(np.asarray(red, dtype=np.int16) + rng.integers(-8, 9, (128, 64, 3)), 0, 255)
                            .astype(np.uint8))
    blue = Image.new("RGB", (64, 128), (20, 40, 210))
    f = demo.region_features(model, processor, [red, noisy, blue])
    assert f.shape == (3, 8 * model.config.text_config.hidden_size)  # 2 tokens pooled into 8 regions
    assert np.allclose(f.norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert float(f[0] @ f[1]) > float(f[0] @ f[2])


def test_set_overrides_fields_and_stage_entries_and_names_what_is_wrong():
    cfg = demo.override(demo.CONFIGS["full"], ["steps.1=5", "lr.3=0.01", "schedule=cosine", "ablation=false",
                                               "gallery2=[3, 5]"])
    assert cfg.steps == {**demo.CONFIGS["full"].steps, 1: 5} and cfg.lr[3] == 0.01
    assert cfg.schedule == "cosine" and cfg.ablation is False and cfg.gallery2 == (3, 5)
    assert demo.CONFIGS["full"].steps[1] == 800  # the table is not touched
    whole = demo.override(demo.CONFIGS["full"], ['lr={"1": 2e-4, "2": 2e-4, "3": 1e-4}'])
    assert whole.lr == {1: 2e-4, 2: 2e-4, 3: 1e-4}  # stage keys stay numbers, as train_stage looks them up
    for bad, words in (("stepz.1=5", "no field 'stepz'"), ("steps.9=5", "no entry '9'"),
                       ("schedule", "expected FIELD=VALUE"), ("seed.1=2", "not a per-stage"),
                       ("stage2_decoder=decoder", "stage2_decoder must be")):
        with pytest.raises(ValueError, match=words):
            demo.override(demo.CONFIGS["full"], [bad])


def StageRun(exit_code, final_dir, train_loss):  # chatreid.training.sft.StageRun, without importing TRL
    return SimpleNamespace(exit_code=exit_code, final_dir=final_dir, train_loss=train_loss)


class TypedSFT:
    """chatreid.training.sft as the driver uses it: the typed options over the stage's YAML, then
    ``train`` (the fakes record them instead of training)."""

    @staticmethod
    def stage_arguments(config, **fields):
        assert Path(config).name == f"stage{fields['stage']}.yaml"
        return ({"previous_stage_checkpoint": None, **fields},)


def test_stage2_decoder_stage1_hands_stage_2_the_stage_1_model_as_its_base(monkeypatch, tmp_path):
    seen = {}

    class FakeSFT(TypedSFT):
        @staticmethod
        def train(args, callbacks=None):
            seen[Path(args["output_dir"]).name] = args["base_model"]
            (Path(args["output_dir"]) / "final").mkdir(parents=True)
            return StageRun(0, str(Path(args["output_dir"]) / "final"), 1.0)

    monkeypatch.setattr(driver, "_sft", lambda: FakeSFT)
    base = tmp_path / "base"
    for choice, s12_base in (("base", str(base)), ("stage1", str(tmp_path / "runs" / "s1" / "final"))):
        seen.clear()
        cfg = replace(MINIMAL, stage2_decoder=choice, ablation=False, diagnostic=False, seeds=1)
        models, _, _ = demo.train_chains(cfg, {1: "d1", 2: "d2", 3: "d3"}, tmp_path / "store", base, tmp_path,
                                         demo.Timer())
        assert set(models) == {"1+2+3"} and seen["s12"] == s12_base and seen["s1"] == str(base)
        shutil.rmtree(tmp_path / "runs")


def test_stage_1_reads_crops_under_its_own_pixel_cap_and_hands_on_the_builds(monkeypatch, tmp_path, base_model):
    """stage1_max_pixels: stage 1 starts from the base under the larger cap (128x64 crops as 4x8
    patches); its model goes to stage 2 with the build's cap again, and the base is untouched."""
    from chatreid.model import load_processor

    grids = {}

    class FakeSFT(TypedSFT):
        @staticmethod
        def train(args, callbacks=None):
            start = Path(args["previous_stage_checkpoint"] or args["base_model"])
            feats = load_processor(str(start)).image_processor(images=[Image.new("RGB", (64, 128))],
                                                               return_tensors="pt")
            grids[Path(args["output_dir"]).name] = feats["image_grid_thw"].tolist()
            shutil.copytree(args["base_model"], Path(args["output_dir"]) / "final")
            return StageRun(0, str(Path(args["output_dir"]) / "final"), 1.0)

    monkeypatch.setattr(driver, "_sft", lambda: FakeSFT)
    cfg = replace(MINIMAL, stage1_max_pixels=128 * 64, ablation=False, diagnostic=False, seeds=1)
    demo.train_chains(cfg, {1: "d1", 2: "d2", 3: "d3"}, tmp_path / "store", base_model, tmp_path, demo.Timer())
    assert grids == {"s1": [[1, 8, 4]], "s12": [[1, 4, 2]], "s123": [[1, 4, 2]]}
    processor_config = json.loads((base_model / "processor_config.json").read_text())
    assert processor_config["image_processor"]["size"]["longest_edge"] == 64 * 32
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["s1", "s12", "s123"]  # no start copy left


def test_stage_2_curriculum_follows_its_rows_and_stage_3_starts_from_it(monkeypatch, tmp_path):
    """stage2_compare_steps: each stage-2 run (of 1+2 and of 2) goes on with the comparison
    curriculum on the stage data's store; stage 3 starts from the curriculum's model, and the run's
    learning curve continues the rows' steps. stage_seed shifts every stage seed."""
    starts, curriculum = {}, []

    class FakeSFT(TypedSFT):
        @staticmethod
        def train(args, callbacks=None):
            starts[Path(args["output_dir"]).name] = (args["previous_stage_checkpoint"] or args["base_model"],
                                                     args["seed"])
            (Path(args["output_dir"]) / "final").mkdir(parents=True)
            return StageRun(0, str(Path(args["output_dir"]) / "final"), 1.0)

    def fake_curriculum(cfg, store, start, probe, out, seed):
        curriculum.append((str(store), str(start), str(out), seed))
        out.mkdir(parents=True)
        return {"curve": [{"step": 0, "auc": {"market": 0.5}}, {"step": 5, "auc": {"market": 0.9}}]}

    monkeypatch.setattr(driver, "_sft", lambda: FakeSFT)
    monkeypatch.setattr(driver, "stage2_curriculum", fake_curriculum)
    runs, store = tmp_path / "runs", tmp_path / "store"
    cfg = replace(MINIMAL, stage2_compare_steps=5, diagnostic=False, seeds=1, stage_seed=2)
    models, curves, _ = demo.train_chains(cfg, {1: "d1", 2: "d2", 3: "d3"}, store, tmp_path / "base", tmp_path,
                                          demo.Timer())
    assert sorted(curriculum) == [(str(store), str(runs / n / "final"), str(runs / n / "compared"), 2)
                                  for n in ("s12", "s2")]
    assert starts["s123"][0] == str(runs / "s12" / "compared") and starts["s23"][0] == str(runs / "s2" / "compared")
    assert starts["s3"][0] == str(tmp_path / "base") and {s for _, s in starts.values()} == {2}
    assert models["2+3"] == runs / "s23" / "final"
    # no probe here, so no rows curve: the curriculum's points follow step 0 (its own step 0 is dropped)
    assert curves == {n: [{"step": 5, "auc": {"market": 0.9}}] for n in ("s12", "s2")}


def test_chains_share_prefixes_and_hand_each_stage_its_predecessor(monkeypatch, tmp_path):
    calls = []

    class FakeSFT(TypedSFT):
        @staticmethod
        def train(args, callbacks=None):
            name = Path(args["output_dir"]).name
            calls.append((args["stage"], name, args["previous_stage_checkpoint"] or args["base_model"],
                          str(args["seed"])))
            (Path(args["output_dir"]) / "final").mkdir(parents=True)
            return StageRun(0, str(Path(args["output_dir"]) / "final"), float(len(name)))

    monkeypatch.setattr(driver, "_sft", lambda: FakeSFT)
    base = tmp_path / "base"
    models, _, losses = demo.train_chains(replace(MINIMAL, seeds=2), {1: "d1", 2: "d2", 3: "d3"},
                                          tmp_path / "store", base, tmp_path, demo.Timer())
    # each run's loss is the one its training returned, by run name, in name order
    assert losses == {name: float(len(name)) for name in sorted(c[1] for c in calls)}
    assert list(losses) == sorted(losses)
    runs = tmp_path / "runs"
    # six runs a seed, not nine: 1+2 is reused by 1+2+3; every chain of every seed starts from the one base
    assert sorted(c[1] for c in calls) == sorted(["s1", "s12", "s123", "s2", "s23", "s3", "s1@1", "s12@1", "s123@1",
                                                  "s2@1", "s23@1", "s3@1"])
    assert sorted({c[3] for c in calls}) == ["0", "1"]
    assert prev_of(calls, "s123@1") == str(runs / "s12@1" / "final") and prev_of(calls, "s3@1") == str(base)
    calls = [c for c in calls if "@" not in c[1]]
    prev = {name: p for _, name, p, _ in calls}
    assert prev["s1"] == str(base)
    assert prev["s12"] == str(runs / "s1" / "final") and prev["s123"] == str(runs / "s12" / "final")
    assert prev["s2"] == str(base) and prev["s23"] == str(runs / "s2" / "final") and prev["s3"] == str(base)
    assert {k: v.parent.name for k, v in models.items()} == {
        "1+2+3": "s123", "2+3": "s23", "3": "s3", "1+2": "s12",
        "1+2+3@1": "s123@1", "2+3@1": "s23@1", "3@1": "s3@1", "1+2@1": "s12@1"}


def prev_of(calls, name):
    return next(c[2] for c in calls if c[1] == name)


def _fake_model(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"tag": tag}))
    (folder / "model.safetensors").write_bytes(tag.encode() * 100)
    return folder


def test_install_replaces_the_model_and_a_failed_install_keeps_the_old_one(monkeypatch, tmp_path):
    out = tmp_path / "models" / "chatreid-demo"
    demo.install(_fake_model(tmp_path / "a", "old"), out, "card old", {"n": 1})
    demo.install(_fake_model(tmp_path / "b", "new"), out, "card new", {"n": 2})
    assert json.loads((out / "config.json").read_text()) == {"tag": "new"}
    assert (out / "README.md").read_text() == "card new"
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)

    def broken_copy(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(driver.shutil, "copyfile", broken_copy)
    with pytest.raises(OSError):
        demo.install(_fake_model(tmp_path / "c", "bad"), out, "card bad", {"n": 3})
    assert json.loads((out / "config.json").read_text()) == {"tag": "new"}  # the good model is intact
    assert sorted(p.name for p in out.parent.iterdir()) == ["chatreid-demo"]  # no leftovers


def _summary(results):
    return {"config": MINIMAL.to_dict(), "results": results, "params": 123456, "losses": {"s123": 1.5, "s3": None, "s12@1": 2.5},
            "steps_s": {"synth (4 layouts)": 1.0}, "total_s": 2.0, "load_start": "1.0", "load_end": "2.0"}


def test_report_has_a_row_per_model_and_a_dash_where_a_setting_has_no_number():
    r = {"rank1": 0.5, "mAP": 0.25, "mINP": 0.1, "queries": 4, "gallery": 9, "protocol": "market",
         "top_k": 3, "prefilter": "color_histogram"}
    results = {layout: {k: dict(r) for k in ("1+2+3", "2+3", "3", "1+2")} for layout in demo.LAYOUTS}
    for layout in ("market", "ltcc", "sysu"):
        results[layout]["pre-filter"] = dict(r, rank1=0.75)
    text = demo.report(json.loads(json.dumps(_summary(results))))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    demo_row = rows["ChatReID demo (stages 1+2+3)"]
    assert "50.0 / 25.0" in demo_row and demo_row.endswith("| 25.0 |")
    assert rows["stage 3 alone"].count("50.0 / 25.0") == 4
    prefilter = rows["pre-filter alone (`color_histogram`)"]
    assert prefilter.count("75.0 / 25.0") == 3 and prefilter.endswith("| — | — |")  # no t2i entry, no mean
    assert "| 1+2+3 | 2 | 1.5 |" in text and "| 3 | 2 | None |" in text
    assert "| 1+2 (seed 1) | 2 | 2.5 |" in text  # another stage seed's run: its chain and seed, its stage's steps


def test_builds_of_later_stage_seeds_join_the_report_as_further_seeds(tmp_path):
    """merge_seeds (python -m chatreid.demo report --seeds-from WORK): a build that reused the base
    with stage seed 1 joins as seed 1, with its curves and losses; another recipe, another base or a
    seed already there is refused."""
    from chatreid.demo.report import merge_seeds

    def summary(mAP, **cfg):
        r = {"rank1": 0.5, "mAP": mAP, "mINP": 0.1, "queries": 4, "gallery": 9, "protocol": "market",
             "top_k": 3, "prefilter": "color_histogram"}
        out = _summary({"market": {"1+2+3": dict(r), "2+3": dict(r), "3": dict(r), "pre-filter": dict(r, mAP=0.1)}})
        out["config"] = {**replace(MINIMAL, seeds=1).to_dict(), **cfg}
        out["pretraining"] = {"curve": [{"step": 0, "auc": {"market": 0.5}}], "levels": [], "seconds": 1.0}
        out["curves"], out["losses"] = {"s123": [{"step": 5, "auc": {"market": mAP}}]}, {"s123": mAP}
        return out

    merged = merge_seeds(summary(0.2), [summary(0.4, stage_seed=1), summary(0.6, stage_seed=2)])
    assert merged["config"]["seeds"] == 3
    assert [merged["results"]["market"][k]["mAP"] for k in ("1+2+3", "1+2+3@1", "1+2+3@2")] == [0.2, 0.4, 0.6]
    assert merged["results"]["market"]["pre-filter"]["mAP"] == 0.1 and "pre-filter@1" not in merged["results"]["market"]
    assert merged["curves"]["s123@2"][0]["auc"]["market"] == 0.6 and merged["losses"]["s123@1"] == 0.4
    assert "50.0 / 40.0 ±20.0" in demo.report(merged)  # the demo row: mean ± sample sd of mAP over three seeds
    with pytest.raises(ValueError, match="differs in top_k"):
        merge_seeds(summary(0.2), [summary(0.4, stage_seed=1, top_k=9)])
    other_base = summary(0.4, stage_seed=1)
    other_base["pretraining"]["curve"][0]["auc"]["market"] = 0.6
    with pytest.raises(ValueError, match="another pretrained base"):
        merge_seeds(summary(0.2), [other_base])
    with pytest.raises(ValueError, match="stage seed 0 is already"):
        merge_seeds(summary(0.2), [summary(0.4)])


def test_report_shows_ceilings_and_the_text_prefilter_where_the_summary_has_them():
    r = {"rank1": 0.5, "mAP": 0.25, "mINP": 0.1, "queries": 4, "gallery": 9, "protocol": "t2i", "top_k": 20,
         "prefilter": "color_histogram"}
    results = {"pedes": {"1+2+3": dict(r), "pre-filter": dict(r, mAP=0.5)}}
    kinds = {"body": {"mAP": 0.9, "rank1": 0.95}, "clothes": {"mAP": 0.06, "rank1": 0.04},
             "random": {"mAP": 0.046, "rank1": 0.02}}
    summary = {**_summary(results), "ceilings": {"ltcc": {"protocol": "cc", "trials": 1, **kinds}},
               "text_prefilter": {"head": 20, "world_seed": 3000404, "held_out": {"recall": {"20": 0.97}}}}
    text = demo.report(json.loads(json.dumps(summary)))
    assert "| cloth-changing (ltcc, `cc`) | 95.0 / 90.0 | 4.0 / 6.0 | 2.0 / 4.6 |" in text
    assert "re-ranks the text pre-filter's top 20" in text and "seed 3000404" in text and "@20 97.0%" in text
    assert "pre-filter alone (`color_histogram`; text: the text pre-filter)" in text
    plain = demo.report(json.loads(json.dumps(_summary({"pedes": {"1+2+3": dict(r, top_k=None)}}))))
    assert "## Ceilings" not in plain and "the VLM scores the whole gallery" in plain and "\n\n\n\n" not in plain


def test_cli_rejects_an_unknown_config(capsys):
    with pytest.raises(SystemExit):
        demo.main(["build", "--config", "huge"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_build_end_to_end_on_a_minimal_configuration(tmp_path):
    """Every step for real: SynthPeds -> store -> stage data -> six train/sft.py runs -> eval/run.py
    on held-out identities -> installed model that the engine loads -> report."""
    from chatreid.data.synthpeds import load_ground_truth
    from chatreid.retrieval import ReIDEngine

    out, work, rep = tmp_path / "model", tmp_path / "work", tmp_path / "report.md"
    # with stage 2's comparison curriculum, so that it runs for real too
    summary = demo.build(replace(MINIMAL, stage2_compare_steps=2, stage2_compare_match=2, pretrain_describe=2),
                         out, work, rep)

    # fresh worlds: every model is evaluated on worlds of their own, drawn with seeds that neither the
    # stage data nor the pretraining use, so no evaluated image was ever trained on
    def digests(folder):
        return {hashlib.sha1(p.read_bytes()).hexdigest() for p in Path(folder).rglob("*")
                if p.suffix.lower() in (".jpg", ".png", ".bmp")}

    trained = set().union(*(digests(work / purpose) for purpose in ("synth", "pretrain", "text_prefilter_world")))
    for layout in demo.LAYOUTS:
        fresh = digests(work / "eval_worlds" / layout)
        assert fresh and not fresh & trained, layout
        truth = load_ground_truth(work / "synth" / layout).values()
        assert {r["pid"] for r in truth if r["split"] == "train"}, layout
    # the pretraining ran, with a held-out curve, and every trained stage has its curve
    assert summary["pretraining"]["curve"][0]["step"] == 0
    assert set(summary["curves"]) == {f"s{c}{'@1' * k}" for c in ("1", "12", "123", "2", "23", "3") for k in (0, 1)}
    assert all(set(p["auc"]) == {"market", "ltcc", "sysu"} for c in summary["curves"].values() for p in c)
    assert (rep.parent / demo.CURVES_PNG).stat().st_size > 10_000
    # every model row in every setting, the baselines where an image query exists
    for layout in demo.LAYOUTS:
        rows = summary["results"][layout]
        assert {"1+2+3", "2+3", "3", "1+2"} <= set(rows)
        assert "pre-filter" in rows  # for pedes: the text pre-filter alone
        for r in rows.values():
            assert 0.0 <= r["rank1"] <= 1.0 and 0.0 < r["mAP"] <= 1.0
    # the P(Yes) separation is read back for every model that scored image or text candidates, and
    # the feature separation is measured on the same pairs wherever the query is an image
    for layout in demo.LAYOUTS:
        sep = summary["separation"][layout]
        assert set(sep) == {f"{c}{s}" for c in ("1+2+3", "2+3", "3", "1+2") for s in ("", "@1")}  # both seeds
        assert all(0.0 <= r["auc"] <= 1.0 and r["pairs"] > 0 for r in sep.values())
    assert set(summary["feature_separation"]) == {"market", "ltcc", "sysu"}
    for layout, by_model in summary["feature_separation"].items():
        assert set(by_model) == {"1+2+3", "2+3", "3", "1+2"}
        assert all(0.0 <= r["auc"] <= 1.0 and r["pairs"] == summary["separation"][layout][m]["pairs"]
                   for m, r in by_model.items())
    # the installed model is the 1+2+3 chain's, loads in the engine, and introduces itself
    # the text pre-filter ships inside the model folder, and the VLM re-ranked its head
    assert (out / "text-prefilter" / "config.json").is_file()
    assert summary["results"]["pedes"]["1+2+3"]["top_k"] == summary["text_prefilter"]["head"]
    # ceilings and chance of every evaluation world, in the report
    assert set(summary["ceilings"]) == set(demo.LAYOUTS)
    # under the protocol each world was evaluated with (ltcc: cloth-changing, not the LTCC default)
    assert {l: c["protocol"] for l, c in summary["ceilings"].items()} == {
        l: r["1+2+3"]["protocol"] for l, r in summary["results"].items()}
    # stage 1's attribute answers, of the stage-1 model and the demo model, on held-out market people
    assert set(summary["attributes"]) == {"stage 1", "1+2+3"}
    for result in summary["attributes"].values():
        assert result["images"] == MINIMAL.attribute_images
        assert all(0.0 <= d["accuracy"] <= 1.0 and 0.0 <= d["majority"] <= 1.0
                   for d in result["per_attribute"].values())
    assert "## Attributes: stage 1's answers on held-out people" in rep.read_text()
    assert all(c["random"]["mAP"] <= c["body"]["mAP"] for c in summary["ceilings"].values())
    installed = json.loads((out / "config.json").read_text())
    assert installed == json.loads((work / "runs" / "s123" / "final" / "config.json").read_text())
    # the banner the chat app shows for this model: the card's first paragraph
    from chatreid.chat.settings import ModelChoice, banner_markdown

    banner = banner_markdown(ModelChoice(str(out), "demo"))
    assert "demo model" in banner and "CHATREID_MODEL" in banner and "--model" in banner
    engine = ReIDEngine.from_pretrained(str(out), prefilter="color_histogram")
    crop = Image.new("RGB", (64, 128), (200, 30, 30))
    assert len(engine.search(demo_query(crop), [crop, crop.rotate(180)]).ranking) == 2
    text = rep.read_text()
    assert "stage 3 alone" in text and "## Training" in text and "feature AUC" in text
    assert "## Ceilings and chance" in text and "## The text-to-image pre-filter" in text
    assert "## Learning curves" in text and "Table 4 in miniature" in text and "2 stage seeds" in text
    assert all(name in text for name in ("standard", "cloth-changing", "visible-infrared", "text-to-image"))


def demo_query(image):
    from chatreid.retrieval import Query

    return Query(images=[image])


@pytest.mark.slow
def test_a_small_build_tells_held_out_people_apart(tmp_path):
    """The recipe learns: the real model size and pretraining worlds of the generic recipe with
    short stages (about ten minutes on one core), and the P(Yes) AUC on held-out people of the fresh
    evaluation worlds clears chance by a margin after the generic pretraining (one picture against
    edited copies of itself: no two pictures of one person) and at the end of the 1+2+3 chain, whose
    stage 2 runs a short comparison curriculum."""
    cfg = replace(demo.CONFIGS["generic"], name="learns", ids={"market": 60, "ltcc": 30, "sysu": 30, "pedes": 60},
                  images_per_id=None, rows={1: 400, 2: 800, 3: 400}, steps={1: 40, 2: 60, 3: 40},
                  pretrain_steps=1600, stage2_compare_steps=300,
                  eval_ids={"market": 60, "ltcc": 30, "sysu": 30, "pedes": 40}, seeds=1, ablation=False,
                  diagnostic=False, curve_every=200, curve_pairs=100, prefilter="color_histogram",
                  text_prefilter_ids=0, attribute_images=0)  # each of those would add minutes
    summary = demo.build(cfg, tmp_path / "model", tmp_path / "work", None)
    after_pretraining = summary["pretraining"]["curve"][-1]["auc"]["market"]
    shipped = summary["curves"]["s123"][-1]["auc"]["market"]
    assert after_pretraining >= 0.6 and shipped >= 0.6, (after_pretraining, shipped)


def test_a_finished_pretraining_is_reused_only_under_the_same_settings(tmp_path):
    cfg = demo.CONFIGS["ship"]
    (tmp_path / "base_pretrained").mkdir()
    (tmp_path / "base_pretrained" / "model.safetensors").write_bytes(b"weights")
    config = json.loads(json.dumps(cfg.to_dict(), default=str))
    del config["pretrain_hard_negatives"]  # a build from before that field: it had the default
    (tmp_path / "summary.json").write_text(json.dumps({"config": config, "pretraining": {"curve": [1]}}))
    assert demo.reusable_pretraining(replace(cfg, lr={1: 2e-4, 2: 5e-5, 3: 1e-4}, seeds=1), tmp_path) == {"curve": [1]}
    for changed in (replace(cfg, pretrain_steps=10), replace(cfg, patch=8), replace(cfg, pretrain_hard_negatives=0.0),
                    replace(cfg, pretrain_mode="generic"), replace(cfg, pretrain_match=4)):
        assert demo.reusable_pretraining(changed, tmp_path) is None
    (tmp_path / "base_pretrained" / "model.safetensors").unlink()
    assert demo.reusable_pretraining(cfg, tmp_path) is None
    with pytest.raises(ValueError, match="--reuse-pretraining"):
        demo.build(replace(demo.CONFIGS["small"], ids={}), tmp_path / "out", tmp_path, None, reuse_pretraining=True)


def test_a_pretraining_is_reusable_as_soon_as_it_is_recorded_before_any_stage_ran(tmp_path):
    cfg = demo.CONFIGS["ship"]
    (tmp_path / "base_pretrained").mkdir()
    (tmp_path / "base_pretrained" / "model.safetensors").write_bytes(b"weights")
    assert demo.reusable_pretraining(cfg, tmp_path) is None  # no summary.json: nothing says what it is
    demo.driver.record_pretraining(cfg, tmp_path, {"curve": [2]})
    assert not (tmp_path / "summary.json").exists()
    assert demo.reusable_pretraining(replace(cfg, lr={1: 5e-5, 2: 5e-5, 3: 3e-5}), tmp_path) == {"curve": [2]}
    assert demo.reusable_pretraining(replace(cfg, pretrain_steps=12), tmp_path) is None
    # the record, not an older build's summary, describes the base in the folder
    other = json.loads(json.dumps(replace(cfg, pretrain_steps=12).to_dict(), default=str))
    (tmp_path / "summary.json").write_text(json.dumps({"config": other, "pretraining": {"curve": [1]}}))
    assert demo.reusable_pretraining(replace(cfg, pretrain_steps=12), tmp_path) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_model_card_names_the_settings_where_reranking_does_not_beat_the_pre_filter():
    def res(m):
        return {"mAP": m, "rank1": m}

    results = {"market": {"1+2+3": res(0.26), "pre-filter": res(0.158)},
               "ltcc": {"1+2+3": res(0.045), "pre-filter": res(0.043)},  # within a point: not a win
               "sysu": {"1+2+3": res(0.219), "pre-filter": res(0.224)}}
    banner = demo.model_card(MINIMAL, 1_400_000, results).split("# ChatReID demo model")[1].split("\n\n")[1]
    assert "mAP 26.0, against 15.8 for its pre-filter alone" in banner
    assert "in the cloth-changing and visible-infrared settings it does not beat its own pre-filter" in banner
    results["ltcc"]["1+2+3"], results["sysu"]["1+2+3"] = res(0.09), res(0.30)
    assert "does not beat" not in demo.model_card(MINIMAL, 1_400_000, results)


def test_typed_stage_options_parse_as_the_command_line_does(tmp_path):
    """The driver's typed options over a stage's YAML give the dataclasses train/sft.py's command
    line gives for the same values (what the build ran before it called the function)."""
    from trl import ModelConfig, SFTConfig, TrlParser

    from chatreid import paths
    from chatreid.training import sft

    config = paths.train_configs_dir() / "stage2.yaml"
    fields = dict(stage=2, base_model="b", dataset_name="d", image_store="s", output_dir=str(tmp_path / "o"),
                  use_cpu=True, bf16=False, dtype="float32", max_steps=7, per_device_train_batch_size=3,
                  gradient_accumulation_steps=1, learning_rate=2e-4, warmup_steps=0.05, lr_scheduler_type="cosine",
                  logging_steps=10, save_strategy="no", dataloader_num_workers=0,
                  dataloader_persistent_workers=False, report_to="none", seed=1, disable_tqdm=True,
                  previous_stage_checkpoint="p")
    argv = ["--config", str(config)]
    for k, v in fields.items():
        argv += [f"--{k}", str(v).lower() if isinstance(v, bool) else str(v)]
    cli = TrlParser((sft.ScriptArguments, SFTConfig, ModelConfig)).parse_args_and_config(args=argv)
    typed = sft.stage_arguments(config, **fields)
    def options(parsed):  # the accelerate state the training options hold is an object without ==
        return [{k: v for k, v in vars(a).items() if k != "distributed_state"} for a in parsed]

    assert options(typed) == options(cli)
    with pytest.raises(ValueError, match="learning_rat"):
        sft.stage_arguments(config, learning_rat=1.0)


def test_typed_evaluation_options_parse_as_the_command_line_does():
    from chatreid.evaluation.arguments import parse_args

    argv = ["--dataset", "synthpeds:/w", "--vis", "0", "--batch-size", "32", "--prefilter", "color_histogram",
            "--trials", "2", "--protocol", "cc", "--model", "/m1", "--label", "a", "--model", "/m2", "--label", "b",
            "--top-k", "5", "--out", "/o"]
    typed = parse_args(dataset="synthpeds:/w", vis=0, batch_size=32, prefilter="color_histogram", trials=2,
                       protocol="cc", model=["/m1", "/m2"], label=["a", "b"], top_k=5, out="/o")
    assert vars(typed) == vars(parse_args(argv))
    with pytest.raises(ValueError, match="top_kk"):
        parse_args(out="/o", model=["/m"], dataset="x:y", top_kk=5)
