"""``.circleci/config.yml`` is valid and wires the release path safely.

The schema check uses the CircleCI JSON schema that ``check-jsonschema``
ships (offline). It runs in ``tox -e checks``, which sets
``REQUIRE_CIRCLECI_SCHEMA=1``; environments without ``check-jsonschema`` skip
only that test. The structural checks need nothing but strictyaml: every job
a workflow names exists, every step is a built-in or a defined command,
publishing and deployment require the test jobs and run only for version
tags, publishing neither trains nor builds, and no credential is in the file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from strictyaml import dirty_load

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / ".circleci" / "config.yml"
VERSION = (ROOT / "regression_model" / "VERSION").read_text().strip()

TEST_JOBS = {"test_package", "test_app", "checks"}
PUBLISH_JOB = "publish_model"
DEPLOY_JOBS = {"build_container", "deploy_api"}
BUILT_IN_STEPS = {
    "checkout",
    "run",
    "save_cache",
    "restore_cache",
    "store_artifacts",
    "store_test_results",
    "persist_to_workspace",
    "attach_workspace",
    "setup_remote_docker",
    "add_ssh_keys",
    "when",
    "unless",
}
SECRET_NAMES = ("TWINE_PASSWORD", "TWINE_USERNAME", "PIP_INDEX_URL", "HEROKU_API_KEY")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = dirty_load(CONFIG_FILE.read_text(), allow_flow_style=True).data
    assert isinstance(data, dict)
    return data


def _workflow_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every job of every workflow: name -> its settings (requires, filters, ...)."""
    found: dict[str, dict[str, Any]] = {}
    for workflow in config["workflows"].values():
        if not isinstance(workflow, dict):  # `version:` inside workflows (2.0 style)
            continue
        for entry in workflow["jobs"]:
            name, settings = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            found[name] = settings or {}
    return found


