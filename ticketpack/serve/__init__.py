"""Serving exported classifiers over HTTP (with the `serve` extra). The torch-free predictor the server runs is
:mod:`ticketpack.runtime.predictor` (``ticketpack.load``)."""
