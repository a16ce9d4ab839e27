"""Optional extras in the tests: import one, or skip naming the extra that installs it; with
TINYNET_REQUIRE_EXTRAS=1 (as .ci/run sets) a missing extra fails instead of skipping."""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str, extra: str):
    """The imported ``module``, or a skip (a failure under TINYNET_REQUIRE_EXTRAS=1) that names ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        why = f'{module} is not installed ({e}); pip install -e ".[{extra}]"'
        if os.environ.get("TINYNET_REQUIRE_EXTRAS") == "1":
            pytest.fail(f"TINYNET_REQUIRE_EXTRAS=1 but {why}", pytrace=False)
        pytest.skip(why, allow_module_level=True)
