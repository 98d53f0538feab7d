from typing import Any

from config.commands import OneLineErrorCommand
from protocol.services import shipped_protocols_load


class Command(OneLineErrorCommand):
    help = "Load the shipped protocol templates (mapp-ptsd, mdma-cbct-couples). Safe to re-run."

    def handle(self, *args: Any, **options: Any) -> None:
        for result in shipped_protocols_load():
            line = f"{result.slug} v{result.version}: {result.outcome}"
            if result.outcome == "differs":
                line += (
                    " (the stored version is kept; import the shipped file with"
                    " import_protocol --as-new-version to adopt it)"
                )
            self.stdout.write(line)
