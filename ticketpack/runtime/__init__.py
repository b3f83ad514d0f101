"""The torch-free runtime under ``export``, ``evaluate`` and ``serve``: everything about an exported ONNX file.

- :mod:`~ticketpack.runtime.spec`: ``ModelSpec``/``ModelSource``, which model a card or manifest describes;
- :mod:`~ticketpack.runtime.card`: the model card, and :mod:`~ticketpack.runtime.cardio`, putting it into a file
  and reading it back;
- :mod:`~ticketpack.runtime.digest`: the sha256 over a graph's weights;
- :mod:`~ticketpack.runtime.storage`: how a weight is stored (names, int8, bit masks) and decoded, written once;
- :mod:`~ticketpack.runtime.session`: ONNX Runtime sessions with a provider choice and a thread count;
- :mod:`~ticketpack.runtime.predictor`: ``ticketpack.load``, an exported classifier for raw inputs;
- :mod:`~ticketpack.runtime.validate`: ``validate_model``, is an exported file whole and honest.

``export`` writes through these modules; ``evaluate`` and ``serve`` read through them and never import each other.
Nothing here imports torch (an import-linter contract in ``pyproject.toml`` checks it).
"""
