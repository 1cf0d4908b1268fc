"""Stage 1's attribute answers on held-out images of a SynthPeds world, beside the majority class.

Stage 1 trains one prompt, the paper's ``caption`` question, answered by SynthPeds' captions. It
has no closed-set attribute question, so an attribute is asked through that prompt with a closed
set of answers: for each value of the attribute, the image's caption written by SynthPeds' own
caption generator (``captions.captions``) with only that attribute changed, and the model's
answer is the caption it finds most likely (the sum of its answer tokens' log-probabilities,
read as training reads them: the stage-1 collator and ``compare.row_losses``). Candidates share
the generator's seed, so they are worded alike apart from the attribute; a grey colour, a bald
head or glasses draw one more wording choice, so those candidates may also differ elsewhere.

An attribute the image does not show is not asked: colours (clothing, hair, skin) on infrared,
glasses from behind, hair colour of a bald head (``world.attributes`` decides, as for the store).

Descriptions: the model answers the ``caption`` prompt greedily (``ReIDEngine.describe``);
``stated`` reads the attributes a description names, and each is compared with the image's
ground truth. An unstated attribute is neither right nor wrong.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from chatreid.data.attributes import VOCAB
from chatreid.data.synthpeds.captions import (BUILD_AFTER, BUILD_BEFORE, GARMENT, HEIGHT_AFTER, HEIGHT_BEFORE,
                                              LOWER, captions)
from chatreid.data.synthpeds.layouts import load_ground_truth
from chatreid.data.synthpeds.world import (HEIGHT_BOUNDS, SKIN_TONES, Outfit, Traits, attributes)

# The attributes asked: those that survive a change of clothes first, then the clothing stage 1
# also describes.
ASKED = ("gender", "age", "hair", "hair_color", "skin", "build", "height", "glasses",
         "upper_color", "lower_color", "lower_type")
# A relative height inside each class, to write a caption of that class.
_HEIGHT_OF = {"short": HEIGHT_BOUNDS["short"] - 0.1, "average": 0.96, "tall": HEIGHT_BOUNDS["average"] + 0.03}


def _with(traits: Traits, outfit: Outfit, key: str, value) -> tuple[Traits, Outfit]:
    """The person with attribute ``key`` set to ``value`` and nothing else changed."""
    if key in ("gender", "age", "build"):
        return replace(traits, **{key: value}), outfit
    if key == "hair":
        return replace(traits, hair_style=value), outfit  # "short" and "long" are hair styles too
    if key == "hair_color":
        return replace(traits, hair_colour=value), outfit
    if key == "skin":
        return replace(traits, skin=list(SKIN_TONES[VOCAB["skin"].index(value)])), outfit
    if key == "height":
        return replace(traits, height=_HEIGHT_OF[value]), outfit
    if key == "glasses":
        return traits, replace(outfit, glasses=value)
    if key == "lower_type":
        return traits, replace(outfit, lower_type="long skirt" if value == "dress" else "trousers")
    return traits, replace(outfit, **{key: value})  # upper_color, lower_color


def candidates(row: dict, key: str, seed: int) -> dict:
    """{value: caption} for each value of ``key`` (empty when the image does not show it)."""
    traits, outfit = Traits(**row["traits"]), Outfit(**row["outfit"])
    if key not in attributes(traits, outfit, row["modality"], row["view"]):
        return {}
    out = {}
    for value in VOCAB[key]:
        t, o = _with(traits, outfit, key, value)
        out[value] = captions(t, o, row["view"], row["modality"], np.random.default_rng(seed), n=2)[0]
    return out


# --------------------------------------------------------------------------------------------
# Reading a description.
# --------------------------------------------------------------------------------------------
_COLOUR = {**{c: c for c in set(VOCAB["upper_color"]) | set(VOCAB["lower_color"])}, "grey": "gray"}
_COLOURS = "|".join(sorted(_COLOUR, key=len, reverse=True))
_HAIR_COLOURS = "|".join(sorted(VOCAB["hair_color"], key=len, reverse=True))


def _words(table: dict) -> list[tuple[str, str]]:
    """(phrase, class) pairs of a wording table, longest phrase first (so "rather tall" wins)."""
    pairs = [(w, k) for k, words in table.items() for w in words]
    return sorted(pairs, key=lambda p: -len(p[0]))


_BUILD = _words({k: BUILD_BEFORE[k] + BUILD_AFTER[k] + [f"{k} build"] for k in BUILD_BEFORE})
_HEIGHT = _words({k: HEIGHT_BEFORE[k] + HEIGHT_AFTER[k] for k in HEIGHT_BEFORE})
_UPPER = "|".join(sorted({w for ws in GARMENT.values() for w in ws} | {"top"}, key=len, reverse=True))
_LOWER = {w: ("dress" if "skirt" in k else "pants") for k, ws in LOWER.items() for w in ws}
_LOWER_RE = "|".join(sorted(_LOWER, key=len, reverse=True))


def _first(text: str, pairs: list[tuple[str, str]]):
    hits = [(m.start(), k) for w, k in pairs for m in re.finditer(rf"\b{re.escape(w)}\b", text)]
    return min(hits)[1] if hits else None


def stated(text: str) -> dict:
    """The attributes a description names, in the vocabulary (``chatreid.data.attributes``).

    Reads SynthPeds' caption language: the noun (gender, age), hair, skin, build, height,
    glasses, and the colour before an upper or lower garment. Where a description says a thing
    twice, the first mention counts.
    """
    t = " " + text.lower() + " "
    out: dict = {}
    noun = re.search(r"\b(teenage boy|teenage girl|old man|old woman|man|woman|boy|girl)\b", t)
    if noun:
        n = noun.group(1)
        out["gender"] = "male" if n.split()[-1] in ("man", "boy") else "female"
        out["age"] = ("teenager" if n.startswith("teenage") else "old" if n.startswith("old")
                      else "young" if n in ("boy", "girl") else "adult")
    elif re.search(r"\b(he|his)\b", t) or re.search(r"\b(she|her)\b", t):
        out["gender"] = "male" if re.search(r"\b(he|his)\b", t) else "female"
    hair_re = rf"\b(very short|short|chin-length|long)(?: ({_HAIR_COLOURS}))? hair\b|\bbald\b|no hair"
    hair = re.search(hair_re, t)
    if hair:
        out["hair"] = "long" if hair.group(1) == "long" else "short"
        if hair.group(2):
            out["hair_color"] = hair.group(2)
    elif m := re.search(rf"\b({_HAIR_COLOURS}) hair\b", t):
        out["hair_color"] = m.group(1)
    skin = re.search(rf"\b({'|'.join(VOCAB['skin'])}) (skin|complexion)\b", t)
    if skin:
        out["skin"] = skin.group(1)
    # "short" of hair, sleeves or a skirt is not the person's height
    body = re.sub(r"\bshort(-sleeved| sleeves| skirt)", " ", re.sub(hair_re, " ", t))
    for key, pairs in (("build", _BUILD), ("height", _HEIGHT)):
        value = _first(body, pairs)
        if value:
            out[key] = value
    if re.search(r"\bglasses\b", t):
        out["glasses"] = True
    upper = re.search(rf"\b({_COLOURS})(?: and (?:{_COLOURS}))?(?: striped| checked)? (?:{_UPPER})\b", t)
    if upper:
        out["upper_color"] = _COLOUR[upper.group(1)]
    lower = re.search(rf"\b(?:({_COLOURS}) )?({_LOWER_RE})\b", t)
    if lower:
        out["lower_type"] = _LOWER[lower.group(2)]
        if lower.group(1):
            out["lower_color"] = _COLOUR[lower.group(1)]
    return out


def judged(text: str, truth: dict) -> dict[str, bool]:
    """{attribute: right?} for each attribute the description states that the ground truth annotates."""
    return {k: truth[k] == v for k, v in stated(text).items() if k in truth}


def check_description(text: str, truth: dict) -> tuple[int, int]:
    """(attributes stated that the ground truth annotates, how many of them are right)."""
    said = judged(text, truth)
    return len(said), sum(said.values())


# --------------------------------------------------------------------------------------------
# The model side.
# --------------------------------------------------------------------------------------------
class _WorldImages:
    """The store interface the collator needs (``image(id)``) over a world folder."""

    def __init__(self, root: Path):
        self.root = root

    def image(self, image_id: str):
        from PIL import Image

        with Image.open(self.root / image_id) as im:
            return im.convert("RGB")


def _log_likelihoods(model, processor, images: _WorldImages, pairs: list[tuple[str, str]],
                     batch_size: int = 16) -> np.ndarray:
    """log P(caption | caption prompt, image) for each (image id, caption)."""
    import torch

    from chatreid import prompts
    from chatreid.instructions.rows import make_row
    from chatreid.training.collate import IGNORE_INDEX, ReIDCollator
    from chatreid.training.compare import row_losses

    collator = ReIDCollator(processor, images, 1)
    prompt = prompts.render("caption")
    out = []
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            rows = [make_row("caption", [(prompt, text)], [iid], {}) for iid, text in pairs[s:s + batch_size]]
            batch = {k: v.to(model.device) for k, v in collator(rows).items()}
            n = (batch["labels"][:, 1:] != IGNORE_INDEX).sum(1)
            out += (-row_losses(model, batch) * n).tolist()
    return np.array(out)


def held_out_rows(world_root, n_images: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(every person image of the world, ``n_images`` of them drawn with ``seed``)."""
    truth = load_ground_truth(world_root)
    rows = [r for r in truth.values() if r.get("kind", "person") != "junk"]
    if not rows:
        raise ValueError(f"{world_root}: no person images in the world")
    pick = np.random.default_rng(seed).permutation(len(rows))[:n_images]
    return rows, [rows[i] for i in sorted(pick)]


