"""What the SynthPeds world contains: identities (body traits + outfits) and cameras.

Everything here is plain data sampled from a seeded numpy Generator; nothing is drawn. Each
identity, outfit and camera gets its own generator keyed by (seed, kind, index), so identity 7 of
seed 0 is the same person whether the world holds 10 or 10,000 identities, and in every layout.

The world is meant to be hard for appearance-only matching: clothing comes from a small palette
with skewed, correlated choices (an office "style" pulls towards black/gray/white, jeans are blue,
...), so many identities share their colours; a person's second outfit is sampled independently of
the first, so across outfits only the body traits stay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from chatreid.data.attributes import VOCAB, validate

# Clothing colours are the attribute vocabulary's colour names; each has a few shades (navy and
# denim are both "blue") so one name does not mean one RGB value.
SHADES: dict[str, list[tuple[int, int, int]]] = {
    "black": [(22, 22, 26), (38, 36, 40), (30, 33, 42)],
    "white": [(236, 236, 232), (218, 222, 226), (244, 238, 224)],
    "red": [(178, 30, 36), (145, 22, 32), (204, 56, 48)],
    "purple": [(108, 50, 130), (86, 40, 108), (134, 76, 154)],
    "yellow": [(226, 194, 48), (242, 212, 86), (198, 168, 40)],
    "gray": [(120, 120, 122), (152, 152, 148), (92, 96, 100)],
    "blue": [(38, 58, 140), (30, 42, 86), (72, 108, 176)],
    "green": [(48, 110, 60), (84, 130, 70), (34, 78, 50)],
    "pink": [(232, 150, 172), (210, 118, 150)],
    "brown": [(112, 76, 46), (140, 100, 62), (88, 60, 40)],
}
# One RGB per skin-tone name of the attribute vocabulary (VOCAB["skin"], lightest first).
SKIN_TONES = [(250, 222, 200), (236, 198, 166), (214, 170, 130), (184, 134, 96), (142, 96, 64), (98, 66, 46)]
HAIR_COLOURS = {"black": (24, 20, 18), "dark brown": (58, 38, 26), "brown": (104, 70, 42),
                "blond": (206, 170, 104), "red": (150, 64, 34), "gray": (150, 148, 146),
                "white": (222, 220, 216)}

assert len(SKIN_TONES) == len(VOCAB["skin"]) and tuple(HAIR_COLOURS) == VOCAB["hair_color"]
# Height classes (VOCAB["height"]) of the relative height: children and most teenagers are
# short; tall is about the top fifth of adult men. Upper bounds, exclusive.
HEIGHT_BOUNDS = {"short": 0.9, "average": 1.03}

# Outfit styles make colour choices correlated (weights over colour names).
STYLES = {
    "office": {"upper": {"white": 4, "black": 3, "gray": 3, "blue": 2},
               "lower": {"black": 5, "gray": 3, "blue": 1, "brown": 1}},
    "casual": {"upper": {"black": 3, "white": 3, "gray": 2, "blue": 2, "red": 1, "green": 1, "yellow": .5, "purple": .5},
               "lower": {"blue": 5, "black": 4, "gray": 2, "brown": 1, "white": .5}},
    "sport": {"upper": {"red": 2, "blue": 2, "black": 2, "white": 2, "yellow": 1, "green": 1, "gray": 1},
              "lower": {"black": 4, "gray": 2, "blue": 2, "white": 1}},
    "bright": {"upper": {"red": 2, "yellow": 2, "purple": 1.5, "green": 1.5, "white": 1, "blue": 1},
               "lower": {"white": 2, "pink": 1.5, "black": 2, "blue": 1, "purple": 1, "green": .5, "yellow": .5}},
}
UPPER_TYPES = ("t-shirt", "shirt", "sweater", "jacket", "coat", "hoodie")
SHORT_SLEEVED = {"t-shirt"}
PATTERNS = ("plain", "striped", "checked", "logo")
LOWER_TYPES = ("trousers", "jeans", "shorts", "skirt", "long skirt")
SHOE_TYPES = ("sneakers", "shoes", "boots")
ACCESSORY_COLOURS = {"black": 5, "brown": 2, "gray": 2, "blue": 1, "red": 1, "white": .5}


def _pick(rng: np.random.Generator, weights: dict):
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _shade(rng: np.random.Generator, colour: str) -> list[int]:
    shades = SHADES[colour]
    base = np.array(shades[int(rng.integers(len(shades)))], dtype=float)
    return [int(v) for v in np.clip(base + rng.normal(0, 6, 3), 0, 255)]


@dataclass
class Traits:
    gender: str          # "male" / "female" (gender presentation)
    age: str             # VOCAB["age"]
    height: float        # relative body height (1.0 = average adult)
    build: str           # "slim" / "average" / "heavy"
    skin: list[int]      # RGB
    hair_style: str      # "short", "buzz", "bald", "bob", "long", "ponytail"
    hair_colour: str     # key of HAIR_COLOURS


@dataclass
class Outfit:
    style: str
    upper_type: str
    upper_color: str
    upper_rgb: list[int]
    pattern: str
    pattern_color: str
    pattern_rgb: list[int]
    inner_rgb: list[int]       # the shirt under an open jacket
    lower_type: str
    lower_color: str
    lower_rgb: list[int]
    shoes: str
    shoes_color: str
    shoes_rgb: list[int]
    backpack: str | None = None  # colour name or None
    bag: str | None = None       # shoulder bag
    handbag: str | None = None
    hat: str | None = None       # "cap" / "beanie"
    hat_rgb: list[int] = field(default_factory=list)
    glasses: bool = False
    accessory_rgb: dict = field(default_factory=dict)


@dataclass
class Identity:
    pid: int
    traits: Traits
    outfits: list[Outfit]


def sample_traits(rng: np.random.Generator) -> Traits:
    gender = "male" if rng.random() < 0.5 else "female"
    age = _pick(rng, {"young": .06, "teenager": .12, "adult": .68, "old": .14})
    height = {"young": 0.72, "teenager": 0.9, "adult": 1.0, "old": 0.96}[age]
    height *= (1.0 if gender == "male" else 0.94) * float(np.clip(rng.normal(1, 0.035), 0.9, 1.1))
    build = _pick(rng, {"slim": 1, "average": 2, "heavy": 1})
    skin = list(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))])
    if gender == "male":
        hair_style = _pick(rng, {"short": 7, "buzz": 1.5, "long": 0.8, "bald": 0.7 if age == "old" else 0.05})
    else:
        hair_style = _pick(rng, {"long": 5, "ponytail": 2.5, "bob": 2, "short": 1})
    if age == "old":
        hair_colour = _pick(rng, {"gray": 5, "white": 3, "black": 1})
    else:
        hair_colour = _pick(rng, {"black": 10, "dark brown": 5, "brown": 2, "blond": 1.5, "red": 0.4})
    return Traits(gender, age, round(height, 3), build, skin, hair_style, hair_colour)


def sample_outfit(rng: np.random.Generator, traits: Traits) -> Outfit:
    style = _pick(rng, {"office": 2, "casual": 5, "sport": 2, "bright": 1 if traits.gender == "male" else 2.5})
    weights = STYLES[style]
    upper_type = _pick(rng, {"office": {"shirt": 4, "jacket": 3, "coat": 2, "sweater": 1},
                             "casual": {"t-shirt": 4, "sweater": 2, "jacket": 2, "hoodie": 2, "coat": 1, "shirt": 1},
                             "sport": {"t-shirt": 5, "hoodie": 3, "jacket": 1},
                             "bright": {"t-shirt": 3, "sweater": 2, "coat": 2, "shirt": 1}}[style])
    upper_color = _pick(rng, weights["upper"])
    pattern = _pick(rng, {"plain": 7, "striped": 1.5, "checked": 0.8 if upper_type == "shirt" else 0.3,
                          "logo": 1.5 if upper_type in ("t-shirt", "hoodie", "sweater") else 0})
    # A pattern's second colour contrasts with the main one (white on dark, black on light).
    dark = upper_color in ("black", "blue", "purple", "green", "red")
    pattern_color = _pick(rng, {"white": 3, "gray": 1, "red": .5} if dark else {"black": 3, "blue": 1, "red": .5})
    if pattern_color == upper_color:
        pattern_color = "gray"
    lower_w = {"trousers": 5, "jeans": 5, "shorts": 1.5 if style != "office" else 0.1,
               "skirt": 0 if traits.gender == "male" else 2, "long skirt": 0 if traits.gender == "male" else 1}
    if style == "sport":
        lower_w["shorts"] = 4
    lower_type = _pick(rng, lower_w)
    lower_color = "blue" if lower_type == "jeans" and rng.random() < 0.8 else _pick(rng, weights["lower"])
    shoes = _pick(rng, {"sneakers": 5 if style in ("sport", "casual") else 1, "shoes": 3 if style == "office" else 1,
                        "boots": 1})
    shoes_color = _pick(rng, {"black": 5, "white": 3, "brown": 2, "gray": 1})
    fem = traits.gender == "female"
    out = Outfit(style, upper_type, upper_color, _shade(rng, upper_color), pattern, pattern_color,
                 _shade(rng, pattern_color), _shade(rng, _pick(rng, {"white": 3, "gray": 1, "black": 1})),
                 lower_type, lower_color, _shade(rng, lower_color), shoes, shoes_color, _shade(rng, shoes_color))
    if rng.random() < (0.3 if traits.age in ("teenager", "young") else 0.22):
        out.backpack = _pick(rng, ACCESSORY_COLOURS)
    if rng.random() < (0.2 if fem else 0.1):
        out.bag = _pick(rng, ACCESSORY_COLOURS)
    if rng.random() < (0.22 if fem else 0.05) and out.bag is None:
        out.handbag = _pick(rng, {**ACCESSORY_COLOURS, "red": 2, "white": 1.5})
    if rng.random() < 0.13:
        out.hat = _pick(rng, {"cap": 3, "beanie": 2})
        out.hat_rgb = _shade(rng, _pick(rng, {"black": 3, "white": 1, "blue": 1, "red": 1, "gray": 1}))
    out.glasses = bool(rng.random() < (0.3 if traits.age == "old" else 0.13))
    out.accessory_rgb = {k: _shade(rng, getattr(out, k)) for k in ("backpack", "bag", "handbag") if getattr(out, k)}
    return out


def sample_identity(seed: int, pid: int, n_outfits: int = 1) -> Identity:
    traits = sample_traits(np.random.default_rng([seed, 1, pid]))
    # Outfit k has its own generator: asking for more outfits never changes the first ones.
    outfits = [sample_outfit(np.random.default_rng([seed, 2, pid, k]), traits) for k in range(n_outfits)]
    return Identity(pid, traits, outfits)


def skin_name(skin) -> str:
    """The vocabulary's name of a skin tone (one of SKIN_TONES)."""
    return VOCAB["skin"][SKIN_TONES.index(tuple(skin))]


