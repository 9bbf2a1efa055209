"""The local stack (``compose.yaml``, ``deploy/compose/``).

Checked without starting anything: the compose files against the
compose-spec schema and as the compose tool resolves them; the Prometheus
configuration and alert rules with ``promtool``; the Grafana dashboard's
structure, and every PromQL expression in it (fed to ``promtool check rules``
as recording rules).

Then started, with ``deploy/compose/offline.yaml`` (no registry is reachable
in CI: PostgreSQL and Prometheus are built from Debian's packages on the
local base image, and Grafana, which Debian does not package, is not
started): the API, PostgreSQL and Prometheus under a project name of their
own, on free loopback ports. A house is priced; its record must be in
PostgreSQL's prediction log with the price ``make_prediction`` gives, and
Prometheus must scrape the API (target up, ``predict_houses_total`` and the
drift gauges there). Every metric the dashboard and the alerts name must be
one the running API exposes. The stack is always removed with its volumes.

Compose tool: ``docker compose`` where a Docker engine answers, else
``podman-compose`` (from PyPI, ``deploy/requirements-test.txt``). Without
them or Debian's ``promtool``, these tests skip, and fail with
REQUIRE_DEPLOY=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml
from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from api.tests.tooling import unavailable
from api.tests.tooling import works as _works
from regression_model.config.core import get_config
from regression_model.data import load_dataset
from regression_model.predict import make_prediction
from regression_model.scoring.schema import model_fields
from testkit import free_port

pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
OFFLINE_FILE = ROOT / "deploy" / "compose" / "offline.yaml"
LOCAL_ENV = ROOT / "deploy" / "compose" / "local.env"
PROMETHEUS_DIR = ROOT / "deploy" / "compose" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "compose" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "house-prices.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "house-prices.yaml"
STARTED = ("api", "postgres", "prometheus")
#: Grafana's built-in variables, replaced by a duration for promtool.
GRAFANA_RANGES = ("$__rate_interval", "$__interval", "$__range")
#: Bounds: building the three images (the API's layers are usually cached by
#: `tox -e container`), the stack getting ready, a record reaching PostgreSQL,
#: Prometheus showing a scrape (5 s interval) and a drift refresh (30 s cache).
BUILD_TIMEOUT = 1500.0
READY_TIMEOUT = 180.0
RECORD_TIMEOUT = 30.0
SCRAPE_TIMEOUT = 120.0


def _unavailable(reason: str) -> NoReturn:
    unavailable(reason, required_by="REQUIRE_DEPLOY")


def first_test_house() -> dict[str, Any]:
    """test.csv's first house as a client sends it (empty fields left out)."""
    row = load_dataset(get_config().app.test_data_file).iloc[0]
    return {str(key): value.item() if hasattr(value, "item") else value
            for key, value in row.dropna().items()}  # fmt: skip


def _run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The compose command: docker compose on a Docker engine, else podman-compose."""
    docker = shutil.which("docker")
    if docker and _works([docker, "info"]) and _works([docker, "compose", "version"]):
        return [docker, "compose"]
    podman_compose = shutil.which("podman-compose")
    if podman_compose and shutil.which("podman") and _works(["podman", "info"]):
        return [podman_compose]
    _unavailable("neither `docker compose` (with an engine) nor podman-compose with podman works")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _unavailable("promtool is not installed (Debian: apt-get install prometheus)")
    assert path is not None
    return path


def published(port: str | dict[str, Any]) -> tuple[str, str, str]:
    """(host address, host port, container port) of a `ports` entry, in the short
    form (podman-compose's `config`) or the long one (docker compose's)."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["published"]), str(port["target"])
    host_ip, host_port, container_port = str(port).rsplit(":", 2)
    return host_ip, host_port, container_port


