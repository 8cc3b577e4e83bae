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


def _parent(doc, parts: list[str]):
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_index(part, len(node) - 1)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(f"{part!r} (not a container)")
    return node


def _index(part: str, last: int) -> int:
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise KeyError(f"{part!r} is not an array index")
    i = int(part)
    if i > last:
        raise IndexError(f"index {i} is out of range")
    return i


# add, remove and replace without jsonpatch's deep copy of the value: the inserted value is
# shared with the patch (results are read-only), which matters for samples of ~1 MB.
def _add(doc, parts, op):
    if "value" not in op:
        raise KeyError("'value' is missing")
    if not parts:
        return op["value"]
    parent, key = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if key == "-" else _index(key, len(parent)), op["value"])
    elif isinstance(parent, dict):
        parent[key] = op["value"]
    else:
        raise KeyError(f"{key!r} (parent is not a container)")
    return doc


def _remove(doc, parts, op):
    if not parts:
        raise KeyError("cannot remove the whole document")
    parent, key = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        del parent[_index(key, len(parent) - 1)]
    else:
        del parent[key]
    return doc


def _replace(doc, parts, op):
    if "value" not in op:
        raise KeyError("'value' is missing")
    if not parts:
        return op["value"]
    parent, key = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        parent[_index(key, len(parent) - 1)] = op["value"]
    elif key in parent:
        parent[key] = op["value"]
    else:
        raise KeyError(f"{key!r} does not exist")
    return doc


_FAST = {"add": _add, "remove": _remove, "replace": _replace}


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
            if op["op"] in _FAST:
                result = _FAST[op["op"]](result, JsonPointer(op["path"]).parts, op)
                continue
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
