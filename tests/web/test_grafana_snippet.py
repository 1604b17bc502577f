"""The Grafana data-source provisioning snippet on the tokens page: valid YAML, the three data
sources Canopy really serves (Prometheus, Jaeger, Zipkin; no Tempo), at this Canopy's public
address, and each URL answers what Grafana asks it with the org's slug and a read token."""

import base64
import html
import re

import pytest
import yaml

from backend.tenancy.models import Scope

pytestmark = pytest.mark.django_db
PUBLIC = "https://canopy.mesh.example.com"


def _grafana(page: str) -> dict:
    block = re.search(r'<pre data-snippet="grafana"><code>(.*?)</code></pre>', page, re.S)
    return yaml.safe_load(html.unescape(block.group(1)))


def test_the_snippet_is_yaml_with_the_served_data_sources(client, tenants, settings):
    settings.PUBLIC_URL = PUBLIC
    client.force_login(tenants.owner)
    page = client.get("/settings/tokens").content.decode()
    doc = _grafana(page)
    assert doc["apiVersion"] == 1
    sources = {d["type"]: d for d in doc["datasources"]}
    assert set(sources) == {"prometheus", "jaeger", "zipkin"}
    assert sources["prometheus"]["url"] == f"{PUBLIC}/prometheus"
    assert sources["jaeger"]["url"] == f"{PUBLIC}/jaeger"
    assert sources["zipkin"]["url"] == f"{PUBLIC}/zipkin"
    for source in sources.values():
        assert source["access"] == "proxy" and source["basicAuth"] is True
        assert source["basicAuthUser"] == "acme"
        assert source["secureJsonData"]["basicAuthPassword"] == "<token>"
    assert "Tempo: not served; use the Jaeger or Zipkin data source." in page


def test_the_token_just_made_is_filled_in_and_its_urls_answer(client, tenants, settings):
    settings.PUBLIC_URL = PUBLIC
    client.force_login(tenants.owner)
    page = client.post(
        "/settings/tokens",
        {"name": "grafana", "scopes": [Scope.METRICS_READ, Scope.TRACES_READ]},
    )
    secret = page.context["created_secret"]
    doc = _grafana(page.content.decode())
    # What Grafana asks each data source when it tests it, with the snippet's credentials.
    probes = {
        "prometheus": "/api/v1/labels",
        "jaeger": "/api/services",
        "zipkin": "/api/v2/services",
    }
    for source in doc["datasources"]:
        assert source["secureJsonData"]["basicAuthPassword"] == secret
        user = source["basicAuthUser"]
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
        path = source["url"].removeprefix(PUBLIC) + probes[source["type"]]
        response = client.get(path, HTTP_AUTHORIZATION=f"Basic {auth}")
        assert response.status_code == 200, (source["type"], path, response.content)
