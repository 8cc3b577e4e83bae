"""The browser journey in real headless Chromium (Debian's), driven by Playwright.

list -> analysis -> likelihood -> download a patched workspace; then upload a broken bundle
on /validate and read its report.
"""

from __future__ import annotations

import json
import os
import shutil

import jsonpatch
import pytest

from hepstore.jsonio import canonical_bytes
from hepstore.services import Publication, ingest_paths

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the Django calls the test makes
    # around it are ordinary synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(accept_downloads=True)
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_browse_to_a_likelihood_and_download_a_patched_workspace(live_server, bundle, browser_page):
    root, ws, ps = bundle
    ingest_paths(
        [root], Publication(title="Example search for charginos", collaboration="ATLAS", year=2025)
    )
    page = browser_page
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Example search for charginos").click()
    page.wait_for_url("**/analyses/*/")
    assert "Version 1" in page.content()
    page.get_by_role("link", name="RegionA").click()
    page.wait_for_url("**/likelihoods/*/")
    assert page.locator("#signal-grid tbody tr").count() == len(ps["patches"])
    patch = ps["patches"][5]
    name = patch["metadata"]["name"]
    with page.expect_download() as info:
        page.get_by_role("link", name=f"{name}.json").click()
    downloaded = json.loads(info.value.path().read_bytes())
    assert canonical_bytes(downloaded) == canonical_bytes(jsonpatch.apply_patch(ws, patch["patch"]))


@pytest.mark.django_db(transaction=True)
def test_upload_a_broken_bundle_and_read_the_report(
    live_server, tmp_path, example_docs, browser_page
):
    ws, ps = example_docs
    ws["channels"][0]["samples"][1]["data"].append(5.0)
    (tmp_path / "BkgOnly.json").write_text(json.dumps(ws))
    (tmp_path / "patchset.json").write_text(json.dumps(ps))
    page = browser_page
    page.goto(live_server.url + "/validate")
    page.set_input_files(
        "input[type=file]", [str(tmp_path / "BkgOnly.json"), str(tmp_path / "patchset.json")]
    )
    page.get_by_role("button", name="Validate").click()
    page.wait_for_selector("#verdict")
    assert "Invalid" in page.inner_text("#verdict")
    table = page.inner_text("#problems")
    assert "/channels/0/samples/1/data" in table and "4 bins" in table
    page.screenshot(path=str(tmp_path / "validate.png"))


@pytest.mark.django_db(transaction=True)
def test_reinterpret_panel_scans_the_grid_and_evaluates_a_pasted_signal(
    live_server, bundle, browser_page
):
    from reinterpret.jobs import start_embedded_worker

    root, _, ps = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    lh = version.likelihoods.get()
    worker = start_embedded_worker()
    try:
        page = browser_page
        page.goto(f"{live_server.url}/likelihoods/{lh.pk}/")
        page.get_by_role("button", name="Compute CLs for every signal point").click()
        page.wait_for_selector("#contour img", timeout=60000)
        first = ps["patches"][0]["metadata"]["name"]
        assert page.inner_text(f'tr[data-name="{first}"] td.cls') not in ("", "–")
        page.fill("textarea[name=signal]", "SR_meff,2.5,4.0,6.5")
        page.get_by_role("button", name="Compute CLs", exact=True).click()
        page.wait_for_selector("#custom-verdict", timeout=60000)
        assert "CLs obs =" in page.inner_text("#custom-verdict")
        page.get_by_role("link", name=first, exact=True).click()
        page.wait_for_selector("#point-verdict")
        assert page.locator("svg[aria-label$='post-fit']").count() == 2
    finally:
        worker.shutdown()
