"""``streamlearn keys rotate``: the settings of a model-signing key rotation."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
import yaml

from streamlearn.cli_common import command_settings, fail
from streamlearn.settings_values import ROTATING_AWAY, SIGNING_KEY_MIN_CHARS

keys_app = typer.Typer(rich_markup_mode=None, help="Model-signing keys.", no_args_is_help=True)


MAX_GRACE = timedelta(days=30)
"""Longer is a typo (`1000000d`) or a key that is never retired."""


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        duration = timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(
            f"{text!r}: a number and s, m, h or d (e.g. 2h)", param_hint="--grace"
        ) from None
    except OverflowError:  # more days than a timedelta holds
        raise typer.BadParameter(f"{text!r}: too long", param_hint="--grace") from None
    if duration > MAX_GRACE:
        raise typer.BadParameter(
            f"{text!r}: a grace of at most 30 days (the old key signs what every worker "
            "accepts until it ends)",
            param_hint="--grace",
        )
    if duration < timedelta(0):
        # A grace that ended before the file is rolled out refuses the old key's
        # snapshots at once: zero is the way to say so on purpose.
        raise typer.BadParameter(
            f"{text!r}: a grace of zero or more (e.g. 2h, or 0s)", param_hint="--grace"
        )
    return duration


@keys_app.command("rotate")
def keys_rotate(
    out: Annotated[
        Path, typer.Option("--out", help="Settings file to write (owner-only; must not exist)")
    ],
    grace: Annotated[
        str,
        typer.Option(help="How long snapshots signed with the current key stay accepted"),
    ] = "24h",
    drop_previous: Annotated[
        bool,
        typer.Option(
            "--drop-previous",
            help="Rotate although the previous key's grace has not ended (it is dropped: "
            "snapshots signed with it are refused)",
        ),
    ] = False,
) -> None:
    """Make a new signing key; write it, with the current key as the previous one and the
    end of its grace, to a settings file (STREAMLEARN_CONFIG_FILE, or copy the values
    into your secret store). Roll it out to every worker and learner: from then on new
    snapshots are signed with the new key, and the old ones verify until the grace ends."""
    from streamlearn.up.signing_key import keep_local_rotation, missing_key_hint, with_local_key

    # A current key shorter than the settings accept is read here, to be replaced: every
    # other command refuses it.
    rotating = ROTATING_AWAY.set(True)
    try:
        given = command_settings()
    finally:
        ROTATING_AWAY.reset(rotating)
    # The settings' key, else the data directory's: the last rotation recorded there, or
    # the key `up` made (replay finds them there too).
    settings = with_local_key(given)
    current = settings.model_signing_key
    if current is None:
        # Where it looked, as the replay commands say: `up --data-dir` names only the
        # broker's directory, and the key `up` made is in STREAMLEARN_DATA_DIR.
        fail(f"no key to rotate from: {missing_key_hint(given)}")
    if len(current.get_secret_value().strip()) < SIGNING_KEY_MIN_CHARS:
        typer.echo(
            f"the current key is shorter than {SIGNING_KEY_MIN_CHARS} characters: the parts "
            "refuse it as their signing key, and accept it as the previous one until the "
            "grace ends"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    # A rotation writes one previous key, the current one: a previous key still in its
    # grace would be dropped, and a worker given the new file would refuse what it signed.
    grace_ends = settings.model_previous_signing_key_until
    if settings.model_previous_signing_key is not None and grace_ends and grace_ends > now:
        named = repr(settings.model_previous_signing_key_id or "without an id")
        if not drop_previous:
            fail(
                f"the previous key {named} is still accepted until {grace_ends.isoformat()}: "
                "a rotation now would drop it, and workers given the new file would refuse "
                "snapshots it signed. Rotate after that, or pass --drop-previous"
            )
        typer.echo(f"this rotation drops the previous key {named} (its grace ran until "
                   f"{grace_ends.isoformat()})")  # fmt: skip
    new_id = f"k-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    if new_id == settings.model_signing_key_id:
        fail("the new key id equals the current one; try again")
    until = now + _duration(grace)
    rotated = {
        "model_signing_key": secrets.token_hex(32),
        "model_signing_key_id": new_id,
        "model_previous_signing_key": current.get_secret_value(),
        "model_previous_signing_key_id": settings.model_signing_key_id,
        "model_previous_signing_key_until": until.isoformat(),
    }
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{out} exists: choose a new file (a rotation never overwrites keys)")
    except FileNotFoundError:
        fail(f"{out.parent} does not exist: create it (owner-only), or write elsewhere")
    text = yaml.safe_dump(rotated, sort_keys=False)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    if given.model_signing_key is None and settings.model_signing_key_id is None:
        previous = ", the one `up` made,"
    elif settings.model_signing_key_id is None:
        previous = ", which has no key id,"
    else:
        previous = f" {settings.model_signing_key_id!r},"
    typer.echo(
        f"new key {new_id} written to {out} (with the previous key{previous} accepted "
        f"until {until.isoformat()}); roll it out to every prediction worker and learner "
        "before then"
    )
    if given.model_signing_key is None:
        # The data directory's key was rotated: `up` there must not go back to it.
        keep_local_rotation(settings.data_dir, text)
        typer.echo(f"`up` and the replay commands in {settings.data_dir} sign with it from now on")
