"""Export tickets to ONNX with an embedded model card.

``card`` (the ModelCard) is torch- and onnx-free; ``cardio.read_card`` and ``digest.weights_digest`` need only
``onnx``; ``exporter.export_model`` (torch) builds, checks and writes the file.
"""
