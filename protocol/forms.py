from __future__ import annotations

import json
from typing import Any

from django import forms

from protocol import services
from protocol.models import ProtocolVersion
from protocol.spec import ProtocolInvalid, parse_document

MAX_DOCUMENT_BYTES = 1_000_000


class ProtocolImportForm(forms.Form):
    document = forms.FileField(
        label="Protocol JSON document", help_text="A file written by Export as JSON."
    )
    as_new_version = forms.BooleanField(
        required=False,
        initial=True,
        label="Store as the protocol's next version (a draft to review and activate)",
    )

    def clean_document(self) -> dict[str, Any]:
        upload = self.cleaned_data["document"]
        if upload.size > MAX_DOCUMENT_BYTES:
            raise forms.ValidationError("The file is larger than 1 MB; is it a protocol document?")
        try:
            document = json.loads(upload.read())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise forms.ValidationError(f"The file is not JSON: {exc}") from exc
        try:
            parse_document(document)
        except ProtocolInvalid as exc:
            raise forms.ValidationError(exc.problems) from exc
        assert isinstance(document, dict)
        return document

    def save(self) -> ProtocolVersion | None:
        """Import the valid document; a refusal becomes a field error and None."""
        try:
            return services.protocol_import(
                document=self.cleaned_data["document"],
                as_new_version=self.cleaned_data["as_new_version"],
            )
        except services.ImportRefused as exc:
            self.add_error("as_new_version", str(exc))
            return None
