"""A schema registry held in memory, for offline tools, benchmarks and unit tests.

It hands out ids in registration order and never talks to a server; processes that
share data must use a real registry (:class:`~streamlearn.serde.RegistryClient`).
"""

from __future__ import annotations

import json
from typing import Any

from streamlearn.serde.exceptions import RegistryUnavailableError, UnknownSchemaIdError


class InMemoryRegistry:
    def __init__(self) -> None:
        self.url = "memory://"
        self.by_id: dict[int, dict[str, Any]] = {}
        self.subjects: dict[str, list[int]] = {}
        self.fetches = 0

    def register(self, subject: str, schema_str: str) -> int:
        schema = json.loads(schema_str)
        known = [i for i, s in self.by_id.items() if s == schema]
        schema_id = known[0] if known else len(self.by_id) + 1
        self.by_id[schema_id] = schema
        if schema_id not in self.subjects.setdefault(subject, []):
            self.subjects[subject].append(schema_id)
        return schema_id

    def latest(self, subject: str) -> tuple[int, str]:
        if not self.subjects.get(subject):
            raise RegistryUnavailableError(f"no schema registered under {subject}")
        schema_id = self.subjects[subject][-1]
        return schema_id, json.dumps(self.by_id[schema_id])

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        self.fetches += 1
        if schema_id not in self.by_id:
            raise UnknownSchemaIdError(f"schema id {schema_id} unknown", schema_id=schema_id)
        return self.by_id[schema_id]
