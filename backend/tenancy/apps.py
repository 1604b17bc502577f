from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "backend.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy"

    def ready(self):
        # drf-spectacular learns the token schemes of the OpenAPI schema when this is imported.
        from backend import api_schema  # noqa: F401
