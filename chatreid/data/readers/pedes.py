"""Text-to-image person retrieval benchmarks, read as IRRA reads them: CUHK-PEDES (Li et al.,
CVPR 2017), ICFG-PEDES (Ding et al., 2021) and RSTPReid (Zhu et al., ACM MM 2021).

All three: ``imgs/`` with the images and one JSON list of annotations, each
``{"id": int, "split": "train"|"val"|"test", "captions": [str, ...], <path key>: str}``.
Train images become ``train`` records; test images become ``gallery`` records carrying their
captions, each caption being one text query whose identity is the record's pid (no ``query``
image records: the queries are the captions). There is no camera protocol: camid is -1.
"""

from __future__ import annotations

import json

from chatreid.data.readers._common import Collector, check_choice, require_dir, require_file

VAL_CHOICES = ("exclude", "train", "test")


def _read_pedes(root, annotation: str, path_key: str, dataset: str, *, val: str,
                skip_bad: bool, check_files: bool):
    check_choice("val", val, VAL_CHOICES)
    root = require_dir(root, f"{dataset} dataset root")
    imgs = require_dir(root / "imgs", f"{dataset} imgs/ folder")
    ann_path = require_file(root / annotation, f"{dataset} annotation file")
    try:
        annos = json.loads(ann_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{ann_path}: not valid JSON ({err})") from None
    if not isinstance(annos, list):
        raise ValueError(f"{ann_path}: expected a JSON list of annotations")
    # val="test": evaluate on val (model selection) -> val is the gallery and test is left out.
    split_of = {"train": "train", "test": "gallery" if val != "test" else None,
                "val": {"exclude": None, "train": "train", "test": "gallery"}[val]}
    out = Collector(root, dataset, skip_bad)
    for n, anno in enumerate(annos):
        where = f"{ann_path}[{n}]"
        if not isinstance(anno, dict):
            out.bad(where, "annotation is not a JSON object")
            continue
        missing = [k for k in ("id", "split", "captions", path_key) if k not in anno]
        if missing:
            out.bad(where, f"annotation lacks field(s) {missing}")
            continue
        if anno["split"] not in split_of:
            out.bad(where, f"split {anno['split']!r} is not train/val/test")
            continue
        captions = anno["captions"]
        if not (isinstance(captions, list) and all(isinstance(c, str) for c in captions)):
            out.bad(where, "captions is not a list of strings")
            continue
        try:
            pid = int(anno["id"])
        except (TypeError, ValueError):
            out.bad(where, f"id {anno['id']!r} is not an integer")
            continue
        split = split_of[anno["split"]]
        if split is None:
            continue  # held out by the val option (documented)
        out.add(imgs / anno[path_key], pid, -1, split, check_exists=check_files,
                captions=list(captions))
    return out.result()


def read_cuhk_pedes(root, *, val: str = "exclude", skip_bad: bool = False,
                    check_files: bool = True, dataset: str = "cuhk_pedes"):
    """CUHK-PEDES at ``root``: ``imgs/`` (CUHK01/, CUHK03/, Market/, test_query/, train_query/)
    and ``reid_raw.json`` (image path key ``file_path``). pid is the JSON ``id`` as written
    (IRRA subtracts 1 for training only; we keep one numbering). ``val``: "exclude" (default:
    val images are not returned), "train" (join training) or "test" (val replaces test as the
    evaluation gallery, for model selection). ``check_files``: verify each image exists."""
    return _read_pedes(root, "reid_raw.json", "file_path", dataset, val=val, skip_bad=skip_bad,
                       check_files=check_files)


def read_icfg_pedes(root, *, val: str = "exclude", skip_bad: bool = False,
                    check_files: bool = True, dataset: str = "icfg_pedes"):
    """ICFG-PEDES at ``root``: ``imgs/`` (train/, test/ of MSMT17-named images) and
    ``ICFG-PEDES.json`` (path key ``file_path``; splits train and test only). Options as
    ``read_cuhk_pedes``."""
    return _read_pedes(root, "ICFG-PEDES.json", "file_path", dataset, val=val,
                       skip_bad=skip_bad, check_files=check_files)


def read_rstpreid(root, *, val: str = "exclude", skip_bad: bool = False,
                  check_files: bool = True, dataset: str = "rstpreid"):
    """RSTPReid at ``root``: ``imgs/`` ("{pid:04d}_c{cam}_{n:04d}.jpg") and
    ``data_captions.json`` (path key ``img_path``; splits train, val, test; two captions per
    image). Options as ``read_cuhk_pedes``."""
    return _read_pedes(root, "data_captions.json", "img_path", dataset, val=val,
                       skip_bad=skip_bad, check_files=check_files)