def _required_closure(jobs: dict[str, dict[str, Any]], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(jobs[name].get("requires", []))
    while todo:
        job = todo.pop()
        if job not in seen:
            seen.add(job)
            todo.extend(jobs.get(job, {}).get("requires", []))
    return seen


def _circleci_regex(pattern: str) -> re.Pattern[str]:
    assert pattern.startswith("/") and pattern.endswith("/"), f"{pattern} is not a /regex/"
    return re.compile(pattern[1:-1])


def _job_text(config: dict[str, Any], job: str) -> str:
    return repr(config["jobs"][job])


def _run_commands(config: dict[str, Any], job: str) -> str:
    """The shell commands of a job's ``run`` steps, one per line."""
    commands = []
    for step in config["jobs"][job]["steps"]:
        if isinstance(step, dict) and "run" in step:
            run = step["run"]
            commands.append(run if isinstance(run, str) else run["command"])
    return "\n".join(commands)


def test_config_matches_the_circleci_schema(tmp_path: Path) -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        if os.environ.get("REQUIRE_CIRCLECI_SCHEMA") == "1":
            pytest.fail("check-jsonschema is not installed but REQUIRE_CIRCLECI_SCHEMA=1")
        pytest.skip("check-jsonschema not installed here; `tox -e checks` runs this test")

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.circle-ci",
             str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    result = validate(CONFIG_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator really checks: an unknown executor key is refused.
    broken = tmp_path / "config.yml"
    broken.write_text(
        CONFIG_FILE.read_text().replace("resource_class: medium", "resource_clas: medium", 1)
    )
    assert validate(broken).returncode != 0


def test_every_job_a_workflow_names_exists(config: dict[str, Any]) -> None:
    jobs = _workflow_jobs(config)
    assert set(jobs) <= set(config["jobs"]), set(jobs) - set(config["jobs"])
    for name, settings in jobs.items():
        missing = set(settings.get("requires", [])) - set(jobs)
        assert not missing, f"{name} requires {missing}, which no workflow runs"
    unused = set(config["jobs"]) - set(jobs)
    assert not unused, f"jobs no workflow runs: {unused}"


def test_every_step_and_executor_is_defined(config: dict[str, Any]) -> None:
    commands = set(config.get("commands", {}))
    executors = set(config.get("executors", {}))
    for name, job in config["jobs"].items():
        if "executor" in job:
            assert job["executor"] in executors, f"{name}: unknown executor {job['executor']}"
        for step in job["steps"]:
            command = step if isinstance(step, str) else next(iter(step))
            assert command in BUILT_IN_STEPS | commands, f"{name}: unknown step {command!r}"


def test_test_jobs_run_on_every_push(config: dict[str, Any]) -> None:
    jobs = _workflow_jobs(config)
    for name in TEST_JOBS | {"release_e2e"}:
        assert name in jobs, f"no workflow runs {name}"
        filters = jobs[name].get("filters", {})
        assert "branches" not in filters, f"{name} must run on every branch"
        # A tag pipeline runs only jobs with a tag filter: the tests must run for
        # the release tag too, or the jobs that require them never start.
        assert _circleci_regex(filters["tags"]["only"]).search(f"v{VERSION}")


def test_publish_and_deploy_require_the_tests(config: dict[str, Any]) -> None:
    jobs = _workflow_jobs(config)
    assert TEST_JOBS | {"release_e2e"} <= _required_closure(jobs, PUBLISH_JOB)
    for name in DEPLOY_JOBS:
        closure = _required_closure(jobs, name)
        assert closure >= TEST_JOBS, f"{name} does not require {TEST_JOBS - closure}"
        assert PUBLISH_JOB in closure, f"{name} would deploy a version that was not published"


def test_release_jobs_run_only_for_version_tags(config: dict[str, Any]) -> None:
    jobs = _workflow_jobs(config)
    for name in DEPLOY_JOBS | {PUBLISH_JOB}:
        filters = jobs[name]["filters"]
        assert filters["branches"]["ignore"] == "/.*/", f"{name} must not run for branches"
        tags = _circleci_regex(filters["tags"]["only"])
        assert tags.search(f"v{VERSION}"), f"{name} would not run for tag v{VERSION}"
        for other in ("latest", f"v{VERSION}-rc1", f"x{VERSION}", "v1.2"):
            assert not tags.search(other), f"{name} would run for tag {other}"


def test_publishing_uploads_the_tested_wheel_without_training(config: dict[str, Any]) -> None:
    build_job = _job_text(config, "test_package")
    assert "tox -e publish_model -- --skip-upload" in build_job
    assert "'dist'" in repr(config["jobs"]["test_package"]["steps"][-1])
    assert "attach_workspace" in _job_text(config, PUBLISH_JOB)
    publish = _run_commands(config, PUBLISH_JOB)
    assert publish == "tox -e publish_model -- --upload-only"
    for forbidden in ("train", "test_package", "build", "--skip-upload"):
        assert forbidden not in publish, f"{PUBLISH_JOB} must not {forbidden}"


def test_the_image_installs_the_published_version_from_the_private_index(
    config: dict[str, Any],
) -> None:
    build = _run_commands(config, "build_container")
    assert '--build-arg "MODEL_VERSION=${VERSION}"' in build
    assert 'VERSION="$(cat regression_model/VERSION)"' in build
    assert "--secret id=pip_index_url,env=PIP_INDEX_URL" in build
    assert "--build-arg PIP_INDEX_URL" not in build, "credentials would stay in the image"
    assert "regression_model.__version__" in build, "the image's model version is not checked"


def test_credentials_come_from_contexts_not_the_repository(config: dict[str, Any]) -> None:
    text = CONFIG_FILE.read_text()
    for secret in SECRET_NAMES:
        assert not re.search(rf"^\s*{secret}\s*:", text, flags=re.MULTILINE), (
            f"{secret} is set in the config: it belongs in a CircleCI context"
        )
    assert not re.search(r"https?://[^/\s:@]+:[^/\s@]+@", text), "a URL with credentials"
    jobs = _workflow_jobs(config)
    assert jobs[PUBLISH_JOB]["context"] == "private-package-index"
    for name in DEPLOY_JOBS:
        assert "api-deploy" in jobs[name]["context"]
    for name in TEST_JOBS:
        assert "context" not in jobs[name], f"{name} needs no secrets"


def test_pip_and_tox_are_cached_by_their_pins(config: dict[str, Any]) -> None:
    setup = repr(config["commands"]["setup_tox"])
    save = repr(config["commands"]["save_tox_cache"])
    assert "restore_cache" in setup and "save_cache" in save
    for key_part in ('checksum "constraints.txt"', 'checksum "tox.ini"'):
        assert key_part in setup and key_part in save
    # tox.ini requires tox-uv: installed beside tox, not provisioned on every job
    assert "-c constraints.txt tox tox-uv" in setup
    assert "~/.cache/pip" in save and ".tox" in save  # uv's cache is .tox/.uv-cache


def test_a_scheduled_workflow_tests_the_newest_allowed_dependencies(
    config: dict[str, Any],
) -> None:
    scheduled = [
        workflow
        for workflow in config["workflows"].values()
        if isinstance(workflow, dict) and "triggers" in workflow
    ]
    assert scheduled, "no scheduled workflow"
    jobs = {
        entry if isinstance(entry, str) else next(iter(entry))
        for workflow in scheduled
        for entry in workflow["jobs"]
    }
    assert "newest_dependencies" in jobs
    steps = config["jobs"]["newest_dependencies"]["steps"]
    runs = [s["run"] for s in steps if isinstance(s, dict) and isinstance(s.get("run"), dict)]
    testing = [r for r in runs if "tox -e" in r["command"]]
    assert testing and testing[0]["environment"]["CONSTRAINTS"] == "/dev/null"
    assert {"test_package", "test_app", "checks"} <= set(
        testing[0]["command"].split("-e", 1)[1].split()[0].split(",")
    )
