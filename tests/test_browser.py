"""The browser journey in real headless Chromium (Debian's), driven by Playwright.

list -> analysis -> likelihood -> download a patched workspace; then upload a broken bundle
on /validate and read its report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jsonpatch
import pytest

from hepstore.jsonio import canonical_bytes
from hepstore.services import Publication, ingest_paths
from tests.shared_data import require_shared

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
        page.get_by_role("button", name="Compute CLs for this slice").click()
        page.wait_for_selector("#exclusion-plot", timeout=60000)
        first = ps["patches"][0]["metadata"]["name"]
        assert page.inner_text(f'tr[data-name="{first}"] td.cls') not in ("", "–")
        page.fill("textarea[name=signal]", "SR_meff,2.5,4.0,6.5")
        page.get_by_role("button", name="Compute CLs", exact=True).click()
        page.wait_for_selector("#custom-verdict", timeout=60000)
        assert "CLs obs =" in page.inner_text("#custom-verdict")
        page.get_by_role("link", name=first, exact=True).click()
        page.wait_for_selector("#point-verdict")
        assert page.locator("img[alt$='post-fit']").count() == 2
    finally:
        worker.shutdown()


ARTIFACTS = Path(
    os.environ.get("HEPSTORE_ARTIFACTS")
    or Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
)


def _wait_loaded(page, selector: str, timeout: float = 120.0) -> None:
    """Wait until the image is loaded and decoded (polled from Python: the pages' CSP forbids
    the string evaluation wait_for_function uses)."""
    page.wait_for_selector(selector)
    deadline = time.monotonic() + timeout
    while not page.locator(selector).evaluate("e => e.complete && e.naturalWidth > 0"):
        assert time.monotonic() < deadline, f"{selector} did not load in {timeout} s"
        page.wait_for_timeout(250)


def _download(page, name: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("link", name=name, exact=True).click()
    return info.value.path().read_bytes()


@pytest.mark.django_db(transaction=True)
def test_sbottom_slices_plots_downloads_and_screenshots(live_server, browser_page):
    """The sbottom scan page: slice mn1 = 60 offered by default, the exclusion plot and the
    upper-limit map with their downloads, another slice, a point page and a custom signal;
    screenshots of the scan, point and likelihood pages go to ARTIFACTS."""
    folder = require_shared("sbottom")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    publication = Publication(
        title="Search for bottom-squark pair production (sbottom, region A)",
        collaboration="ATLAS",
        label_info={
            "msb": {"title": "m(b̃₁)", "unit": "GeV"},
            "mn2": {"title": "m(χ̃₂⁰)", "unit": "GeV"},
            "mn1": {"title": "m(χ̃₁⁰)", "unit": "GeV"},
        },
        notes=("Published with arXiv:1908.03122; signal yields at NLO+NNLL.",),
    )
    _, version = ingest_paths([folder / "BkgOnly.json", folder / "patchset.json"], publication)
    lh = version.likelihoods.get()
    from reinterpret.jobs import start_embedded_worker

    worker = start_embedded_worker()
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    # Fits and figures are computed on first view; give a loaded CI machine time.
    page.set_default_timeout(120000)
    try:
        page.goto(f"{live_server.url}/likelihoods/{lh.pk}/")
        slice_select = page.locator("select[name=slice]")
        assert slice_select.locator("option:checked").inner_text() == "mn1 = 60 (130 points)"
        assert "VRtt_meff" in page.inner_text("#channel-set")
        page.get_by_role("button", name="Compute CLs for this slice").click()
        page.wait_for_selector("#exclusion-plot", timeout=120000)
        page.wait_for_selector("#upper-limit-map", timeout=60000)
        _wait_loaded(page, "#exclusion-plot")
        _wait_loaded(page, "#upper-limit-map")
        page.locator("h2", has_text="Exclusion").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "scan-sbottom-mn1-60.png"), full_page=True)
        svg = _download(page, "SVG").decode()
        assert "m(b̃₁) [GeV]" in svg and "Observed limit" in svg and "mn1 = 60" in svg
        assert _download(page, "PNG")[:4] == b"\x89PNG"
        assert _download(page, "PDF")[:4] == b"%PDF"
        assert _download(page, "UL PNG")[:4] == b"\x89PNG"
        contour = json.loads(_download(page, "JSON"))
        assert contour["fixed"] == {"mn1": 60} and 1 <= len(contour["curves"]["observed"]) <= 5
        assert _download(page, "CSV").decode().startswith("curve,line,point,msb,mn2")
        # Another slice of the same plane.
        slice_select.select_option(label="mn1 = 100 (10 points)")
        page.get_by_role("button", name="Compute CLs for this slice").click()
        page.wait_for_selector("#scan-downloads:has-text('mn1 = 100')", timeout=60000)
        assert json.loads(_download(page, "JSON"))["fixed"] == {"mn1": 100}
        # No more jobs: stop the worker, whose writes would contend with the pages' own on
        # the test database (SQLite's shared-cache tables lock instead of waiting).
        worker.shutdown(timeout=60)
        # The signal grid sorted by CLs and by a mass, numerically.
        page.get_by_role("link", name="msb", exact=True).click()
        page.wait_for_url("**sort=msb**")
        masses = [
            int(v) for v in page.locator("#signal-grid tbody tr td:nth-child(2)").all_inner_texts()
        ]
        assert masses == sorted(masses)
        page.get_by_text("Parameters and their constraints").click()
        assert page.locator("#parameters tbody tr").count() >= 60
        _wait_loaded(page, "#exclusion-plot")
        page.screenshot(path=str(ARTIFACTS / "likelihood-sbottom.png"), full_page=True)
        # A point page: verdict, band, yields with uncertainty bands, pulls, caveats.
        page.goto(f"{live_server.url}/likelihoods/{lh.pk}/signals/sbottom_1300_650_60/")
        page.wait_for_selector("#point-verdict")
        assert page.locator("img[alt$='post-fit']").count() == 2
        assert "NLO+NNLL" in page.inner_text("#caveats")
        page.screenshot(path=str(ARTIFACTS / "point-sbottom_1300_650_60.png"), full_page=True)
        # A custom signal, shown with the same point view.
        page.goto(f"{live_server.url}/likelihoods/{lh.pk}/")
        page.fill("textarea[name=signal]", "SR_meff,4.0,6.0,3.0")
        page.get_by_role("button", name="Compute CLs", exact=True).click()
        page.wait_for_selector("#custom-point-link", timeout=60000)
        assert "VRtt_meff" in page.inner_text("#custom-channels")
        page.click("#custom-point-link")
        page.wait_for_selector("#point-verdict")
        fitted = page.inner_text("#channels-fitted")
        assert "SR_meff" in fitted and "CRtt_meff" in fitted and "VRtt_meff" not in fitted
        assert page.locator("img[alt$='post-fit']").count() == 2
        page.screenshot(path=str(ARTIFACTS / "point-custom-sbottom.png"), full_page=True)
    finally:
        worker.shutdown(timeout=60)


@pytest.mark.django_db(transaction=True)
def test_erjr_point_page_shows_the_optimizer_caveat(live_server, browser_page):
    folder = require_shared("erjr")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _, version = ingest_paths(
        [folder / "BkgOnly.json", folder / "patchset.json"],
        Publication(title="Electroweakinos, three leptons (erjr)", collaboration="ATLAS"),
    )
    lh = version.likelihoods.get()
    name = lh.signals.order_by("index").first().name
    page = browser_page
    page.goto(f"{live_server.url}/likelihoods/{lh.pk}/signals/{name}/")
    page.wait_for_selector("#point-verdict")
    caveat = page.inner_text("#caveats")
    assert "pyhf's default optimizer" in caveat and "shape_mcstat_diboson3LISR" in caveat
    page.screenshot(path=str(ARTIFACTS / "point-erjr-caveat.png"), full_page=True)


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
        page.get_by_role("button", name="Compute CLs for this slice").click()
        page.wait_for_selector("#contour img", timeout=120000)
        empty, other = (p["metadata"]["name"] for p in ps["patches"][:2])
        cell = page.locator(f'tr[data-name="{empty}"] td.cls')
        assert cell.inner_text() == "not evaluated"
        assert "parameter of interest" in cell.get_attribute("title")
        shown = page.inner_text(f'tr[data-name="{other}"] td.cls')
        assert shown == "< 1e-6" or 0 <= float(shown) <= 1, shown
        # A signal too small to be excluded below the POI's upper bound of 10.
        page.fill("textarea[name=signal]", "SR_meff,0.01,0.01,0.01")
        page.get_by_role("button", name="Compute CLs", exact=True).click()
        page.wait_for_selector("#custom-verdict", timeout=60000)
        assert "upper limit on μ = > 10" in page.inner_text("#custom-verdict")
    finally:
        worker.shutdown()
