"""clusters/monitoring/: the Grafana dashboard is one Grafana imports (a schema version, a Prometheus
data source chosen through ``${datasource}``, a ``run`` variable every query filters by) and charts
only series evo really exports, all of them. The exported names are read from evo's source, the module
that creates the ``ray.util.metrics`` objects, so a renamed metric fails here rather than as an empty
chart. The Prometheus config keeps Ray's own scrape job."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "clusters" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "evo-dashboard.json"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
DISCOVERY_FILE = "prom_metrics_service_discovery.json"  # ray._private.ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE
DATASOURCE = "${datasource}"
# The series Prometheus holds for each kind of ray.util.metrics object. Not a histogram's _sum: Ray 2.60
# exports it from bucket midpoints (see evo/tune/metrics.py), so a chart of it would mislead.
SERIES_SUFFIXES = {"Gauge": ("",), "Counter": ("_total",), "Histogram": ("_bucket", "_count")}
SERIES_NAME = re.compile(r"\bray_[A-Za-z0-9_]+")


def metric_modules() -> list[Path]:
    """evo's modules that make Ray metrics, wherever the package layout puts them."""
    return sorted(p for p in (ROOT / "evo").rglob("*.py") if "ray.util.metrics" in p.read_text())


def exported_metrics(source: str) -> dict[str, str]:
    """{metric name: Gauge | Counter | Histogram} made in this module. A name given as a literal takes
    the kind of the call it is passed to; the other ``evo_*`` literals (a table of names fed to
    ``Gauge(name, ...)`` in a loop) are gauges when the module makes gauges from a variable."""
    tree, kinds = ast.parse(source), {}
    gauge_from_variable = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in SERIES_SUFFIXES and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                kinds[first.value] = node.func.id
            elif node.func.id == "Gauge":
                gauge_from_variable = True
    if gauge_from_variable:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"evo_\w+", node.value):
                kinds.setdefault(node.value, "Gauge")
    return kinds


def exported_series() -> dict[str, str]:
    """{Prometheus series name: metric name} of every metric evo exports (Ray prefixes ``ray_``)."""
    series = {}
    for module in metric_modules():
        for name, kind in exported_metrics(module.read_text()).items():
            series.update({f"ray_{name}{suffix}": name for suffix in SERIES_SUFFIXES[kind]})
    return series


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query on the dashboard."""
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel["targets"]]


def test_exported_metrics_are_read_from_evo_source():
    series = exported_series()
    assert len(metric_modules()) == 1, metric_modules()
    # what evo/tune/metrics.py's docstring promises, seen through the parser
    assert {"ray_evo_hypervolume", "ray_evo_trials_failed_total", "ray_evo_trial_seconds_bucket"} <= set(series)
    assert len(set(series.values())) == 8, series


def test_the_kind_of_a_metric_decides_its_series_names():
    source = ("from ray.util.metrics import Counter, Gauge, Histogram\n"
              "NAMES = {'a': ('evo_a', 'doc')}\n"
              "for key, (name, doc) in NAMES.items(): Gauge(name, description=doc)\n"
              "Counter('evo_c'); Histogram('evo_h', boundaries=[1])\n")
    assert exported_metrics(source) == {"evo_a": "Gauge", "evo_c": "Counter", "evo_h": "Histogram"}
    # a module that makes no gauge from a variable: a stray evo_ string is not a metric
    assert exported_metrics("Counter('evo_c')\nLABEL = 'evo_other'\n") == {"evo_c": "Counter"}


def query_problems(expr: str, series: dict[str, str]) -> list[str]:
    """What is wrong with one panel query: no ray_ series, one evo does not export, no run filter."""
    names = set(SERIES_NAME.findall(expr))
    problems = [] if names else ["names no ray_ series"]
    if names - set(series):
        problems.append(f"queries {sorted(names - set(series))}, which evo does not export; it exports {sorted(series)}")
    if 'run=~"$run"' not in expr:
        problems.append("is not filtered by the run variable")
    return problems


def test_every_query_names_only_series_evo_exports_and_every_metric_is_charted():
    series = exported_series()
    for title, expr in dashboard_queries():
        assert not query_problems(expr, series), f"panel {title!r}: {expr!r} {query_problems(expr, series)}"
    charted = {series[name] for _, expr in dashboard_queries() for name in SERIES_NAME.findall(expr)}
    assert charted == set(series.values()), f"not charted: {sorted(set(series.values()) - charted)}"


@pytest.mark.parametrize("expr, problem", [
    ("ray_evo_hypervolume", "not filtered"),
    ('ray_evo_trial_seconds_sum{run=~"$run"}', "does not export"),  # the misleading midpoint sum
    ('rate(ray_evo_trials_finished{run=~"$run"}[1m])', "does not export"),  # a counter without _total
    ('vector(1) * on() group_left() up{run=~"$run"}', "names no ray_ series"),
])
def test_queries_a_broken_dashboard_would_hold_are_refused(expr, problem):
    assert any(problem in p for p in query_problems(expr, exported_series()))


def test_dashboard_is_importable_grafana_json():
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 27
    assert board["title"] and board["uid"] and "id" not in board  # import assigns the id
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    run = variables["run"]
    assert run["type"] == "query" and run["datasource"]["uid"] == DATASOURCE and run["multi"] and run["includeAll"]
    assert set(SERIES_NAME.findall(run["query"]["query"])) <= set(exported_series())
    panel_ids = [panel["id"] for panel in board["panels"]]
    assert len(panel_ids) == len(set(panel_ids)), panel_ids
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat") and set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]  # Grafana's grid is 24 wide
        sources = [panel["datasource"]] + [target["datasource"] for target in panel["targets"]]
        assert all(s == {"type": "prometheus", "uid": DATASOURCE} for s in sources), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_prometheus_config_is_rays_scrape_job_every_five_seconds():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ray"  # the job label Ray's service-discovery file and its dashboards use
    (discovery,) = job["file_sd_configs"]
    assert discovery["files"] == [f"/tmp/ray/{DISCOVERY_FILE}"]
    assert config["global"]["scrape_interval"] == "5s"
