"""Drawing one person crop with Pillow: a person, a camera's scene, the camera's optics.

The person is drawn in "person units": ``u`` across (0 = body axis) and ``v`` down (0 = top of
the head, 1 = soles), both in fractions of the body height, then mapped to pixels. Drawing happens
at twice the camera's resolution and is box-reduced (cheap anti-aliasing), resized to the output
size (low-resolution cameras come out soft), then the camera's light, colour cast, blur and noise
are applied with numpy.

Infrared cameras draw the same shapes with heat levels instead of colours: skin is hot, clothing
warm (thinner clothing warmer), hair, bags and shoes cool, glasses cold; the scene is cool. So
clothing colour and pattern are gone while shape, hair, accessories and build remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from chatreid.data.synthpeds.world import HAIR_COLOURS, Camera, Outfit, Traits

SS = 2  # supersampling factor of the drawing canvas

# Heat levels (0-255) for infrared rendering.
IR_UPPER = {"t-shirt": 178, "shirt": 165, "sweater": 145, "hoodie": 138, "jacket": 122, "coat": 108}
IR_LOWER = {"trousers": 150, "jeans": 140, "shorts": 150, "skirt": 155, "long skirt": 145}


def _grey(v: float) -> tuple:
    v = int(max(0, min(255, v)))
    return (v, v, v)


def paints(traits: Traits, outfit: Outfit, modality: str, rng: np.random.Generator) -> dict:
    """Part name -> RGB fill, for this modality."""
    if modality == "infrared":
        t = rng.normal(0, 6)  # body temperature / emissivity varies a little shot to shot
        hair = 95 if traits.hair_style in ("short", "buzz", "bob") else 80
        up = IR_UPPER[outfit.upper_type] + t
        return {
            "skin": _grey(222 + t), "hair": _grey(hair + t), "upper": _grey(up), "pattern": _grey(up + 5),
            "inner": _grey(170 + t), "lower": _grey(IR_LOWER[outfit.lower_type] + t), "shoes": _grey(70 + t),
            "backpack": _grey(62), "bag": _grey(74), "handbag": _grey(80), "hat": _grey(100 + t),
            "glasses": _grey(35), "eyes": _grey(150), "strap": _grey(70),
        }
    acc = outfit.accessory_rgb
    return {
        "skin": tuple(traits.skin), "hair": HAIR_COLOURS[traits.hair_colour], "upper": tuple(outfit.upper_rgb),
        "pattern": tuple(outfit.pattern_rgb), "inner": tuple(outfit.inner_rgb), "lower": tuple(outfit.lower_rgb),
        "shoes": tuple(outfit.shoes_rgb), "backpack": tuple(acc.get("backpack", (0, 0, 0))),
        "bag": tuple(acc.get("bag", (0, 0, 0))), "handbag": tuple(acc.get("handbag", (0, 0, 0))),
        "hat": tuple(outfit.hat_rgb or (0, 0, 0)), "glasses": (20, 20, 24), "eyes": (30, 24, 22),
        "strap": tuple(max(0, c - 30) for c in acc.get("backpack", acc.get("bag", (40, 40, 40)))),
    }


@lru_cache(maxsize=64)
def _scene(cam_key: tuple, w: int, h: int) -> Image.Image:
    """A camera's background, 4x wider and 1.3x taller than the crop (each shot sees a slice)."""
    bg_seed, modality, setting, wall, floor, detail = cam_key
    rng = np.random.default_rng(bg_seed)
    W = int(w * 4)
    img = Image.new("RGB", (W, h), wall)
    d = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.55, 0.75))
    d.rectangle([0, horizon, W, h], fill=floor)
    shade = lambda c, k: tuple(int(max(0, min(255, x * k))) for x in c)  # noqa: E731
    if setting == "indoor":
        x = 0
        while x < W:  # doors, pillars, panels along the wall
            pw = int(rng.uniform(0.12, 0.4) * w)
            if rng.random() < 0.5:
                top = int(horizon * rng.uniform(0.05, 0.4))
                d.rectangle([x, top, x + pw, horizon], fill=shade(detail, rng.uniform(0.8, 1.2)))
            x += pw + int(rng.uniform(0.05, 0.3) * w)
        d.line([0, int(horizon * 0.75), W, int(horizon * 0.75)], fill=shade(wall, 0.8), width=max(1, h // 80))
        for k in range(int(rng.integers(2, 6))):  # floor tiles / reflections
            y = horizon + int((h - horizon) * (k + 1) / 6)
            d.line([0, y, W, y], fill=shade(floor, 0.9), width=1)
    else:
        x = 0
        while x < W:  # buildings with windows, trees in front
            bw = int(rng.uniform(0.3, 0.8) * w)
            top = int(horizon * rng.uniform(0.0, 0.3))
            col = shade(wall, rng.uniform(0.75, 1.2))
            d.rectangle([x, top, x + bw, horizon], fill=col)
            for wy in range(top + h // 20, horizon - h // 15, max(3, h // 10)):
                for wx in range(x + w // 20, x + bw - w // 15, max(3, w // 6)):
                    d.rectangle([wx, wy, wx + w // 12, wy + h // 24], fill=shade(col, 0.8))
            x += bw
        for _ in range(int(rng.integers(0, 3))):
            tx, r = rng.uniform(0, W), rng.uniform(0.15, 0.35) * w
            ty = horizon - r * rng.uniform(0.5, 1.5)
            d.ellipse([tx - r, ty - r, tx + r, ty + r], fill=shade(detail, rng.uniform(0.8, 1.2)))
        d.rectangle([0, horizon, W, horizon + max(1, h // 40)], fill=shade(floor, 1.25))  # kerb
    return img


def _occlude(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, cam: Camera, infrared: bool) -> str:
    kind = ["pole", "low", "passerby"][int(rng.integers(3))]
    if infrared:
        col = _grey({"pole": 55, "low": rng.uniform(80, 140), "passerby": 190}[kind])
    else:
        col = tuple(int(v) for v in rng.integers(20, 230, 3)) if kind != "pole" else tuple(cam.detail)
    if kind == "pole":
        pw, x = rng.uniform(0.08, 0.16) * w, rng.uniform(0.1, 0.9) * w
        d.rectangle([x - pw / 2, 0, x + pw / 2, h], fill=col)
    elif kind == "low":
        top = rng.uniform(0.72, 0.86) * h
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2) * w)
        d.rounded_rectangle([min(x0, w * 0.2), top, max(x1, w * 0.8), h + 5], radius=w * 0.08, fill=col)
    else:  # the shoulder of someone walking past, at one side
        side = rng.choice([-1, 1])
        cx, top = (0.5 + side * rng.uniform(0.45, 0.6)) * w, rng.uniform(0.15, 0.45) * h
        d.rounded_rectangle([cx - 0.25 * w, top, cx + 0.25 * w, h + 5], radius=w * 0.12, fill=col)
        d.ellipse([cx - 0.12 * w, top - 0.15 * w, cx + 0.12 * w, top + 0.1 * w],
                  fill=_grey(220) if infrared else HAIR_COLOURS["black"])
    return kind


class _Pen:
    """Draws in body units: ``u`` across from the body axis and ``v`` down from the head top, both
    in body heights; ``P(u, v)`` is the pixel point."""

    def __init__(self, d: ImageDraw.ImageDraw, cx: float, top: float, H: float):
        self.d, self.cx, self.top, self.H = d, cx, top, H

    def P(self, u, v):
        return (self.cx + u * self.H, self.top + v * self.H)

    def poly(self, points, fill):
        self.d.polygon([self.P(u, v) for u, v in points], fill=fill)

    def ell(self, u0, v0, u1, v1, fill):
        (x0, y0), (x1, y1) = self.P(min(u0, u1), min(v0, v1)), self.P(max(u0, u1), max(v0, v1))
        self.d.ellipse([x0, y0, x1, y1], fill=fill)

    def rect(self, u0, v0, u1, v1, fill):
        (x0, y0), (x1, y1) = self.P(min(u0, u1), min(v0, v1)), self.P(max(u0, u1), max(v0, v1))
        self.d.rectangle([x0, y0, x1, y1], fill=fill)


@dataclass
class _Body:
    """A person's proportions for one view, in body heights (see ``_body``)."""

    view: str
    side: bool
    stride: float
    hh: float  # head height
    sh: float  # shoulder line
    waist: float
    hip: float
    knee: float
    ankle: float
    bf: float  # build factor (widths)
    sw: float  # shoulder half-width
    ww: float  # waist half-width
    hw: float  # hip half-width
    headw: float
    f: int  # side views: the walking direction; else 1
    right: int  # the person's right hand side in image coordinates
    upper_hem: float
    arm_w: float
    wrist_v: float


def _body(traits: Traits, outfit: Outfit, view: str, facing: int, stride: float) -> _Body:
    """Proportions: children have relatively big heads; build widens the torso and hips."""
    side = view == "side"
    hh = {"young": 0.17, "teenager": 0.14}.get(traits.age, 0.13)
    B = 1 - hh - 0.03
    sh, waist, hip = hh + 0.03, hh + 0.03 + 0.33 * B, hh + 0.03 + 0.38 * B
    knee, ankle = hh + 0.03 + 0.66 * B, hh + 0.03 + 0.95 * B
    bf = {"slim": 0.86, "average": 1.0, "heavy": 1.22}[traits.build]
    male = traits.gender == "male"
    sw, ww, hw = (0.135 if male else 0.115) * bf, (0.095 if male else 0.085) * bf, (0.1 if male else 0.11) * bf
    if traits.age == "young":
        sw, ww, hw = sw * 0.85, ww, hw * 0.9
    if side:  # seen from the side the body is its depth, not its width
        sw, ww, hw = sw * 0.62, ww * 0.8, hw * 0.75
    return _Body(
        view=view, side=side, stride=stride, hh=hh, sh=sh, waist=waist, hip=hip, knee=knee, ankle=ankle,
        bf=bf, sw=sw, ww=ww, hw=hw, headw=hh * 0.38, f=facing if side else 1,
        right=-facing if view == "front" else (facing if view == "back" else -1),
        upper_hem=hip + (0.45 * (knee - hip) if outfit.upper_type == "coat" else 0.02),
        arm_w=0.038 * bf, wrist_v=hip + 0.03,
    )


def draw_person(d: ImageDraw.ImageDraw, traits: Traits, outfit: Outfit, view: str, facing: int,
                cx: float, top: float, H: float, stride: float, c: dict) -> None:
    """Draw one person; (cx, top) = body axis and head top in pixels, H = body height in pixels.

    ``facing`` is +1/-1: for side views the direction of walking; for all views it also decides
    which hand carries things (the person's right hand is on the image left when they face us).
    Back to front: what is behind the body, legs, arms (front and back views), torso, what is on
    the body (with the near arm of a side view), head.
    """
    pen = _Pen(d, cx, top, H)
    b = _body(traits, outfit, view, facing, stride)
    _draw_behind(pen, b, traits, outfit, c)
    _draw_legs(pen, b, outfit, c)
    if not b.side:
        _draw_arm(pen, b, outfit, c, -b.sw * 0.92, -b.sw * 1.12)
        _draw_arm(pen, b, outfit, c, b.sw * 0.92, b.sw * 1.12)
    _draw_torso(pen, b, outfit, c)
    _draw_carried(pen, b, outfit, c)
    _draw_head(pen, b, traits, outfit, c)


def _draw_behind(pen: _Pen, b: _Body, traits: Traits, outfit: Outfit, c: dict) -> None:
    """Things behind the body: long hair seen from the front, a backpack seen from the side."""
    if b.view == "front" and traits.hair_style in ("long",):
        pen.rect(-b.headw * 1.15, b.hh * 0.5, b.headw * 1.15, b.sh + 0.07, c["hair"])
    if b.side and outfit.backpack:
        pen.rect(-b.f * (b.sw + 0.075), b.sh + 0.02, -b.f * b.sw * 0.8, b.waist, c["backpack"])


def _draw_legs(pen: _Pen, b: _Body, outfit: Outfit, c: dict) -> None:
    """Legs, the lower garment, shoes."""
    poly, side, f, hip, ankle, hw, ww = pen.poly, b.side, b.f, b.hip, b.ankle, b.hw, b.ww
    lw = 0.05 * b.bf
    leg_x = [-hw * 0.5, hw * 0.5]
    feet = [leg_x[0] - b.stride, leg_x[1] + b.stride] if side else [leg_x[0] * 1.05, leg_x[1] * 1.05]
    lt = outfit.lower_type
    for lx, fx in zip(leg_x, feet):
        poly([(lx - lw, hip), (lx + lw, hip), (fx + lw * 0.65, ankle), (fx - lw * 0.65, ankle)], c["skin"])
        if lt in ("trousers", "jeans"):
            poly([(lx - lw, hip), (lx + lw, hip), (fx + lw * 0.7, ankle), (fx - lw * 0.7, ankle)], c["lower"])
        elif lt == "shorts":
            k = 0.45
            mx = lx + (fx - lx) * k
            poly([(lx - lw * 1.1, hip), (lx + lw * 1.1, hip), (mx + lw * 1.05, hip + (ankle - hip) * k),
                  (mx - lw * 1.05, hip + (ankle - hip) * k)], c["lower"])
        fl = 0.055 if side else 0.035
        poly([(fx - (0.03 if side else fl), ankle - 0.01), (fx + (fl * f if side else fl), ankle - 0.01),
              (fx + (fl * f if side else fl), 1.0), (fx - (0.03 if side else fl), 1.0)], c["shoes"])
    poly([(-ww, b.waist), (ww, b.waist), (hw, hip + 0.01), (-hw, hip + 0.01)],
         c["lower"] if lt != "shorts" or True else c["skin"])
    if lt in ("skirt", "long skirt"):
        hem = b.knee + 0.02 if lt == "skirt" else ankle - 0.04
        spread = 1.5 if lt == "skirt" else 1.7
        poly([(-ww, b.waist), (ww, b.waist), (hw * spread, hem), (-hw * spread, hem)], c["lower"])


def _draw_arm(pen: _Pen, b: _Body, outfit: Outfit, c: dict, su: float, wu: float) -> None:
    """One arm from the shoulder at ``su`` to the wrist at ``wu`` (a t-shirt covers its upper part)."""
    poly, sh, wrist_v, arm_w = pen.poly, b.sh, b.wrist_v, b.arm_w
    short = outfit.upper_type == "t-shirt"
    ev = sh + (wrist_v - sh) * (0.42 if short else 1.0)
    eu = su + (wu - su) * (0.42 if short else 1.0)
    poly([(su - arm_w, sh + 0.01), (su + arm_w, sh + 0.01), (wu + arm_w * 0.7, wrist_v), (wu - arm_w * 0.7, wrist_v)],
         c["skin"])
    poly([(su - arm_w * 1.1, sh + 0.005), (su + arm_w * 1.1, sh + 0.005), (eu + arm_w * 0.9, ev),
          (eu - arm_w * 0.9, ev)], c["upper"])
    pen.ell(wu - arm_w * 0.8, wrist_v - 0.01, wu + arm_w * 0.8, wrist_v + 0.035, c["skin"])


def _draw_torso(pen: _Pen, b: _Body, outfit: Outfit, c: dict) -> None:
    """The torso and the upper garment's pattern, opening, buttons or hood."""
    rect, view, sw, sh, upper_hem = pen.rect, b.view, b.sw, b.sh, b.upper_hem
    quad = [(-sw, sh), (sw, sh), (b.hw * (1.15 if outfit.upper_type == "coat" else 1.02), upper_hem),
            (-b.hw * (1.15 if outfit.upper_type == "coat" else 1.02), upper_hem)]
    pen.poly(quad, c["upper"])

    def band(t0, t1, s0=0.0, s1=1.0):
        # A sub-quad of the torso: t = fraction down, s = fraction across.
        def at(t, s):
            lu = quad[0][0] + (quad[3][0] - quad[0][0]) * t
            ru = quad[1][0] + (quad[2][0] - quad[1][0]) * t
            return (lu + (ru - lu) * s, sh + (upper_hem - sh) * t)
        pen.poly([at(t0, s0), at(t0, s1), at(t1, s1), at(t1, s0)], c["pattern"])

    if outfit.pattern == "striped":
        for t in np.arange(0.12, 0.95, 0.18):
            band(t, t + 0.08)
    elif outfit.pattern == "checked":
        for t in np.arange(0.1, 0.95, 0.22):
            band(t, t + 0.06)
        for s in np.arange(0.15, 0.95, 0.28):
            band(0, 1, s, s + 0.07)
    elif outfit.pattern == "logo" and view == "front":
        rect(-sw * 0.35, sh + 0.05, sw * 0.35, sh + 0.11, c["pattern"])
    if view == "front" and outfit.upper_type in ("jacket", "coat"):
        rect(-sw * 0.22, sh, sw * 0.22, upper_hem - 0.01, c["inner"])  # open front, the shirt beneath
    if view == "front" and outfit.upper_type == "shirt":
        rect(-0.004, sh + 0.01, 0.004, upper_hem, tuple(int(x * 0.75) for x in c["upper"]))
    if outfit.upper_type == "hoodie" and view == "back":
        pen.ell(-sw * 0.6, sh - 0.02, sw * 0.6, sh + 0.09, tuple(int(x * 0.85) for x in c["upper"]))


def _draw_carried(pen: _Pen, b: _Body, outfit: Outfit, c: dict) -> None:
    """Accessories on the body (backpack, bag across the chest, handbag), and a side view's near
    arm, which goes over the backpack and under the bag's strap."""
    P, rect, d, H = pen.P, pen.rect, pen.d, pen.H
    view, side, f, right, sw, sh, hw, hip, waist, wrist_v = (b.view, b.side, b.f, b.right, b.sw, b.sh, b.hw,
                                                             b.hip, b.waist, b.wrist_v)
    swing = b.stride * 0.8
    if outfit.backpack and view == "back":
        d.rounded_rectangle([*P(-sw * 0.78, sh + 0.02), *P(sw * 0.78, waist + 0.02)], radius=H * 0.02,
                            fill=c["backpack"])
        rect(-sw * 0.5, waist - 0.07, sw * 0.5, waist, c["strap"])
    if outfit.backpack and view == "front":
        for s in (-1, 1):
            rect(s * sw * 0.62 - 0.012, sh, s * sw * 0.62 + 0.012, sh + 0.14, c["strap"])
    if side:
        _draw_arm(pen, b, outfit, c, f * swing * 0.3, f * swing)
    if outfit.bag:  # strap across the chest from one shoulder, bag at the other hip
        a, z = P(-right * sw * 0.7, sh + 0.005), P(right * hw * 0.9, hip - 0.02)
        d.line([a, z], fill=c["strap"], width=max(1, int(H * 0.012)))
        bu = right * (hw + 0.02) if not side else -f * 0.02
        rect(bu - 0.055, hip - 0.04, bu + 0.055, hip + 0.05, c["bag"])
    if outfit.handbag:
        hu = right * sw * 1.12 if not side else f * swing
        rect(hu - 0.04, wrist_v + 0.015, hu + 0.04, wrist_v + 0.085, c["handbag"])
        d.line([P(hu - 0.02, wrist_v + 0.015), P(hu, wrist_v - 0.01), P(hu + 0.02, wrist_v + 0.015)],
               fill=c["handbag"], width=max(1, int(H * 0.008)))


def _draw_head(pen: _Pen, b: _Body, traits: Traits, outfit: Outfit, c: dict) -> None:
    """Neck, head, hair, face, glasses, hat."""
    rect, ell, view, hh, headw = pen.rect, pen.ell, b.view, b.hh, b.headw
    rect(-headw * 0.4, hh * 0.8, headw * 0.4, b.sh + 0.01, c["skin"])
    hs = traits.hair_style
    hair = c["hair"]
    if view == "back":
        ell(-headw, 0, headw, hh, c["skin"] if hs == "bald" else hair)
        if hs == "bald":
            ell(-headw * 1.02, hh * 0.45, headw * 1.02, hh * 0.8, hair)
        if hs == "long":
            rect(-headw * 1.1, hh * 0.5, headw * 1.1, b.sh + 0.11, hair)
        elif hs == "ponytail":
            rect(-headw * 0.25, hh * 0.5, headw * 0.25, b.sh + 0.07, hair)
        elif hs == "bob":
            rect(-headw * 1.05, hh * 0.5, headw * 1.05, hh * 1.02, hair)
    elif b.side:
        _draw_head_side(pen, b, hs, outfit, c)
    else:
        _draw_head_front(pen, b, hs, outfit, c)
    if outfit.hat:
        depth = 0.42 if outfit.hat == "cap" else 0.5
        ell(-headw * 1.12, -0.015, headw * 1.12, hh * depth * 1.6, c["hat"])
        rect(-headw * 1.12, hh * depth * 0.8, headw * 1.12, hh * depth, c["hat"])
        if outfit.hat == "cap" and view != "back":
            if b.side:
                rect(b.f * headw * 0.5, hh * depth * 0.85, b.f * headw * 1.6, hh * depth * 1.05, c["hat"])
            else:
                rect(-headw * 1.0, hh * depth * 0.85, headw * 1.0, hh * depth * 1.1, c["hat"])


# How far down the head (in head heights, before the crown's 0.35) the hair reaches, by style.
_HAIR_DEPTH = {"bald": 0.0, "buzz": 0.3, "short": 0.42, "bob": 0.45, "long": 0.45, "ponytail": 0.4}


def _draw_head_side(pen: _Pen, b: _Body, hs: str, outfit: Outfit, c: dict) -> None:
    """A head in profile: the back half hair, one eye, glasses as a bar."""
    P, rect, ell, d, hh, headw, f = pen.P, pen.rect, pen.ell, pen.d, b.hh, b.headw, b.f
    hair = c["hair"]
    hair_depth = _HAIR_DEPTH[hs]
    if hair_depth:
        ell(-headw * 1.07, -0.008, headw * 1.07, hh * (hair_depth + 0.35), hair)
    ell(-headw, 0, headw, hh, c["skin"])
    if hair_depth:  # the back half of the head is hair
        d.pieslice([*P(-headw * 1.07, -0.008), *P(headw * 1.07, hh * 1.02)],
                   start=90 if f > 0 else -90, end=270 if f > 0 else 90, fill=hair)
        ell(-headw * 1.07, -0.008, headw * 1.07, hh * hair_depth, hair)
    if hs in ("long", "ponytail"):
        rect(-f * headw * 1.1, hh * 0.5, -f * headw * 0.3, b.sh + (0.1 if hs == "long" else 0.05), hair)
    d.ellipse([*P(f * headw * 0.55 - 0.006, hh * 0.45), *P(f * headw * 0.55 + 0.006, hh * 0.53)], fill=c["eyes"])
    if outfit.glasses:
        rect(f * headw * 0.1, hh * 0.46, f * headw * 0.95, hh * 0.5, c["glasses"])


def _draw_head_front(pen: _Pen, b: _Body, hs: str, outfit: Outfit, c: dict) -> None:
    """A head seen from the front: the face framed by the hair, two eyes, glasses."""
    P, rect, ell, d, hh, headw = pen.P, pen.rect, pen.ell, pen.d, b.hh, b.headw
    hair = c["hair"]
    hair_depth = _HAIR_DEPTH[hs]
    if hair_depth:
        ell(-headw * 1.07, -0.008, headw * 1.07, hh * (hair_depth + 0.35), hair)
    ell(-headw * 0.92, hh * (hair_depth * 0.6 if hair_depth else 0), headw * 0.92, hh, c["skin"])
    if hs in ("long", "bob"):
        low = b.sh + 0.06 if hs == "long" else hh * 0.95
        rect(-headw * 1.12, hh * 0.35, -headw * 0.75, low, hair)
        rect(headw * 0.75, hh * 0.35, headw * 1.12, low, hair)
    for s in (-1, 1):
        d.ellipse([*P(s * headw * 0.38 - 0.007, hh * 0.48), *P(s * headw * 0.38 + 0.007, hh * 0.56)],
                  fill=c["eyes"])
    if outfit.glasses:
        rect(-headw * 0.68, hh * 0.46, -headw * 0.1, hh * 0.58, c["glasses"])
        rect(headw * 0.1, hh * 0.46, headw * 0.68, hh * 0.58, c["glasses"])
        rect(-headw * 0.7, hh * 0.47, headw * 0.7, hh * 0.5, c["glasses"])


def render(traits: Traits, outfit: Outfit, cam: Camera, rng: np.random.Generator,
           size: tuple[int, int]) -> tuple[Image.Image, dict]:
    """One photo of this person in this outfit by this camera. ``size`` is (height, width).

    Returns the RGB image and what the shot shows: {"view", "occluder"} (occluder None or a kind).
    """
    H_out, W_out = size
    infrared = cam.modality == "infrared"
    rw = max(16, int(round(W_out * cam.resolution))) * SS
    rh = max(32, int(round(H_out * cam.resolution))) * SS
    views = list(cam.views)
    view = views[int(rng.choice(3, p=np.array([cam.views[v] for v in views]) / sum(cam.views.values())))]
    facing = int(rng.choice([-1, 1]))

    key = (cam.bg_seed, cam.modality, cam.setting, tuple(cam.wall), tuple(cam.floor), tuple(cam.detail))
    scene = _scene(key, rw, int(rh * 1.3))
    x0, y0 = int(rng.integers(0, scene.width - rw + 1)), int(rng.integers(0, scene.height - rh + 1))
    # Each shot sees its own slice of the scene under its own light (clouds, lamps, shadows):
    # the background varies within a camera, not only between cameras.
    tint = (rng.uniform(0.75, 1.2) * rng.uniform(0.93, 1.07, 3) * 256).astype(np.uint32)
    bg = (np.asarray(scene)[y0:y0 + rh, x0:x0 + rw] * tint) >> 8  # fixed-point: integer ops only
    img = Image.fromarray(np.minimum(bg, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)

    body = rh * min(0.98, cam.scale * rng.uniform(0.95, 1.04)) * (0.78 + 0.22 * min(traits.height, 1.05) / 1.05)
    top = (rh - body) * rng.uniform(0.25, 0.75) if traits.age != "young" else rh - body - rh * 0.02
    cx = rw / 2 + rng.uniform(-0.07, 0.07) * rw
    stride = rng.uniform(0.02, 0.09) if view == "side" else rng.uniform(0.0, 0.015)
    draw_person(d, traits, outfit, view, facing, cx, top, body, stride, paints(traits, outfit, cam.modality, rng))
    occluder = _occlude(d, rng, rw, rh, cam, infrared) if rng.random() < cam.occlusion else None

    img = img.reduce(SS)
    W, H = int(round(W_out * cam.size_factor / 2)) * 2, int(round(H_out * cam.size_factor / 2)) * 2
    radius = cam.blur * rng.uniform(0.6, 1.4) * img.width / W  # blur before resizing: fewer pixels
    if radius > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    if img.size != (W, H):
        img = img.resize((W, H), Image.BILINEAR)

    # Camera light: overall gain, a horizontal gradient, the colour cast, haze, sensor noise.
    a = np.asarray(img if not infrared else img.convert("L"), dtype=np.float32)
    light = cam.gain * rng.uniform(0.85, 1.15) * (1 + cam.light_dir * np.linspace(-1, 1, W, dtype=np.float32))
    bank = _noise_bank(H, W)  # a random window of a fixed noise field: cheaper than fresh normals
    ny, nx = int(rng.integers(0, H)), int(rng.integers(0, W))
    if infrared:
        a = a * light[None, :] + cam.haze
        a += bank[ny:ny + H, nx:nx + W, 0] * cam.noise
        a = np.repeat(np.clip(a, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    else:
        cast = np.array(cam.cast, dtype=np.float32) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
        a *= light[:, None] * cast[None, :]
        a += bank[ny:ny + H, nx:nx + W] * cam.noise + cam.haze
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB"), {"view": view, "occluder": occluder}


@lru_cache(maxsize=16)
def _noise_bank(h: int, w: int) -> np.ndarray:
    return np.random.default_rng([h, w]).standard_normal((2 * h, 2 * w, 3), dtype=np.float32)
