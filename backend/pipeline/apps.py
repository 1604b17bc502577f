from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "backend.pipeline"
    label = "pipeline"
    verbose_name = "Write pipeline"

    def ready(self) -> None:
        # Binds @shared_task to Canopy's Celery app in every process that sets Django up
        # (web, workers, management commands), so queued drains go to our broker.
        import backend.celery  # noqa: F401
