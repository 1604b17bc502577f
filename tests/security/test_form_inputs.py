"""Form inputs that used to end in a 500 (and a traceback holding a fresh secret): now a
form error, and no token is created."""

from __future__ import annotations

import pytest

from backend.tenancy.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["x" * 101, "a\x00b", "tab\there"])
def test_bad_token_names_are_a_form_error(client, tenants, name):
    client.force_login(tenants.owner)
    before = ApiToken.objects.for_org(tenants.org).count()
    response = client.post(
        "/settings/tokens", {"name": name, "scopes": ["metrics:write"]}, follow=True
    )
    assert response.status_code == 200
    assert "A token name is 1 to 100 characters" in response.content.decode()
    assert ApiToken.objects.for_org(tenants.org).count() == before


def test_a_100_character_name_is_fine(client, tenants):
    client.force_login(tenants.owner)
    response = client.post("/settings/tokens", {"name": "y" * 100, "scopes": ["metrics:write"]})
    assert response.status_code == 200
    assert ApiToken.objects.for_org(tenants.org).filter(name="y" * 100).exists()


def test_the_api_refuses_bad_token_names_too(api, tenants):
    api.force_authenticate(tenants.owner)
    response = api.post(
        f"/api/v1/orgs/{tenants.org.slug}/tokens",
        {"name": "a\x00b", "scopes": ["metrics:read"]},
        format="json",
    )
    assert response.status_code == 400
