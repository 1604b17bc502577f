from django.apps import AppConfig


class TracingConfig(AppConfig):
    name = "backend.tracing"
    label = "tracing"
    verbose_name = "Tracing"
