from django.urls import include, path

from backend.tenancy import api

org_scoped = [
    path("org", api.OrgView.as_view(), name="org"),
    path("members", api.MemberListView.as_view(), name="member-list"),
    path("members/<int:pk>", api.MemberDetailView.as_view(), name="member-detail"),
    path("tokens", api.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>", api.TokenDetailView.as_view(), name="token-detail"),
    path("limits", api.LimitsView.as_view(), name="limits"),
    path("invitations", api.InvitationListView.as_view(), name="invitation-list"),
    path("invitations/<int:pk>", api.InvitationDetailView.as_view(), name="invitation-detail"),
]

urlpatterns = [
    path("orgs", api.MyOrgsView.as_view(), name="org-list"),
    # The org comes from the token (or the session's current org, or ?org=)...
    path("", include((org_scoped, "tenancy"), namespace="current")),
    # ...or is named in the path.
    path("orgs/<slug:org_slug>/", include((org_scoped, "tenancy"), namespace="org")),
]
