"""Serving exported classifiers: the torch-free predictor, and (with the `serve` extra) the HTTP server."""

from ticketpack.serve.predictor import Predictor, load

__all__ = ["Predictor", "load"]
