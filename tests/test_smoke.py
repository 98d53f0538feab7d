import pytest

from protocol.models import ProtocolVersion


@pytest.mark.django_db
def test_shipped_protocols_are_present_after_migrate() -> None:
    active = set(
        ProtocolVersion.objects.filter(status="active").values_list("protocol__slug", flat=True)
    )
    assert active == {"mapp-ptsd", "mdma-cbct-couples"}
