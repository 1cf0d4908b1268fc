"""Regenerate docs/img/synthpeds_sheet.png: OMP_NUM_THREADS=1 python docs/img/make_synthpeds_sheet.py

Row blocks: (1) Market layout, 3 identities x their images across cameras 1-6; (2) SYSU-MM01 layout,
2 identities: visible cameras, then infrared cameras 3 and 6; (3) LTCC layout, 2 identities in
their different outfits. Quantised to 128 colours to stay small.
"""

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from chatreid.data.synthpeds import generate, load_ground_truth

W, H, COLS = 64, 128, 10


def rows_for(layout, n_ids, pick, per_row, images_per_id=None):
    root = Path(tempfile.mkdtemp()) / layout
    generate(layout, root, n_ids, seed=0, images_per_id=images_per_id)
    truth = load_ground_truth(root)
    rows = []
    for pid in pick:
        shots = sorted((r for r in truth.values() if r["pid"] == pid),
                       key=lambda r: (r["modality"] != "visible", r["clothes_id"], r["camid"], r["path"]))
        rows.append([Image.open(root / r["path"]).convert("RGB").resize((W, H)) for r in shots[:per_row]])
    return rows


def main():
    blocks = [("Market layout: one identity per row, cameras 1-6", rows_for("market", 20, [2, 3, 4], COLS)),
              ("SYSU-MM01 layout: visible cameras, then infrared (cams 3, 6)", rows_for("sysu", 12, [2, 3], COLS, 10)),
              ("LTCC layout: one identity per row, its outfits left to right", rows_for("ltcc", 12, [1, 5], COLS))]
    label = 14
    height = sum(label + H * len(rows) for _, rows in blocks)
    sheet = Image.new("RGB", (W * COLS, height), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    y = 0
    for title, rows in blocks:
        d.text((4, y + 1), title, fill=(0, 0, 0))
        y += label
        for row in rows:
            for i, im in enumerate(row):
                sheet.paste(im, (i * W, y))
            y += H
    out = Path(__file__).with_name("synthpeds_sheet.png")
    sheet.quantize(128).save(out, optimize=True)
    print(out, out.stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
