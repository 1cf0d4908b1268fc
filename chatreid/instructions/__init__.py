"""The instruction data engine: stage 1, 2 and 3 datasets of ChatReID's hierarchical progressive
tuning, built from an image store (docs/instructions.md).

>>> from chatreid.instructions import BuildConfig, build, load, validate
>>> build("stores/synthpeds", "data/stage2", BuildConfig(stage=2, size=100_000), num_proc=2)
>>> dsd = load("data/stage2")                 # or a Hub id
>>> validate("data/stage2", "stores/synthpeds").ok
"""

from chatreid.instructions.build import build, load, push_to_hub
from chatreid.instructions.config import DEFAULT_MIX, BuildConfig, parse_mix
from chatreid.instructions.validate import validate

__all__ = ["BuildConfig", "DEFAULT_MIX", "build", "load", "parse_mix", "push_to_hub", "validate"]
