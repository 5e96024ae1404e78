"""Families of layer cases, one module each (``activations.py``, ``losses_regression.py``, ...),
each defining ``CASES``, a list of :class:`tests.layer_cases.Case` built with the helpers of
``tests/layer_cases.py``; that module appends every family's list to its own table, so that
every test driven by the table (gradcheck, torch parity, spec round trip, errors, host reads,
backward checks, ONNX) covers them."""
