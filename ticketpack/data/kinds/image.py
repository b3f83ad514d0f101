"""Images: pixel arrays in, ``(x - mean) / std`` per channel out, shaped (N, C, H, W) float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from ticketpack.core.errors import TicketpackError
from ticketpack.data.arrays import labelled_arrays, load_npy, load_npz
from ticketpack.data.files import csv_rows, jsonl_rows, label_text
from ticketpack.data.images import centre_crop, decode, is_image_file, resize_bilinear
from ticketpack.data.kinds.base import InputKind, OutOfRange, RawGraph

_JSON_KEYS = ("image", "input", "pixels")
RANGE_SLACK = 0.1  # predict and serve warn about pixels beyond the expected range by more than this share of its width


class ImagePreprocessing(InputKind):
    """Images arrive as raw pixel intensities, as arrays (N, H, W), (N, H, W, C), (N, C, H, W) or flat (N, C*H*W),
    or as image files; each is resized (``resize``, bilinear) and centre-cropped to ``height`` × ``width`` when it
    has another size, then normalized per channel, ``(x - mean) / std``; the model sees (N, C, H, W) float32."""

    kind: Literal["image"] = "image"
    channels: int = Field(1, ge=1, description="Channels of one image.")
    height: int = Field(8, ge=1, description="Image height the model sees, in pixels.")
    width: int = Field(8, ge=1, description="Image width the model sees, in pixels.")
    pixel_min: float = Field(0.0, description="Smallest raw intensity (digits: 0; 8-bit images: 0).")
    pixel_max: float = Field(16.0, description="Largest raw intensity (digits: 16; 8-bit images: 255).")
    train_pixel_min: float | None = Field(
        None, description="Smallest raw pixel value in the training images the statistics were fitted on (up to "
        "2,048, drawn by the split seed). predict and serve warn about images with a pixel beyond the widest of "
        "this range and pixel_min..pixel_max by more than a tenth of its width. None: not recorded (a fixed "
        "preprocessing such as digits', or files written before it was recorded); pixel_min..pixel_max alone then.",
        json_schema_extra={"readOnly": True},
    )
    train_pixel_max: float | None = Field(None, description="Largest raw pixel value in those training images.",
                                          json_schema_extra={"readOnly": True})
    mean: float | list[float] = Field(0.0, description="Subtracted from raw intensities (one value, or one per channel).")
    std: float | list[float] = Field(
        16.0, description="Raw intensities are divided by this after the mean is subtracted (one value, or per channel)."
    )
    resize: list[int] | None = Field(
        None, min_length=2, max_length=2,
        description="[height, width] that an image of another size is resized to (bilinear, ticketpack's own numpy "
        "code in training and serving) before the centre crop to height x width; unset: every image must already "
        "be height x width.",
    )

    default_model: ClassVar[str] = "lenet-300-100"
    noun: ClassVar[str] = "images"
    file_types: ClassVar[tuple[str, ...]] = (".npy", ".npz", ".jsonl", ".csv", ".png", ".jpg", "/")

    @field_validator("std")
    @classmethod
    def _positive(cls, v: float | list[float]) -> float | list[float]:
        if any(s <= 0 for s in np.atleast_1d(np.asarray(v, dtype=np.float64))):
            raise ValueError("std must be above 0")
        return v

    @field_validator("mean", "std")
    @classmethod
    def _one_or_per_channel(cls, v: float | list[float], info) -> float | list[float]:
        channels = info.data.get("channels", 1)
        if isinstance(v, list) and len(v) not in (1, channels):
            raise ValueError(f"give one value or one per channel ({channels})")
        return v

    @field_validator("train_pixel_min", "train_pixel_max", "pixel_min", "pixel_max")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not np.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @classmethod
    def fit(cls, sample: Any, options: dict[str, Any], where: str) -> "ImagePreprocessing":
        """Size, channels and pixel range from the training sample (unless given), the range of raw values seen in it,
        then each channel's mean and standard deviation of the images as the model will see them."""
        images = list(sample) if not isinstance(sample, np.ndarray) else sample
        shapes = {np.shape(im) for im in images}
        first = np.asarray(images[0])
        opts = dict(options)
        if "channels" not in opts:
            opts["channels"] = 1 if first.ndim == 2 else int(first.shape[-1])
        if opts.get("resize") is None and len({s[:2] for s in shapes}) > 1:
            a, b = sorted({s[:2] for s in shapes})[:2]
            raise TicketpackError(f"{where}: images of different sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]}); set the "
                                  "preprocessing's resize (e.g. {\"resize\": [64, 64]}) to bring them to one size")
        if "height" not in opts or "width" not in opts:
            h, w = opts["resize"] if opts.get("resize") is not None else first.shape[:2]
            opts.setdefault("height", int(h))
            opts.setdefault("width", int(w))
        values = np.asarray(images if isinstance(images, np.ndarray) else images[:1])
        seen = (float(min(np.min(im) for im in images)), float(max(np.max(im) for im in images)))
        if "pixel_min" not in opts or "pixel_max" not in opts:
            lo, hi = (0.0, 255.0) if values.dtype == np.uint8 else seen
            opts.setdefault("pixel_min", lo)
            opts.setdefault("pixel_max", hi)
        if np.isfinite(seen).all():  # a non-finite pixel is refused with its own message below
            opts.setdefault("train_pixel_min", seen[0])
            opts.setdefault("train_pixel_max", seen[1])
        if "mean" not in opts or "std" not in opts:
            plain = cls.from_options({**opts, "mean": 0.0, "std": 1.0}, where)
            x = plain.transform(images)  # (N, C, H, W) raw intensities at the model's size
            std = x.std(axis=(0, 2, 3), dtype=np.float64)
            opts.setdefault("mean", np.round(x.mean(axis=(0, 2, 3), dtype=np.float64), 6).tolist())
            opts.setdefault("std", np.where(std > 1e-12, np.round(std, 6), 1.0).tolist())
        return cls.from_options(opts, where)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.height, self.width)

    def _stats(self) -> tuple[np.ndarray, np.ndarray]:
        shape = (-1, 1, 1)
        return (np.asarray(self.mean, dtype=np.float32).reshape(shape),
                np.asarray(self.std, dtype=np.float32).reshape(shape))

    # ------------------------------------------------------------------ raw pixels → (N, H, W, C) at the model's size
    def _one(self, img: np.ndarray) -> np.ndarray:
        """One image, (H, W), (H, W, C) or (C, H, W) at any size → (height, width, channels) float64."""
        c = self.channels
        if img.ndim == 2 and c == 1:
            img = img[:, :, None]
        elif img.ndim == 3 and img.shape[-1] != c and img.shape[0] == c:
            img = np.moveaxis(img, 0, -1)
        if img.ndim != 3 or img.shape[-1] != c:
            raise TicketpackError(f"an image must have shape (H, W{', C' if c > 1 else ''}) with {c} channel(s); "
                                  f"got {tuple(img.shape)}")
        size = (self.height, self.width)
        if img.shape[:2] != size:
            if self.resize is None:
                raise TicketpackError(
                    f"an image of {img.shape[0]}x{img.shape[1]} pixels, but this model takes {size[0]}x{size[1]}; "
                    "set the preprocessing's resize to accept other sizes"
                )
            img = centre_crop(resize_bilinear(img, *self.resize), *size)
        return img.astype(np.float64, copy=False)

    def _batch(self, raw: Any) -> np.ndarray:
        """A raw batch → (N, H, W, C) float64 at the model's size."""
        if isinstance(raw, (list, tuple)) and raw and all(isinstance(r, np.ndarray) for r in raw):
            return np.stack([self._one(self._numbers(r)) for r in raw])  # decoded files: each at its own size
        x = self._numbers(raw)
        c, h, w = self.input_shape
        if x.shape == (c, h, w) or x.shape == (h, w, c) or (c == 1 and x.shape == (h, w)):
            x = x[None]
        if x.ndim == 2 and x.shape[1] == c * h * w:
            return np.moveaxis(x.reshape(-1, c, h, w), 1, -1)
        if x.ndim == 4 and x.shape[1:] == (c, h, w):
            return np.moveaxis(x, 1, -1)
        if x.ndim == 4 and x.shape[1:] == (h, w, c) or x.ndim == 3 and c == 1 and x.shape[1:] == (h, w):
            return x.reshape(-1, h, w, c)
        if x.ndim in (3, 4) and len(x) and self.resize is not None:
            return np.stack([self._one(img) for img in x])
        raise TicketpackError(
            f"image inputs must have shape (N, {h}, {w}{f', {c}' if c > 1 else ''}), (N, {c}, {h}, {w}) or "
            f"(N, {c * h * w}); got {tuple(x.shape)}"
        )

    @staticmethod
    def _numbers(x: Any) -> np.ndarray:
        try:
            return np.asarray(x, dtype=np.float64)  # checked in float64: a cast of 1e308 to float32 would warn
        except (TypeError, ValueError, OverflowError):
            raise TicketpackError("image inputs must be numbers (nested lists or an array)") from None

    def transform(self, raw: Any) -> np.ndarray:
        """Raw images → normalized float32 (N, C, H, W)."""
        return self._normalize(self._finite_batch(raw))

    def transform_checked(self, raw: Any) -> tuple[np.ndarray, OutOfRange | None]:
        """:meth:`transform`, and the images with a pixel beyond :attr:`input_range` by more than a tenth of its width
        (:data:`RANGE_SLACK`: a test image a little brighter than every training image is no cause for alarm)."""
        x = self._finite_batch(raw)
        return self._normalize(x), self._beyond(x)

    def _beyond(self, x: np.ndarray) -> OutOfRange | None:
        """The images of a batch (N, H, W, C) with a pixel beyond :attr:`input_range` by more than its slack."""
        if not x.size:
            return None
        low, high = self.input_range
        slack = RANGE_SLACK * (high - low)
        flat = x.reshape(len(x), -1)
        lo, hi = flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)
        rows = np.flatnonzero((lo < low - slack) | (hi > high + slack))
        return None if not len(rows) else OutOfRange(
            "pixel values", tuple(int(r) for r in rows), float(lo.min()), float(hi.max()), low, high, len(x))

    @property
    def input_range(self) -> tuple[float, float]:
        """The raw pixel values inputs are expected within: pixel_min..pixel_max, widened to the training range."""
        lows = [v for v in (self.pixel_min, self.train_pixel_min) if v is not None]
        highs = [v for v in (self.pixel_max, self.train_pixel_max) if v is not None]
        return min(lows), max(highs)

    def _finite_batch(self, raw: Any) -> np.ndarray:
        x = self._batch(raw)
        if not np.isfinite(x).all():
            bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
            raise TicketpackError(f"image input {int(bad[0])} holds NaN or infinite values "
                                  f"({len(bad)} of {len(x)} images do): give finite pixel values")
        return x

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        mean, std = self._stats()
        limit = float(np.finfo(np.float32).max)
        if x.size:
            big = np.abs(x).max()
            if max(big, np.abs((big + np.abs(mean).max()) / std.min())) > limit:
                raise TicketpackError(f"image inputs hold values too large for float32 (largest {big:.3g})")
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1)).astype(np.float32)
        return (x - mean) / std

    # ------------------------------------------------------------------ the same preprocessing as ONNX nodes
    @property
    def raw_dtype(self) -> str:
        """What a self-contained file takes: ``uint8`` pixels (N, H, W, C) when the raw range is 8-bit
        (``pixel_min`` ≥ 0, 1 < ``pixel_max`` ≤ 255) and no ``resize`` is set; else ``float32`` pixels at the model's
        size. ``resize`` is ticketpack's own numpy bilinear, which ONNX ``Resize`` does not reproduce bit for bit, so
        such files take images already resized and cropped to height x width (``raw_array`` does it in Python)."""
        eight_bit = self.pixel_min >= 0 and 1 < self.pixel_max <= 255
        return "uint8" if eight_bit and self.resize is None else "float32"

    def raw_graph(self, output: str = "input") -> RawGraph:
        """Cast to float32, (N, H, W, C) → (N, C, H, W), ``(x - mean) / std`` in float32: what :meth:`transform`
        computes, bit for bit, on the pixels :meth:`raw_array` gives."""
        from onnx import TensorProto, helper, numpy_helper

        c, h, w = self.input_shape
        elem = TensorProto.UINT8 if self.raw_dtype == "uint8" else TensorProto.FLOAT
        mean, std = self._stats()
        raw = helper.make_tensor_value_info("raw", elem, ["batch", h, w, c])
        nodes = [
            helper.make_node("Cast", ["raw"], ["raw/float"], name="raw/cast", to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["raw/float"], ["raw/nchw"], name="raw/nchw", perm=[0, 3, 1, 2]),
            helper.make_node("Sub", ["raw/nchw", "raw/mean"], ["raw/centred"], name="raw/sub"),
            helper.make_node("Div", ["raw/centred", "raw/std"], [output], name="raw/div"),
        ]
        inits = [numpy_helper.from_array(mean.reshape(1, -1, 1, 1), "raw/mean"),
                 numpy_helper.from_array(std.reshape(1, -1, 1, 1), "raw/std")]
        return RawGraph(input=raw, nodes=nodes, initializers=inits, output=output, opsets={"": 13})

    def raw_array(self, raw: Any) -> np.ndarray:
        """Raw images (any layout :meth:`transform` takes; resized and cropped when ``resize`` is set) → (N, H, W, C)
        ``raw_dtype``; uint8 pixels must be whole numbers from 0 to 255."""
        x = self._finite_batch(raw)
        if self.raw_dtype == "float32":
            return x.astype(np.float32)
        if x.size and (x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x))):
            bad = int(np.flatnonzero(((x < 0) | (x > 255) | (x != np.round(x))).reshape(len(x), -1).any(axis=1))[0])
            raise TicketpackError(f"image input {bad} holds pixel values that are not whole numbers from 0 to 255: "
                                  "this self-contained model takes 8-bit (uint8) images")
        return x.astype(np.uint8)

    def raw_array_checked(self, raw: Any) -> tuple[np.ndarray, OutOfRange | None]:
        """:meth:`raw_array`, and the images beyond the training range (as :meth:`transform_checked` reports them)."""
        x = self.raw_array(raw)
        return x, self._beyond(x)

    # ------------------------------------------------------------------ users' files and requests
    def read_inputs(self, path: Path, labelled: bool = False) -> tuple[Any, list[str] | None]:
        path = Path(path)
        if path.is_dir():
            return self._read_folder(path, labelled)
        suffix = path.suffix.lower()
        if is_image_file(path) and not labelled:
            return [decode(path, self.channels)], None
        if suffix == ".npy" and not labelled:
            return load_npy(path), None
        if suffix == ".npz":
            return _read_npz(path, labelled)
        if suffix == ".jsonl":
            return self._read_jsonl(path, labelled)
        if suffix == ".csv":
            return _read_pixel_csv(path, labelled)
        usable = ".npz, .jsonl, .csv or a folder of class folders (with a 'label' field)" if labelled else \
            ".npy, .npz, .jsonl, .csv, an image file or a folder of images"
        raise TicketpackError(f"{path}: an image model {'is evaluated on' if labelled else 'reads'} {usable}")

    def _read_folder(self, path: Path, labelled: bool) -> tuple[list[np.ndarray], list[str] | None]:
        if labelled:
            classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            files = [(f, c.name) for c in classes for f in sorted(c.iterdir()) if is_image_file(f)]
        else:
            files = [(f, None) for f in sorted(path.iterdir()) if is_image_file(f)]
        if not files:
            raise TicketpackError(f"{path} holds no image files" + (" in class folders" if labelled else ""))
        images = [decode(f, self.channels) for f, _ in files]
        return images, ([c for _, c in files] if labelled else None)

    def _read_jsonl(self, path: Path, labelled: bool) -> tuple[np.ndarray, list[str] | None]:
        inputs, labels = [], []
        for lineno, obj in jsonl_rows(path):
            where = f"{path}:{lineno}"
            key = next((k for k in _JSON_KEYS if isinstance(obj, dict) and k in obj), None)
            if key is not None:
                inputs.append(obj[key])
            elif isinstance(obj, list) and not labelled:
                inputs.append(obj)
            else:
                raise TicketpackError(f"{where}: expected an object with 'image' (nested lists of pixel values)"
                                      + (" and 'label'" if labelled else " or a bare array"))
            if labelled:
                if not isinstance(obj, dict) or "label" not in obj:
                    raise TicketpackError(f"{where}: no 'label' field")
                labels.append(label_text(obj["label"], where))
        return _rectangular(inputs, path), (labels if labelled else None)

    def from_request(self, inputs: list) -> np.ndarray:
        return self._numbers(inputs)

    def request_bytes(self, max_text_chars: int) -> int:
        h, w = self.resize if self.resize is not None else (self.height, self.width)
        return 64 * max(h * w, self.height * self.width) * self.channels + 16

    def smoke_inputs(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        x = rng.uniform(self.pixel_min, self.pixel_max, size=(2, self.height, self.width, self.channels))
        return np.round(x) if self.raw_dtype == "uint8" else x  # whole pixel values: what 8-bit images hold


def _read_npz(path: Path, labelled: bool) -> tuple[np.ndarray, list[str] | None]:
    arrays = load_npz(path)
    if not labelled:
        if "x" not in arrays:
            raise TicketpackError(f"{path} has no array 'x' (it has: {', '.join(sorted(arrays)) or 'none'})")
        return arrays["x"], None
    x, y = labelled_arrays(arrays, "x", "y", path)
    return x, [label_text(v, str(path)) for v in y.tolist()]


def _read_pixel_csv(path: Path, labelled: bool) -> tuple[np.ndarray, list[str] | None]:
    fields, records = csv_rows(path)
    if labelled and "label" not in fields:
        raise TicketpackError(f"{path}: CSV needs a 'label' column")
    pixel_cols = [f for f in fields if f != "label"]
    inputs, labels = [], []
    for lineno, rec in records:
        where = f"{path}:{lineno}"
        try:
            inputs.append([float(rec[c]) for c in pixel_cols])
        except (TypeError, ValueError):
            raise TicketpackError(f"{where}: pixel columns must be numbers") from None
        if labelled:
            labels.append(label_text((rec.get("label") or "").strip(), where))
    return _rectangular(inputs, path), (labels if labelled else None)


def _rectangular(inputs: list, path: Path) -> np.ndarray:
    if not inputs:
        raise TicketpackError(f"{path} has no rows")
    try:
        return np.asarray(inputs, dtype=np.float64)  # float32 happens in preprocessing, after range checks
    except (TypeError, ValueError):
        raise TicketpackError(f"{path}: image rows must all have the same shape and hold numbers") from None
