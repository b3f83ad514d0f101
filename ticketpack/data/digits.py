"""``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download), under covariate shifts.

Domains, each a deterministic transform of the same images (so one ``--seed`` gives the same split indices in
every domain, and a target-domain test image is never a transformed source-domain training image):

- ``clean``: the images as shipped (intensities 0–16).
- ``rot<deg>``: rotated by ``deg`` degrees about the centre (bilinear, zero fill), e.g. ``rot15`` … ``rot75``;
  any integer angle 1–359 works. In the spirit of DomainBed's RotatedMNIST.
- ``invert``: intensities flipped, ``16 - x`` (a dark digit on a light ground).
- ``blur``: Gaussian blur with σ = 1 pixel (a defocused scanner).
- ``noise``: additive Gaussian noise, σ = 3 intensity levels, clipped to 0–16, from a fixed generator so the
  domain is the same on every run (a noisy sensor).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.base import DomainData, SplitConfig
from ticketpack.data.domain import DomainSource, assemble
from ticketpack.data.kinds import ImagePreprocessing, InputKind
from ticketpack.data.rows import ArrayRows

LISTED_DOMAINS = ["clean", "rot15", "rot30", "rot45", "rot60", "rot75", "invert", "blur", "noise"]
_ROT = re.compile(r"^rot(\d{1,3})$")


def _rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    from scipy.ndimage import rotate

    return np.stack([rotate(img, degrees, reshape=False, order=1, mode="constant", cval=0.0) for img in images])


def apply_shift(images: np.ndarray, domain: str) -> np.ndarray:
    """Apply a domain's shift to raw (N, 8, 8) intensities in 0–16."""
    if domain == "clean":
        out = images
    elif (m := _ROT.match(domain)) and 0 < int(m.group(1)) < 360:
        out = _rotate(images, float(m.group(1)))
    elif domain == "invert":
        out = 16.0 - images
    elif domain == "blur":
        from scipy.ndimage import gaussian_filter

        out = np.stack([gaussian_filter(img, sigma=1.0) for img in images])
    elif domain == "noise":
        rng = np.random.default_rng(20190801)
        out = images + rng.normal(0.0, 3.0, size=images.shape)
    else:
        raise TicketpackError(
            f"unknown digits domain {domain!r}; known: {', '.join(LISTED_DOMAINS)} (or rot<deg>, 1-359)"
        )
    return np.clip(out, 0.0, 16.0).astype(np.float32)


class DigitsDataset:
    """scikit-learn's bundled digits under the shifts above; every domain has the same rows, labels and split."""

    name = "digits"
    kind = "image"  # known before reading: a search picks the image kind's default model

    def domains(self) -> list[str]:
        return list(LISTED_DOMAINS)

    def check_domain(self, domain: str) -> None:
        apply_shift(np.zeros((1, 8, 8), dtype=np.float32), domain)  # knows rot<deg> as well as the listed ones

    def load(self, domain: str, seed: int, split: SplitConfig, preprocessing: InputKind | None = None,
             label_names: list[str] | None = None, labels_of: str = "the label set",
             options: dict[str, Any] | None = None) -> DomainData:
        from sklearn.datasets import load_digits

        fixed = ImagePreprocessing()
        if options and ImagePreprocessing.from_options(options, f"digits/{domain}") != fixed:
            raise TicketpackError(f"digits has fixed preprocessing (8x8 intensities 0-16); options {sorted(options)} "
                                  "do not apply")
        bunch = load_digits()
        images = apply_shift(bunch.images.astype(np.float32), domain)
        source = DomainSource(
            where=f"digits/{domain}", kind=ImagePreprocessing, rows=ArrayRows(images[:, None]),  # raw: (N, 1, 8, 8)
            labels=bunch.target.astype(np.int64).tolist(), fixed=fixed, info={"rows": int(len(images))},
        )
        return assemble(source, self.name, domain, seed, split, preprocessing, label_names, labels_of)
