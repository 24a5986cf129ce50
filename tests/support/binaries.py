"""Finding the real programs tests need: skip locally when absent, fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(name: str, *extra_dirs: str) -> str:
    """Path of an executable; a missing one skips the test here and fails it in CI."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs]))
    if path is None:
        message = f"{name} is not installed (apt-get install the package that provides it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
