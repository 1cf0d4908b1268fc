"""CUHK-PEDES-style captions of one SynthPeds image, phrased in varied ways.

Captions describe the person as this image shows them: the walking direction follows the view, a
logo or glasses are mentioned only when the front or side is seen, and infrared captions name no
colours at all (neither clothing nor hair): the image does not show them.
"""

from __future__ import annotations

import numpy as np

from chatreid.data.synthpeds.world import Outfit, Traits

GARMENT = {"t-shirt": ["t-shirt", "short-sleeved shirt", "tee"], "shirt": ["shirt", "button-up shirt", "long-sleeved shirt"],
           "sweater": ["sweater", "jumper", "long-sleeved top"], "jacket": ["jacket", "open jacket"],
           "coat": ["long coat", "coat"], "hoodie": ["hoodie", "hooded sweatshirt"]}
LOWER = {"trousers": ["trousers", "pants", "slacks"], "jeans": ["jeans", "denim pants"], "shorts": ["shorts"],
         "skirt": ["short skirt", "skirt"], "long skirt": ["long skirt", "ankle-length skirt"]}
SHOES = {"sneakers": ["sneakers", "trainers"], "shoes": ["shoes", "leather shoes"], "boots": ["boots"]}
HAIR = {"short": "short", "buzz": "very short", "bob": "chin-length", "long": "long", "ponytail": "long"}


def _c(rng, words):
    return words[int(rng.integers(len(words)))]


def _colour(name: str, rng) -> str:
    return "grey" if name == "gray" and rng.random() < 0.4 else name


def _a(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


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
        acc += f" {he.capitalize()} is carrying {join(carried)}."
    if worn:
        acc += f" {he.capitalize()} {_c(rng, ['is wearing', 'wears', 'has on'])} {join(worn)}."
    templates = [
        lambda: f"The {noun} is wearing {upper}, {lower} and {shoes}. {he.capitalize()} has {hair}.{acc}",
        lambda: f"A {noun} with {hair} walks {direction}. {he.capitalize()} {_c(rng, ['wears', 'is dressed in'])} "
                f"{upper} and {lower}.{acc}",
        lambda: f"This {noun} has {hair} and is dressed in {upper} with {lower} and {shoes}."
                + (f" {he.capitalize()} carries nothing." if not carried else acc),
        lambda: f"{_a(noun).capitalize()} in {upper} and {lower} is walking {direction}; {he} has "
                f"{hair}.{acc}",
        lambda: f"{he.capitalize()} is {_a(('slim ' if traits.build == 'slim' else 'heavy-set ' if traits.build == 'heavy' else '') + noun)} "
                f"wearing {lower}, {shoes} and {upper}, with {hair}.{acc}",
    ]
    order = rng.permutation(len(templates))[:n] if n <= len(templates) else rng.integers(0, len(templates), n)
    return [" ".join(templates[int(i)]().split()) for i in order]


def _nearest_name(rgb) -> str:
    # The inner shirt is drawn from three shades; name it by brightness.
    m = sum(rgb) / 3
    return "white" if m > 180 else ("gray" if m > 70 else "black")
