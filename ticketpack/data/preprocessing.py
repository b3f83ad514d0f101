"""The preprocessing specs of the built-in input kinds (their home is ``ticketpack.data.kinds``; kept here so that
``from ticketpack.data.preprocessing import TextPreprocessing`` keeps working)."""

from ticketpack.data.kinds import (
    ImagePreprocessing,
    InputKind,
    Preprocessing,
    TabularPreprocessing,
    TextPreprocessing,
)

__all__ = ["ImagePreprocessing", "InputKind", "Preprocessing", "TabularPreprocessing", "TextPreprocessing"]
