"""A client of the HEP likelihood portal's REST API for theorists.

    from hepstore_client import Portal
    portal = Portal("https://portal.example")
    record = portal.record(1765529)                    # an analysis by its INSPIRE id
    lh = record["version"]["likelihoods"][0]["id"]
    portal.result(lh, mst=300, mn2=1)                  # CLs of the point with these masses
    job = portal.scan(lh); portal.wait(job)            # every point, with a progress bar
    portal.contour(job)                                # the exclusion contour

Every method raises PortalError (with the API's code, message and problems) when the portal
refuses a request. Only `requests` is needed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

import requests

__all__ = ["Portal", "PortalError"]
__version__ = "0.1.0"

TERMINAL = {"succeeded", "failed", "cancelled"}


class PortalError(Exception):
    """A request the portal refused: HTTP status, error code, message and problems."""

    def __init__(self, status: int, code: str, message: str, problems: list | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.problems = problems or []


class Portal:
    """One portal at base url (e.g. "http://127.0.0.1:8000"); token for submissions."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 120.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Jobs made anonymously are read and cancelled with the secret token returned when
        # they were made (the portal shows a job to its owner only): job id -> token.
        self._job_tokens: dict[int, str] = {}
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    # -- plumbing -----------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.url}/api/v1/{path.lstrip('/')}"
        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:500]}
            raise PortalError(
                response.status_code,
                error.get("code", "error"),
                error.get("message", ""),
                error.get("problems"),
            )
        return response

    def _get(self, path: str, **params) -> Any:
        return self._request("GET", path, params=params or None).json()

    def _pages(self, path: str, **params) -> list:
        """Every result of a paginated list."""
        page = self._get(path, **params)
        results = list(page["results"])
        while page.get("next"):
            page = self._get(page["next"])
            results += page["results"]
        return results

    # -- finding analyses ---------------------------------------------------------------
    def search(self, q: str = "", **filters) -> dict:
        """Full-text search inside likelihoods: hits with highlights and facets. Filters:
        collaboration, year, modifier_type, label, label_min, label_max, npars_min, ..."""
        return self._get("search/", q=q, **filters)

    def analyses(self) -> list:
        """Every analysis in the archive with its publication metadata and links."""
        return self._pages("analyses/")

    def analysis(self, analysis: int) -> dict:
        """One analysis with its versions and their likelihoods (regions)."""
        return self._get(f"analyses/{int(analysis)}/")

    def record(self, inspire_id: int, version: int | None = None) -> dict:
        """An analysis by its INSPIRE id: one version (the latest by default) with its
        likelihoods, links and citation (BibTeX and a text line)."""
        params = {"version": version} if version is not None else {}
        return self._get(f"records/ins{int(inspire_id)}", **params)

    def likelihood(self, likelihood: int) -> dict:
        """One region: labels, summary (channels, bins, parameters, POI) and download links."""
        return self._get(f"likelihoods/{int(likelihood)}/")

    def signals(self, likelihood: int, values: dict | None = None, **labels) -> list:
        """The signal grid [{name, values}], only the points with the given label values
        (e.g. signals(lh, mst=300)) when some are given."""
        return self._pages(
            f"likelihoods/{int(likelihood)}/signals/", **{**(values or {}), **labels}
        )

    # -- downloads ----------------------------------------------------------------------
    def _download(self, path: str) -> bytes:
        """Bytes of a download, checked against the sha256 the portal states."""
        response = self._request("GET", path)
        data = response.content
        stated = response.headers.get("X-Content-SHA256")
        if stated and hashlib.sha256(data).hexdigest() != stated:
            raise PortalError(200, "corrupt_download", f"{path}: sha256 differs from {stated}")
        return data

    def background_only(self, likelihood: int, form: str = "published") -> dict:
        """The background-only workspace (as published, or form="canonical")."""
        return json.loads(
            self._download(f"likelihoods/{int(likelihood)}/background-only?form={form}")
        )

    def patchset(self, likelihood: int, form: str = "published") -> dict:
        """The patchset of every signal point."""
        return json.loads(self._download(f"likelihoods/{int(likelihood)}/patchset?form={form}"))

    def download(self, likelihood: int, what: str, path: str) -> str:
        """Save "background-only", "patchset" or "archive" (a .tar.gz) as published to path;
        returns its sha256 (checked against the portal's)."""
        data = self._download(f"likelihoods/{int(likelihood)}/{what}")
        with open(path, "wb") as out:
            out.write(data)
        return hashlib.sha256(data).hexdigest()

    def workspace(self, likelihood: int, name: str | None = None, **labels) -> dict:
        """The full workspace of one signal point (its patch applied), by name or values."""
        name = name or self._point_name(likelihood, labels)
        return json.loads(self._download(f"likelihoods/{int(likelihood)}/signals/{name}/workspace"))

    def patch(self, likelihood: int, name: str) -> list:
        """The JSON Patch operations of one signal point."""
        return json.loads(self._download(f"likelihoods/{int(likelihood)}/signals/{name}/patch"))

    def _point_name(self, likelihood: int, labels: dict) -> str:
        points = self.signals(likelihood, labels)
        if len(points) != 1:
            raise PortalError(
                404 if not points else 400,
                "not_found" if not points else "ambiguous",
                f"{len(points)} points have the values {labels}",
                points[:50],
            )
        return points[0]["name"]

    # -- results ------------------------------------------------------------------------
    def result(
        self, likelihood: int, name: str | None = None, values: dict | None = None, **labels
    ) -> dict:
        """CLs (observed, expected band -2..+2 sigma), mu_hat and upper limits of an archived
        point, by name or by label values (result(lh, msb=1000, mn2=131, mn1=60))."""
        if name is not None:
            return self._get(f"likelihoods/{int(likelihood)}/signals/{name}/result")
        return self._get(
            f"likelihoods/{int(likelihood)}/signals/result", **{**(values or {}), **labels}
        )

    def reinterpret(
        self,
        likelihood: int,
        signal: dict | None = None,
        modifiers: list | None = None,
        patch: list | None = None,
        progress: bool = True,
    ) -> dict:
        """Your own signal: yields per channel and bin ({"SR": [1.2, 3.4]}) with optional
        extra modifiers, or raw patch operations. Waits for the result when it runs as a job."""
        body: dict = {"patch": patch} if patch is not None else {"signal": signal or {}}
        if modifiers:
            body["modifiers"] = modifiers
        response = self._request("POST", f"likelihoods/{int(likelihood)}/reinterpret", json=body)
        data = response.json()
        if response.status_code == 202:
            return self.wait(self._remember(data), progress=progress)["result"]
        return data

    # -- scans --------------------------------------------------------------------------
    def scan(
        self,
        likelihood: int,
        points: list | None = None,
        x: str | None = None,
        y: str | None = None,
    ) -> dict:
        """Start a scan of every signal point (or those named); returns the job."""
        body = {k: v for k, v in (("points", points), ("x", x), ("y", y)) if v}
        job = self._request("POST", f"likelihoods/{int(likelihood)}/scan", json=body).json()
        return self._remember(job)

    def _remember(self, job: dict) -> dict:
        if job.get("token"):
            self._job_tokens[_job_id(job)] = job["token"]
        return job

    def _job_headers(self, job) -> dict:
        token = self._job_tokens.get(_job_id(job))
        return {"X-Job-Token": token} if token else {}

    def job(self, job) -> dict:
        return self._request("GET", f"jobs/{_job_id(job)}", headers=self._job_headers(job)).json()

    def cancel(self, job) -> dict:
        """Cancel a job of yours (queued: at once; running: between chunks of points)."""
        path = f"jobs/{_job_id(job)}/cancel"
        return self._request("POST", path, headers=self._job_headers(job)).json()

    def wait(
        self, job, progress: bool = True, poll: float = 0.5, timeout: float | None = None
    ) -> dict:
        """Poll the job until it ends, drawing a progress bar on stderr; returns the job.
        Raises PortalError when it failed or was cancelled, TimeoutError after timeout s."""
        start = time.monotonic()
        while True:
            current = self.job(job)
            if progress:
                _draw(current)
            if current["state"] in TERMINAL:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"job {current['id']} still {current['state']}")
            time.sleep(poll)
        if progress:
            sys.stderr.write("\n")
        if current["state"] != "succeeded":
            raise PortalError(200, f"job_{current['state']}", current.get("error") or "")
        return current

    def contour(self, job) -> dict:
        """The exclusion contour of a finished scan: observed and expected lines in the plane
        of its two labels (see the portal's API documentation for the shape)."""
        result = self.job(job).get("result") or {}
        if "contour" not in result:
            raise PortalError(404, "not_found", "the scan has no contour (yet)")
        return result["contour"]

    def contour_svg(self, job) -> str:
        path = f"jobs/{_job_id(job)}/contour.svg"
        return self._request("GET", path, headers=self._job_headers(job)).text


def _job_id(job) -> int:
    return int(job["id"] if isinstance(job, dict) else job)


def _draw(job: dict, width: int = 30) -> None:
    done = job["progress"]["done"] or 0
    total = job["progress"]["total"] or 0
    filled = int(width * done / total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\rjob {job['id']} [{bar}] {done}/{total} {job['state']:<10}")
    sys.stderr.flush()
