"""Apply RFC 6902 patches without copying the whole (possibly large) workspace.

Containers along each operation's path are shallow-copied before jsonpatch changes them in
place, so the result shares every untouched subtree with the input and the input is never
modified. Results must be treated as read-only (they share structure with the input).
"""

from __future__ import annotations

import jsonpatch
from jsonpointer import JsonPointer, JsonPointerException


class PatchError(ValueError):
    """An operation that does not apply; index is the operation's position in the patch."""

    def __init__(self, index: int, message: str):
        super().__init__(f"operation {index}: {message}")
        self.index = index
        self.message = message


def _copy_along(root, pointer: str):
    """Shallow-copy every container on the way to pointer's parent; returns nothing."""
    parts = JsonPointer(pointer).parts
    node = root
    for part in parts[:-1]:
        if isinstance(node, list):
            try:
                key = int(part)
            except ValueError:
                return
            if not 0 <= key < len(node):
                return
        elif isinstance(node, dict):
            key = part
            if key not in node:
                return
        else:
            return
        child = node[key]
        if isinstance(child, dict):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        else:
            return
        node[key] = child
        node = child


def apply(document, operations: list):
    """The document with the operations applied; raises PatchError naming the operation."""
    if isinstance(document, dict):
        result = dict(document)
    elif isinstance(document, list):
        result = list(document)
    else:
        result = document
    if not isinstance(operations, list):
        raise PatchError(0, "a patch must be a list of operations")
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise PatchError(index, "not an operation with 'op' and 'path'")
        try:
            _copy_along(result, op["path"])
            if "from" in op:
                _copy_along(result, op["from"])
            result = jsonpatch.JsonPatch([op]).apply(result, in_place=True)
        except (
            jsonpatch.JsonPatchException,
            JsonPointerException,
            TypeError,
            KeyError,
            IndexError,
        ) as exc:
            raise PatchError(index, f"{op.get('op')} {op.get('path')}: {exc}") from exc
    return result
