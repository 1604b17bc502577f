"""Production settings: `check --deploy` clean with a production environment, a CSP on every
page, no browsable API, API docs behind login."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).parents[2]


def test_check_deploy_is_clean_in_production():
    env = {
        **os.environ,
        "DEBUG": "false",
        "CANOPY_PUBLIC_URL": "https://canopy.example.com",
        "ALLOWED_HOSTS": "canopy.example.com",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "CANOPY_METRICS_TOKEN": "scrape-secret",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_pages_carry_a_content_security_policy(client, tenants):
    client.force_login(tenants.owner)
    header = client.get("/settings/tokens")["Content-Security-Policy"]
    policy = dict(d.strip().split(" ", 1) for d in header.split(";") if d.strip())
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"


def test_no_inline_scripts_or_handlers_in_canopys_templates():
    import re

    for template in (ROOT / "web" / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+=", text), template


def test_the_browsable_api_is_off(api, tenants):
    api.force_login(tenants.owner)
    response = api.get("/api/v1/orgs", HTTP_ACCEPT="text/html")
    assert response.status_code in (200, 406)
    assert not response.content.lstrip().startswith(b"<")
