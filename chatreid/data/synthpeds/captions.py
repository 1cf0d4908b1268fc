"""CUHK-PEDES-style captions of one SynthPeds image, phrased in varied ways.

Captions describe the person as this image shows them: the walking direction follows the view, a
logo or glasses are mentioned only when the front or side is seen, and infrared captions name no
colours at all (neither clothing, hair nor skin): the image does not show them. Every caption names
the body traits that survive a change of clothes: gender and age (the noun), hair, build and
height, and in visible light skin tone.

The generator passed in is the image's own, shared with its rendering (and, after the captions,
with a junk image's cropping): the wording of the body traits comes from a child generator
(``Generator.spawn``), which draws nothing from the parent, so adding them moved no image.
"""

from __future__ import annotations

import numpy as np

from chatreid.data.attributes import article as _a
from chatreid.data.synthpeds.world import Outfit, Traits, height_class, skin_name

GARMENT = {"t-shirt": ["t-shirt", "short-sleeved shirt", "tee"], "shirt": ["shirt", "button-up shirt", "long-sleeved shirt"],
           "sweater": ["sweater", "jumper", "long-sleeved top"], "jacket": ["jacket", "open jacket"],
           "coat": ["long coat", "coat"], "hoodie": ["hoodie", "hooded sweatshirt"]}
LOWER = {"trousers": ["trousers", "pants", "slacks"], "jeans": ["jeans", "denim pants"], "shorts": ["shorts"],
         "skirt": ["short skirt", "skirt"], "long skirt": ["long skirt", "ankle-length skirt"]}
SHOES = {"sneakers": ["sneakers", "trainers"], "shoes": ["shoes", "leather shoes"], "boots": ["boots"]}
HAIR = {"short": "short", "buzz": "very short", "bob": "chin-length", "long": "long", "ponytail": "long"}
# Body traits in two positions: before a noun ("a tall, slim man") and after a verb ("he is tall
# and of slim build"). Keyed by the vocabulary's classes (world.height_class, Traits.build).
BUILD_BEFORE = {"slim": ["slim", "slender", "thin"], "average": ["medium-build", "average-build"],
                "heavy": ["heavy-set", "stocky", "heavily built"]}
BUILD_AFTER = {"slim": ["slim", "slender", "of slim build"], "average": ["of average build", "of medium build"],
               "heavy": ["heavy-set", "stocky", "of heavy build"]}
HEIGHT_BEFORE = {"short": ["short"], "average": ["medium-height", "average-height"], "tall": ["tall"]}
HEIGHT_AFTER = {"short": ["short", "rather short"], "average": ["of average height", "of medium height"],
                "tall": ["tall", "rather tall"]}
SKIN = ["{} skin", "{} complexion"]


def _c(rng, words):
    return words[int(rng.integers(len(words)))]


def _w(u: float, words):
    # One uniform draw per choice whatever the list's length, so that the wording of the other
    # traits does not depend on this trait's value.
    return words[int(u * len(words))]


def _colour(name: str, rng) -> str:
    return "grey" if name == "gray" and rng.random() < 0.4 else name


