"""A base for management commands whose users are coordinators: every mistake, including a
bad argument, is one line on stderr and a non-zero exit, never a traceback or a usage dump."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser


class OneLineErrorCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if not parser.called_from_command_line:
            return parser  # call_command keeps Django's CommandError("Error: ...")
        name = f"{prog_name.rsplit('/', 1)[-1]} {subcommand}"

        def error(message: str) -> NoReturn:
            sys.stderr.write(f"{name}: error: {message} (see --help)\n")
            sys.exit(2)

        parser.error = error  # type: ignore[method-assign]
        return parser