def attribute_accuracy(model_dir, world_root, n_images: int = 60, seed: int = 0, describe: bool = True,
                       max_new_tokens: int = 96) -> dict:
    """Per-attribute accuracy of a model's stage-1 answers on ``n_images`` images of a SynthPeds
    world, the majority-class baseline beside it, and the description check.

    Returns {"per_attribute": {key: {"n", "accuracy", "majority", "majority_value"}},
    "mean_accuracy", "mean_majority", "descriptions": {"images", "stated", "right", "share_right",
    "per_attribute": {key: [stated, right]}}, "images", "world", "model"}. The majority class of an
    attribute is its commonest value over all the world's images that show it; its accuracy is
    measured on the same images the model answers.
    """
    from chatreid.model import load_model_and_processor

    world_root = Path(world_root)
    if n_images < 1:
        raise ValueError(f"n_images: at least 1, got {n_images}")
    everything, rows = held_out_rows(world_root, n_images, seed)
    model, processor = load_model_and_processor(str(model_dir), dtype="float32")
    model.eval()
    images = _WorldImages(world_root)

    asked, pairs = [], []  # (row index, key, values), flattened (image, caption) pairs
    for i, row in enumerate(rows):
        for key in ASKED:
            cands = candidates(row, key, seed * 1_000_003 + i)
            if cands:
                asked.append((i, key, list(cands)))
                pairs += [(row["path"], text) for text in cands.values()]
    scores = _log_likelihoods(model, processor, images, pairs)

    majority = {}
    for key in ASKED:
        values = [r["attributes"][key] for r in everything if key in r["attributes"]]
        if values:
            majority[key] = max(VOCAB[key], key=values.count)
    per: dict[str, dict] = {}
    at = 0
    for i, key, values in asked:
        s = scores[at:at + len(values)]
        at += len(values)
        truth = rows[i]["attributes"][key]
        d = per.setdefault(key, {"n": 0, "right": 0, "majority_right": 0})
        d["n"] += 1
        d["right"] += values[int(np.argmax(s))] == truth
        d["majority_right"] += majority[key] == truth
    per_attribute = {k: {"n": d["n"], "accuracy": d["right"] / d["n"], "majority": d["majority_right"] / d["n"],
                         "majority_value": majority[k]} for k, d in ((k, per[k]) for k in ASKED if k in per)}
    out = {"model": str(model_dir), "world": str(world_root), "images": len(rows), "seed": seed,
           "per_attribute": per_attribute,
           "mean_accuracy": float(np.mean([d["accuracy"] for d in per_attribute.values()])),
           "mean_majority": float(np.mean([d["majority"] for d in per_attribute.values()]))}
    if describe:
        from chatreid.retrieval.engine import ReIDEngine

        engine = ReIDEngine(model, processor, prefilter="vlm")  # the pre-filter is never used here
        said: dict[str, list[int]] = {}
        examples = []
        for row in rows:
            text = engine.describe(images.image(row["path"]), max_new_tokens=max_new_tokens)
            for k, right in judged(text, row["attributes"]).items():
                said.setdefault(k, [0, 0])
                said[k][0] += 1
                said[k][1] += right
            if len(examples) < 3:
                examples.append({"path": row["path"], "text": text})
        n_stated = sum(v[0] for v in said.values())
        n_right = sum(v[1] for v in said.values())
        out["descriptions"] = {"images": len(rows), "stated": n_stated, "right": n_right,
                               "share_right": n_right / n_stated if n_stated else None,
                               "per_attribute": said, "examples": examples}
    return out


def attributes_table(result: dict) -> str:
    """The result as markdown: one row per attribute, the mean, and the description check."""
    lines = [f"Attributes on {result['images']} held-out images of `{result['world']}` "
             f"(model `{result['model']}`):", "",
             "| attribute | images | model accuracy | majority class | majority accuracy |",
             "|---|---|---|---|---|"]
    for key, d in result["per_attribute"].items():
        lines.append(f"| {key} | {d['n']} | {100 * d['accuracy']:.1f}% | {d['majority_value']} | "
                     f"{100 * d['majority']:.1f}% |")
    lines.append(f"| **mean** | | **{100 * result['mean_accuracy']:.1f}%** | | "
                 f"**{100 * result['mean_majority']:.1f}%** |")
    d = result.get("descriptions")
    if d:
        share = "none stated" if d["share_right"] is None else f"{100 * d['share_right']:.1f}%"
        per = ", ".join(f"{k} {r}/{s}" for k, (s, r) in sorted(d["per_attribute"].items())) or "none"
        lines += ["", f"Descriptions: {d['stated']} attributes stated over {d['images']} images, "
                      f"{d['right']} right ({share}); right/stated per attribute: {per}."]
    return "\n".join(lines) + "\n"
