"""Owned and throttled jobs: who sees and cancels a job, per-client caps, request rates,
scan point lists, the synchronous-fit budget and the custom-result cache's expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths
from reinterpret.jobs import Worker
from reinterpret.models import CachedResult, Job, JobState

pytestmark = pytest.mark.django_db


@pytest.fixture
def lh(bundle):
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get()


def anonymous(address: str) -> APIClient:
    return APIClient(REMOTE_ADDR=address)


def scan(client: APIClient, lh, **body):
    return client.post(f"/api/v1/likelihoods/{lh.pk}/scan", body, format="json")


def test_an_anonymous_client_cannot_read_or_cancel_anothers_job(lh):
    owner, stranger = anonymous("10.0.0.1"), anonymous("10.0.0.2")
    created = scan(owner, lh, points=["C1N2_300_0"])
    assert created.status_code == 202
    job_id, token = created.json()["id"], created.json()["token"]
    assert created["X-Job-Token"] == token and len(token) >= 40
    for response in (
        stranger.get(f"/api/v1/jobs/{job_id}"),
        stranger.post(f"/api/v1/jobs/{job_id}/cancel"),
        stranger.get(f"/api/v1/jobs/{job_id}", HTTP_X_JOB_TOKEN="guessed"),
        owner.get(f"/api/v1/jobs/{job_id}"),  # same address, no token: not enough
    ):
        assert response.status_code == 404
        assert "token" in response.json()["error"]["message"]
    assert stranger.get("/api/v1/jobs/").json()["count"] == 0
    assert Job.objects.get(pk=job_id).state == JobState.QUEUED
    # The bearer of the token sees its parameters and may cancel it.
    seen = stranger.get(f"/api/v1/jobs/{job_id}?token={token}").json()
    assert seen["params"] == {"points": ["C1N2_300_0"]}
    cancelled = stranger.post(f"/api/v1/jobs/{job_id}/cancel", HTTP_X_JOB_TOKEN=token)
    assert cancelled.json()["state"] == "cancelled"


def test_users_see_and_list_their_own_jobs_and_staff_see_all(lh):
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    staff = User.objects.create_user("carol", is_staff=True)
    clients = {}
    for user in (alice, bob, staff):
        clients[user.username] = APIClient()
        clients[user.username].force_authenticate(user)
    made = scan(clients["alice"], lh)
    assert "token" not in made.json()  # a user's job is reached by logging in
    job_id = made.json()["id"]
    assert Job.objects.get(pk=job_id).owner == alice
    scan(clients["bob"], lh)
    assert [j["id"] for j in clients["alice"].get("/api/v1/jobs/").json()["results"]] == [job_id]
    assert clients["bob"].post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
    assert clients["carol"].get("/api/v1/jobs/").json()["count"] == 2
    assert clients["carol"].get(f"/api/v1/jobs/{job_id}").json()["params"] == {}


@override_settings(REINTERPRET_MAX_QUEUED_PER_CLIENT=2)
def test_each_client_may_queue_only_so_many_jobs(lh):
    busy, other = anonymous("10.0.0.3"), anonymous("10.0.0.4")
    assert [scan(busy, lh).status_code for _ in range(2)] == [202, 202]
    refused = scan(busy, lh)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "you have 2 jobs" in refused.json()["error"]["message"]
    assert scan(other, lh).status_code == 202
    Worker().run_until_idle()
    assert scan(busy, lh).status_code == 202  # finished jobs no longer count


def test_60_rapid_anonymous_reinterpret_requests_are_throttled_but_a_user_gets_through(lh):
    url = f"/api/v1/likelihoods/{lh.pk}/reinterpret"
    body = {"signal": {"SR_meff": [1.0, 2.0, 3.0]}}
    crowd = anonymous("10.0.0.5")
    statuses = [crowd.post(url, body, format="json") for _ in range(60)]
    codes = [r.status_code for r in statuses]
    assert codes.count(200) == 20 and codes.count(429) == 40  # the default 20/min
    refused = statuses[-1]
    assert refused.json()["error"]["code"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 60
    user = APIClient(REMOTE_ADDR="10.0.0.5")
    user.force_authenticate(User.objects.create_user("dora"))
    assert user.post(url, body, format="json").status_code == 200


def test_throttle_rates_come_from_settings(lh, settings):
    settings.HEPSTORE_THROTTLE_RATES = {**settings.HEPSTORE_THROTTLE_RATES, "scan_anon": "2/hour"}
    client = anonymous("10.0.0.6")
    codes = [scan(client, lh, points=["C1N2_300_0"]).status_code for _ in range(3)]
    assert codes == [202, 202, 429]


def test_scan_point_lists_are_deduplicated(lh):
    client = anonymous("10.0.0.7")
    created = scan(client, lh, points=["C1N2_300_0"] * 99_999 + ["C1N2_800_200"])
    assert created.status_code == 202
    assert created.json()["params"]["points"] == ["C1N2_300_0", "C1N2_800_200"]
    Worker().run_until_idle()
    job = Job.objects.get(pk=created.json()["id"])
    assert job.progress_total == 2 and len(job.result["points"]) == 2


def test_too_many_names_are_refused_before_anything_runs(lh):
    created = scan(anonymous("10.0.0.8"), lh, points=["C1N2_300_0"] * 100_001)
    assert created.status_code == 400 and created.json()["error"]["problems"][0]["pointer"] == (
        "/points"
    )


def test_a_likelihood_whose_fits_took_longer_than_the_budget_gets_a_job(lh, settings):
    url = f"/api/v1/likelihoods/{lh.pk}/reinterpret"
    client = anonymous("10.0.0.9")
    first = client.post(url, {"signal": {"SR_meff": [1.0, 2.0, 3.0]}}, format="json")
    assert first.status_code == 200
    measured = CachedResult.objects.get().cpu_seconds
    assert measured > 0
    settings.REINTERPRET_SYNC_FIT_CPU_SECONDS = measured / 2
    second = client.post(url, {"signal": {"SR_meff": [2.0, 2.0, 3.0]}}, format="json")
    assert second.status_code == 202 and second.json()["kind"] == "custom"


def test_cached_custom_results_expire_and_are_evicted_by_count(lh, settings):
    url = f"/api/v1/likelihoods/{lh.pk}/reinterpret"
    client = APIClient()
    client.force_authenticate(User.objects.create_user("erin"))
    settings.REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES = 2
    for first_yield in (1.0, 2.0, 3.0):
        client.post(url, {"signal": {"SR_meff": [first_yield, 1.0, 1.0]}}, format="json")
    assert CachedResult.objects.count() == 2  # the oldest of three went
    again = client.post(url, {"signal": {"SR_meff": [3.0, 1.0, 1.0]}}, format="json").json()
    assert again["cached"] is True
    # Expired: recomputed, and the row is renewed rather than duplicated.
    CachedResult.objects.update(expires=timezone.now() - timedelta(seconds=1))
    expired = client.post(url, {"signal": {"SR_meff": [3.0, 1.0, 1.0]}}, format="json").json()
    assert expired["cached"] is False
    assert CachedResult.objects.count() == 1 and CachedResult.objects.get().expires > (
        timezone.now() + timedelta(hours=settings.REINTERPRET_CUSTOM_CACHE_TTL_HOURS - 1)
    )
    # Results of archived points never expire.
    client.get(f"/api/v1/likelihoods/{lh.pk}/signals/C1N2_300_0/result")
    assert CachedResult.objects.get(signal="C1N2_300_0").expires is None


def test_a_forged_x_forwarded_for_does_not_make_a_new_client(lh, settings):
    settings.HEPSTORE_THROTTLE_RATES = {**settings.HEPSTORE_THROTTLE_RATES, "scan_anon": "2/hour"}
    client = anonymous("10.0.0.10")
    codes = [
        scan(client, lh, points=["C1N2_300_0"], HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]


def test_the_validate_page_shares_the_validate_rate(settings, example_docs):
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    settings.HEPSTORE_THROTTLE_RATES = {
        **settings.HEPSTORE_THROTTLE_RATES,
        "validate_anon": "1/hour",
    }
    ws, _ = example_docs
    page = Client(REMOTE_ADDR="10.0.0.11")

    def upload():
        return page.post(
            "/validate", {"file": SimpleUploadedFile("ws.json", json.dumps(ws).encode())}
        )

    assert upload().status_code == 200
    refused = upload()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    api = APIClient(REMOTE_ADDR="10.0.0.11").post(
        "/api/v1/validate", {"file": SimpleUploadedFile("ws.json", json.dumps(ws).encode())}
    )
    assert api.status_code == 429
