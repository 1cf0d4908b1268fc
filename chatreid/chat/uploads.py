"""Safe uploads: images and zips read into a gallery, query photos and messages checked against
the limits (``chatreid.chat.settings.Limits``) before anything else runs.

Every image is reduced on arrival to what the model and the thumbnails need, a bomb or a damaged
file is refused with a line naming it, and a zip is read in memory (nothing is extracted).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from chatreid.chat.conversation import GalleryItem
from chatreid.chat.settings import Limits


class UploadError(ValueError):
    """An upload the app refuses; the message is shown in the chat as is."""



def reduced_size(w: int, h: int, keep: int) -> tuple[int, int]:
    """(w, h) scaled down, aspect kept, so that w*h <= ``keep`` (unchanged when it already is)."""
    if w * h <= keep:
        return w, h
    scale = (keep / (w * h)) ** 0.5
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    while tw * th > keep:  # rounding
        if tw >= th:
            tw -= 1
        else:
            th -= 1
    return tw, th


def image_bytes(image) -> int:
    """Memory of a decoded RGB image, as a session holds it."""
    w, h = image.size
    return w * h * len(image.getbands())


def open_image(source, name: str, limits: Limits) -> Image.Image:
    """Open an image file (path or bytes) as RGB, refusing non-images, corrupt files and bombs,
    and reduced on arrival to ``limits.keep_pixels`` (what the model and the thumbnails need).

    The pixel count is checked from the header before any pixel is decoded, so a small file that
    claims 100,000 x 100,000 pixels costs nothing. A JPEG is decoded at a reduced scale directly
    (``draft``); other formats are decoded once and reduced at once, so only the reduced image
    outlives this call.
    """
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > limits.upload_max_pixels:
                    raise UploadError(f"{name}: {w}x{h} pixels is more than the limit of "
                                      f"{limits.upload_max_pixels:,} pixels per image.")
                target = reduced_size(w, h, limits.keep_pixels)
                if target != (w, h):
                    im.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                im.load()
                rgb = im if im.mode == "RGB" else im.convert("RGB")
                if rgb.size != target:
                    rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
                elif rgb is im:
                    rgb = im.copy()  # detach from the file before it is closed
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{name}: the image is larger than the limit of "
                          f"{limits.upload_max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image file (expected JPEG, PNG, BMP, WebP, ...).") from None
    except FileNotFoundError:
        raise UploadError(f"{name}: the file is gone; upload it again.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UploadError(f"{name}: the image is damaged and cannot be read ({err}).") from None
    if min(rgb.size) < 1:
        raise UploadError(f"{name}: the image is empty.")
    return rgb


def readable(image, name: str, refusal=None):
    """``image``, unless the model's processor cannot read it: ``refusal(image)`` says why
    (``ReIDEngine.image_refusal``; None: every image is read). Asked on arrival, so one image the
    model cannot read (a 1 x 250 sliver) is refused by name instead of failing every search of
    the gallery that holds it."""
    why = refusal(image) if refusal is not None else None
    if why:
        w, h = image.size
        raise UploadError(f"{name}: the model cannot read a {w}x{h} image ({why}).")
    return image


def _display_name(path: str) -> str:
    return Path(path).name


def _member_name(filename: str) -> str:
    """A zip member's file name; a backslash separates folders too (archives made on Windows)."""
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


_MB = 1024 * 1024


def _read_capped(fh, cap: int, chunk: int = _MB) -> bytes | None:
    """Read a zip member, at most ``cap`` bytes; None when it holds more (whatever it declared)."""
    parts, n = [], 0
    while True:
        data = fh.read(min(chunk, cap + 1 - n))
        if not data:
            return b"".join(parts)
        parts.append(data)
        n += len(data)
        if n > cap:
            return None


class _ZipTooLarge(UploadError):
    """The whole archive is refused (not one member skipped)."""


def _not_photos(zname: str, members) -> tuple[list, list[str]]:
    """The members that can be photos, and a line for each kind skipped: hidden entries (a name
    starting with ".", such as .DS_Store) and macOS metadata (``__MACOSX/``), named, not dropped
    silently."""
    hidden = [m.filename for m in members if _member_name(m.filename).startswith(".")
              and "__MACOSX" not in m.filename]
    mac = [m.filename for m in members if "__MACOSX" in m.filename]
    lines = []
    for what, names in (("hidden entries (names starting with “.”)", hidden),
                        ("macOS metadata (__MACOSX)", mac)):
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            lines.append(f"{zname}: {what}: {', '.join(names[:5])}{more}, skipped")
    skipped = set(hidden) | set(mac)
    return [m for m in members if m.filename not in skipped], lines


