"""Shared fixtures: an isolated data directory per test and the generated example bundle."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hepstore import examples


@pytest.fixture(autouse=True)
def isolated_blobs(tmp_path, settings):
    settings.HEPSTORE_BLOB_DIR = tmp_path / "blobs"
    settings.DATA_DIR = tmp_path
    return settings.HEPSTORE_BLOB_DIR


@pytest.fixture
def example_docs():
    # Deep copies: the example documents embed module-level dicts (the lumi parameter) that a
    # test mutating its documents would otherwise change for every later test.
    ws = copy.deepcopy(examples.background_workspace())
    return ws, copy.deepcopy(examples.patchset(ws))


def write_bundle(directory: Path, workspace, patchset=None, region="RegionA") -> Path:
    target = directory / region
    target.mkdir(parents=True, exist_ok=True)
    (target / "BkgOnly.json").write_text(json.dumps(workspace))
    if patchset is not None:
        (target / "patchset.json").write_text(json.dumps(patchset))
    return directory


@pytest.fixture
def bundle(tmp_path, example_docs):
    """A valid example submission directory and its documents (deep copies to mutate)."""
    ws, ps = example_docs
    root = write_bundle(tmp_path / "bundle", ws, ps)
    return root, copy.deepcopy(ws), copy.deepcopy(ps)
