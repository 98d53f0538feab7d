from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ProtocolConfig(AppConfig):
    name = "protocol"
    verbose_name = "Protocols"

    def ready(self) -> None:
        post_migrate.connect(_load_shipped, sender=self)


def _load_shipped(sender: AppConfig, **kwargs: Any) -> None:
    # The shipped protocols are present right after `migrate` (and in every test database).
    from protocol.services import shipped_protocols_load

    shipped_protocols_load()
