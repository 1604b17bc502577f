"""The Django project. Importing it has no side effects: the Celery app is bound when Django
sets up (``backend.pipeline``'s AppConfig), so leaf modules stay importable on their own."""
