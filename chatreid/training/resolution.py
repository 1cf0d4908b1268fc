"""Per-stage input resolution policies (paper section 3.3), applied in collation.

Sizes are height x width, the Re-ID convention (a standing person is taller than wide).

* stage 1: images *below* 256x128 are resized to 256x128; larger ones are left alone.
* stage 2: images *above* 384x192 are resized to 384x192 (to fit many gallery images); smaller
  ones are left alone.
* stage 3: the input resolution is kept.

The paper does not say how "below" / "above" treats an image that is smaller on one side and larger
on the other. Our reading: *below* means either side is shorter than the standard (so no side is
left under it), *above* means either side is longer (so no side is left over it); in both cases the
image is resized to exactly the standard size, as the paper states. After this, Qwen2-VL's
processor rounds each side to a multiple of 28 (256x128 -> 252x140, 384x192 -> 392x196).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ResolutionPolicy:
    """``mode`` is ``"upsize_below"``, ``"downsize_above"`` or ``"keep"``; ``size`` is (height, width)."""

    mode: str = "keep"
    size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.mode not in ("upsize_below", "downsize_above", "keep"):
            raise ValueError(f"unknown resolution policy mode {self.mode!r}")
        if self.mode != "keep" and (self.size is None or min(self.size) <= 0):
            raise ValueError(f"resolution policy {self.mode!r} needs a positive (height, width) size")

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to (unchanged if no resize)."""
        if self.mode == "keep":
            return height, width
        h, w = self.size
        if self.mode == "upsize_below" and (height < h or width < w):
            return h, w
        if self.mode == "downsize_above" and (height > h or width > w):
            return h, w
        return height, width

    def __call__(self, image: Image.Image) -> Image.Image:
        h, w = self.target(image.height, image.width)
        if (h, w) == (image.height, image.width):
            return image
        return image.resize((w, h), Image.Resampling.BICUBIC)


STAGE_POLICIES = {
    1: ResolutionPolicy("upsize_below", (256, 128)),
    2: ResolutionPolicy("downsize_above", (384, 192)),
    3: ResolutionPolicy("keep"),
}


def policy_for_stage(stage: int) -> ResolutionPolicy:
    try:
        return STAGE_POLICIES[stage]
    except KeyError:
        raise ValueError(f"stage must be 1, 2 or 3, not {stage!r}") from None
