"""The keys a process verifies snapshots with: the current one and, during a rotation, the
previous one until its grace period ends.

A snapshot names the key that signed it (``signing_key_id``). The keyring picks that key:
the previous one while ``until`` is in the future, else the current one. A snapshot of a
retired key (grace over) is refused as ``retired_key``, a
:class:`~streamlearn.models.SnapshotRejected` counted and alerted like a bad signature,
and the worker keeps the model it has; one naming any other id is checked with a previous
key in its grace and the current key, and a wrong key fails as ``bad_signature``. Signing
always uses the current key. ``streamlearn keys rotate`` writes the settings of a rotation.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.exceptions import RetiredKey
from streamlearn.models.signature import sign

if TYPE_CHECKING:
    from streamlearn.settings import Settings

Key = SecretStr | str | bytes


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PreviousKey:
    key_id: str | None
    key: Key
    until: datetime
    """Snapshots it signed are accepted before this moment."""


@dataclass(frozen=True)
class Keyring:
    current: Key
    current_id: str | None = None
    previous: tuple[PreviousKey, ...] = ()
    clock: Callable[[], datetime] = field(default=_now, compare=False)

    def key_for(self, snapshot: Mapping[str, Any]) -> Key:
        """The key that must have signed ``snapshot``, by the id it names: the previous
        key's id picks it (or refuses it once retired). Any other id is a label this
        process does not know, and the signature decides: a previous key still in its grace
        that signed it, else the current key (so a process without ids keeps verifying, and
        a previous key given without its id still verifies what it signed: the chart's
        rotation steps once left that id out, and every worker then refused the old key's
        snapshots during the grace)."""
        signer = self._previous_signer(snapshot)
        return self.current if signer is None else signer.key

    def valid_until(self, snapshot: Mapping[str, Any]) -> datetime | None:
        """Until when ``snapshot``, verified, is accepted: the end of the grace of the
        previous key that signed it, or None for the current key's (no end)."""
        try:
            signer = self._previous_signer(snapshot)
        except RetiredKey:
            return self.clock()  # retired since it was verified: at once
        return None if signer is None else signer.until

    def _previous_signer(self, snapshot: Mapping[str, Any]) -> PreviousKey | None:
        """The previous key :meth:`key_for` checks ``snapshot`` with (None: the current)."""
        key_id = snapshot.get("signing_key_id")
        if key_id == self.current_id:
            return None
        for old in self.previous:
            if old.key_id == key_id:
                if self.clock() < old.until:
                    return old
                raise RetiredKey(f"signed with key {key_id!r}, retired at {old.until.isoformat()}")
        for old in self._in_grace():
            if _signed_by(snapshot, old.key):
                return old
        return None

    def _in_grace(self) -> list[PreviousKey]:
        now = self.clock()
        return [old for old in self.previous if now < old.until]

    def checked_with(self, snapshot: Mapping[str, Any]) -> str:
        """Which key :meth:`key_for` checks ``snapshot`` with, and whether it is the one
        the snapshot names: what a bad signature's message says, so that a key not rolled
        out to this process yet is told from a forged snapshot."""
        key_id = snapshot.get("signing_key_id")
        if key_id is not None and key_id == self.current_id:
            return f"checked with key {key_id!r}, the one it names"
        for old in self.previous:
            if old.key_id is not None and old.key_id == key_id:
                return f"checked with key {key_id!r} (the previous one), the one it names"
        current = "this process's key (no id)" if self.current_id is None else (
            repr(self.current_id))  # fmt: skip
        if key_id is None:
            return f"it names no key; checked with {current}"
        held = [repr(self.current_id)] if self.current_id is not None else []
        held += [f"{old.key_id!r} until {old.until.isoformat()}" for old in self.previous
                 if old.key_id is not None]  # fmt: skip
        holds = " (it holds " + ", and ".join(held) + ")" if held else ""
        tried = current + "".join(
            f" and the previous key {old.key_id!r}" if old.key_id is not None
            else " and the previous key (no id)"
            for old in self._in_grace()
        )  # fmt: skip
        return f"it names key {key_id!r}, which this process does not hold{holds}; " + (
            f"checked with {tried}")  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The current key (``STREAMLEARN_MODEL_SIGNING_KEY``) and the previous one, if set."""
        if settings.model_signing_key is None:
            raise ConfigurationError("snapshots are verified: set STREAMLEARN_MODEL_SIGNING_KEY")
        previous: tuple[PreviousKey, ...] = ()
        if settings.model_previous_signing_key is not None:
            if (
                settings.model_previous_signing_key.get_secret_value()
                == settings.model_signing_key.get_secret_value()
            ):
                # A rotation's file given while the old key is still in the environment,
                # which outranks the file: the old key would go on signing.
                raise ConfigurationError(
                    "STREAMLEARN_MODEL_SIGNING_KEY is the key being retired "
                    "(model_previous_signing_key): the environment outranks "
                    "STREAMLEARN_CONFIG_FILE, so unset STREAMLEARN_MODEL_SIGNING_KEY and "
                    "STREAMLEARN_MODEL_SIGNING_KEY_ID there for the rotated file's key to sign"
                )
            until = settings.model_previous_signing_key_until
            if until is None:
                raise ConfigurationError(
                    "STREAMLEARN_MODEL_PREVIOUS_SIGNING_KEY needs "
                    "STREAMLEARN_MODEL_PREVIOUS_SIGNING_KEY_UNTIL (the end of its grace)"
                )
            if settings.model_previous_signing_key_id == settings.model_signing_key_id:
                raise ConfigurationError(
                    "the previous signing key needs another id than the current one (an "
                    "old STREAMLEARN_MODEL_SIGNING_KEY_ID left in the environment, which "
                    "outranks STREAMLEARN_CONFIG_FILE?)"
                )
            until = until if until.tzinfo is not None else until.replace(tzinfo=UTC)
            previous = (
                PreviousKey(
                    settings.model_previous_signing_key_id,
                    settings.model_previous_signing_key,
                    until,
                ),
            )
        return cls(settings.model_signing_key, settings.model_signing_key_id, previous)


def _signed_by(snapshot: Mapping[str, Any], key: Key) -> bool:
    """Whether ``key`` made ``snapshot``'s signature (False for a malformed snapshot, which
    verification refuses for what it is)."""
    try:
        return hmac.compare_digest(
            sign(snapshot, key).encode(), str(snapshot["signature"]).encode()
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
