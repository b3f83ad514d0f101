"""Training loops that respect masks."""

from ticketpack.training.config import TrainConfig
from ticketpack.training.train import TrainResult, accuracy, train

__all__ = ["TrainConfig", "TrainResult", "accuracy", "train"]
