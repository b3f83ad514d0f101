"""Image files → pixel arrays (Pillow decodes; nothing else here needs it), and the numpy geometry that training and
serving share (a resize written here, not Pillow's, so a served model resizes exactly as it was trained)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ticketpack.core.errors import TicketpackError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of the train extra
        raise TicketpackError("reading image files needs Pillow: pip install pillow") from None
    return Image


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def header(path: Path) -> tuple[int, int, str]:
    """(height, width, Pillow mode) of an image file, checked to be whole where the format allows (PNG's chunk CRCs
    and end marker); a corrupt or truncated file is an error that names it."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            size, mode = img.size, img.mode
            img.verify()
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, struct.error, ...)
        raise TicketpackError(f"{path}: not a readable image ({_why(exc)})") from None
    return size[1], size[0], mode


def _headers(paths: list[str]) -> list[tuple[int, int, str]]:
    return [header(Path(p)) for p in paths]


def headers(paths: list[Path], processes: int | None = None) -> list[tuple[int, int, str]]:
    """:func:`header` of every file, in order; a large folder is read by a process per core (Pillow's checks hold the
    GIL, so threads would not help), in chunks of 2,000 files."""
    import os

    processes = processes or min(os.cpu_count() or 1, 8)
    if processes < 2 or len(paths) < 8_000:
        return [header(p) for p in paths]
    from concurrent.futures import ProcessPoolExecutor

    chunks = [[str(p) for p in paths[i : i + 2_000]] for i in range(0, len(paths), 2_000)]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        return [h for part in pool.map(_headers, chunks) for h in part]


def decode(path: Path | str, channels: int) -> np.ndarray:
    """The image as uint8 (H, W, channels): greyscale for 1 channel, RGB for 3, RGBA for 4."""
    Image = _pil()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise TicketpackError(f"image files decode to 1, 3 or 4 channels, not {channels}")
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert(mode) if img.mode != mode else img, dtype=np.uint8)
    except TicketpackError:
        raise
    except Exception as exc:
        raise TicketpackError(f"{path}: not a readable image ({_why(exc)})") from None
    return arr.reshape(arr.shape[0], arr.shape[1], channels)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def channels_of(mode: str) -> int:
    """Channels a Pillow mode decodes to here: 1 (greyscale), 4 (with alpha) or 3."""
    if mode in ("1", "L", "I", "I;16", "F", "P;L") or mode.startswith("I;"):
        return 1
    if mode in ("RGBA", "LA", "PA"):
        return 4 if mode == "RGBA" else 3
    return 3


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one (H, W, C) image with half-pixel centres (float64 out); no antialiasing."""
    h0, w0 = img.shape[:2]
    if (h0, w0) == (height, width):
        return img.astype(np.float64, copy=False)

    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = axis(height, h0)
    x0, x1, fx = axis(width, w0)
    a = img.astype(np.float64, copy=False)
    rows = a[y0] * (1 - fy)[:, None, None] + a[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def centre_crop(img: np.ndarray, height: int, width: int) -> np.ndarray:
    h0, w0 = img.shape[:2]
    if h0 < height or w0 < width:
        raise TicketpackError(f"an image of {h0}x{w0} is smaller than the {height}x{width} crop")
    top, left = (h0 - height) // 2, (w0 - width) // 2
    return img[top : top + height, left : left + width]