def captions(traits: Traits, outfit: Outfit, view: str, modality: str, rng: np.random.Generator,
             n: int = 2) -> list[str]:
    """``n`` (2 or more) captions, each from a different template."""
    if n < 2:
        raise ValueError(f"captions: n must be 2 or more, got {n}")
    ir = modality == "infrared"
    male = traits.gender == "male"
    noun = {"young": "boy" if male else "girl", "teenager": "teenage boy" if male else "teenage girl",
            "adult": "man" if male else "woman", "old": "old man" if male else "old woman"}[traits.age]
    he, his = ("he", "his") if male else ("she", "her")
    He = he.capitalize()
    u = rng.spawn(1)[0].random(5)
    height, build = height_class(traits.height), traits.build
    ht_before, ht_after = _w(u[0], HEIGHT_BEFORE[height]), _w(u[1], HEIGHT_AFTER[height])
    bd_before, bd_after = _w(u[2], BUILD_BEFORE[build]), _w(u[3], BUILD_AFTER[build])
    skin = None if ir else _w(u[4], SKIN).format(skin_name(traits.skin))
    skin_a = skin and (skin if skin.endswith("skin") else _a(skin))  # "fair skin", "a fair complexion"

    def col(name):
        return "" if ir else _colour(name, rng) + " "

    # "a white and black striped shirt"; infrared shows no stripes (one material, one heat level).
    pattern = "" if ir else {"striped": "striped ", "checked": "checked "}.get(outfit.pattern, "")
    main = f"{_colour(outfit.upper_color, rng)} and {_colour(outfit.pattern_color, rng)} " if pattern else col(outfit.upper_color)
    upper = _a(f"{main}{pattern}{_c(rng, GARMENT[outfit.upper_type])}")
    if outfit.pattern == "logo" and view == "front" and not ir:
        upper += " with a logo on the chest"
    if outfit.upper_type in ("jacket", "coat") and view == "front" and not ir:
        upper += f" over a {_colour(_nearest_name(outfit.inner_rgb), rng)} top"
    lw = _c(rng, LOWER[outfit.lower_type])
    lower = (_a(f"{col(outfit.lower_color)}{lw}") if "skirt" in lw else f"{col(outfit.lower_color)}{lw}")
    shoes = f"{col(outfit.shoes_color)}{_c(rng, SHOES[outfit.shoes])}"
    if traits.hair_style == "bald":
        hair = "no hair on top of " + his + " head" if rng.random() < 0.5 else "a bald head"
    else:
        hcol = "" if ir else traits.hair_colour + " "
        hair = f"{HAIR[traits.hair_style]} {hcol}hair" + (" tied in a ponytail" if traits.hair_style == "ponytail" else "")
    carried = []
    for k, word in (("backpack", "backpack"), ("bag", "shoulder bag"), ("handbag", "handbag")):
        colour = getattr(outfit, k)
        if colour:
            carried.append(_a(f"{col(colour)}{word}"))
    worn = []
    if outfit.hat:
        worn.append(_a(outfit.hat))
    if outfit.glasses and view != "back":
        worn.append("glasses")
    direction = {"front": "towards the camera", "back": "away from the camera", "side": "past the camera"}[view]

    def join(items):
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    acc = ""
    if carried:
        acc += f" {He} is carrying {join(carried)}."
    if worn:
        acc += f" {He} {_c(rng, ['is wearing', 'wears', 'has on'])} {join(worn)}."
    and_skin = f" and {skin_a}" if skin else ""
    templates = [
        lambda: f"The {noun} is wearing {upper}, {lower} and {shoes}. {He} has {hair}{and_skin}, "
                f"and is {ht_after} and {bd_after}.{acc}",
        lambda: f"{_a(ht_before).capitalize()}, {bd_before} {noun} with {hair} walks {direction}. {He} {_c(rng, ['wears', 'is dressed in'])} "
                f"{upper} and {lower}." + (f" {He} has {skin_a}." if skin else "") + acc,
        lambda: f"This {noun} has {hair}{and_skin} and is dressed in {upper} with {lower} and {shoes}. "
                f"{He} is {ht_after}, with {_a(build + ' build')}."
                + (f" {He} carries nothing." if not carried else acc),
        lambda: f"{_a(noun).capitalize()} in {upper} and {lower} is walking {direction}; {he} is {bd_after} "
                f"and {ht_after}, and has {hair}{and_skin}.{acc}",
        lambda: f"{He} is {_a(noun) + ' of average height and build' if height == build == 'average' else _a(ht_before + ' ' + bd_before + ' ' + noun)} "
                f"wearing {lower}, {shoes} and {upper}, with {hair}{and_skin}.{acc}",
    ]
    order = rng.permutation(len(templates))[:n] if n <= len(templates) else rng.integers(0, len(templates), n)
    return [" ".join(templates[int(i)]().split()) for i in order]


def _nearest_name(rgb) -> str:
    # The inner shirt is drawn from three shades; name it by brightness.
    m = sum(rgb) / 3
    return "white" if m > 180 else ("gray" if m > 70 else "black")
