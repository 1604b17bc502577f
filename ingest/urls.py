from django.urls import path

from ingest import remote_write_receiver

urlpatterns = [
    path("api/v1/push", remote_write_receiver.push, name="remote-write"),
    path("api/prom/push", remote_write_receiver.push, name="remote-write-legacy"),
    path("api/v1/write", remote_write_receiver.push, name="remote-write-prometheus"),
]
