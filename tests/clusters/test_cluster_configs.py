"""The cluster configs in clusters/: what a working and private evo cluster needs.

Each check is a small function returning the problems it finds (plain sentences). Every real file
must have none, and a deliberately broken copy of a real file must be reported, so each check is
shown to be able to fail. Nothing here starts Ray or reaches a cloud.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

CLUSTERS = Path(__file__).resolve().parents[2] / "clusters"
STORAGE = "/mnt/evo-runs"  # the --storage folder the configs document
DASHBOARD_PORT = 8265
TOKEN_MODE = "RAY_AUTH_MODE=token"
KUBERAY_API = "ray.io/v1"
OPEN_TO_EVERYONE = {"0.0.0.0/0", "::/0"}
PUBLIC_SERVICE_TYPES = {"LoadBalancer", "NodePort"}
PUBLIC_DASHBOARD_HOST = re.compile(r"--dashboard-host[=\s]+['\"]?(0\.0\.0\.0|::|\[::\])")
PIP_INSTALL_EVO = re.compile(r"\bpip3?\s+install\s[^;&|]*(?<!\w)evo(?!\w)")
EVO_REQUIREMENT = re.compile(r"^evo(?![\w-])")


def load_documents(text: str) -> list[dict]:
    """Every non-empty document of a (possibly multi-document) YAML text."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted([*CLUSTERS.glob("*.yaml"), *CLUSTERS.glob("*.yml")])


def is_ray_up(doc: dict) -> bool:
    return isinstance(doc, dict) and "provider" in doc and "available_node_types" in doc


def is_kuberay(doc: dict) -> bool:
    return isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("ray.io/")


def documents_of(name: str) -> list[dict]:
    return load_documents((CLUSTERS / name).read_text())


# ---------------------------------------------------------------- `ray up` configs

def ray_up_problems(config: dict) -> list[str]:
    problems = [f"missing {key}" for key in ("cluster_name", "head_node_type", "available_node_types")
                if not config.get(key)]
    if not (config.get("provider") or {}).get("type"):
        problems.append("missing provider.type")
    node_types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    if head and head not in node_types:
        problems.append(f"head_node_type {head!r} is not one of available_node_types {sorted(node_types)}")
    gpu_workers = [name for name, node in node_types.items() if name != head
                   and (node.get("resources") or {}).get("GPU", 0) > 0 and node.get("max_workers", 0) > 0]
    if not gpu_workers:
        problems.append("no GPU worker type: none declares resources GPU > 0 with max_workers > 0")
    for role in ("head", "worker"):
        commands = (config.get("setup_commands") or []) + (config.get(f"{role}_setup_commands") or [])
        if not any(PIP_INSTALL_EVO.search(command) for command in commands):
            problems.append(f"no setup command installs evo on the {role} (pip install ... evo)")
        if not any(_mounts(command, STORAGE) for command in commands):
            problems.append(f"no setup command mounts the shared run folder {STORAGE} on the {role}")
    return problems + ray_up_dashboard_problems(config) + ray_up_auth_problems(config)


def _mounts(command: str, path: str) -> bool:
    return re.search(rf"\bmount\s[^;&|]*{re.escape(path)}", command) is not None


def ray_up_dashboard_problems(config: dict) -> list[str]:
    problems = [f"head_start_ray_commands bind the dashboard to every interface without {TOKEN_MODE}: "
                f"{command!r}" for command in config.get("head_start_ray_commands") or []
                if PUBLIC_DASHBOARD_HOST.search(command) and TOKEN_MODE not in command]
    security_group = (config.get("provider") or {}).get("security_group") or {}
    for rule in security_group.get("IpPermissions") or []:
        if _opens_to_everyone(rule, DASHBOARD_PORT):
            problems.append(f"the security group opens port {DASHBOARD_PORT} to the internet: {rule}")
    return problems


def _opens_to_everyone(rule: dict, port: int) -> bool:
    every_port = str(rule.get("IpProtocol")) == "-1"
    covers = every_port or rule.get("FromPort", 0) <= port <= rule.get("ToPort", 65535)
    sources = {r.get("CidrIp") for r in rule.get("IpRanges") or []}
    sources |= {r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or []}
    return covers and bool(sources & OPEN_TO_EVERYONE)


