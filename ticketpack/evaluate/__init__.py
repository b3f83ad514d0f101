"""Measuring exported models on ONNX Runtime (torch-free): evaluate, predict, gates, reports.

Validation of one file (``validate_model``) lives in :mod:`ticketpack.runtime.validate`, below both this package
and ``serve``."""

from ticketpack.evaluate.evaluate import evaluate_model
from ticketpack.evaluate.predict import PredictionRow, Predictions, predict_rows
from ticketpack.evaluate.report import (
    EvaluationReport,
    GateResult,
    Gates,
    LatencyStats,
    ModelResult,
)

__all__ = [
    "EvaluationReport", "GateResult", "Gates", "LatencyStats", "ModelResult",
    "PredictionRow", "Predictions", "evaluate_model", "predict_rows",
]
