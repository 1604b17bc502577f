"""The onboarding snippets as a new owner sees them right after creating a token, executed as
pasted: the shell snippet through ``bash -c`` against the live server, ``prometheus.yml``
through Debian's ``promtool``. The Collector, Istio and Grafana snippets are parsed as YAML and
checked for this Canopy's address and the token: those programs are not installed here."""

import shutil
import subprocess

import pytest
import yaml

from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, user_get_or_create
from backend.tracing.selectors import services_list
from tests.e2e.test_metrics_explorer import PASSWORD, log_in

pytestmark = pytest.mark.e2e


def snippet(page, name: str) -> str:
    return page.inner_text(f"pre[data-snippet={name}]")


def test_snippets_work_as_pasted(page, live_server, transactional_db, settings, tmp_path):
    settings.PUBLIC_URL = live_server.url  # CANOPY_PUBLIC_URL: what senders reach
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    log_in(page, live_server, "ada")
    page.click("text=API tokens")
    assert "<token>" in snippet(page, "shell")  # before a token exists: a placeholder
    page.fill("#token-name", "onboarding")
    page.click("button:has-text('Create token')")
    secret = page.input_value("#new-secret")
    assert secret.startswith("cnp_")
    # Copy buttons on the one-time token and on every snippet.
    assert page.locator("[data-testid=new-token] button.copy").count() == 1
    assert page.locator(".snippets .copy-wrap button.copy").count() == 5

    shell = snippet(page, "shell")
    assert f"export CANOPY_TOKEN='{secret}'" in shell
    assert f"export CANOPY_URL='{live_server.url}'" in shell
    run = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "Canopy accepted the span" in run.stdout
    org_drain(signal="traces", org_id=org.pk)
    assert "canopy-check" in services_list(org_id=org.pk)

    prom = snippet(page, "prometheus")
    assert f"credentials: {secret}" in prom and f"{live_server.url}/api/v1/push" in prom
    promtool = shutil.which("promtool")
    if promtool:
        path = tmp_path / "prometheus.yml"
        path.write_text(prom)
        check = subprocess.run(
            [promtool, "check", "config", str(path)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr

    collector = yaml.safe_load(snippet(page, "otelcol"))
    exporter = collector["exporters"]["otlphttp/canopy"]
    assert exporter["endpoint"] == live_server.url
    assert exporter["headers"]["Authorization"] == f"Bearer {secret}"

    istio = list(yaml.safe_load_all(snippet(page, "istio")))
    provider = istio[0]["spec"]["meshConfig"]["extensionProviders"][0]["opentelemetry"]
    assert provider["service"] == "localhost" and provider["port"] == 4317
    assert istio[1]["spec"]["tracing"][0]["providers"] == [{"name": "canopy"}]

    grafana = yaml.safe_load(snippet(page, "grafana"))
    sources = {d["type"]: d for d in grafana["datasources"]}
    assert sources["prometheus"]["url"] == f"{live_server.url}/prometheus"
    assert sources["zipkin"]["url"] == f"{live_server.url}/zipkin"
    assert "tempo" not in sources
    assert sources["jaeger"]["secureJsonData"]["basicAuthPassword"] == secret
    assert sources["prometheus"]["basicAuthUser"] == "acme"
    page.screenshot(path=str(tmp_path / "snippets.png"), full_page=True)
