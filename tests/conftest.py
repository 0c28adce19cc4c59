"""Session-wide test setup: a private checkpoint cache, so no test reads or writes the user's
~/.cache/evo (a stale base model there could decide a result); tests that need their own set
EVO_CACHE_DIR themselves."""

import os
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_checkpoint_cache(tmp_path_factory):
    before = os.environ.get("EVO_CACHE_DIR")
    os.environ["EVO_CACHE_DIR"] = str(tmp_path_factory.mktemp("evo-cache"))
    yield
    if before is None:
        os.environ.pop("EVO_CACHE_DIR", None)
    else:
        os.environ["EVO_CACHE_DIR"] = before


def pytest_sessionfinish(session, exitstatus):
    """A test that ran a search in this process may leave its local Ray up: shut it down while the
    interpreter is whole rather than in Ray's atexit hook during finalization. (One CI run
    segfaulted at exit after every test had passed, a native thread calling into freed code; which
    thread is not known — the Makefile's PYTHONFAULTHANDLER prints the stacks if it recurs.)"""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