def _zip_items(path: str, limits: Limits, problems: list[str],
               refusal=None) -> list[GalleryItem]:
    """The images of a zip, read in memory (nothing is extracted, so no path can escape).

    The limits are checked twice: from the sizes the archive declares, before anything is
    decompressed (a zip bomb is refused at once), and again while reading, since declared sizes
    can lie.
    """
    items: list[GalleryItem] = []
    budget = limits.max_zip_mb * _MB
    max_file = limits.max_file_mb * _MB
    zname = _display_name(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UploadError(f"{zname}: not a readable zip file ({err}).") from None
    with zf:
        members, skipped = _not_photos(zname, [m for m in zf.infolist() if not m.is_dir()])
        problems += skipped
        if len(members) > limits.max_gallery:
            raise UploadError(f"{zname} holds {len(members)} files; a gallery may "
                              f"have at most {limits.max_gallery} images.")
        too_big = [m for m in members if m.file_size > max_file]
        for m in too_big:
            problems.append(f"{zname}/{m.filename}: larger than {limits.max_file_mb} MB, skipped")
        members = [m for m in members if m.file_size <= max_file]
        declared = sum(m.file_size for m in members)
        if declared > budget:
            raise UploadError(f"{zname}: its files come to {declared / _MB:,.0f} MB once unpacked, "
                              f"more than the limit of {limits.max_zip_mb} MB; nothing was unpacked. "
                              "Upload fewer or smaller images.")
        read = 0
        for m in sorted(members, key=lambda m: m.filename):
            label = f"{zname}/{m.filename}"
            try:
                with zf.open(m) as fh:
                    data = _read_capped(fh, min(max_file, budget - read))
                if data is None:  # the archive declared less than it holds
                    if budget - read < max_file:
                        raise _ZipTooLarge(f"{zname}: more than {limits.max_zip_mb} MB once "
                                          "unpacked; upload fewer or smaller images.")
                    raise UploadError(f"{label}: larger than {limits.max_file_mb} MB")
                read += len(data)
                items.append(GalleryItem(_member_name(m.filename),
                                         readable(open_image(data, label, limits), label, refusal)))
            except _ZipTooLarge:
                raise
            except UploadError as err:
                problems.append(f"{err}".rstrip(".") + ", skipped")
            except (zipfile.BadZipFile, OSError, RuntimeError) as err:  # CRC error, encrypted
                problems.append(f"{label}: cannot be unpacked ({err}), skipped")
    return items


def load_gallery(paths, limits: Limits, refusal=None) -> tuple[list[GalleryItem], list[str]]:
    """Gallery items from uploaded files (images and/or zips), and the files skipped, with why.

    Bad files are skipped and named (one damaged photo, or one the model cannot read: see
    ``readable``, should not cost the other 49); an empty result or too many images is refused
    with ``UploadError``.
    """
    items: list[GalleryItem] = []
    problems: list[str] = []
    paths = list(paths or [])
    if len(paths) > limits.max_gallery:  # refused before a single file is opened
        raise UploadError(f"Too many files: {len(paths)}; a gallery may have at most "
                          f"{limits.max_gallery} images (set CHATREID_MAX_GALLERY to change it).")
    for p in paths:
        p = str(p)
        if zipfile.is_zipfile(p):
            items += _zip_items(p, limits, problems, refusal)
        else:
            try:
                name = _display_name(p)
                items.append(GalleryItem(name, readable(open_image(p, name, limits), name, refusal),
                                         path=p))
            except UploadError as err:
                problems.append(f"{err}".rstrip(".") + ", skipped")
        if len(items) > limits.max_gallery:
            raise UploadError(f"Too many images: a gallery may have at most {limits.max_gallery} "
                              "(set CHATREID_MAX_GALLERY to change it).")
    if not items:
        detail = (" " + "; ".join(problems) + ".") if problems else ""
        raise UploadError("No readable image was uploaded, so no gallery was made." + detail)
    return items, problems


def load_query_images(paths, limits: Limits, refusal=None) -> tuple[list[Image.Image], list[str]]:
    """The photos attached to a chat message; any bad one refuses the message (the query would be
    ambiguous without it)."""
    paths = [str(p) for p in paths or []]
    if len(paths) > limits.max_query_images:
        raise UploadError(f"{len(paths)} photos attached; a query may have at most "
                          f"{limits.max_query_images}.")
    images, names = [], []
    for p in paths:
        if zipfile.is_zipfile(p):
            raise UploadError(f"{_display_name(p)}: a zip goes in the gallery box, not the message.")
        images.append(readable(open_image(p, _display_name(p), limits), _display_name(p), refusal))
        names.append(_display_name(p))
    return images, names


def check_message(text: str, limits: Limits, count_tokens=None) -> None:
    """Refuse a message over the length limits, before anything else runs (``UploadError``).

    Characters are checked first (free); tokens only for a message under the character limit,
    so the tokenizer never sees more than ``max_message_chars`` characters.
    """
    n = len(text or "")
    if n > limits.max_message_chars:
        raise UploadError(f"Your message is {n:,} characters long; the limit is "
                          f"{limits.max_message_chars:,} (CHATREID_MAX_MESSAGE_CHARS). It was not "
                          "used: a sentence or two describes a person well.")
    tokens = count_tokens(text) if count_tokens is not None and n else None  # None: no tokenizer
    if tokens is not None:
        if tokens > limits.max_message_tokens:
            raise UploadError(f"Your message is {tokens:,} tokens long; the limit is "
                              f"{limits.max_message_tokens:,} (CHATREID_MAX_MESSAGE_TOKENS). It was "
                              "not used; please shorten it.")

