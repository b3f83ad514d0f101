"""Checking and measuring exported models on ONNX Runtime (torch-free): validate, evaluate, gates, reports."""

from ticketpack.evaluate.evaluate import evaluate_model
from ticketpack.evaluate.report import (
    Check,
    EvaluationReport,
    Gates,
    GateResult,
    LatencyStats,
    ModelResult,
    ValidationReport,
)
from ticketpack.evaluate.predict import PredictionRow, Predictions, predict_rows
from ticketpack.evaluate.validate import validate_model

__all__ = [
    "Check", "EvaluationReport", "GateResult", "Gates", "LatencyStats", "ModelResult", "ValidationReport",
    "PredictionRow", "Predictions", "evaluate_model", "predict_rows", "validate_model",
]
