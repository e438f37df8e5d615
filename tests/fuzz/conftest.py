"""Fixtures of the fuzz suite; the helpers live in ``fuzz_helpers`` (a unique module name: several test
folders have a ``conftest.py``, so ``from conftest import ...`` would pick whichever loaded first)."""

from fuzz_helpers import _logs_in_tmp, pair2d, tiny2d  # noqa: F401  (fixtures, registered by import)
