"""Settings as a command reads them: :func:`load_settings` checks the settings file and
warns of ``STREAMLEARN_*`` variables no setting reads, and turns pydantic's validation errors
into one :class:`~streamlearn.exceptions.ConfigurationError` naming each setting as the user
gave it (its variable, its key in `.env` or the settings file, or the command's option),
never its value."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError

from streamlearn.exceptions import ConfigurationError
from streamlearn.http_tls import NOT_PRIVATE
from streamlearn.secret_settings import SECRET_SETTING_NAMES
from streamlearn.settings import CONFIG_FILE_ENV, ENV_PREFIX, WITHHELD_ENV, Settings

log = logging.getLogger(__name__)

NOT_SETTINGS = frozenset({CONFIG_FILE_ENV, "STREAMLEARN_SUPERVISOR_PID", WITHHELD_ENV})
"""Variables with the settings' prefix that are not settings: the config file's path, and
what ``up`` tells the parts it starts."""


def unknown_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The ``STREAMLEARN_*`` variables of ``environ`` no setting reads (a typo, or another
    tool's name such as ``..._BOOTSTRAP_SERVERS``: ignored, so the default applies),
    described with the setting they are closest to."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    found = []
    for variable in sorted(environ):
        if variable.startswith(ENV_PREFIX) and variable not in known | NOT_SETTINGS:
            close = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{variable} is not a setting{hint}; it is ignored")
    return found


def _dotenv_names(path: Path) -> dict[str, str]:
    """The variables a `.env` file sets, as names only (values may be secrets)."""
    from dotenv import dotenv_values

    try:
        return {name: "" for name in dotenv_values(path)}
    except (OSError, UnicodeDecodeError):
        return {}


def _check_private(path: Path, settings: Iterable[str]) -> None:
    """Refuse a settings file holding secrets that others may read or change, as the key
    files are refused: a secret that leaked is one to replace."""
    secrets = sorted(set(settings) & SECRET_SETTING_NAMES)
    if not secrets:
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # the loaders say why they cannot read it
    if mode & NOT_PRIVATE:
        raise ConfigurationError(
            f"{path.resolve()} holds secret settings ({', '.join(secrets)}) and others may "
            f"read or change it (mode {mode:04o}): make it 0600 (chmod 600 {path.resolve()})"
        )


def _check_config_file(path: Path) -> list[str]:
    """Refuse, naming the file, what pydantic-settings' YAML source would fail on with a
    traceback (not UTF-8, not YAML, not a mapping) or report as an environment variable
    (a key no setting has)."""
    where = f"{CONFIG_FILE_ENV}={path}"
    if path.is_dir():
        raise ConfigurationError(f"{where}: a directory, not a file")
    if not path.is_file():
        raise ConfigurationError(f"{where}: no such file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{where}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{where}: not UTF-8 (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        # Never the parser's full message: it quotes the file, which may hold secrets.
        raise ConfigurationError(f"{where}: not YAML{at}") from None
    if loaded is None:
        return []
    if not isinstance(loaded, dict):
        raise ConfigurationError(
            f"{where}: not a mapping of settings (e.g. serve_port: 8000), a YAML "
            f"{type(loaded).__name__}"
        )
    for key in loaded:
        if str(key) not in Settings.model_fields:
            raise ConfigurationError(f"{where}: unknown setting {str(key)!r}{_file_key_hint(key)}")
    return [str(key) for key in loaded]


def _file_key_hint(key: object) -> str:
    """The setting an unknown key of the settings file may mean. A key written as its
    environment variable (how the README's table names every setting) gets the setting's
    name and why: across the prefix no close match is found, and the refusal said nothing."""
    name, as_variable = str(key), str(key).upper().startswith(ENV_PREFIX)
    if as_variable:
        name = name[len(ENV_PREFIX) :].lower()
    close = difflib.get_close_matches(name, list(Settings.model_fields), n=1)
    if not close:
        return ""
    if as_variable:
        return (
            f" (did you mean {close[0]!r}? a file's keys are setting names, without the"
            f" variables' {ENV_PREFIX} prefix)"
        )
    return f" (did you mean {close[0]!r}?)"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable :class:`ConfigurationError`
    (and warning of ``STREAMLEARN_*`` variables that are no setting)."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        _check_private(Path(config_file), _check_config_file(Path(config_file)))
    for problem in unknown_variables(os.environ):
        log.warning("%s", problem)
    dotenv = Path(".env")
    if dotenv.is_file():
        names = _dotenv_names(dotenv)
        for problem in unknown_variables(names):
            log.warning("%s", problem.replace(" is not a setting", " (in .env) is not a setting"))
        prefix = len(ENV_PREFIX)
        _check_private(dotenv, [n[prefix:].lower() for n in names if n.startswith(ENV_PREFIX)])
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise ConfigurationError(f"invalid settings: {_not_json(exc)}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(err['loc'], overrides)}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


def _where(loc: tuple[int | str, ...], overrides: dict[str, Any]) -> str:
    """A setting as the user gave it: its variable, or its name when a command's option
    gave it (``--registry-url`` was reported as the environment variable)."""
    if not loc:
        return "settings"
    name, rest = str(loc[0]), loc[1:]
    where = f"{name} (given on the command line)" if name in overrides else (
        _source_of(name)
    )  # fmt: skip
    # Inside a list or a map: the item's position, or the map's key unless keys are
    # secrets (write keys: one was printed, as part of a variable name that does not exist).
    if rest and isinstance(rest[0], int):
        where += f" (item {rest[0] + 1})"
    elif rest:
        field = Settings.model_fields.get(name)
        secret_keys = field is not None and "SecretStr" in str(field.annotation)
        where += " (an entry)" if secret_keys else f" (entry {rest[0]!r})"
        if len(rest) > 1:  # a field of the entry (a gate's judge)
            where += f" {'.'.join(str(part) for part in rest[1:])}"
    return where


def _source_of(name: str) -> str:
    """Setting ``name`` as the user gave it: its environment variable, or its key in the
    `.env` file or the settings file when the environment does not set it."""
    variable = f"{ENV_PREFIX}{name.upper()}"
    if variable in os.environ:
        return variable
    dotenv = Path(".env")
    if dotenv.is_file() and variable in _dotenv_names(dotenv):
        return f"{variable} (in .env)"
    config_file = os.environ.get(CONFIG_FILE_ENV)
    return f"{name} (in {config_file})" if config_file else variable


def _not_json(exc: SettingsError) -> str:
    """pydantic-settings' error for a list or map setting whose value is not JSON, as the
    variable and how to write it (never the value: it may be a secret)."""
    found = re.search(r'field "(\w+)"', str(exc))
    if found is None or found.group(1) not in Settings.model_fields:
        return str(exc)
    name = found.group(1)
    field = Settings.model_fields[name]
    made = field.default_factory() if field.default_factory is not None else None  # type: ignore[call-arg]
    if made:
        example = json.dumps(made)
    else:
        example = '{"k": "v"}' if get_origin(field.annotation) is dict else '["a", "b"]'
    variable = f"{ENV_PREFIX}{name.upper()}"
    return f"{variable}: not JSON; this setting is written as JSON, e.g. {variable}='{example}'"
