"""SynthPeds: a procedural pedestrian world with full ground truth, written in the real on-disk
layouts of Market-1501, LTCC, SYSU-MM01 and CUHK-PEDES (see docs/synthpeds.md).

    from chatreid.data.synthpeds import generate, load_ground_truth
    generate("market", "data/synth-market", n_ids=200, seed=0)
    truth = load_ground_truth("data/synth-market")   # {relative path: ground truth}
"""

from chatreid.data.synthpeds.layouts import (
    DEFAULT_IMAGES_PER_ID, DEFAULT_SIZE, GROUND_TRUTH, LAYOUTS, cameras, generate, load_ground_truth, plan,
)
from chatreid.data.synthpeds.render import render
from chatreid.data.synthpeds.world import Camera, Identity, Outfit, Traits, attributes, sample_camera, sample_identity

__all__ = [
    "DEFAULT_IMAGES_PER_ID", "DEFAULT_SIZE", "GROUND_TRUTH", "LAYOUTS", "Camera", "Identity", "Outfit", "Traits",
    "attributes", "cameras", "generate", "load_ground_truth", "plan", "render", "sample_camera", "sample_identity",
]