def local_env() -> dict[str, str]:
    """deploy/compose/local.env, read as compose reads an env_file."""
    return {key: value or "" for key, value in dotenv_values(LOCAL_ENV).items()}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows too."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions() -> dict[str, str]:
    """The dashboard's PromQL, by panel title and refId, Grafana variables resolved."""
    found = {}
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable in GRAFANA_RANGES:
                expr = expr.replace(variable, "5m")
            found[f"{panel['title']} ({target['refId']})"] = expr
    return found


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
#: A name not followed by "(" (those are functions); digits never start one.
_NAME = re.compile(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()")
# group_left and group_right may come without a label list: keywords, not metrics.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (once strings, label
    matchers, ranges and grouping labels are taken out, the names that are
    neither functions nor keywords)."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def test_metric_names_are_read_from_promql() -> None:
    """The helper the exposure check relies on, on the shapes the files use."""
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route="/a'
        ' b",status=~"5.."}[5m]))) > 0.1 and on() max(drift_enough_houses) == 1 or time() - '
        "max(drift_report_timestamp_seconds) > 90 * 86400"
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "drift_enough_houses",
        "drift_report_timestamp_seconds",
    }
    assert metric_names("max by (c) (a_metric) > on() group_left max(b_metric)") == {
        "a_metric",
        "b_metric",
    }


# --- the files, checked as they are ---------------------------------------------------


def test_compose_files_follow_the_compose_spec() -> None:
    _run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE_FILE), str(OFFLINE_FILE)],
        timeout=120,
    )  # fmt: skip


def test_compose_resolves_the_stack_as_documented(compose: list[str]) -> None:
    """What the compose tool makes of both files: the four services, every
    port on loopback, pinned official images (replaced offline by local
    builds), the API on PostgreSQL with the credentials PostgreSQL is given."""
    env = {**os.environ, "API_PORT": "18001"}
    config = yaml.safe_load(
        _run([*compose, "-f", str(COMPOSE_FILE), "config"], timeout=120, env=env)
    )
    services = config["services"]
    assert set(services) == {"api", "postgres", "prometheus", "grafana"}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert published(port)[0] == "127.0.0.1", (name, port)
    assert published(services["api"]["ports"][0]) == ("127.0.0.1", "18001", "8001")
    for name in ("postgres", "prometheus", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"docker\.io/[\w/.-]+:v?\d+(\.\d+)+", image), image  # pinned
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["api"] and "healthcheck" in services["postgres"]

    credentials = local_env()
    url = make_url(credentials["DATABASE_URL"])
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "postgres",
        5432,
        credentials["POSTGRES_USER"],
        credentials["POSTGRES_PASSWORD"],
        credentials["POSTGRES_DB"],
    )

    offline = yaml.safe_load(
        _run([*compose, "-f", str(COMPOSE_FILE), "-f", str(OFFLINE_FILE), "config"], timeout=120)
    )["services"]
    for name in ("postgres", "prometheus"):
        assert Path(offline[name]["build"]["context"]).resolve() == (
            ROOT / "deploy" / "compose" / "offline" / name
        )
        assert offline[name]["image"].startswith("localhost/")
    assert offline["grafana"]["image"] == services["grafana"]["image"]


def test_prometheus_config_and_alert_rules_are_valid(promtool: str) -> None:
    config = PROMETHEUS_DIR / "prometheus.yml"
    output = _run([promtool, "check", "config", str(config)], timeout=60)
    assert "SUCCESS" in output and "alerts.yml" in output  # the rule file was found and read
    _run([promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")], timeout=60)


def test_alerts_fire_on_their_series_and_stay_quiet_below_them(promtool: str) -> None:
    """promtool's unit tests of the alert rules (alerts_test.yml): each alert
    fires after its `for:` on the series that should raise it, and not just
    short of its threshold (a stale model, drift, the database down, ...)."""
    output = _run([promtool, "test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml")], timeout=60)
    assert "SUCCESS" in output
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts_test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (PROMETHEUS_DIR / "alerts.yml").read_text()))
    assert tested <= defined, f"tests of alerts that do not exist: {tested - defined}"
    assert {"ModelStale", "FeaturesDrifting", "PredictedPricesShifted"} <= tested


