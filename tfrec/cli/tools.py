"""``tfrec import-torch`` and ``tfrec build-kernels``: bringing models and kernels in."""

from __future__ import annotations

import time

from tfrec import families
from tfrec.arguments import positive
from tfrec.cli._common import import_tensorflow_quietly
from tfrec.errors import TfrecError


def add_parsers(sub) -> dict:
    """``import-torch`` and ``build-kernels``; returns their handlers."""
    from tfrec.convert import command as import_torch

    import_torch.add_parser(sub, positive, families.names())
    sub.add_parser(
        "build-kernels",
        help="compile tfrec's native kernels now (for an image or CI; training builds them on first use)",
    )
    return {"import-torch": _import_torch, "build-kernels": _build_kernels}


def _import_torch(args) -> int:
    import_tensorflow_quietly()
    from tfrec.convert import command

    return command.run(args)


def _build_kernels(args) -> None:
    import_tensorflow_quietly()
    from tfrec import ops

    if not ops.enabled():
        raise TfrecError("TFREC_NATIVE_OPS turns the native kernels off: unset it to build them")
    start = time.perf_counter()
    try:
        path = ops.build()
    except RuntimeError as e:
        raise TfrecError(f"the native kernels did not build: {e}") from None
    print(f"{path} ({time.perf_counter() - start:.1f} s)")
