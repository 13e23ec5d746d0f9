"""tfrec's parity harness: PyTorch references, fixtures, and checks that the port matches them.

- ``parity.reference``: the PyTorch models and one training loop (needs torch).
- ``parity.cases``: the cases; ``parity.fixtures``: one JSON and one ``.npz`` per case.
- ``python -m parity generate [CASE...]`` writes fixtures (torch);
  ``python -m parity check [CASE...]`` (or ``tfrec parity``) checks the TensorFlow
  models against them with TensorFlow only. ``import parity`` never imports torch.
"""
