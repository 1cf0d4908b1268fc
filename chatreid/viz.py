"""Pictures of retrieval results: torchreid-style ranked lists and CMC curves.

``ranked_list_image``: the query on the left, then its top-k gallery images, each framed green
(same identity) or red (not), with the rank and score under it. ``plot_cmc``: CMC curves of one
or more runs (matplotlib, Agg backend: no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

GREEN, RED, GREY = (0, 170, 0), (220, 0, 0), (120, 120, 120)


def _fit(im: Image.Image, h: int, w: int) -> Image.Image:
    """Resize keeping the aspect ratio, centred on a white (h, w) tile."""
    im = im.convert("RGB")
    scale = min(w / im.width, h / im.height)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
    tile = Image.new("RGB", (w, h), "white")
    tile.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
    return tile


def ranked_list_image(query: Image.Image | str, gallery: Sequence[Image.Image], matches: Sequence[bool | None],
                      scores: Sequence[float] | None = None, size: tuple[int, int] = (128, 64),
                      border: int = 4, gap: int = 12, query_caption: str | None = None) -> Image.Image:
    """One row: the query (an image, or a text query drawn as text) then ``gallery`` (the top-k
    in rank order), each bordered green if ``matches[i]`` is True, red if False, grey if None."""
    if len(gallery) != len(matches):
        raise ValueError(f"{len(gallery)} gallery images but {len(matches)} match flags")
    if scores is not None and len(scores) != len(gallery):
        raise ValueError(f"{len(gallery)} gallery images but {len(scores)} scores")
    h, w = size
    label_h = 14
    cell_w = w + 2 * border
    width = cell_w * (len(gallery) + 1) + gap * (len(gallery) + 1)
    height = h + 2 * border + label_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if isinstance(query, str):
        # a text query: wrap its words into the query cell
        words, lines, line = query.split(), [], ""
        per_line = max(4, cell_w // 6)
        for word in words:
            if len(line) + len(word) + 1 > per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        draw.multiline_text((2, 2), "\n".join(lines[: h // 11]), fill=(0, 0, 0))
    else:
        canvas.paste(_fit(query, h, w), (border, border))
    draw.text((border, h + 2 * border), query_caption or "query", fill=(0, 0, 0))
    for i, (im, ok) in enumerate(zip(gallery, matches)):
        x = (i + 1) * (cell_w + gap)
        colour = GREY if ok is None else (GREEN if ok else RED)
        draw.rectangle([x, 0, x + cell_w - 1, h + 2 * border - 1], fill=colour)
        canvas.paste(_fit(im, h, w), (x + border, border))
        # a NaN score marks an image the VLM did not score (ranked by the pre-filter)
        label = f"{i + 1}" if scores is None else (f"{i + 1}: -" if scores[i] != scores[i] else f"{i + 1}: {scores[i]:.2f}")
        draw.text((x + border, h + 2 * border), label, fill=(0, 0, 0))
    return canvas


def plot_cmc(curves: dict[str, Sequence[float]], path: str | Path, title: str = "CMC") -> Path:
    """Save CMC curves ({label: [cmc@1, cmc@2, ...] in 0-1}) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_cmc: no curves")
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for label, cmc in curves.items():
        ranks = range(1, len(cmc) + 1)
        ax.plot(ranks, [100 * c for c in cmc], marker="o", markersize=3, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