def height_class(height: float) -> str:
    for name, bound in HEIGHT_BOUNDS.items():
        if height < bound:
            return name
    return "tall"


def attributes(traits: Traits, outfit: Outfit, modality: str = "visible", view: str | None = None) -> dict:
    """The attributes this person in this outfit truly has (Market-1501's and the body traits).

    Infrared images leave out the colour keys (clothing, hair and skin; a missing key means "not
    annotated"): the colours exist but cannot be seen, and an annotation must be true to the
    image. Glasses are annotated only for a known ``view`` that shows the face (not "back"), and
    hair colour not for a bald head.
    """
    a = {
        "gender": traits.gender,
        "age": traits.age,
        "hair": "long" if traits.hair_style in ("long", "ponytail") else "short",
        "sleeve": "short" if outfit.upper_type in SHORT_SLEEVED else "long",
        "lower_length": "short" if outfit.lower_type in ("shorts", "skirt") else "long",
        "lower_type": "dress" if outfit.lower_type in ("skirt", "long skirt") else "pants",
        "hat": outfit.hat is not None,
        "backpack": outfit.backpack is not None,
        "bag": outfit.bag is not None,
        "handbag": outfit.handbag is not None,
        "height": height_class(traits.height),
        "build": traits.build,
    }
    if modality == "visible":
        a["upper_color"] = outfit.upper_color
        a["lower_color"] = outfit.lower_color
        a["skin"] = skin_name(traits.skin)
        if traits.hair_style != "bald":
            a["hair_color"] = traits.hair_colour
    if view is not None and view != "back":
        a["glasses"] = outfit.glasses
    return validate(a, where=f"synthpeds attributes ({modality})")


