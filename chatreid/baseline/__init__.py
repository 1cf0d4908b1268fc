"""Re-ID-trained pre-filters: the "bag of tricks" baseline (``train/baseline.py``) and the
text-to-image dual encoder built on it (``python -m chatreid.baseline.text``).

Loading is light (torch, safetensors); training lives in ``chatreid.baseline.train``.
"""

from chatreid.baseline.model import (BACKBONES, MODEL_TYPE, Baseline, BaselineError, ReIDBaseline, load_baseline,
                                     save_baseline)

__all__ = ["BACKBONES", "MODEL_TYPE", "Baseline", "BaselineError", "ReIDBaseline", "load_baseline", "save_baseline"]
