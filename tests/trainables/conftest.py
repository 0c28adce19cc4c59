import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These nets are tiny: one thread is as fast, and on a shared 2-core machine two threads
    spin-wait on each other and slow the tests down by an order of magnitude."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
