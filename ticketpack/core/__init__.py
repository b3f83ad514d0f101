"""The foundations every stage stands on, and which import nothing of ticketpack above them (open_lth's word for
such a room is ``foundations``):

- ``errors``: the exception types, and :class:`~ticketpack.core.errors.FieldError` that names a config field;
- ``events``: the one :class:`~ticketpack.core.events.Event` every stage's ``on_event`` callback receives;
- ``fileio``: atomic writes, sealed (digested) JSON files, output checks; ``paths``: a ticket directory's layout;
- ``registry``: the one registry class behind models, datasets, strategies, inits, input kinds and layer types;
- ``config_files``: reading ``--config`` files into pydantic configs, with keyword overrides of their fields;
- ``seeds``: every seed ticketpack derives (search rounds, transfer jobs) from the one the user gave;
- ``stats``: standard errors, paired t-intervals and the two-stage cluster bootstrap;
- ``lifeline``: child processes that die with their parent; ``hugepages``: huge pages for large CPU tensors;
- ``references``: how a ticket or run names what it was made from.

Until 0.2 each of these also answers at its old address (``ticketpack.fileio``, ...), with a DeprecationWarning.
"""