def ray_up_auth_problems(config: dict) -> list[str]:
    problems = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [command for command in config.get(key) or [] if "ray start" in command]
        if not starts:
            problems.append(f"{key} has no `ray start`")
        problems += [f"{key}: `ray start` without {TOKEN_MODE}, so token authentication is off there"
                     for command in starts if TOKEN_MODE not in command]
    ships_token_file = any(path.rstrip("/").endswith(".ray/auth_token") for path in config.get("file_mounts") or {})
    everything = json.dumps(config)  # one line per config: no YAML line wrapping to hide a match
    if not ships_token_file and "RAY_AUTH_TOKEN" not in everything:
        problems.append("the token never reaches the nodes: no file_mounts entry for ~/.ray/auth_token "
                        "and no RAY_AUTH_TOKEN")
    if "RAY_AUTH_MODE=disabled" in everything:
        problems.append("RAY_AUTH_MODE=disabled turns token authentication off")
    return problems


def shell_syntax_problems(commands: list[str]) -> list[str]:
    """`bash -n` on each command: a quoting slip would only show on the cloud, minutes into `ray up`."""
    problems = []
    for command in commands:
        checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append(f"not valid bash ({checked.stderr.strip()}): {command!r}")
    return problems


def all_commands(config: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    return [command for key in keys for command in config.get(key) or []]


# ---------------------------------------------------------------- KubeRay manifests

def kuberay_problems(documents: list[dict]) -> list[str]:
    """Problems of the RayCluster and RayJob documents of one file (their claims may sit beside them)."""
    claims = {doc["metadata"]["name"]: doc for doc in documents if doc.get("kind") == "PersistentVolumeClaim"}
    problems = []
    for doc in documents:
        if is_kuberay(doc):
            problems += _ray_resource_problems(doc, claims)
        elif doc.get("kind") == "Service" and (doc.get("spec") or {}).get("type") in PUBLIC_SERVICE_TYPES:
            ports = {port.get("port") for port in doc["spec"].get("ports") or []}
            if DASHBOARD_PORT in ports:
                problems.append(f"Service {doc['metadata']['name']} publishes the dashboard port {DASHBOARD_PORT}")
    return problems


def _ray_resource_problems(doc: dict, claims: dict) -> list[str]:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    problems = [] if doc.get("apiVersion") == KUBERAY_API else [
        f"{kind}: apiVersion {doc.get('apiVersion')!r}, expected {KUBERAY_API!r}"]
    if kind not in ("RayCluster", "RayJob"):
        return problems + [f"kind {kind!r} is neither RayCluster nor RayJob"]
    cluster = spec if kind == "RayCluster" else spec.get("rayClusterSpec") or {}
    storage = STORAGE
    if kind == "RayJob":
        entry_problems, storage = entrypoint_problems(spec.get("entrypoint") or "")
        problems += entry_problems + runtime_env_problems(spec.get("runtimeEnvYAML"))
    if not any(_is_gpu_group(group) for group in cluster.get("workerGroupSpecs") or []):
        problems.append(f"{kind}: no worker group has an nvidia.com/gpu limit and maxReplicas > 0")
    if (cluster.get("headGroupSpec") or {}).get("serviceType") in PUBLIC_SERVICE_TYPES:
        problems.append(f"{kind}: the head service type publishes the dashboard; use ClusterIP and port-forward")
    problems += cluster_auth_problems(cluster) + image_version_problems(cluster)
    return problems + (shared_volume_problems(cluster, storage, claims) if storage else [])


def _pods(cluster: dict) -> list[tuple[str, dict]]:
    """(group name, pod spec) of the head, then of every worker group."""
    head = ((cluster.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
    workers = [(group.get("groupName", "?"), (group.get("template") or {}).get("spec") or {})
               for group in cluster.get("workerGroupSpecs") or []]
    return [("head", head), *workers]


def _is_gpu_group(group: dict) -> bool:
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
    return group.get("maxReplicas", 1) > 0 and any(_gpu_limit(container) > 0 for container in containers)


def _gpu_limit(container: dict) -> float:
    return float(((container.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))


def _env(container: dict) -> dict:
    return {item.get("name"): item.get("value") for item in container.get("env") or []}


def cluster_auth_problems(cluster: dict) -> list[str]:
    containers = [c for _, pod in _pods(cluster) for c in pod.get("containers") or []]
    modes = [_env(container).get("RAY_AUTH_MODE") for container in containers]
    problems = ["a Ray container sets RAY_AUTH_MODE=disabled"] if "disabled" in modes else []
    by_operator = (cluster.get("authOptions") or {}).get("mode") == "token"
    by_hand = bool(containers) and all(mode == "token" for mode in modes)
    if not (by_operator or by_hand):
        problems.append("token authentication is off: no authOptions.mode token (KubeRay >= 1.5.1) "
                        "nor RAY_AUTH_MODE=token in every Ray container")
    return problems


def image_version_problems(cluster: dict) -> list[str]:
    version = str(cluster.get("rayVersion") or "")
    if not version:
        return ["no rayVersion"]
    images = [c.get("image", "") for _, pod in _pods(cluster) for c in pod.get("containers") or []]
    tag_of_this_version = re.compile(rf"rayproject/ray:{re.escape(version)}(-|$)")
    return [f"image {image} does not run rayVersion {version}" for image in images
            if image.startswith("rayproject/ray:") and not tag_of_this_version.match(image)]


def entrypoint_problems(entrypoint: str) -> tuple[list[str], str | None]:
    """Problems of a RayJob entrypoint, and the --storage folder it names (None if none)."""
    words = shlex.split(entrypoint)
    pairs = list(zip(words, words[1:]))
    problems = [] if ("evo", "search") in pairs else [f"the entrypoint does not run `evo search`: {entrypoint!r}"]
    if ("--address", "auto") not in pairs and "--address=auto" not in words:
        problems.append(f"the entrypoint does not join the cluster with --address auto: {entrypoint!r}")
    storage = next((b for a, b in pairs if a == "--storage"), None) or next(
        (w.split("=", 1)[1] for w in words if w.startswith("--storage=")), None)
    if storage is None:
        problems.append(f"the entrypoint names no --storage folder: {entrypoint!r}")
    return problems, storage


def runtime_env_problems(runtime_env_yaml: str | None) -> list[str]:
    runtime_env = yaml.safe_load(runtime_env_yaml or "") or {}
    pip = runtime_env.get("pip") or []
    packages = pip.get("packages", []) if isinstance(pip, dict) else pip
    if not any(EVO_REQUIREMENT.match(str(package).strip()) for package in packages):
        return [f"runtimeEnvYAML installs no evo (pip: {packages})"]
    return []


def shared_volume_problems(cluster: dict, storage: str, claims: dict) -> list[str]:
    problems = []
    for group, pod in _pods(cluster):
        volumes = {volume.get("name"): volume for volume in pod.get("volumes") or []}
        mounts = (pod.get("containers") or [{}])[0].get("volumeMounts") or []
        mount = next((m for m in mounts if storage == m.get("mountPath")
                      or storage.startswith(m.get("mountPath", "").rstrip("/") + "/")), None)
        if mount is None:
            problems.append(f"{group}: nothing is mounted at the --storage folder {storage}")
            continue
        claim = (volumes.get(mount.get("name")) or {}).get("persistentVolumeClaim", {}).get("claimName")
        if claim not in claims:
            problems.append(f"{group}: {storage} is not a PersistentVolumeClaim defined in this file ({claim!r})")
        elif "ReadWriteMany" not in claims[claim]["spec"].get("accessModes", []):
            problems.append(f"claim {claim} is not ReadWriteMany: pods on several nodes cannot share it")
    return problems


# ---------------------------------------------------------------- the real files

RAY_UP_FILES = ["aws-gpu.yaml", "gcp-gpu.yaml"]
KUBERAY_FILES = ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"]


def test_every_yaml_in_clusters_is_a_ray_up_config_or_a_kuberay_manifest():
    found = {path.name for path in yaml_files()}
    assert found == set(RAY_UP_FILES + KUBERAY_FILES), "a new file here needs its checks added"
    for path in yaml_files():
        documents = load_documents(path.read_text())
        assert any(is_ray_up(doc) or is_kuberay(doc) for doc in documents), path.name


def test_load_documents_reads_every_document_and_skips_empty_ones():
    text = "---\na: 1\n---\n---\nkind: RayJob\n"
    assert load_documents(text) == [{"a": 1}, {"kind": "RayJob"}]
    assert [doc.get("kind") for doc in documents_of("kuberay-rayjob.yaml")] == ["PersistentVolumeClaim", "RayJob"]


@pytest.mark.parametrize("name", RAY_UP_FILES)
def test_ray_up_config_has_no_problems(name):
    (config,) = documents_of(name)
    assert is_ray_up(config)
    assert ray_up_problems(config) == []
    assert shell_syntax_problems(all_commands(config)) == []


@pytest.mark.parametrize("name", RAY_UP_FILES)
def test_ray_up_config_passes_rays_own_schema(name):
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    (config,) = documents_of(name)
    validate_config(prepare_config(copy.deepcopy(config)))  # raises on a key `ray up` would refuse
    prepared = prepare_config(copy.deepcopy(config))
    # Our start commands replace the provider defaults, whose head command binds the dashboard to 0.0.0.0.
    assert all("0.0.0.0" not in command for command in prepared["head_start_ray_commands"])


def test_rays_schema_check_rejects_an_unknown_key():
    jsonschema = pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    (config,) = documents_of("aws-gpu.yaml")
    config["dashboard_port"] = DASHBOARD_PORT
    with pytest.raises(jsonschema.ValidationError, match="dashboard_port"):
        validate_config(prepare_config(config))


@pytest.mark.parametrize("name", KUBERAY_FILES)
def test_kuberay_manifest_has_no_problems(name):
    documents = documents_of(name)
    assert any(is_kuberay(doc) for doc in documents)
    assert kuberay_problems(documents) == []


def test_the_rayjob_runs_evo_search_on_the_cluster_with_storage_on_the_shared_claim():
    (job,) = [doc for doc in documents_of("kuberay-rayjob.yaml") if doc["kind"] == "RayJob"]
    problems, storage = entrypoint_problems(job["spec"]["entrypoint"])
    assert problems == [] and storage == STORAGE


def test_the_raycluster_documents_how_a_search_installs_evo_without_a_custom_image():
    text = (CLUSTERS / "kuberay-raycluster.yaml").read_text()
    assert "--runtime-env-json" in text and '"evo @ git+' in text
    assert "kubectl port-forward svc/evo-head-svc 8265:8265" in text


def _pinned_versions(pattern: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted(p for p in CLUSTERS.iterdir() if p.is_file()):  # not monitoring/: no Ray in it
        versions = set(re.findall(pattern, path.read_text()))
        if versions:
            found[path.name] = versions
    return found


def test_every_file_pins_one_and_the_same_ray():
    # Ray refuses a node or client of another version, so the configs and recipes must agree.
    pattern = r"(?:RAY_VERSION=|rayVersion: \"|ray\[default\]==|rayproject/ray:)(\d+\.\d+\.\d+)"
    pinned = _pinned_versions(pattern)
    assert set(pinned) >= set(RAY_UP_FILES + KUBERAY_FILES) | {"local-multinode.md"}
    readme = set(re.findall(pattern, (CLUSTERS.parent / "README.md").read_text()))
    assert readme, "the top-level README's cluster section names no Ray version"
    assert len(set().union(readme, *pinned.values())) == 1, (pinned, readme)


def test_every_file_pins_the_torch_the_makefile_installs():
    makefile = (CLUSTERS.parent / "Makefile").read_text()
    (project_torch,) = re.findall(r"^TORCH_SPEC \?= torch==(\S+)$", makefile, flags=re.MULTILINE)
    pinned = _pinned_versions(r"(?:TORCH_VERSION=|torch==)(\d+\.\d+\.\d+)")
    assert set(pinned) >= set(RAY_UP_FILES) | {"kuberay-rayjob.yaml", "local-multinode.md"}
    assert {name: versions for name, versions in pinned.items() if versions != {project_torch}} == {}


# ---------------------------------------------------------------- each check can fail

DROP = object()


def _change(document: dict, path: str, value) -> None:
    """Set (or, with DROP, delete) the value at a dotted path; integers index lists."""
    *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
    for key in parents:
        document = document[key]
    if value is DROP:
        del document[last]
    else:
        document[last] = value


def _break(document: dict, breakage) -> None:
    """A breakage is a function of the document or a (dotted path, new value) pair."""
    if callable(breakage):
        breakage(document)
    else:
        _change(document, *breakage)


def _aws() -> dict:
    (config,) = documents_of("aws-gpu.yaml")
    return config


def _without_gpus(config):
    for node in config["available_node_types"].values():
        node["resources"].pop("GPU", None)


def _gpu_types_off(config):
    for name, node in config["available_node_types"].items():
        if name != config["head_node_type"]:
            node["max_workers"] = 0


def _public_dashboard_host(config):
    config["head_start_ray_commands"][-1] = config["head_start_ray_commands"][-1].replace(
        TOKEN_MODE + " ", "").replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")


def _evo_on_head_only(config):
    install = next(c for c in config["setup_commands"] if PIP_INSTALL_EVO.search(c))
    config["setup_commands"].remove(install)
    config["head_setup_commands"].append(install)


def _worker_without_token_mode(config):
    config["worker_start_ray_commands"] = [c.replace(TOKEN_MODE + " ", "") for c in config["worker_start_ray_commands"]]


OPEN_8000_9000 = {"IpPermissions": [
    {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
OPEN_EVERY_PORT_IPV6 = {"IpPermissions": [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]}


@pytest.mark.parametrize(("breakage", "expected"), [
    (_without_gpus, "no GPU worker type"),
    (_gpu_types_off, "no GPU worker type"),
    (_public_dashboard_host, "bind the dashboard to every interface"),
    (("provider.security_group", OPEN_8000_9000), "opens port 8265 to the internet"),
    (("provider.security_group", OPEN_EVERY_PORT_IPV6), "opens port 8265 to the internet"),
    (("setup_commands.4", "pip install -q torch"), "installs evo on the head"),
    (_evo_on_head_only, "installs evo on the worker"),
    (("setup_commands.2", "sudo mkdir -p /mnt/evo-runs"), "mounts the shared run folder /mnt/evo-runs on the worker"),
    (_worker_without_token_mode, "worker_start_ray_commands: `ray start` without RAY_AUTH_MODE=token"),
    (("file_mounts", {}), "the token never reaches the nodes"),
    (("head_setup_commands.0", "echo 'export RAY_AUTH_MODE=disabled' >> ~/.bashrc"), "RAY_AUTH_MODE=disabled"),
    (("cluster_name", DROP), "missing cluster_name"),
    (("head_node_type", "ray.head.default"), "is not one of available_node_types"),
])
def test_ray_up_check_reports_a_broken_config(breakage, expected):
    config = _aws()
    _break(config, breakage)
    problems = ray_up_problems(config)
    assert any(expected in problem for problem in problems), problems


def test_a_public_dashboard_host_is_accepted_only_with_token_authentication():
    config = _aws()
    config["head_start_ray_commands"][-1] = config["head_start_ray_commands"][-1].replace(
        "--dashboard-host=127.0.0.1", "--dashboard-host 0.0.0.0")
    assert ray_up_dashboard_problems(config) == []
    _public_dashboard_host(config)
    assert len(ray_up_dashboard_problems(config)) == 1


def test_shell_syntax_check_reports_an_unclosed_quote():
    problems = shell_syntax_problems(["echo fine", "pip install 'evo"])
    assert len(problems) == 1 and "pip install 'evo" in problems[0]


def _rayjob() -> tuple[list[dict], dict]:
    documents = documents_of("kuberay-rayjob.yaml")
    return documents, next(doc for doc in documents if doc["kind"] == "RayJob")


CLUSTER = "spec.rayClusterSpec"
HEAD_CONTAINER = f"{CLUSTER}.headGroupSpec.template.spec.containers.0"
GPU_GROUP = f"{CLUSTER}.workerGroupSpecs.0"
GPU_CONTAINER = f"{GPU_GROUP}.template.spec.containers.0"


def _entrypoint(old: str, new: str):
    return lambda job: _change(job, "spec.entrypoint", job["spec"]["entrypoint"].replace(old, new))


@pytest.mark.parametrize(("breakage", "expected"), [
    ((f"{GPU_CONTAINER}.resources.limits", {"cpu": "7"}), "no worker group has an nvidia.com/gpu limit"),
    ((f"{GPU_GROUP}.maxReplicas", 0), "no worker group has an nvidia.com/gpu limit"),
    (_entrypoint("--address auto", ""), "--address auto"),
    (("spec.entrypoint", "python train.py --address auto --storage /mnt/evo-runs"), "does not run `evo search`"),
    (_entrypoint("--storage /mnt/evo-runs", "--storage /data/runs"),
     "head: nothing is mounted at the --storage folder /data/runs"),
    ((f"{GPU_CONTAINER}.volumeMounts", []), "gpu: nothing is mounted at the --storage folder /mnt/evo-runs"),
    ((f"{CLUSTER}.authOptions", DROP), "token authentication is off"),
    ((f"{HEAD_CONTAINER}.env", [{"name": "RAY_AUTH_MODE", "value": "disabled"}]), "RAY_AUTH_MODE=disabled"),
    ((f"{CLUSTER}.headGroupSpec.serviceType", "LoadBalancer"), "publishes the dashboard"),
    (("apiVersion", "ray.io/v1alpha1"), "apiVersion 'ray.io/v1alpha1'"),
    ((f"{GPU_CONTAINER}.image", "rayproject/ray:2.40.0-py311-gpu"), "does not run rayVersion 2.60.0"),
    (("spec.runtimeEnvYAML", "pip:\n  - torch==2.13.0\n  - evolution\n"), "runtimeEnvYAML installs no evo"),
])
def test_kuberay_check_reports_a_broken_rayjob(breakage, expected):
    documents, job = _rayjob()
    _break(job, breakage)
    problems = kuberay_problems(documents)
    assert any(expected in problem for problem in problems), problems


def test_kuberay_check_wants_the_shared_claim_read_write_many_and_defined_beside_it():
    documents, _ = _rayjob()
    claim = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")
    claim["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert any("not ReadWriteMany" in problem for problem in kuberay_problems(documents))
    without_claim = [doc for doc in documents if doc is not claim]
    assert any("not a PersistentVolumeClaim defined in this file" in p for p in kuberay_problems(without_claim))


def test_kuberay_check_reports_a_service_that_publishes_the_dashboard():
    documents = documents_of("kuberay-raycluster.yaml") + [{"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "evo-dashboard"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 8265}]}}]
    assert kuberay_problems(documents) == ["Service evo-dashboard publishes the dashboard port 8265"]


# ---------------------------------------------------------------- the Markdown

def test_local_recipe_keeps_the_dashboard_local_and_the_token_on():
    text = (CLUSTERS / "local-multinode.md").read_text()
    for step in ("ray get-auth-token --generate", "~/.ray/auth_token", "export RAY_AUTH_MODE=token",
                 "ray start --head --port 6379 --dashboard-host 127.0.0.1", "ray start --address HEAD:6379",
                 "RAY_AUTH_MODE=token ray status",
                 "RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 -- \\\n"
                 "    evo search --address auto --storage /shared/runs"):
        assert step in text, step
    assert not PUBLIC_DASHBOARD_HOST.search(text)


def test_readme_index_names_every_file_in_clusters():
    index = (CLUSTERS / "README.md").read_text()
    missing = [path.name for path in CLUSTERS.iterdir() if path.name != "README.md" and path.name not in index]
    assert missing == []


def test_readme_section_covers_cluster_runs_and_the_authenticated_dashboard():
    text = (CLUSTERS.parent / "README.md").read_text()
    for needed in ("## Run on a cluster", "## Watching a search in the Ray dashboard", "ray up clusters/",
                   "ray job submit --address http://127.0.0.1:8265 -- \\\n    evo search --address auto",
                   "ray dashboard clusters/aws-gpu.yaml", "Authorization: Bearer <token>",
                   "RAY_AUTH_MODE=token ray status", "~/.ray/auth_token", "kubectl port-forward"):
        assert needed in text, needed
