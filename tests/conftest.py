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
    session.config.evo_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave with pytest's exit status once every plugin has finished, skipping the interpreter's
    finalization. The crash at exit recurred (2026-12-07, a clean-clone CI: 1015 passed, then
    "Segmentation fault", rc 2, and no stack printed): the native libraries this process loaded
    (torch, Ray's gRPC, pyarrow) tear down their threads there, after every test and its report.
    Everything a test runs as a user would (`evo ...` subprocesses) still exits normally and is checked."""
    status = getattr(config, "evo_exitstatus", None)
    if status is None:  # the session never finished (pytest's own error path): exit as pytest does
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