def test_dashboard_structure_matches_the_provisioning() -> None:
    board = dashboard()
    everything = panels(board)
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(datasources) == 1 and datasources[0]["type"] == "prometheus"
    uid = datasources[0]["uid"]
    assert datasources[0]["url"] == "http://prometheus:9090"  # the compose service
    drawn = [panel for panel in everything if panel["type"] != "row"]
    assert drawn
    for panel in drawn:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    compose_file = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = compose_file["services"]["grafana"]["volumes"]
    assert f"./{DASHBOARD.parent.relative_to(ROOT)}:{providers[0]['options']['path']}:ro,z" in (
        mounts
    )
    # What the brief of the dashboard asks for, each in at least one query.
    queries = " ".join(expressions().values())
    for metric in (
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "predict_validation_failures_total",
        "predict_price_dollars_bucket",
        "drift_feature_psi",
        "drift_features_drifting",
        "prediction_log_database_up",
        "performance_rmsle",
        "performance_range_coverage",
    ):
        assert metric in queries, metric


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule's; an invalid one fails."""
    queries = expressions()
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": expr}
                    for n, expr in enumerate(queries.values())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    output = _run([promtool, "check", "rules", str(path)], timeout=60)
    assert f"{len(queries)} rules found" in output
    broken = tmp_path / "broken.yml"
    rules["groups"][0]["rules"].append({"record": "broken", "expr": "sum by (le (rate(x[5m]))"})
    broken.write_text(yaml.safe_dump(rules))
    refused = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True)
    assert refused.returncode != 0


# --- the stack, started ---------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    compose: list[str]
    env: dict[str, str]
    api: str
    prometheus: str

    def command(self, *args: str) -> list[str]:
        # A project name of its own: `down -v` must never touch a stack the user
        # runs from this checkout (project "house-prices").
        project = ["-p", self.env["COMPOSE_PROJECT_NAME"]]
        return [*self.compose, *project, "-f", str(COMPOSE_FILE), "-f", str(OFFLINE_FILE), *args]

    def run(self, *args: str, timeout: float = 120) -> str:
        return _run(self.command(*args), timeout=timeout, env=self.env)

    def logs(self) -> str:
        try:
            return self.run("logs", timeout=60)[-6000:]
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"

    def sql(self, query: str) -> list[list[str]]:
        """Rows from psql in the PostgreSQL container (unaligned, tab-separated)."""
        credentials = local_env()
        output = self.run(
            "exec", "-T", "postgres", "psql", "--no-psqlrc", "--tuples-only", "--no-align",
            "--field-separator=\t", "--set=ON_ERROR_STOP=1",
            "--username", credentials["POSTGRES_USER"], "--dbname", credentials["POSTGRES_DB"],
            "--command", query,
        )  # fmt: skip
        return [line.split("\t") for line in output.splitlines() if line]


def _wait(what: str, check: Any, timeout: float, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{stack.logs()}")


@pytest.fixture(scope="module")
def stack(compose: list[str]) -> Iterator[Stack]:
    api_port, prometheus_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": f"house-prices-test-{uuid.uuid4().hex[:8]}",
        "API_PORT": str(api_port),
        "PROMETHEUS_PORT": str(prometheus_port),
        # podman: build in Docker's image format, as `tox -e container` does, so
        # its cached layers are reused (and the image keeps its HEALTHCHECK).
        "BUILDAH_FORMAT": "docker",
    }
    running = Stack(
        compose, env, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prometheus_port}"
    )
    try:
        running.run("build", *STARTED, timeout=BUILD_TIMEOUT)
        running.run("up", "-d", *STARTED, timeout=READY_TIMEOUT)
        _wait(
            "the API ready",
            lambda: httpx.get(running.api + "/api/v1/ready", timeout=5).status_code == 200,
            READY_TIMEOUT,
            running,
        )
        yield running
    finally:
        subprocess.run(
            running.command("down", "-v", "--timeout", "30"),
            cwd=ROOT, env=env, capture_output=True, timeout=180,
        )  # fmt: skip


