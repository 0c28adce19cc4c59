"""Two Ray nodes started with the real `ray start` commands of clusters/local-multinode.md (a head and a
second raylet on this machine, token authentication on), a search submitted with `ray job submit`:
trials run on both nodes. A second storage folder is hidden from the worker node (a private tmpfs
mounted over it in the worker's own mount namespace, as an unshared disk would be): a search there
fails with the storage error and leaves nothing written.

Clean-up never uses `ray stop` (it stops every Ray of the user, other sessions' included): each
`ray start --block` runs in its own session, and the processes of those two sessions are killed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(Path(sys.executable).with_name("ray"))
SEARCH = dict(model="mlp", dataset="digits", budget="bops=1/256", target="bitserial", population=4, generations=2,
              fine_tune_steps=300, final_steps=20, batch_size=64, lr=0.05, seed=0,
              weight_bit_choices=[2, 4], activation_bit_choices=[2, 4])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_ports() -> list[str]:
    """Every port a node listens on, chosen free: other Ray sessions on this machine hold the defaults."""
    ports = []
    for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"):
        ports += [flag, str(free_port())]
    return ports + ["--min-worker-port", "0", "--max-worker-port", "0"]  # 0: any free port


def can_unshare_mounts() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


def session_pids(session_id: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid, sid in zip(out[::2], out[1::2]) if int(sid) == session_id]


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL every process of the session this `ray start` leads (its raylet, GCS, agents, workers),
    again while any is left (a dying raylet may still have started one)."""
    deadline = time.time() + 30
    while (pids := session_pids(process.pid)) and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.poll()  # reap the `ray start` itself
        time.sleep(0.2)
    process.wait(timeout=10)


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out after {seconds:.0f} s waiting for {what}"
        time.sleep(0.5)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def two_nodes():
    root = Path(tempfile.mkdtemp(prefix="evo-mn-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    shared, hidden = root / "shared", root / "hidden"
    shared.mkdir(), hidden.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    # a private token for this cluster only: ~/.ray/auth_token (other sessions') is left alone
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), PYTHONUNBUFFERED="1")
    gcs_port, dashboard_port = free_port(), free_port()
    started = []
    try:
        head = subprocess.Popen(
            [RAY, "start", "--head", "--block", "--port", str(gcs_port), "--num-cpus", "1",
             "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
             "--ray-client-server-port", str(free_port()), "--temp-dir", str(root / "ray"), *node_ports()],
            env=env, start_new_session=True, stdout=open(root / "head.log", "w"), stderr=subprocess.STDOUT)
        started.append(head)
        wait_for(lambda: port_open(gcs_port) and port_open(dashboard_port), 90, "the head node")
        worker_cmd = [RAY, "start", "--block", "--address", f"127.0.0.1:{gcs_port}", "--num-cpus", "1",
                      "--node-ip-address", "127.0.0.1", *node_ports()]
        hides = can_unshare_mounts()
        if hides:  # the worker's own mount namespace, with an empty tmpfs over the hidden folder
            worker_cmd = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs evo-hidden "{hidden}" && exec "$@"', "sh",
                          *worker_cmd]
        worker = subprocess.Popen(worker_cmd, env=env, start_new_session=True, stdout=open(root / "worker.log", "w"),
                                  stderr=subprocess.STDOUT)
        started.append(worker)

        def two_alive():
            status = subprocess.run([RAY, "status", "--address", f"127.0.0.1:{gcs_port}"], env=env,
                                    capture_output=True, text=True)
            return status.stdout.count(" node_") >= 2
        wait_for(two_alive, 90, "the worker node to join")
        yield dict(env=env, dashboard=f"http://127.0.0.1:{dashboard_port}", shared=shared, hidden=hidden,
                   hides=hides, root=root)
    finally:
        for process in reversed(started):
            kill_session(process)
        assert not any(session_pids(p.pid) for p in started), "a Ray process of this test outlived it"
        shutil.rmtree(root, ignore_errors=True)


def submit_search(cluster: dict, storage: Path, name: str) -> subprocess.CompletedProcess:
    config = cluster["root"] / f"{name}.yaml"
    config.write_text(yaml.safe_dump(SEARCH))
    return subprocess.run(
        [RAY, "job", "submit", "--address", cluster["dashboard"], "--", sys.executable, "-m", "evo.cli", "search",
         "--config", str(config), "--address", "auto", "--storage", str(storage), "--name", name],
        env=cluster["env"], capture_output=True, text=True, timeout=300)


def test_search_submitted_as_a_job_runs_trials_on_both_nodes(two_nodes):
    job = submit_search(two_nodes, two_nodes["shared"], "mn")
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "2 node(s)" in job.stdout  # evo's own line: the driver joined the two-node cluster
    trials = pd.read_parquet(two_nodes["shared"] / "mn" / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert search.node_id.nunique() == 2, search.node_id.value_counts()
    assert (search.status == "ok").all() and search.genome_key.is_unique


def test_storage_the_worker_cannot_see_fails_and_leaves_nothing(two_nodes):
    if not two_nodes["hides"]:
        pytest.skip("`unshare -m` is not permitted here: cannot give the worker node a private mount")
    job = submit_search(two_nodes, two_nodes["hidden"], "unshared")
    log = job.stdout + job.stderr  # `ray job submit` relays the driver's output
    assert job.returncode != 0, log[-3000:]
    assert "not shared between the cluster's nodes" in log and "cannot read it" in log, log[-3000:]
    assert list(two_nodes["hidden"].iterdir()) == []  # the marker and the run folder made for it are gone
