"""The model report: its page and plots served as `regression-model report`
wrote them beside the artifact, linked from the model card and the page;
refused when missing, stale or changed."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app.core.settings import Settings
from api.app.main import create_app
from api.tests.helpers import wait_until_ready
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, get_config, trained_model_dir
from regression_model.scoring.artifact import ArtifactPaths
from regression_model.scoring.report_files import HTML_FILE, INDEX_FILE, PLOTS, style_source

REPORT = ArtifactPaths.for_version(get_config(), directory=trained_model_dir()).report


@pytest.fixture(scope="module", autouse=True)
def _report_is_written() -> None:
    if not (REPORT / INDEX_FILE).exists():
        pytest.fail(f"no report in {REPORT}: run `regression-model report` (tox does)")


def test_the_card_links_every_plot_and_each_is_the_file_written(client: TestClient) -> None:
    card = client.get("/api/v1/model").json()
    report = card["report"]
    assert report["html"] == "/api/v1/model/report/"
    assert [plot["name"] for plot in report["plots"]] == list(PLOTS)
    for plot in report["plots"]:
        response = client.get(plot["url"])
        assert response.status_code == 200, plot
        assert response.headers["content-type"] == "image/png"
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert response.content == (REPORT / plot["name"]).read_bytes()
        assert plot["title"] == PLOTS[plot["name"]]


def test_the_report_page_is_served_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/api/v1/model/report/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page == (REPORT / HTML_FILE).read_text()
    assert "Model report" in page and "baseline" in page and "Error by slice" in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "img-src 'self' data:" in policy
    assert f"style-src {style_source(page)}" in policy and "unsafe-inline" not in policy
    for image in re.findall(r'<img src="([^"]+)"', page):  # relative: served beside the page
        assert client.get(f"/api/v1/model/report/{image}").status_code == 200, image


def test_the_page_links_the_report_and_its_plots(client: TestClient) -> None:
    page = client.get("/").text
    assert 'href="/api/v1/model/report/" id="report-link"' in page
    for name in PLOTS:
        assert f'href="/api/v1/model/report/{name}"' in page


@pytest.mark.parametrize("name", ["nope.png", "report.json", "..%2Fregression_model_v0.json"])
def test_only_the_report_plots_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"/api/v1/model/report/{name}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "path"


def _service_with(directory: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv(ARTIFACT_DIR_ENV_VAR, str(directory))
    return TestClient(create_app(Settings()))


def _copy_artifact(target: Path, with_report: bool) -> None:
    paths = ArtifactPaths.for_version(get_config(), directory=trained_model_dir())
    for path in (paths.manifest, paths.tables, paths.pickle):
        shutil.copy(path, target / path.name)
    if with_report:
        shutil.copytree(paths.report, target / paths.report.name)


def _assert_no_report(client: TestClient, reason: str) -> None:
    wait_until_ready(client)
    assert client.get("/api/v1/model").json()["report"] is None
    response = client.get("/api/v1/model/report/")
    assert response.status_code == 404
    assert "regression-model report" in response.json()["errors"][0]["message"]
    assert client.get("/api/v1/model/report/baselines.png").status_code == 404
    assert "No report was written for this model" in client.get("/").text


def test_without_a_report_the_service_works_and_says_how_to_write_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_artifact(tmp_path, with_report=False)
    with _service_with(tmp_path, monkeypatch) as client:
        _assert_no_report(client, "missing")
        assert client.post("/api/v1/predict", json={"inputs": [{}, {"GrLivArea": 1500}]}).json()[
            "predictions"
        ][1]


def test_a_report_of_another_training_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_artifact(tmp_path, with_report=True)
    index_file = tmp_path / REPORT.name / INDEX_FILE
    index = json.loads(index_file.read_text())
    index_file.write_text(json.dumps({**index, "manifest_sha256": "0" * 64}))
    with _service_with(tmp_path, monkeypatch) as client:
        _assert_no_report(client, "stale")


def test_a_plot_changed_after_the_report_was_written_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_artifact(tmp_path, with_report=True)
    plot = tmp_path / REPORT.name / "baselines.png"
    plot.write_bytes(plot.read_bytes() + b"!")
    assert (
        hashlib.sha256(plot.read_bytes()).hexdigest()
        not in (tmp_path / REPORT.name / INDEX_FILE).read_text()
    )
    with _service_with(tmp_path, monkeypatch) as client:
        _assert_no_report(client, "changed")