@pytest.fixture(scope="module")
def priced(stack: Stack) -> dict[str, Any]:
    """A real house and an impossible one, sent to the stack's API."""
    house = first_test_house()
    response = httpx.post(
        stack.api + "/api/v1/predict",
        json={"inputs": [house, {"OverallQual": 11}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {
        "house": house,
        "response": response.json(),
        "request_id": response.headers["X-Request-ID"],
    }


def test_a_priced_house_is_in_the_postgresql_prediction_log(
    stack: Stack, priced: dict[str, Any]
) -> None:
    expected = make_prediction(input_data=[priced["house"]])["predictions"][0]
    assert priced["response"]["predictions"] == [expected, None]
    request_id = priced["request_id"]
    assert re.fullmatch(r"[0-9a-f]+", request_id)
    rows = _wait(
        "the records in PostgreSQL",
        lambda: stack.sql(
            'SELECT "row", price, inputs, errors, model_version FROM predictions '
            f"WHERE request_id = '{request_id}' ORDER BY \"row\""
        ),
        RECORD_TIMEOUT,
        stack,
    )
    assert len(rows) == 2, rows
    (row, price, inputs, errors, version), rejected = rows
    assert (row, errors, version) == ("0", "", priced["response"]["version"])
    # PostgreSQL prints a double in its shortest exact form: the same bits.
    assert float(price) == expected
    # The log keeps the model's fields only, under the model's names.
    assert json.loads(inputs) == model_fields(priced["house"])[0]
    assert rejected[1] == ""  # no price
    assert json.loads(rejected[3])[0]["field"] == "OverallQual"


def _query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(stack.prometheus + "/api/v1/query", params={"query": promql}, timeout=10)
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_the_api(stack: Stack, priced: dict[str, Any]) -> None:
    def target_up() -> bool:
        targets = httpx.get(stack.prometheus + "/api/v1/targets", timeout=10).json()
        active = targets["data"]["activeTargets"]
        return [(t["labels"]["job"], t["health"]) for t in active] == [("house-prices-api", "up")]

    _wait("the API target up in Prometheus", target_up, SCRAPE_TIMEOUT, stack)
    priced_total = _wait(
        "predict_houses_total in Prometheus",
        lambda: _query(stack, 'sum(predict_houses_total{outcome="priced"}) > 0'),
        SCRAPE_TIMEOUT,
        stack,
    )
    assert float(priced_total[0]["value"][1]) >= 1
    # Each worker refreshes its drift report when a scrape finds it older than
    # DRIFT_CACHE_SECONDS (30 s): the house shows up within about that.
    compared = _wait(
        "the drift gauges in Prometheus, counting the house",
        lambda: _query(stack, "max(drift_houses_compared) >= 1"),
        SCRAPE_TIMEOUT,
        stack,
    )
    assert float(compared[0]["value"][1]) >= 1
    assert _query(stack, 'drift_feature_psi{feature="1stFlrSF"}')
    assert _query(stack, "drift_features_drifting")
    # The alert rules are loaded and evaluated.
    rules = httpx.get(stack.prometheus + "/api/v1/rules", timeout=10).json()
    loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert loaded == set(alert_expressions())


def test_every_metric_the_dashboard_and_alerts_name_is_exposed(
    stack: Stack, priced: dict[str, Any]
) -> None:
    def exposed() -> set[str]:
        text = httpx.get(stack.api + "/metrics", timeout=10).text
        names = {
            sample.name
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        wanted = {"drift_houses_compared", "performance_outcomes_matched"}
        return names if wanted <= names else set()

    names = _wait("the drift and performance gauges in /metrics", exposed, SCRAPE_TIMEOUT, stack)
    used = {name: metric_names(expr) for name, expr in expressions().items()}
    assert all(used.values())  # every panel's query names at least one metric
    # `up` is Prometheus's own (whether the scrape worked), not the API's.
    used |= {f"alert {name}": metric_names(e) - {"up"} for name, e in alert_expressions().items()}
    missing = {where: sorted(found - names) for where, found in used.items() if found - names}
    assert not missing, missing


def test_down_keeps_the_prediction_log_and_up_brings_it_back(
    stack: Stack, priced: dict[str, Any]
) -> None:
    """`down` without `-v`, then `up`: new containers on the same volumes.
    PostgreSQL starts from the data there (no second initialisation), and the
    API writes to it again. Last: it replaces every container of the stack."""
    count = f"SELECT count(*) FROM predictions WHERE request_id = '{priced['request_id']}'"
    _wait("the first records", lambda: stack.sql(count) == [["2"]], RECORD_TIMEOUT, stack)
    stack.run("down", "--timeout", "30", timeout=READY_TIMEOUT)
    stack.run("up", "-d", *STARTED, timeout=READY_TIMEOUT)
    _wait(
        "the API ready again",
        lambda: httpx.get(stack.api + "/api/v1/ready", timeout=5).status_code == 200,
        READY_TIMEOUT,
        stack,
    )
    assert stack.sql(count) == [["2"]]
    response = httpx.post(
        stack.api + "/api/v1/predict", json={"inputs": [first_test_house()]}, timeout=30
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    again = f"SELECT count(*) FROM predictions WHERE request_id = '{request_id}'"
    _wait("a record written after up", lambda: stack.sql(again) == [["1"]], RECORD_TIMEOUT, stack)
