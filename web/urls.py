from django.contrib.auth import views as auth_views
from django.urls import path

from web import views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", views.metrics, name="metrics"),
    path("orgs/switch", views.switch_org, name="switch-org"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("settings/tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("settings/members", views.members, name="members"),
]
