"""Run the `evo` command line as a real subprocess (what a user types), for the Ray tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The `evo` console script, as a user runs it. Not `python -m evo.cli`: that puts the working folder
# first on sys.path, where a run folder named "evo" (holding Tune's "tune" folder) would shadow the
# package evo.tune for an editable install.
EVO = [str(Path(sys.executable).with_name("evo"))]


def run_evo(args, cwd, timeout=420, env=None):
    """The command's CompletedProcess; the environment is this test session's (with its private
    checkpoint cache, tests/conftest.py) unless ``env`` is given."""
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(EVO + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def smoke_search(tmp_path, name: str, settings: dict):
    """`evo search --preset smoke` with ``settings`` in a YAML config, run in ``tmp_path`` with its
    runs under ``tmp_path / "runs"``: (the CompletedProcess, the run folder)."""
    import yaml

    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = run_evo(["search", "--preset", "smoke", "--config", str(config), "--storage", str(tmp_path / "runs"),
                      "--name", name], cwd=tmp_path)
    return result, tmp_path / "runs" / name
