"""Point views (archived and custom), fit detail over the API, custom signals on the published
channel set, caveats and the likelihood page's tables."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths
from reinterpret import caveats, services
from tests.shared_data import load

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def stored(bundle):
    root, ws, ps = bundle
    publication = Publication(
        title="Example",
        collaboration="ATLAS",
        label_info={"m1": {"title": "m(C1)", "unit": "GeV"}, "nope": {"title": "x"}},
        notes=("Signal cross-sections at NLO+NLL.",),
    )
    _, version = ingest_paths([root], publication)
    return version.likelihoods.get(), ws, ps


def test_label_titles_and_notes_are_kept_for_the_region_labels(client, stored):
    lh, _, _ = stored
    assert lh.label_info == {"m1": {"title": "m(C1)", "unit": "GeV"}}
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/").json()
    assert body["label_info"] == lh.label_info
    assert body["notes"] == ["Signal cross-sections at NLO+NLL."]


def test_point_result_with_fit_detail(client, stored):
    lh, _, ps = stored
    name = ps["patches"][3]["metadata"]["name"]
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/result?detail=fit").json()
    fit = body["fit"]
    assert fit["converged"]
    names = {p["name"] for p in fit["parameters"]}
    assert lh.summary["poi"] in names
    for channel, n in fit["channels"]:
        assert len(fit["postfit"]["uncertainty"][channel]) == n
        assert len(fit["observed"][channel]) == n
    plain = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/result").json()
    assert "fit" not in plain and plain["cls_obs"] == body["cls_obs"]
    for url in (
        f"/api/v1/likelihoods/{lh.pk}/signals/{name}/yields.png?stage=prefit",
        f"/api/v1/likelihoods/{lh.pk}/signals/{name}/pulls.pdf",
    ):
        response = client.get(url)
        assert response.status_code == 200 and response.content[:4] in (b"\x89PNG", b"%PDF")
    bad = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/yields.svg?channel=nope")
    assert bad.status_code == 400 and "no channel" in bad.json()["error"]["message"]


def test_point_page_shows_verdict_band_yields_pulls_and_notes(client, stored):
    lh, ws, ps = stored
    name = ps["patches"][3]["metadata"]["name"]
    page = client.get(f"/likelihoods/{lh.pk}/signals/{name}/").content.decode()
    assert 'id="point-verdict"' in page and "at 95% CL" in page
    # Pre- and post-fit yields of every channel, and the pulls.
    assert page.count("data:image/svg+xml;base64,") == 2 * len(ws["channels"]) + 1
    assert 'id="parameters"' in page and "Signal cross-sections at NLO+NLL." in page
    missing = client.get(f"/likelihoods/{lh.pk}/signals/nope/")
    assert missing.status_code == 404


def test_custom_signal_gets_the_point_view(client, stored):
    lh, ws, _ = stored
    channel = ws["channels"][0]["name"]
    nbins = len(ws["observations"][0]["data"])
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret",
        {"signal": {channel: [3.0] * nbins}},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["page"].endswith(f"/likelihoods/{lh.pk}/custom/{body['patch_sha256']}/")
    assert body["channels"]["removed"] == []
    page = client.get(f"/likelihoods/{lh.pk}/custom/{body['patch_sha256']}/")
    assert page.status_code == 200 and b"Custom signal" in page.content
    detail = client.get(
        f"/api/v1/likelihoods/{lh.pk}/custom/{body['patch_sha256']}/result?detail=fit"
    ).json()
    assert detail["cls_obs"] == body["cls_obs"] and detail["fit"]["parameters"]
    unknown = client.get(f"/likelihoods/{lh.pk}/custom/{'0' * 64}/")
    assert unknown.status_code == 404
    traversal = client.get(f"/api/v1/likelihoods/{lh.pk}/custom/..abc/result")
    assert traversal.status_code == 404


def test_custom_signal_uses_the_channel_set_of_the_published_sbottom_points(tmp_path):
    bkg = load("sbottom", "BkgOnly.json")
    ps = load("sbottom", "patchset.json")
    patches = [ps["patches"][i]["patch"] for i in (0, len(ps["patches"]) // 2, -1)]
    channel_set = services.published_channel_set(bkg, patches)
    assert channel_set["removed"] == ["VRtt_meff"] and "VRtt_meff" in channel_set["note"]
    ops = services.custom_signal_patch(bkg, {"signal": {"SR_meff": [1.0, 2.0, 3.0]}}, channel_set)
    channels = [c["name"] for c in services.apply_patch(bkg, ops)["channels"]]
    published = [c["name"] for c in services.apply_patch(bkg, patches[0])["channels"]]
    assert channels == published
    with pytest.raises(services.ReinterpretError) as err:
        services.custom_signal_patch(bkg, {"signal": {"VRtt_meff": [1.0] * 3}}, channel_set)
    assert "left out of the fit by every published" in err.value.problems[0]["message"]


def test_portal_flags_the_erjr_constraint_where_pyhf_stops_early():
    erjr = caveats.portal_checks(load("erjr", "BkgOnly.json"))
    assert len(erjr) == 1 and "shape_mcstat_diboson3LISR_CRISR_obs_cuts" in erjr[0]["text"]
    assert caveats.portal_checks(load("sbottom", "BkgOnly.json")) == []


def test_likelihood_page_tables(client, stored):
    lh, ws, ps = stored
    page = client.get(f"/likelihoods/{lh.pk}/").content.decode()
    assert 'id="parameters"' in page and 'id="yields-' in page
    assert "Signal cross-sections at NLO+NLL." in page
    # The grid sorts numerically by a label and filters by a range.
    sorted_page = client.get(f"/likelihoods/{lh.pk}/?sort=-m1&m1_min=300&m1_max=500").content
    cells = sorted_page.decode().split('data-values="')[1:]
    m1 = [json.loads(c.split('"')[0].replace("&quot;", '"'))[0] for c in cells]
    expected = sorted(
        (
            p["metadata"]["values"][0]
            for p in ps["patches"]
            if 300 <= p["metadata"]["values"][0] <= 500
        ),
        reverse=True,
    )
    assert m1 == expected and len(set(m1)) > 1


def test_submission_metadata_carries_label_titles_units_and_notes(client, example_docs):
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from hepstore.models import Likelihood
    from tests.test_api import tarball

    ws, ps = example_docs
    client.force_authenticate(User.objects.create_user("carol", is_superuser=True))
    form = {
        "title": "Titled search",
        "collaboration": "ATLAS",
        "label_info": json.dumps({"m1": {"title": "m(C1)", "unit": "GeV"}}),
        "notes": ["first caveat", "second caveat"],
        "file": SimpleUploadedFile("s.tgz", tarball(ws, ps)),
    }
    created = client.post("/api/v1/submissions", form)
    assert created.status_code == 201, created.content
    lh = Likelihood.objects.get()
    assert lh.label_info == {"m1": {"title": "m(C1)", "unit": "GeV"}}
    assert lh.notes == ["first caveat", "second caveat"]
    bad = client.post(
        "/api/v1/submissions",
        {
            **form,
            "label_info": json.dumps({"m1": "GeV"}),
            "file": SimpleUploadedFile("s.tgz", tarball(ws, ps)),
        },
    )
    assert bad.status_code == 400


def test_ingest_command_takes_label_titles_units_and_caveats(bundle):
    from django.core.management import CommandError, call_command

    from hepstore.models import Likelihood

    root, _, _ = bundle
    call_command(
        "ingest",
        str(root),
        "--title=Titled",
        "--collaboration=ATLAS",
        "--label-title=m1=m(C1)",
        "--label-unit=m1=GeV",
        "--label-unit=m2=GeV",
        "--caveat=Yields at NLO.",
    )
    lh = Likelihood.objects.get()
    assert lh.label_info == {"m1": {"title": "m(C1)", "unit": "GeV"}, "m2": {"unit": "GeV"}}
    assert lh.notes == ["Yields at NLO."]
    with pytest.raises(CommandError, match="LABEL=VALUE"):
        call_command("ingest", str(root), "--title=T", "--collaboration=ATLAS", "--label-unit=GeV")
