"""Export a ticket, a transfer run's model or a checkpoint to ONNX with an embedded model card.

``sources`` says what a ticket directory or transfer run holds and which level to export; ``prepared`` loads it
into a torch model with its mask; ``compact`` removes the pruned units (all compaction is there); ``to_onnx`` runs
``torch.onnx.export`` by the route asked for; ``graphs`` checks the graph against the torch model; ``quantize``
quantizes to int8 (both kinds: dynamic, and static calibrated on training examples); ``exporter.export_model`` does
all of it and writes the file. The card itself, the stored formats and validation live in the torch-free
:mod:`ticketpack.runtime`.
"""
