"""Integrations: external services a project talks to, with a credential *reference*.

A credential value is never stored: ``credential_ref`` says where to find it
(``env:GITHUB_TOKEN``, ``keyring:service/user``). Settings go through the redactor like
every other value, so a token pasted into them by mistake is still not persisted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentkeep._core import Json, check_identifier, diff
from agentkeep.errors import InvalidInput
from agentkeep.models import Integration, Written
from agentkeep.services.base import Service

CREDENTIAL_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|keyring:[\w.@-]+(/[\w.@-]+)?)$")


class IntegrationService(Service):
    def set_integration(
        self,
        name: str,
        *,
        kind: str,
        settings: Mapping[str, Any] | None = None,
        credential_ref: str | None = None,
    ) -> Written[Integration]:
        """Create or update the integration ``name``."""
        check_identifier("the integration name", name)
        if not kind.strip():
            raise InvalidInput("an integration needs a kind")
        if credential_ref is not None and not CREDENTIAL_REF.match(credential_ref):
            raise InvalidInput(
                "credential_ref must name where the credential lives, not hold it",
                hint="use env:VAR_NAME or keyring:service/user",
            )
        values = {"kind": kind, "settings": dict(settings or {}), "credential_ref": credential_ref}
        with self.transaction() as tx:
            row = tx.one("SELECT * FROM integrations WHERE name = ?", (name,))
            if row is None:
                integration_id = tx.insert(
                    "integrations",
                    {
                        "name": name,
                        **values,
                        "settings": Json(values["settings"]),
                        "created_at": tx.now,
                        "updated_at": tx.now,
                    },
                )
                created = self._integration(integration_id)
                tx.emit("integration", integration_id, "integration.created", created.to_dict())
                return Written(created, "created")
            before: Integration = Integration.from_row(row)
            delta = diff(before.to_dict(), values)
            if not delta:
                return Written(before, "unchanged")
            update = {k: Json(v) if k == "settings" else v for k, v in values.items()}
            tx.update("integrations", before.id, {**update, "updated_at": tx.now})
            tx.emit("integration", before.id, "integration.updated", delta)
            return Written(self._integration(before.id), "updated")

    def list_integrations(self) -> list[Integration]:
        return [
            Integration.from_row(r) for r in self._rows("SELECT * FROM integrations ORDER BY name")
        ]

    def _integration(self, integration_id: int) -> Integration:
        return Integration.from_row(self._record("integration", integration_id))  # type: ignore[no-any-return]
