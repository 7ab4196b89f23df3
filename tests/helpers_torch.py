"""`one_torch_thread`: an autouse fixture for modules that run torch on the shared machines.
Import it into a test module to use it there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The CI / shared machines are oversubscribed: 2 torch threads there run 5x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
