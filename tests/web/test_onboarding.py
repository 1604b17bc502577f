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


def test_settings_404s_are_a_styled_page_with_a_skip_link(client, tenants):
    client.force_login(tenants.member)
    response = client.get("/settings/nope")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "/settings/nope" in html
    assert 'class="sidebar"' in html and "web/canopy.css" in html
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert 'id="main"' in html
