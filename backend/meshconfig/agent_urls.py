"""The agent API on the main server (included under ``/api/v1/`` by ``backend/urls.py``).

Long polls are served by ``agent_server.py`` on its own port; here a request is answered at
once (see ``agent_api``)."""

from django.urls import path

from backend.meshconfig import agent_api

urlpatterns = [
    path("agent/config", agent_api.agent_config_view, name="agent-config"),
    path("agent/status", agent_api.agent_status_view, name="agent-status"),
]
