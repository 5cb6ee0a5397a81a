"""Where the side-by-side benchmarks find NVIDIA's stylegan2-ada-pytorch (never part of this repository).

NVIDIA's code is under a non-commercial licence: a user fetches an unmodified checkout and points
``STYLEGAN2_ADA_PYTORCH`` at it; the benchmarks import its ``training`` and ``torch_utils`` from there.
"""
from __future__ import annotations

import os
import sys

HOWTO = """STYLEGAN2_ADA_PYTORCH is not set: nothing to compare against.
NVIDIA's code is non-commercial and not part of this repository; to run the comparison:
  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
  STYLEGAN2_ADA_PYTORCH=/tmp/sg2ada python {script}"""


def nvidia_checkout(script: str) -> str | None:
    """The checkout's path, put first on ``sys.path``; None (after printing how to get it) when unset."""
    path = os.environ.get("STYLEGAN2_ADA_PYTORCH")
    if not path:
        print(HOWTO.format(script=script))
        return None
    sys.path.insert(0, path)
    return path
