import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from config.commands import OneLineErrorCommand
from protocol.services import ImportRefused, protocol_import
from protocol.spec import ProtocolInvalid


class Command(OneLineErrorCommand):
    help = "Import a protocol JSON document as a version (nothing is stored if it has problems)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--as-new-version",
            action="store_true",
            help="store it as the protocol's next version, as a draft to review and activate",
        )

    def handle(self, *args: Any, file: Path, as_new_version: bool, **options: Any) -> None:
        try:
            document = json.loads(file.read_text())
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from exc
        try:
            version = protocol_import(document=document, as_new_version=as_new_version)
        except ProtocolInvalid as exc:
            raise CommandError(f"{file} has {len(exc.problems)} problem(s): {exc}") from exc
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"imported {version}")
