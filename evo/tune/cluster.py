"""Ray at the edge: start or join Ray, check the cluster (address, GPUs, shared storage) and size
the trial slots, all before a run folder is written.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import ray


STORAGE_CHECK_SECONDS = 60.0


def start_ray(address: str | None, *, log=print, num_cpus: int | None = None) -> dict:
    """Start a private local Ray (``address=None``) or join a running cluster (``"auto"`` or host:port).

    ``address="local"`` never joins a stale cluster left by a killed driver.
    """
    if ray.is_initialized():
        return ray.cluster_resources()
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs = dict(include_dashboard=False, log_to_driver=True, configure_logging=True, logging_level="WARNING")
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        kwargs.pop("include_dashboard")
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as err:
            raise ValueError(f"--address {address!r}: no Ray cluster answers there ({err}); "
                             "start one with `ray start --head` or drop --address for a local run") from None
    resources = ray.cluster_resources()
    log(f"ray: {int(resources.get('CPU', 0))} CPUs, {resources.get('GPU', 0):g} GPUs, "
        f"{len([n for n in ray.nodes() if n.get('Alive')])} node(s)")
    return resources


@ray.remote(num_cpus=0)
def _read_marker(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def check_storage_shared(run_dir: Path) -> None:
    """On a multi-node cluster, check that every node sees the run folder at the same path: the driver
    writes a marker file there and a task pinned to each other node reads it back. Tune writes each
    trial's folder on the node that runs it, so a folder local to each node scatters the run.
    The marker (and any folder made for it) is removed again either way."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    others = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["NodeID"] != here]
    if not others:
        return
    run_dir = Path(run_dir).resolve()
    first_made = next((p for p in [*reversed(run_dir.parents), run_dir] if not p.exists()), None)
    run_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = run_dir / f".evo-shared-storage-{token}"
    marker.write_text(token)
    try:
        refs = [_read_marker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            str(marker)) for node in others]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=STORAGE_CHECK_SECONDS)
        answers = [_answer(ref) if ref in ready else None for ref in refs]
    finally:
        marker.unlink(missing_ok=True)
        _remove_empty_up_to(run_dir, first_made)
    blind = [f"{node[:12]} ({'cannot read it' if ref in ready else f'no answer in {STORAGE_CHECK_SECONDS:g} s'})"
             for node, ref, answer in zip(others, refs, answers) if answer not in (token, _NODE_GONE)]
    if blind:
        raise ValueError(f"--storage {run_dir.parent}: not shared between the cluster's nodes; node(s) "
                         f"{', '.join(blind)} do not see {run_dir} from the driver's node. Mount one shared folder "
                         "(e.g. NFS) at the same path on every node and pass it as --storage "
                         "(see clusters/local-multinode.md)")


_NODE_GONE = object()


def _answer(ref):
    """The marker a node read, or _NODE_GONE for a node that left the cluster after ray.nodes()
    listed it (its trials cannot run there either, so it has no storage to check)."""
    from ray.exceptions import TaskUnschedulableError

    try:
        return ray.get(ref)
    except TaskUnschedulableError:
        return _NODE_GONE


def _remove_empty_up_to(path: Path, top: Path | None) -> None:
    """Remove the folders made for the marker, innermost first (only if still empty)."""
    if top is None:
        return
    for folder in [path, *path.parents]:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return


def start_cluster(cfg, run_dir: Path, *, log=print) -> tuple[dict, int]:
    """Ray up and the cluster checked for a run, before its folder is written: start or join Ray
    (``cfg.address``), size the trial slots (an error if GPUs are asked of a cluster without them)
    and check the run folder is shared between the nodes. Returns (resources, slots)."""
    resources = start_ray(cfg.address, log=log)
    slots = concurrency(resources, cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_concurrent)
    check_storage_shared(run_dir)
    return resources, slots


def concurrency(resources: dict, cpus_per_trial: float, gpus_per_trial: float, requested: int) -> int:
    """How many trials run at once: ``requested`` when given, else as many as fit the cluster now.

    A ``requested`` count above what fits is kept: the extra trials wait as pending Tune trials,
    which an autoscaling cluster answers with more nodes, and run as those nodes join.
    """
    if gpus_per_trial > 0 and resources.get("GPU", 0) < gpus_per_trial:
        raise ValueError(f"gpus_per_trial={gpus_per_trial} but the cluster has {resources.get('GPU', 0):g} GPUs; "
                         "set gpus_per_trial: 0 to run on CPUs, or start a GPU worker first")
    return requested if requested else fitting(resources, cpus_per_trial, gpus_per_trial)


def fitting(resources: dict, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """Trials the cluster's resources hold at once now (at least one)."""
    if gpus_per_trial > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_trial))
    return max(1, int(resources.get("CPU", 1) // cpus_per_trial))


def describe_slots(slots: int, resources: dict, cpus_per_trial: float, gpus_per_trial: float) -> str:
    """``"4 concurrent trials"``, and how many fit now when that is fewer."""
    fit = fitting(resources, cpus_per_trial, gpus_per_trial)
    return f"{slots} concurrent trials" + (f" ({fit} fit the cluster now; the rest wait for nodes)"
                                           if slots > fit else "")


