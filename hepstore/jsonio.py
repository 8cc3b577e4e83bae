"""Strict JSON reading shared by the validator, the ingestion and the commands.

Rejects NaN/Infinity literals and numbers that overflow a float, reports line and column of
syntax errors and the JSON pointer of duplicate keys, and refuses documents nested deeper
than a fixed limit before a recursive consumer (schema validation, patching) can exhaust the
interpreter's stack. Files are sniffed from their first bytes, so a file that is not JSON is
refused without reading the rest, and the size of a file is checked before it is read.

Memory: parsing a file of N bytes holds the N bytes, their decoded text (N for ASCII) and
the parsed objects; no stripped or otherwise transformed copy of the text is made.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from hepstore.errors import TooLarge, UnusableInput

MAX_DEPTH = 200
# A JSON document must show its first '{' or '[' within this many bytes.
SNIFF_BYTES = 64 * 1024
_NON_BLANK = re.compile(r"[^ \t\r\n]")
_BOM = b"\xef\xbb\xbf"


class JSONProblem(UnusableInput):
    """A document that is not acceptable JSON; line/column are 1-based (0 when unknown),
    pointer is the JSON pointer of the offending place when it is known."""

    code = "invalid_json"

    def __init__(self, message: str, line: int = 0, column: int = 0, pointer: str = ""):
        super().__init__(message)
        self.line = line
        self.column = column
        self.pointer = pointer


class _Duplicated(dict):
    """An object whose text repeated a key (the later value won); .repeated names them."""

    repeated: list[str]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON (use a finite number or null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} overflows a double-precision float")
    return value


def _pairs_to_dict(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated = []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    dup = _Duplicated(obj)
    dup.repeated = repeated
    return dup


def escape_pointer_token(token) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _walk(doc, want_pointers: bool) -> tuple[int, list[tuple[str, str]]]:
    """Nesting depth of doc and, when asked, (pointer, key) of every repeated key.

    Iterative, so a deep document cannot exhaust the stack; stops at MAX_DEPTH + 1."""
    deepest = 0
    duplicates: list[tuple[str, str]] = []
    stack: list[tuple[object, int, str]] = [(doc, 1, "")]
    while stack:
        node, depth, pointer = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
        if isinstance(node, dict):
            if want_pointers and isinstance(node, _Duplicated):
                duplicates += [(f"{pointer}/{escape_pointer_token(k)}", k) for k in node.repeated]
            items = node.items()
        else:
            items = enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                child = f"{pointer}/{escape_pointer_token(key)}" if want_pointers else ""
                stack.append((value, depth + 1, child))
    duplicates.sort()
    return deepest, duplicates


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JSONProblem(f"not UTF-8 text (byte {exc.start})") from exc


def loads(data: bytes | str, duplicates: list[tuple[str, str]] | None = None):
    """Parse a JSON document strictly; raises JSONProblem with a position on failure.

    A key repeated within one object is an error (JSONProblem naming its pointer) unless a
    list is passed as duplicates: then the (pointer, key) pairs are appended to it and the
    document is returned with the later values, for the caller to report."""
    text = _decode(data) if isinstance(data, bytes) else data
    if _NON_BLANK.search(text) is None:
        raise JSONProblem("empty file, expected a JSON document")
    repeated = False

    def pairs_hook(pairs):
        nonlocal repeated
        obj = _pairs_to_dict(pairs)
        repeated = repeated or isinstance(obj, _Duplicated)
        return obj

    try:
        doc = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=pairs_hook,
        )
    except json.JSONDecodeError as exc:
        truncated = _NON_BLANK.search(text, exc.pos) is None
        what = "truncated JSON (the document ends early)" if truncated else "not valid JSON"
        raise JSONProblem(
            f"{what}: {exc.msg} at line {exc.lineno}, column {exc.colno}", exc.lineno, exc.colno
        ) from exc
    except ValueError as exc:
        raise JSONProblem(str(exc)) from exc
    except RecursionError as exc:
        raise JSONProblem(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    if isinstance(doc, dict | list):
        depth, found = _walk(doc, repeated)
        if depth > MAX_DEPTH:
            raise JSONProblem(f"JSON nested deeper than {MAX_DEPTH} levels")
        if found:
            if duplicates is None:
                pointer, key = found[0]
                raise JSONProblem(
                    f"duplicate key {key!r} at {pointer} (JSON keys must be unique)",
                    pointer=pointer,
                )
            duplicates += found
    return doc


def sniff(head: bytes, name: str, more: bool) -> None:
    """Refuse from its first bytes a file that cannot be a JSON object or array.

    head is the start of the file; more says whether the file goes on after it."""
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    stripped = head.lstrip(b" \t\r\n")
    if not stripped:
        if more:
            raise JSONProblem(
                f"not JSON: {name} starts with {SNIFF_BYTES // 1024} KB of blank space"
            )
        raise JSONProblem("empty file, expected a JSON document")
    if stripped[:1] not in (b"{", b"["):
        shown = stripped[:16].decode("utf-8", "replace")
        raise JSONProblem(
            f"not JSON: {name} starts with {shown!r}, where a JSON object or array starts "
            "with '{' or '['"
        )


def load_path(path: str | Path, max_bytes: int | None = None, duplicates: list | None = None):
    """Read and parse a JSON file, refusing it from its size (above max_bytes) or from its
    first bytes (not JSON) before the rest is read. See loads for duplicates."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if max_bytes is not None and size > max_bytes:
                raise TooLarge(
                    f"{path.name} is {size / 2**20:.1f} MB; a JSON file may have at most "
                    f"{max_bytes / 2**20:.0f} MB"
                )
            f.seek(0)
            head = f.read(SNIFF_BYTES)
            sniff(head, path.name, size > len(head))
            f.seek(0)
            del head
            # Decoded as soon as it is read, so the bytes are freed before parsing.
            text = _decode(f.read())
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror}") from exc
    return loads(text, duplicates)


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
