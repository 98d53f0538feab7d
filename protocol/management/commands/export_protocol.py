import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from config.commands import OneLineErrorCommand
from protocol.selectors import ProtocolNotFound, protocol_document, protocol_version_get


class Command(OneLineErrorCommand):
    help = "Write a protocol version as a JSON document (the active version unless --version)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--protocol-version", type=int, dest="number", metavar="N")
        parser.add_argument("--output", type=Path, help="file to write (default: stdout)")

    def handle(
        self, *args: Any, slug: str, number: int | None, output: Path | None, **options: Any
    ) -> None:
        try:
            version = protocol_version_get(slug=slug, version=number)
        except ProtocolNotFound as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(protocol_document(version), indent=2) + "\n"
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            output.write_text(text)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}") from exc
