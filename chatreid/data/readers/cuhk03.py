"""CUHK03 under the new protocol (Zhong et al., CVPR 2017), labeled and detected boxes."""

from __future__ import annotations

from chatreid.data.readers._common import require_dir
from chatreid.data.readers.market1501 import FOLDERS, read_market1501


def read_cuhk03(root, *, version: str = "labeled", skip_bad: bool = False,
                dataset: str = "cuhk03"):
    """CUHK03-NP at ``root``: the widely distributed Market-style copy of the new protocol,
    ``labeled/`` or ``detected/`` (``version``), each with ``bounding_box_train/`` (767 ids),
    ``query/`` and ``bounding_box_test/`` (700 ids). File names ``{pid:04d}_c{cam}_{n}.png``;
    cameras 1..2 as written, pids as written, no junk or distractor ids.

    Not supported: the original ``cuhk-03.mat`` + ``cuhk03_new_protocol_config_*.mat`` release
    (torchreid's ``CUHK03`` preprocessing route). Convert it to CUHK03-NP first (the new-protocol
    authors publish that conversion); a root holding only ``cuhk-03.mat`` gets an error saying so.
    """
    if version not in ("labeled", "detected"):
        raise ValueError(f"option version={version!r}: expected 'labeled' or 'detected'")
    base = require_dir(root, "CUHK03-NP dataset root")
    if not (base / version).is_dir() and (base / "cuhk-03.mat").is_file():
        raise FileNotFoundError(
            f"{base / version}: missing; {base} holds the original cuhk-03.mat release, which is "
            "not supported: use the CUHK03-NP layout (labeled|detected/bounding_box_train, "
            "query, bounding_box_test)")
    folder = require_dir(base / version, f"CUHK03-NP {version}/ folder")
    records = read_market1501(folder, keep_junk=False, keep_distractors=False, attributes=False,
                              skip_bad=skip_bad, dataset=dataset, _folders=FOLDERS,
                              _max_pid=1467, _max_cam=2)
    # Paths stay relative to the CUHK03-NP root, so labeled and detected images get distinct ids.
    records.root = str(base.absolute())
    return records
