"""Strict JSON reading shared by the validator, the ingestion and the commands.

Rejects NaN/Infinity literals, reports line and column of syntax errors, and refuses
documents nested deeper than a fixed limit before they can exhaust the interpreter's stack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hepstore.errors import UnusableInput

MAX_DEPTH = 200


class JSONProblem(UnusableInput):
    """A document that is not acceptable JSON; line/column are 1-based (0 when unknown)."""

    code = "invalid_json"

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(message)
        self.line = line
        self.column = column


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON (use a finite number or null)")


def _check_depth(text: str) -> None:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    raise JSONProblem(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def loads(data: bytes | str):
    """Parse a JSON document strictly; raises JSONProblem with a position on failure."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JSONProblem(f"not UTF-8 text (byte {exc.start})") from exc
    else:
        text = data
    if not text.strip():
        raise JSONProblem("empty file, expected a JSON document")
    # Only scan for depth when brackets are plentiful enough to matter.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(text)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        what = "truncated JSON (the document ends early)" if truncated else "not valid JSON"
        raise JSONProblem(
            f"{what}: {exc.msg} at line {exc.lineno}, column {exc.colno}", exc.lineno, exc.colno
        ) from exc
    except ValueError as exc:
        raise JSONProblem(str(exc)) from exc
    except RecursionError as exc:
        raise JSONProblem("JSON nested too deeply") from exc


def load_path(path: str | Path):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror}") from exc
    return loads(data)


def canonical_bytes(obj) -> bytes:
    """Canonical serialisation: sorted keys, compact separators, UTF-8."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_sha256(obj) -> str:
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()


def patchset_digest(workspace) -> str:
    """The digest published patchsets record for their background-only workspace: sha256 of
    the JSON with sorted keys and the default separators (", " and ": "), non-ASCII kept."""
    text = json.dumps(workspace, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