@dataclass
class Camera:
    cam: int
    modality: str            # "visible" / "infrared"
    setting: str             # "indoor" / "outdoor"
    wall: list[int]          # background colours (RGB, or gray levels repeated for infrared)
    floor: list[int]
    detail: list[int]
    gain: float              # overall illumination
    cast: list[float]        # per-channel colour multipliers
    haze: float              # additive lift (washed-out cameras)
    light_dir: float         # horizontal illumination gradient, -1..1
    resolution: float        # rendering resolution as a fraction of the output size
    scale: float             # person height as a fraction of the crop height
    size_factor: float       # output size relative to --size (1.0 for fixed-size layouts)
    views: dict              # viewpoint probabilities: front / back / side
    blur: float              # Gaussian blur radius in output pixels
    noise: float             # sensor noise standard deviation (0-255 scale)
    occlusion: float         # probability that something stands in front of the person
    bg_seed: int             # seeds the camera's background scene

    def to_dict(self) -> dict:
        return asdict(self)


def sample_camera(seed: int, cam: int, modality: str, setting: str, vary_size: bool) -> Camera:
    rng = np.random.default_rng([seed, 3, cam, 0 if modality == "visible" else 1])
    # Cameras of one site (one campus, one building) share its materials; each camera deviates a
    # little. Backgrounds that differ wildly per camera would let a colour histogram match the
    # camera instead of the person.
    site = np.random.default_rng([seed, 11, 0 if setting == "indoor" else 1])
    base = {k: site.integers(lo, hi) + site.normal(0, t, 3) for k, lo, hi, t in
            (("wall", 120, 200, 6), ("floor", 80, 150, 4), ("detail", 60, 160, 10))}
    if setting == "outdoor":
        base["detail"] = np.array([60.0, 110.0, 55.0]) + site.normal(0, 8, 3)  # trees
    near = lambda k, spread: [int(v) for v in np.clip(base[k] + rng.normal(0, spread) + rng.normal(0, 4, 3), 0, 255)]  # noqa: E731
    if modality == "infrared":
        # Thermal scenes: cool background, a few warmer structures; no colour at all.
        lv = [int(rng.integers(25, 70)), int(rng.integers(40, 90)), int(rng.integers(80, 130))]
        wall, floor, detail = [lv[0]] * 3, [lv[1]] * 3, [lv[2]] * 3
        cast = [1.0, 1.0, 1.0]
    elif setting == "indoor":
        wall, floor, detail = near("wall", 15), near("floor", 12), near("detail", 20)
        # Indoor light: warm (tungsten) or green-ish (fluorescent) casts.
        cast = [float(v) for v in (rng.uniform(0.97, 1.1), rng.uniform(0.96, 1.05), rng.uniform(0.86, 1.0))]
    else:
        wall, floor, detail = near("wall", 15), near("floor", 12), near("detail", 10)
        cast = [float(v) for v in (rng.uniform(0.9, 1.03), rng.uniform(0.96, 1.04), rng.uniform(0.97, 1.12))]
    front, back = rng.dirichlet([1.2, 1.2, 0.8])[:2]
    return Camera(
        cam=cam, modality=modality, setting=setting, wall=wall, floor=floor, detail=detail,
        gain=float(rng.uniform(0.75, 1.15)), cast=cast, haze=float(rng.uniform(0, 18)),
        light_dir=float(rng.uniform(-0.35, 0.35)), resolution=float(rng.uniform(0.5, 1.0)),
        scale=float(rng.uniform(0.86, 0.96)), size_factor=float(rng.choice([0.75, 1.0, 1.25, 1.5])) if vary_size else 1.0,
        views={"front": float(front), "back": float(back), "side": float(1 - front - back)},
        blur=float(rng.uniform(0.0, 0.9)), noise=float(rng.uniform(1.5, 8.0)),
        occlusion=float(rng.uniform(0.0, 0.3)), bg_seed=int(rng.integers(2**31)),
    )
