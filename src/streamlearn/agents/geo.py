"""Country of an IP address from a MaxMind DB file (GeoLite2/GeoIP2 Country or City)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import maxminddb

from streamlearn.exceptions import ConfigurationError


class CountryLookup:
    """ISO country codes by IP, cached per address (traffic repeats addresses)."""

    def __init__(self, database: Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(database))
        except (OSError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigurationError(f"cannot open geo database {database}: {exc}") from exc
        self.country = lru_cache(maxsize=100_000)(self._country)

    def _country(self, ip: str) -> str | None:
        try:
            record = self._reader.get(ip)
        except ValueError:  # not an IP address
            return None
        if not isinstance(record, dict):
            return None
        country = record.get("country") or record.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) else None

    def close(self) -> None:
        self._reader.close()
