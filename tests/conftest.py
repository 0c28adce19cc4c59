"""Session-wide test setup: a private checkpoint cache, so no test reads or writes the user's
~/.cache/evo (a stale base model there could decide a result); tests that need their own set
EVO_CACHE_DIR themselves."""

import os

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
