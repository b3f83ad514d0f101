"""How raw inputs become model inputs: a pydantic spec per input kind, plus the code that applies it.

This module needs only numpy and the standard library, so exported models can be served without torch:
the same spec travels inside the ONNX model card and is applied here, byte for byte as in training.
"""

from __future__ import annotations

import re
import zlib
from functools import cached_property
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.errors import TicketpackError


class ImagePreprocessing(BaseModel):
    """Images arrive as raw pixel intensities; the model sees ``(x - mean) / std`` shaped (N, C, H, W)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["image"] = "image"
    channels: int = Field(1, ge=1, description="Channels of one image.")
    height: int = Field(8, ge=1, description="Image height in pixels.")
    width: int = Field(8, ge=1, description="Image width in pixels.")
    pixel_min: float = Field(0.0, description="Smallest raw intensity (digits: 0).")
    pixel_max: float = Field(16.0, description="Largest raw intensity (digits: 16).")
    mean: float = Field(0.0, description="Subtracted from raw intensities.")
    std: float = Field(16.0, gt=0, description="Raw intensities are divided by this after the mean is subtracted.")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.height, self.width)

    @property
    def input_dtype(self) -> str:
        return "float32"

    def transform(self, raw: np.ndarray | list) -> np.ndarray:
        """Raw images (N, C, H, W), (N, H, W) or flat (N, C*H*W) → normalized float32 (N, C, H, W)."""
        try:
            x64 = np.asarray(raw, dtype=np.float64)  # checked in float64: a cast of 1e308 to float32 would warn
        except (TypeError, ValueError, OverflowError):
            raise TicketpackError("image inputs must be numbers (nested lists or an array)") from None
        want = self.input_shape
        n_pix = int(np.prod(want))
        x = x64
        del x64
        if x.ndim == len(want) and x.shape == want:
            x = x[None]
        if x.ndim == 2 and x.shape[1] == n_pix:
            x = x.reshape((-1, *want))
        elif x.ndim == 3 and self.channels == 1 and x.shape[1:] == want[1:]:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1:] != want:
            raise TicketpackError(
                f"image inputs must have shape (N, {', '.join(map(str, want))}), (N, {want[1]}, {want[2]})"
                f" or (N, {n_pix}); got {tuple(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise TicketpackError("image inputs contain NaN or infinite values")
        limit = float(np.finfo(np.float32).max)
        if x.size and max(np.abs(x).max(), np.abs(x - self.mean).max(), np.abs((x - self.mean) / self.std).max()) > limit:
            raise TicketpackError(f"image inputs hold values too large for float32 (largest {np.abs(x).max():.3g})")
        x = x.astype(np.float32)
        return (x - self.mean) / self.std


class TextPreprocessing(BaseModel):
    """Text → token ids by a regex tokenizer and feature hashing (no vocabulary: domain-independent).

    Words are regex matches; word n-grams up to ``ngrams`` (words joined by a space) follow the words. Token ``t``
    maps to ``1 + crc32(utf8(t)) % (num_buckets - 1)``; id 0 is padding. A document keeps its first ``max_tokens``
    ids and is right-padded with 0, so the model sees int64 (N, max_tokens). Nothing is cut silently: the
    default ``max_tokens`` holds every review in the shared data, and loading a dataset counts and reports any
    document cut (see :meth:`transform_counting` and ``ticketpack.data.text``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["text"] = "text"
    tokenizer: Literal["regex"] = Field("regex", description="Tokenizer rule: tokens are regex matches.")
    token_pattern: str = Field(r"[a-z0-9]+(?:'[a-z]+)?", description="Python regex whose matches are tokens.")
    lowercase: bool = Field(True, description="Lower-case text before tokenizing.")
    ngrams: int = Field(
        3, ge=1, le=3,
        description="Also hash word n-grams up to this n (joined by a space). 3 by default: on the review data the "
        "default text model then matches TF-IDF + logistic regression (bench/text_quality.py); with 2 it does not.",
    )
    max_tokens: int = Field(
        8192, ge=1, le=100_000,
        description="Ids kept per document, n-grams included (truncate, then pad with 0); loading data reports how "
        "many documents were cut.",
    )
    features: Literal["hashing"] = Field("hashing", description="How tokens become ids.")
    hash: Literal["crc32"] = Field("crc32", description="Hash function for feature hashing.")
    num_buckets: int = Field(2**20, ge=2, le=2**24, description="Id space size, padding id 0 included.")
    pad_id: Literal[0] = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.max_tokens,)

    @property
    def input_dtype(self) -> str:
        return "int64"

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.token_pattern)

    def tokens(self, text: str) -> list[str]:
        """Words, then their n-grams for n = 2..``ngrams`` (uncut)."""
        if self.lowercase:
            text = text.lower()
        words = self._regex.findall(text)
        out = list(words)
        for n in range(2, self.ngrams + 1):
            out.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        return out

    def token_ids(self, tokens: list[str]) -> np.ndarray:
        """int64 ids of ``tokens``: 1 + crc32(utf-8) mod (num_buckets - 1), so that 0 stays the padding id."""
        crc32 = zlib.crc32
        crcs = np.fromiter((crc32(t.encode("utf-8")) for t in tokens), dtype=np.int64, count=len(tokens))
        return 1 + crcs % (self.num_buckets - 1)

    def token_id(self, token: str) -> int:
        return int(self.token_ids([token])[0])

    def transform_counting(self, raw: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
        """A batch of strings → (int64 ids (N, max_tokens), int64 number of ids of each document before the cut).

        A document was cut where its count exceeds ``max_tokens``."""
        if isinstance(raw, str):
            raise TicketpackError("text inputs must be a list of strings, not one string")
        texts = list(raw)
        out = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TicketpackError(f"text input {i} is {type(text).__name__}, expected a string")
            tokens = self.tokens(text)
            lengths[i] = len(tokens)
            kept = tokens[: self.max_tokens]
            out[i, : len(kept)] = self.token_ids(kept)
        return out, lengths

    def transform(self, raw: np.ndarray | list) -> np.ndarray:
        """A batch of strings → int64 ids (N, max_tokens)."""
        return self.transform_counting(raw)[0]


Preprocessing = Annotated[Union[ImagePreprocessing, TextPreprocessing], Field(discriminator="kind")]
