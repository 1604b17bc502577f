"""The agent server is one of the processes `make run` and the compose stack start, and the
image carries the agent."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_and_compose_start_the_agent_server():
    from backend.runner import PROCESSES

    assert PROCESSES["agent-api"][:3] == ["python", "-m", "backend.meshconfig.agent_server"]
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    service = compose["services"]["agent-api"]
    assert service["command"][:3] == ["python", "-m", "backend.meshconfig.agent_server"]
    assert "8001:8001" in service["ports"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY agent ./agent" in dockerfile


def test_the_agent_is_a_console_script():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["canopy-agent"] == "agent.cli:main"
