"""The real Prometheus server, configured from clusters/monitoring/prometheus.yml, watching a real Ray
head (`ray start --head`, token authentication on, a private RAY_TMPDIR) while `evo search` runs on
it: Prometheus finds the node through Ray's service-discovery file, scrapes evo's metrics, and answers
``ray_evo_hypervolume`` for the run through its query API with a value the search recorded. Every
query of the Grafana dashboard is then run through the same Prometheus: each parses, and the gauge
panels have data for the run.

Prometheus and the Ray dashboard listen on 127.0.0.1, the node on the host's own address (Ray 2.60
replaces a loopback --node-ip-address). Ray and Prometheus run in their own sessions, killed at the
end (never `ray stop`, which would stop other sessions' Ray too)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.clusters.test_monitoring_files import DISCOVERY_FILE, PROMETHEUS_CONFIG, dashboard_queries
from tests.evo.test_multinode_ray import RAY, free_port, kill_session, node_ports, port_open, wait_for

pytestmark = pytest.mark.ray

PROMETHEUS = Path("/usr/bin/prometheus")  # Debian package `prometheus` (make system-packages)
RUN = "watched"
# The smoke preset, smaller (a YAML file layers over a preset): two generations of four, two bit widths
# per gene so the uniform screening stays short, a short pretraining (the test's cache starts empty)
# and a short final fine-tune
SMALLER = dict(population=4, generations=2, fine_tune_steps=20, final_steps=20, final_top=1, pretrain_epochs=5,
               weight_bit_choices=[2, 4], activation_bit_choices=[2, 4])


@pytest.fixture(scope="module", autouse=True)  # before the module fixtures start anything
def prometheus_installed():
    if not PROMETHEUS.exists():
        reason = f"{PROMETHEUS} not found: install the Debian package `prometheus` (make system-packages)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run this test")
        pytest.skip(reason)


def prometheus_config(discovery_file: Path) -> dict:
    """The shipped config with the service-discovery file of this test's Ray instead of /tmp/ray's."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["file_sd_configs"]
    discovery["files"] = [str(discovery_file)]
    return config


def query(port: int, promql: str) -> dict:
    """Prometheus's /api/v1/query answer (``status`` and ``data``) for an instant query at now."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:  # a bad query: 400 with the parser's message
        return json.load(err)


def scrape_targets(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as response:
        return json.load(response)["data"]["activeTargets"]


def node_target(discovery_file: Path, metrics_port: int) -> str | None:
    """The node's host:port in Ray's service-discovery file. Not 127.0.0.1 even for a node started with
    --node-ip-address 127.0.0.1: Ray replaces a loopback address by the host's own
    (ray._private.services.resolve_ip_for_localhost)."""
    if not discovery_file.exists():
        return None
    targets = [t for group in json.loads(discovery_file.read_text() or "[]") for t in group["targets"]]
    return next((t for t in targets if t.endswith(f":{metrics_port}")), None)


def started(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def watched_cluster():
    """A Ray head and a Prometheus scraping it: {env, prometheus port, node's scrape target, root}."""
    root = Path(tempfile.mkdtemp(prefix="evo-prom-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TMPDIR")}
    env.update(RAY_TMPDIR=str(root), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               EVO_CACHE_DIR=str(root / "cache"), PYTHONUNBUFFERED="1")
    ports = node_ports()
    metrics_port, gcs_port, prometheus_port = int(ports[ports.index("--metrics-export-port") + 1]), free_port(), free_port()
    processes = []
    try:
        processes.append(started(
            [RAY, "start", "--head", "--block", "--port", str(gcs_port), "--num-cpus", "2",
             "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(free_port()),
             "--ray-client-server-port", str(free_port()), *ports,
             # Ray's default 10 s report interval would make the test wait; evo sets gauges every second
             "--system-config", json.dumps({"metrics_report_interval_ms": 1000})], env, root / "ray.log"))
        # where Ray's dashboard links the file, as for /tmp/ray: $RAY_TMPDIR/ray (clusters/monitoring/README.md)
        discovery_file = root / "ray" / DISCOVERY_FILE
        wait_for(lambda: node_target(discovery_file, metrics_port), 90,
                 f"Ray to list its metrics export port in {discovery_file}")
        config = root / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(discovery_file)))
        processes.append(started(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"], env, root / "prometheus.log"))
        wait_for(lambda: port_open(prometheus_port) and query(prometheus_port, "vector(1)")["status"] == "success",
                 30, "Prometheus to answer queries")
        yield dict(env=env, prometheus=prometheus_port, node=node_target(discovery_file, metrics_port), root=root)
    finally:
        for process in reversed(processes):
            kill_session(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def searched(watched_cluster) -> set[float]:
    """`evo search --address auto` on the watched head; the hypervolumes its generations recorded."""
    root = watched_cluster["root"]
    (root / "smaller.yaml").write_text(yaml.safe_dump(SMALLER))
    search = subprocess.run(
        [sys.executable, "-m", "evo.cli", "search", "--preset", "smoke", "--config", str(root / "smaller.yaml"),
         "--address", "auto", "--storage", str(root / "runs"), "--name", RUN],
        cwd=root, env=watched_cluster["env"], capture_output=True, text=True, timeout=240)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    return set(pd.read_parquet(root / "runs" / RUN / "generations.parquet").hypervolume)


def test_prometheus_reads_the_search_hypervolume_through_rays_service_discovery(watched_cluster, searched):
    prometheus = watched_cluster["prometheus"]
    node = watched_cluster["node"]
    assert any(t["labels"]["instance"] == node and t["health"] == "up" for t in scrape_targets(prometheus)), \
        scrape_targets(prometheus)
    # The run's metrics actor died with the driver, so its series may already be stale at now:
    # the last value within the run, as a chart of the run shows it.
    hypervolume = f'last_over_time(ray_evo_hypervolume{{run="{RUN}"}}[10m])'

    def read_back():
        result = query(prometheus, hypervolume)["data"]["result"]
        return result and float(result[0]["value"][1]) in searched
    wait_for(read_back, 20, f"Prometheus to answer {hypervolume} with a value the search recorded ({searched})")
    (series,) = query(prometheus, hypervolume)["data"]["result"]
    assert float(series["value"][1]) > 0
    assert series["metric"]["method"] == "evo" and series["metric"]["job"] == "ray"  # Ray's scrape job name


def test_every_dashboard_query_runs_on_prometheus(watched_cluster, searched):
    """Grafana's variables filled in as Grafana would; the gauges have data for the run just searched."""
    prometheus = watched_cluster["prometheus"]
    for title, expr in dashboard_queries():
        promql = expr.replace("$run", RUN).replace("$__rate_interval", "1m")
        answer = query(prometheus, f"last_over_time(({promql})[10m:5s])")
        assert answer["status"] == "success", f"panel {title!r}: {promql!r}: {answer}"
        if "rate(" not in expr and "_failed" not in expr:  # no failed trial: no failed series
            assert answer["data"]["result"], f"panel {title!r}: {promql!r} has no data for run {RUN!r}"
