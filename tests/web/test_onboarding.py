"""The onboarding snippets name this Canopy's public address (CANOPY_PUBLIC_URL)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_public_url_not_the_browsers_host(client, tenants, settings):
    settings.PUBLIC_URL = "https://canopy.mesh.example.com"
    client.force_login(tenants.owner)
    html = client.get("/settings/tokens").content.decode()
    assert "export CANOPY_URL='https://canopy.mesh.example.com'" in html
    assert "service: canopy.mesh.example.com" in html
    assert "127.0.0.1" not in html.split('data-testid="snippets"')[1]
