"""RegDB, visible-thermal Re-ID (Nguyen et al., Sensors 2017), read as AGW/DDAG read it."""

from __future__ import annotations

import re

from chatreid.data.readers._common import Collector, check_choice, read_lines, require_dir

# List lines: "Visible/{person}/{gender}_{view}_v_{n}_{person}.bmp {label}" (Thermal: "_t_").
NAME = re.compile(r"^(Visible|Thermal)/(\d+)/\w+?_([vt])_\d+_(\d+)\.bmp$")
CAMID = {"visible": 1, "infrared": 2}


def read_regdb(root, *, trial: int = 1, direction: str = "visible_to_thermal",
               skip_bad: bool = False, dataset: str = "regdb"):
    """RegDB at ``root`` (``Visible/``, ``Thermal/``, ``idx/``), split by ``trial`` (1..10).

    Trial ``t`` is defined by ``idx/train_visible_{t}.txt``, ``train_thermal_{t}.txt``,
    ``test_visible_{t}.txt``, ``test_thermal_{t}.txt`` (206 training and 206 test identities
    each). Thermal images get modality "infrared" and camid 2, visible ones camid 1 (the reference
    code's cameras). pid is the person folder number (1..412), the same in every trial; the list
    files' per-trial labels are a relabelling of it. ``direction``: "visible_to_thermal" (query =
    visible test images, gallery = thermal) or "thermal_to_visible" (the reverse).
    """
    if not (isinstance(trial, int) and 1 <= trial <= 10):
        raise ValueError(f"option trial={trial!r}: expected 1..10")
    check_choice("direction", direction, ("visible_to_thermal", "thermal_to_visible"))
    root = require_dir(root, "RegDB dataset root")
    for folder in ("Visible", "Thermal"):
        require_dir(root / folder, f"RegDB {folder}/ folder")
    idx = require_dir(root / "idx", "RegDB idx/ folder")
    query_modality = "visible" if direction == "visible_to_thermal" else "thermal"
    out = Collector(root, dataset, skip_bad)
    for part in ("train", "test"):
        for modality in ("visible", "thermal"):
            split = "train" if part == "train" else (
                "query" if modality == query_modality else "gallery")
            list_path = idx / f"{part}_{modality}_{trial}.txt"
            labels: dict[int, int] = {}
            for n, line in enumerate(read_lines(list_path), 1):
                where = f"{list_path}:{n}"
                parts = line.split()
                m = NAME.match(parts[0]) if len(parts) == 2 else None
                if not m or not parts[1].isdigit():
                    out.bad(where, f"expected '{modality.capitalize()}/<person>/<name>.bmp "
                                   f"<label>', got {line!r}")
                    continue
                folder, person, letter, person_again = m.groups()
                if folder.lower() != modality or letter != modality[0] or person != person_again:
                    out.bad(where, f"{parts[0]!r} is not a {modality} image of one person")
                    continue
                pid = int(person)
                if labels.setdefault(pid, int(parts[1])) != int(parts[1]):
                    out.bad(where, f"person {pid} has two labels in this list")
                    continue
                kind = "visible" if modality == "visible" else "infrared"
                out.add(root / parts[0], pid, CAMID[kind], split, modality=kind,
                        check_exists=True)
    records = out.result()
    records.trial = trial  # the store, and what trains on it, record which split this is
    return records
