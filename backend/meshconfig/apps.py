from django.apps import AppConfig


class MeshConfigConfig(AppConfig):
    name = "backend.meshconfig"
    label = "meshconfig"
    verbose_name = "Mesh configuration"
