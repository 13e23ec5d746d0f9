"""Reading PyTorch weights as numpy arrays without running anyone's code.

``.safetensors`` files are read with safetensors' numpy API (no torch needed). ``.pt``, ``.pth``
and ``.bin`` state dicts are read with ``torch.load(weights_only=True)``, PyTorch's restricted
unpickler, which builds tensors and plain containers and refuses any other object; torch must be
installed for them. Nothing is unpickled any other way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from tfrec.errors import DataError

SAFETENSORS = (".safetensors",)
TORCH_PICKLES = (".pt", ".pth", ".bin")


def read_weights(path) -> dict[str, np.ndarray]:
    """The tensors of a state dict file, by name, as float arrays.

    Args:
      path: A ``.safetensors`` file, or a ``.pt``/``.pth``/``.bin`` file holding a state dict
        (``torch.save(model.state_dict(), path)``).

    Raises:
      DataError: the file is missing, truncated or not a state dict of tensors, or a ``.pt`` file
        without torch installed; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SAFETENSORS:
        return _safetensors(path)
    if suffix in TORCH_PICKLES:
        return _torch_pickle(path)
    raise DataError(f"{path}: unknown weights format {suffix or '(no suffix)'}: use .safetensors, .pt, .pth or .bin")


def _safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError and OSError on bad files
        raise DataError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
    return {name: _float_array(path, name, value) for name, value in tensors.items()}


def _torch_pickle(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise DataError(
            f"{path}: reading a PyTorch pickle needs torch (pip install 'tfrec[parity]'), "
            "or save the weights as .safetensors (safetensors.torch.save_file(model.state_dict(), PATH))"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... on bad files
        raise DataError(
            f"{path}: not a PyTorch state dict torch.load(weights_only=True) accepts ({_first_line(e)})"
        ) from None
    if not isinstance(state, Mapping) or not state:
        kind = type(state).__name__
        raise DataError(f"{path}: holds a {kind}, not a state dict (a mapping of names to tensors)")
    out = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise DataError(
                f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor: save model.state_dict() "
                "itself, not a checkpoint dict around it"
            )
        out[name] = _float_array(path, name, value.detach().cpu().float().numpy())
    return out


def _float_array(path: str, name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: tensor {name!r} has dtype {array.dtype}, not a number type")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: tensor {name!r} holds a NaN or infinite value")
    return array.astype(np.float32)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
