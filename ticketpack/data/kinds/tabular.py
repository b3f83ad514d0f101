"""Tables: rows of numeric feature columns in, standardized float32 (N, features) out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ticketpack.core.errors import TicketpackError
from ticketpack.data.arrays import load_npy, numeric_column, read_table
from ticketpack.data.files import jsonl_rows, label_text
from ticketpack.data.kinds.base import InputKind, RawGraph


class TabularPreprocessing(InputKind):
    """Rows of numbers, one column per feature (``columns``, in order), standardized with the training split's
    ``mean`` and ``std``: the model sees (N, features) float32. A row is a list of numbers in column order, or an
    object keyed by column name."""

    kind: Literal["tabular"] = "tabular"
    columns: list[str] = Field(min_length=1, description="Feature column names, in the order the model sees them.")
    mean: list[float] = Field(description="Per-column mean of the training split (subtracted).")
    std: list[float] = Field(description="Per-column standard deviation of the training split (divided by; 1 where 0).")

    default_model: ClassVar[str] = "lenet-300-100"
    noun: ClassVar[str] = "rows"
    file_types: ClassVar[tuple[str, ...]] = (".csv", ".parquet", ".jsonl", ".npy")

    @model_validator(mode="after")
    def _lengths(self) -> "TabularPreprocessing":
        if not len(self.mean) == len(self.std) == len(self.columns):
            raise ValueError("columns, mean and std must have the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be above 0")
        return self

    @classmethod
    def fit(cls, sample: Any, options: dict[str, Any], where: str) -> "TabularPreprocessing":
        """Each column's mean and standard deviation on the training sample (a constant column's std is 1)."""
        x = np.asarray(sample, dtype=np.float64)
        std = x.std(axis=0)
        fitted = {"mean": np.round(x.mean(axis=0), 6).tolist(),
                  "std": np.where(std > 1e-12, np.round(std, 6), 1.0).tolist()}
        return cls.from_options({**fitted, **options}, where)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.columns),)

    def _rows(self, raw: Any) -> np.ndarray:
        if isinstance(raw, (list, tuple)) and raw and all(isinstance(r, dict) for r in raw):
            missing = [c for c in self.columns if c not in raw[0]]
            if missing:
                raise TicketpackError(f"a row lacks the column(s) {missing}; this model takes {self.columns}")
            raw = [[r.get(c) for c in self.columns] for r in raw]
        try:
            x = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise TicketpackError(f"table rows must be numbers ({len(self.columns)} per row) or objects keyed by column") from None
        if x.ndim == 1 and len(x) == len(self.columns):
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise TicketpackError(f"table rows must have {len(self.columns)} values ({', '.join(self.columns)}); got shape {tuple(x.shape)}")
        return x

    def transform(self, raw: Any) -> np.ndarray:
        x = self._rows(raw)
        if not np.isfinite(x).all():
            raise TicketpackError("table rows contain NaN or infinite values")
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        if np.abs(z).max(initial=0) > float(np.finfo(np.float32).max):
            raise TicketpackError("table rows hold values too large for float32")
        return z.astype(np.float32)

    def raw_graph(self, output: str = "input") -> RawGraph:
        """``(x - mean) / std`` in float64, then cast to float32: what :meth:`transform` computes, bit for bit, on the
        float64 rows (N, features) that :meth:`raw_array` gives."""
        from onnx import TensorProto, helper, numpy_helper

        raw = helper.make_tensor_value_info("raw", TensorProto.DOUBLE, ["batch", len(self.columns)])
        nodes = [
            helper.make_node("Sub", ["raw", "raw/mean"], ["raw/centred"], name="raw/sub"),
            helper.make_node("Div", ["raw/centred", "raw/std"], ["raw/scaled"], name="raw/div"),
            helper.make_node("Cast", ["raw/scaled"], [output], name="raw/cast", to=TensorProto.FLOAT),
        ]
        inits = [numpy_helper.from_array(np.asarray(self.mean, dtype=np.float64), "raw/mean"),
                 numpy_helper.from_array(np.asarray(self.std, dtype=np.float64), "raw/std")]
        return RawGraph(input=raw, nodes=nodes, initializers=inits, output=output, opsets={"": 13})

    def raw_array(self, raw: Any) -> np.ndarray:
        """Rows (lists in column order, objects keyed by column, an array) → float64 (N, features), finite."""
        x = self._rows(raw)
        if not np.isfinite(x).all():
            raise TicketpackError("table rows contain NaN or infinite values")
        return np.ascontiguousarray(x)

    def read_inputs(self, path: Path, labelled: bool = False) -> tuple[Any, list[str] | None]:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".csv", ".parquet"):
            if not path.is_file():
                raise TicketpackError(f"input file not found: {path}")
            table = read_table(path)
            missing = [c for c in self.columns if c not in table]
            if missing:
                raise TicketpackError(f"{path} lacks the column(s) {missing}; this model takes {self.columns}")
            if labelled and "label" not in table:
                raise TicketpackError(f"{path} needs a 'label' column")
            x = np.stack([numeric_column(c, table[c], path) for c in self.columns], axis=1)
            labels = [label_text(v.strip() if isinstance(v, str) else v, str(path)) for v in table["label"]] if labelled else None
            if not len(x):
                raise TicketpackError(f"{path} has no rows")
            return x, labels
        if suffix == ".jsonl":
            rows, labels = [], []
            for lineno, obj in jsonl_rows(path):
                if labelled:
                    if not isinstance(obj, dict) or "label" not in obj:
                        raise TicketpackError(f"{path}:{lineno}: no 'label' field")
                    labels.append(label_text(obj["label"], f"{path}:{lineno}"))
                rows.append({k: v for k, v in obj.items() if k != "label"} if isinstance(obj, dict) else obj)
            if not rows:
                raise TicketpackError(f"{path} has no rows")
            return rows, (labels if labelled else None)
        if suffix == ".npy" and not labelled:
            return load_npy(path), None
        raise TicketpackError(f"{path}: a table model reads .csv, .parquet, .jsonl" + ("" if labelled else " or .npy") + " files")

    def smoke_inputs(self) -> np.ndarray:
        return np.asarray([self.mean, np.asarray(self.mean) + np.asarray(self.std)], dtype=np.float64)

    def describe(self) -> str:
        return f"tabular: {len(self.columns)} numeric columns"
