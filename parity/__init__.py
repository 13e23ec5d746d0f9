"""tfrec's parity harness: PyTorch reference models and fixtures, and checks of the port.

Empty so far: the PyTorch references, fixtures and ``python -m parity check`` come
with issue 4. The package is installed with tfrec so that its import path is fixed now.
"""
