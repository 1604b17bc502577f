from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "backend.observability"
    label = "observability"

    def ready(self) -> None:
        from backend.observability import metrics, request_id

        request_id.connect_celery_signals()
        metrics.connect_celery_signals()
        metrics.connect_db_signals()
