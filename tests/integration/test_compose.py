"""docker-compose.yml is valid (checked offline: no Docker engine runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # runs docker-compose
def test_compose_file_is_valid() -> None:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed; .ci/run installs Debian's package")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "JWT_SECRET": "x" * 40},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # runs docker-compose
def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode != 0 and "JWT_SECRET" in result.stderr


def test_compose_runs_the_commands_the_readme_names() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    commands = {" ".join(service["command"][:2]) for service in compose["services"].values() if "command" in service}
    intake_commands = {c for c in commands if c.startswith("intake ")}
    assert intake_commands == {"intake serve", "intake worker", "intake beat"}
    for command in intake_commands:
        assert command in readme, f"the README does not say how `{command}` runs"
