"""Shared fixtures. The shipped protocols are read from their JSON files for pure tests, and are
present in every test database (they load after migrate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.spec import ProtocolSpec, parse_document

SHIPPED = Path(__file__).resolve().parent.parent / "protocol" / "shipped"


def shipped_document(slug: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SHIPPED / f"{slug}.json").read_text())
    return document


@pytest.fixture(scope="session")
def mapp_spec() -> ProtocolSpec:
    return parse_document(shipped_document("mapp-ptsd"))


@pytest.fixture(scope="session")
def couples_spec() -> ProtocolSpec:
    return parse_document(shipped_document("mdma-cbct-couples"))
