"""Typed readers for the environment variables that configure the portal.

Every setting the portal reads from the environment goes through these helpers (called from
`hepstore/settings.py` only), and every variable is documented in README.md ("Configuration").
A value that cannot be parsed stops start-up with a message naming the variable: a typo in a
deployment must not silently fall back to a default (``DEBUG=maybe`` is not "off").
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def env_str(name: str, default: str) -> str:
    raw = _raw(name)
    return default if raw is None else raw


def env_bool(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"environment variable {name}={raw!r} is not a boolean: use one of "
        f"{sorted(_TRUE)} or {sorted(_FALSE)}"
    )


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"environment variable {name}={raw!r} is not an integer"
        ) from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"environment variable {name}={value} must be >= {minimum}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"environment variable {name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"environment variable {name}={raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"environment variable {name}={value} must be >= {minimum}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ImproperlyConfigured(
            f"environment variable {name}={raw!r} must be one of {', '.join(choices)}"
        )
    return raw.lower()


def env_list(name: str, default: list[str]) -> list[str]:
    raw = _raw(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, schemes: tuple[str, ...]) -> str:
    """A URL with one of the schemes, or "" when unset. The message never repeats the value
    (URLs carry passwords)."""
    from urllib.parse import urlsplit

    raw = _raw(name)
    if raw is None:
        return ""
    try:
        scheme = urlsplit(raw).scheme
    except ValueError:
        scheme = ""
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"environment variable {name} is not a URL starting with "
            f"{' or '.join(s + '://' for s in schemes)}"
        )
    return raw


def env_database(name: str, default: str) -> dict:
    """Django's DATABASES entry from a database URL (postgres://..., sqlite:///...)."""
    import dj_database_url

    raw = _raw(name) or default
    try:
        config = dj_database_url.parse(raw, conn_max_age=60)
    except (ValueError, KeyError, AttributeError):
        config = {}
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(
            f"environment variable {name} is not a database URL "
            "(postgres://user:password@host:port/name or sqlite:////path/to/file)"
        )
    return config


def secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment, else the key kept in the data directory.

    On first run without SECRET_KEY a random key is generated and written to
    ``<data_dir>/secret_key`` with mode 0600, so sessions survive restarts and no key is
    ever shared between installations (or stored in the repository). All processes of one
    installation (web, workers) must share the data directory or set SECRET_KEY."""
    raw = _raw("SECRET_KEY")
    if raw is not None:
        return raw
    path = data_dir / "secret_key"
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when two processes start at once, one writes and both read the same key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and no key can be kept in {path} ({exc.strerror}): "
            "set SECRET_KEY or make HEPSTORE_DATA_DIR writable"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key)
    return key


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 50:
        if not key:
            # A concurrent first run may still be writing it; a short pause settles that.
            import time

            time.sleep(0.2)
            key = path.read_text(encoding="ascii").strip()
        if len(key) < 50:
            raise ImproperlyConfigured(
                f"{path} holds no usable secret key (delete it to generate a new one, "
                "or set SECRET_KEY)"
            )
    return key
