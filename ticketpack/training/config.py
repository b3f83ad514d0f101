"""Training hyper-parameters, with the help text that the CLI and the JSON Schema show."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    optimizer: Literal["sgd", "adam", "adamw"] = Field("adam", description="Optimizer (SGD uses `momentum`).")
    lr: float = Field(1.2e-3, gt=0, description="Learning rate (1.2e-3 with Adam is the LTH setting for LeNet).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (decoupled for AdamW).")
    batch_size: int = Field(64, ge=1, description="Examples per optimizer step.")
    epochs: int = Field(20, ge=1, description="Passes over the training split (ignored when `iterations` is set).")
    iterations: int | None = Field(None, ge=1, description="Train for exactly this many steps instead of epochs.")
    patience: int | None = Field(
        None, ge=1, description="Early stopping: stop after this many evaluations (one per epoch) without a better "
        "validation accuracy; the best weights are kept either way (default: train all steps).",
    )
    schedule: Literal["constant", "step", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the run: constant, step (x gamma every step_every steps) or "
        "cosine (to 0), after warmup_steps of linear warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Steps of linear learning-rate warm-up.")
    step_every: int | None = Field(None, ge=1, description="step schedule: steps between decays (default: a third of the run).")
    gamma: float = Field(0.1, gt=0, le=1, description="step schedule: the factor of each decay.")
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Where to train: auto (a CUDA GPU when one is visible, else the CPU), cpu, cuda or cuda:N.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: forward passes in bfloat16 autocast where the device supports it natively "
        "(weights, masks and optimizer state stay float32).")
    deterministic: bool = Field(
        False, description="Deterministic kernels (torch.use_deterministic_algorithms) for repeatable GPU runs, at some "
        "cost in speed; the CPU is deterministic either way.")
    loader_workers: int = Field(
        2, ge=0, le=64, description="Worker processes that read and preprocess batches of data that is not held in "
        "memory (image folders, dataset objects); 0 reads them in the training process. In-memory data ignores it.",
    )
