"""Shared fixtures of the core tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one intra-op thread is as fast on an idle machine and avoids OpenMP spin-wait
    slow-downs (5-10x measured) when the 2 cores are shared with another process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
