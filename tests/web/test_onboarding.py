"""The onboarding snippets name this Canopy's public address (CANOPY_PUBLIC_URL)."""

import re
import subprocess
from html import unescape

import pytest

pytestmark = pytest.mark.django_db


def test_the_public_url_not_the_browsers_host(client, tenants, settings):
    settings.PUBLIC_URL = "https://canopy.mesh.example.com"
    client.force_login(tenants.owner)
    html = client.get("/settings/tokens").content.decode()
    assert "export CANOPY_URL='https://canopy.mesh.example.com'" in html
    assert "service: canopy.mesh.example.com" in html
    assert "127.0.0.1" not in html.split('data-testid="snippets"')[1]


def test_settings_404s_are_a_styled_page_with_a_skip_link(client, tenants):
    client.force_login(tenants.member)
    response = client.get("/settings/nope")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "/settings/nope" in html
    assert 'class="sidebar"' in html and "web/canopy.css" in html
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert 'id="main"' in html


def _snippet(html: str, name: str) -> str:
    match = re.search(
        rf'<pre[^>]*data-snippet="{name}"[^>]*>(?:<code>)?(.*?)(?:</code>)?</pre>', html, re.S
    )
    assert match, f"no {name} snippet"
    return unescape(match.group(1))


@pytest.mark.parametrize("page", ["/", "/traces", "/traces/map"])
def test_the_otlp_environment_snippet_runs_as_pasted(client, tenants, settings, page):
    """Overview and Traces onboarding: `export` lines with quoted values, which a shell takes
    as they are and which give an OTel SDK the endpoint and the bearer header (the space
    percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS wants)."""
    settings.PUBLIC_URL = "https://canopy.mesh.example.com"
    client.force_login(tenants.owner)
    snippet = _snippet(client.get(page).content.decode(), "otel-env")
    assert all(line.startswith("export ") for line in snippet.splitlines())
    shown = subprocess.run(
        [
            "bash",
            "-c",
            snippet
            + '\nprintf "%s\\n" "$OTEL_EXPORTER_OTLP_ENDPOINT" "$OTEL_EXPORTER_OTLP_HEADERS"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.splitlines()
    assert shown == [
        "https://canopy.mesh.example.com",
        "authorization=Bearer%20paste-a-token-with-traces-write",
    ]


def test_the_alerting_targets_snippet_is_shell_ready(client, tenants, settings):
    settings.PUBLIC_URL = "https://canopy.mesh.example.com"
    client.force_login(tenants.owner)
    snippet = _snippet(client.get("/alerts").content.decode(), "alerting-targets")
    assert snippet.startswith("export CANOPY_TOKEN='")
    assert '"https://canopy.mesh.example.com/api/v1/alerting/targets"' in snippet
    subprocess.run(["bash", "-n", "-c", snippet], check=True)
