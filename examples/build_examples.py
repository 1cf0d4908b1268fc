"""Rebuild the app's built-in example galleries from SynthPeds: ``python examples/build_examples.py``.

Four small galleries, one per Re-ID setting of the paper, drawn by SynthPeds (procedural people, no
real person, no download) with fixed seeds, so the output is the same every time:

- ``market``: standard Re-ID (Market-1501 layout, visible cameras);
- ``ltcc``: cloth-changing Re-ID (LTCC layout; the query people appear in other outfits);
- ``sysu``: infrared query -> visible gallery (SYSU-MM01 layout);
- ``pedes``: text description -> image (CUHK-PEDES layout; queries are SynthPeds captions).

The result is committed (about 0.3 MB) rather than drawn at first launch: the app and its Space
then start with no generation step, ``allowed_paths`` names a folder that always exists, and the
examples a newcomer clicks are reviewable in git. ``manifest.json`` records, for each example
request, which gallery files show the same person (the ground truth), which tests use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SEED = 2025
IDS = 8
PER_ID = 4

GALLERIES = [
    {"name": "market", "layout": "market", "title": "Standard Re-ID (street cameras)",
     "description": "Same clothes, different cameras: find the person in the query photo."},
    {"name": "ltcc", "layout": "ltcc", "title": "Cloth-changing Re-ID",
     "description": "The query people also appear in other outfits."},
    {"name": "sysu", "layout": "sysu", "title": "Infrared to visible",
     "description": "Infrared (night) query photos; the gallery holds daylight (visible) photos."},
    {"name": "pedes", "layout": "pedes", "title": "Text description to image",
     "description": "No query photo: describe the person in words."},
]


def _synth(layout: str, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "chatreid", "synth", "--layout", layout, "--ids", str(IDS),
           "--seed", str(SEED), "--images-per-id", str(PER_ID), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (out / "synthpeds.jsonl").read_text().splitlines() if line]
    return sorted(rows, key=lambda r: r["path"])


def _save(src: Path, dst: Path) -> None:
    # JPEG at quality 90: a 128x64 crop is ~3 KB instead of ~20 KB as PNG.
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("RGB").save(dst, "JPEG", quality=90, optimize=True)


def build(root: Path = HERE) -> dict:
    manifest = {"seed": SEED, "source": "SynthPeds (chatreid synth)", "galleries": []}
    for spec in GALLERIES:
        folder = root / spec["name"]
        shutil.rmtree(folder, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            rows = _synth(spec["layout"], Path(tmp))
            by_pid: dict[int, list[dict]] = {}
            for r in rows:
                by_pid.setdefault(r["pid"], []).append(r)
            pids = sorted(by_pid)
            query_pids = pids[:2]
            queries, gallery = [], []
            for pid in pids:
                imgs = by_pid[pid]
                if spec["name"] == "sysu":
                    ir = [r for r in imgs if r["modality"] == "infrared"]
                    if pid in query_pids and ir:
                        queries.append(ir[0])
                    gallery += [r for r in imgs if r["modality"] == "visible"]
                    continue
                if pid in query_pids and spec["name"] != "pedes":
                    q = imgs[0]
                    queries.append(q)
                    rest = imgs[1:]
                    if spec["name"] == "ltcc":  # show the person only in other outfits
                        rest = [r for r in rest if r.get("clothes_id") != q.get("clothes_id")] or rest
                    gallery += rest
                else:
                    gallery += imgs
            names = {}
            for i, r in enumerate(gallery):
                names[id(r)] = f"g{i + 1:02d}_{r['pid']:03d}.jpg"
                _save(Path(tmp) / r["path"], folder / "gallery" / names[id(r)])
            prompts = []
            for r in queries:
                qname = f"q_{r['pid']:03d}_{r['modality']}.jpg"
                _save(Path(tmp) / r["path"], folder / "query" / qname)
                truth = sorted(names[id(g)] for g in gallery if g["pid"] == r["pid"])
                text = {"market": "Find this person in the gallery.",
                        "ltcc": "Same person, but they may have changed clothes.",
                        "sysu": "This is an infrared shot; find them in the daylight cameras."}[spec["name"]]
                prompts.append({"text": text, "query": qname, "truth": truth})
            if spec["name"] == "pedes":
                r = by_pid[query_pids[0]][0]
                truth = sorted(names[id(g)] for g in gallery if g["pid"] == r["pid"])
                prompts.append({"text": r["captions"][0], "query": None, "truth": truth})
                from chatreid.data.attributes import to_text
                attrs = {k: r["attributes"][k] for k in ("gender", "upper_color", "backpack")
                         if k in r["attributes"]}
                prompts.append({"text": "Find " + to_text(attrs)[0].lower() + to_text(attrs)[1:],
                                "query": None, "truth": truth})
        manifest["galleries"].append({**{k: spec[k] for k in ("name", "title", "description")},
                                      "prompts": prompts})
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    m = build()
    size = sum(p.stat().st_size for p in HERE.rglob("*.jpg"))
    print(f"wrote {sum(len(g['prompts']) for g in m['galleries'])} example requests over "
          f"{len(m['galleries'])} galleries ({size / 1e6:.2f} MB of images) to {HERE}")
