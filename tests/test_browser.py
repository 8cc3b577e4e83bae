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


@pytest.mark.django_db(transaction=True)
def test_combine_two_regions_scan_and_read_a_points_provenance(live_server, tmp_path, browser_page):
    from hepstore import examples
    from reinterpret.jobs import start_embedded_worker
    from tests.conftest import write_bundle
    from tests.test_combine import region

    a, b = region(), region("_B", 1.3)
    ps_b = examples.patchset(b)
    ps_b["patches"] = [p for p in ps_b["patches"] if p["metadata"]["values"][0] != 800]
    root = tmp_path / "bundle"
    write_bundle(root, a, examples.patchset(a), region="RegionA")
    write_bundle(root, b, ps_b, region="RegionB")
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    ids = {lh.region: lh.pk for lh in version.likelihoods.all()}
    worker = start_embedded_worker()
    try:
        page = browser_page
        page.goto(live_server.url + "/")
        page.get_by_role("link", name="Combinations").click()
        page.wait_for_url("**/combinations/")
        page.fill("input[name=name]", "Regions A and B")
        for region_name, tag in (("RegionA", "A"), ("RegionB", "B")):
            page.check(f'input[name=member][value="{ids[region_name]}"]')
            page.fill(f'input[name="tag-{ids[region_name]}"]', tag)
        page.fill("input[name=decorrelate]", "lumi")
        page.get_by_role("button", name="Check").click()
        page.wait_for_selector("#verdict")
        assert "Combines: 18 combined points" in page.inner_text("#verdict")
        page.get_by_role("button", name="Create combination").click()
        page.wait_for_url("**/combinations/*/")
        assert "lumi" in page.inner_text("#policy")
        assert page.locator("#signal-grid tbody tr").count() == 18
        page.get_by_role("button", name="Compute CLs for every combined point").click()
        page.wait_for_selector("#contour img", timeout=120000)
        assert page.inner_text('tr[data-name="C1N2_300_0"] td.cls') not in ("", "–")
        row = page.locator('tr[data-name="C1N2_800_100"]')
        assert "background only" in row.inner_text()
        page.get_by_role("link", name="C1N2_800_100", exact=True).click()
        page.wait_for_selector("#point-verdict")
        provenance = page.inner_text("#provenance")
        assert "RegionA" in provenance and "background only" in provenance
        assert "Combined: CLs obs =" in page.inner_text("#point-verdict")
        page.screenshot(path=str(tmp_path / "combination_point.png"))
    finally:
        worker.shutdown()


@pytest.mark.django_db(transaction=True)
def test_reinterpret_panel_shows_points_without_numbers_and_limits_above_the_bound(
    live_server, bundle, browser_page
):
    from reinterpret.jobs import start_embedded_worker

    root, _, ps = bundle
    ps["patches"][0]["patch"] = []  # an empty patch: that point cannot be evaluated
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    lh = version.likelihoods.get()
    worker = start_embedded_worker()
    try:
        page = browser_page
        page.goto(f"{live_server.url}/likelihoods/{lh.pk}/")
        page.get_by_role("button", name="Compute CLs for every signal point").click()
        page.wait_for_selector("#contour img", timeout=60000)
        empty, other = (p["metadata"]["name"] for p in ps["patches"][:2])
        cell = page.locator(f'tr[data-name="{empty}"] td.cls')
        assert cell.inner_text() == "not evaluated"
        assert "parameter of interest" in cell.get_attribute("title")
        assert float(page.inner_text(f'tr[data-name="{other}"] td.cls')) >= 0
        # A signal too small to be excluded below the POI's upper bound of 10.
        page.fill("textarea[name=signal]", "SR_meff,0.01,0.01,0.01")
        page.get_by_role("button", name="Compute CLs", exact=True).click()
        page.wait_for_selector("#custom-verdict", timeout=60000)
        assert "upper limit on μ = > 10" in page.inner_text("#custom-verdict")
    finally:
        worker.shutdown()
