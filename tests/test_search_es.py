"""The Elasticsearch backend at its HTTP boundary: the requests it sends and how it reads
recorded responses, against a small fake cluster on loopback. (No Elasticsearch server can
be installed on the build machines; test_search.py runs the behavioural suite against a real
cluster when ELASTICSEARCH_URL is set.)"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hepstore import search
from hepstore.search import SearchQuery, SearchUnavailable
from hepstore.search_es import ALIAS, ElasticsearchBackend

# A search response as Elasticsearch 8 returns it (trimmed to the fields that are read).
RECORDED_SEARCH = {
    "took": 3,
    "timed_out": False,
    "hits": {
        "total": {"value": 1, "relation": "eq"},
        "max_score": 2.1,
        "hits": [
            {
                "_index": "hepstore-likelihoods-1",
                "_id": "7",
                "_score": 2.1,
                "_source": {
                    "source": {
                        "likelihood": 7,
                        "analysis": 3,
                        "title": "Search for <b>sbottoms</b>",
                        "collaboration": "ATLAS",
                        "year": 2019,
                        "region": "RegionA",
                        "version": 1,
                        "n_parameters": 64,
                        "n_points": 217,
                        "labels": ["msb", "mn2", "mn1"],
                        "label_ranges": {"msb": [250, 1600]},
                    }
                },
                "highlight": {"title": ["Search for <b>\x02sbottoms\x03</b>"]},
            }
        ],
    },
    "aggregations": {
        "collaboration": {"buckets": [{"key": "ATLAS", "doc_count": 1}]},
        "year": {"buckets": [{"key": 2019, "doc_count": 1}]},
        "modifier_type": {"buckets": [{"key": "histosys", "doc_count": 1}]},
        "label": {"buckets": [{"key": "msb", "doc_count": 1}]},
    },
}


class FakeCluster:
    def __init__(self):
        self.requests: list[tuple[str, str, bytes]] = []
        self.alias_exists = False
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body=None):
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                cluster.requests.append((self.command, self.path, body))
                path = self.path.split("?")[0]
                if path == f"/_alias/{ALIAS}":
                    if not cluster.alias_exists:
                        return self._reply(404, {"error": "alias missing", "status": 404})
                    return self._reply(200, {f"{ALIAS}-1": {"aliases": {ALIAS: {}}}})
                if path == "/_bulk":
                    n = len([line for line in body.splitlines() if line.strip()]) // 2
                    return self._reply(
                        200,
                        {
                            "took": 1,
                            "errors": False,
                            "items": [{"index": {"status": 201, "_id": str(i)}} for i in range(n)],
                        },
                    )
                if path == "/_aliases":
                    cluster.alias_exists = True
                    return self._reply(200, {"acknowledged": True})
                if path.endswith("/_search"):
                    return self._reply(200, RECORDED_SEARCH)
                if self.command == "PUT":
                    return self._reply(200, {"acknowledged": True, "index": path[1:]})
                return self._reply(404, {"error": "unexpected request", "status": 404})

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def cluster():
    fake = FakeCluster()
    yield fake
    fake.close()


DOC = {
    "likelihood": 7,
    "analysis": 3,
    "title": "Search for sbottoms",
    "abstract": "b-jets",
    "collaboration": "ATLAS",
    "year": 2019,
    "inspire_id": 1748602,
    "arxiv_id": "1908.03122",
    "doi": "",
    "keywords": ["susy"],
    "region": "RegionA",
    "version": 1,
    "channels": ["SR_meff"],
    "samples": ["ttbar"],
    "modifiers": ["JES"],
    "modifier_types": ["histosys"],
    "poi": "mu_SIG",
    "n_parameters": 64,
    "n_bins": 6,
    "labels": ["msb"],
    "label_ranges": {"msb": [250, 1600]},
    "n_points": 217,
    "created": "2026-11-23T10:00:00+00:00",
}


def test_rebuild_creates_an_index_with_the_mapping_bulk_loads_and_switches_the_alias(cluster):
    ElasticsearchBackend(cluster.url).rebuild([DOC])
    methods = [(m, p.split("?")[0]) for m, p, _ in cluster.requests]
    create = next(r for r in cluster.requests if r[0] == "PUT")
    assert create[1].startswith(f"/{ALIAS}-")
    mapping = json.loads(create[2])["mappings"]["properties"]
    assert mapping["collaboration"]["type"] == "keyword" and mapping["title"]["type"] == "text"
    bulk = next(body for m, p, body in cluster.requests if p.startswith("/_bulk"))
    action, source = [json.loads(line) for line in bulk.splitlines() if line.strip()]
    assert action["index"]["_id"] == "7" and action["index"]["_index"].startswith(f"{ALIAS}-")
    assert source["label_min"] == {"msb": 250} and "SR_meff" in source["body"]
    aliases = json.loads(next(b for m, p, b in cluster.requests if p == "/_aliases"))
    assert aliases["actions"][-1]["add"]["alias"] == ALIAS
    assert methods.index(("POST", "/_aliases")) > methods.index(("PUT", create[1].split("?")[0]))


def test_second_rebuild_removes_the_old_index_from_the_alias_in_the_same_request(cluster):
    backend = ElasticsearchBackend(cluster.url)
    backend.rebuild([DOC])
    backend.rebuild([DOC])
    last = json.loads([b for m, p, b in cluster.requests if p == "/_aliases"][-1])
    assert last["actions"][0] == {"remove": {"index": f"{ALIAS}-1", "alias": ALIAS}}
    assert "add" in last["actions"][1]


def test_search_sends_filters_and_aggregations_and_reads_the_response(cluster):
    result = ElasticsearchBackend(cluster.url).search(
        SearchQuery(
            text="sbottom",
            collaboration="ATLAS",
            label="msb",
            label_min=300,
            label_max=800,
            npars_min=10,
        )
    )
    body = json.loads(next(b for m, p, b in cluster.requests if "_search" in p))
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"collaboration": "ATLAS"}} in filters
    assert {"range": {"label_max.msb": {"gte": 300}}} in filters
    assert {"range": {"label_min.msb": {"lte": 800}}} in filters
    assert {"range": {"n_parameters": {"gte": 10}}} in filters
    assert set(body["aggs"]) == {"collaboration", "year", "modifier_type", "label"}
    assert result.total == 1 and result.backend == "elasticsearch"
    hit = result.hits[0]
    assert hit["likelihood"] == 7 and hit["url"] == "/likelihoods/7/"
    assert hit["highlights"]["title"] == "Search for &lt;b&gt;<mark>sbottoms</mark>&lt;/b&gt;"
    assert result.facets["year"] == [(2019, 1)]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_cluster_is_a_clear_error():
    with pytest.raises(SearchUnavailable, match="unreachable"):
        ElasticsearchBackend(closed_port_url()).search(SearchQuery(text="x"))


@pytest.mark.django_db
def test_ingestion_commits_while_the_cluster_is_down_and_the_api_says_503(bundle, settings):
    from rest_framework.test import APIClient

    from hepstore.models import Likelihood, SearchDocument
    from hepstore.services import Publication, _after_commit, ingest_paths

    settings.ELASTICSEARCH_URL = closed_port_url()
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Outage study", collaboration="ATLAS"))
    _after_commit(version.pk)  # what on_commit runs; it must not raise
    assert Likelihood.objects.count() == 1 and SearchDocument.objects.count() == 1
    response = APIClient().get("/api/v1/search/", {"q": "Outage"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "search_unavailable"
    assert search.DatabaseBackend().search(SearchQuery(text="Outage")).total == 1


def test_transient_failures_are_retried_with_backoff(cluster, monkeypatch):
    import hepstore.search_es as es

    sleeps = []
    monkeypatch.setattr(es.time, "sleep", sleeps.append)
    backend = ElasticsearchBackend(closed_port_url())
    with pytest.raises(SearchUnavailable):
        backend.search(SearchQuery(text="x"))
    assert sleeps == [es.BACKOFF_SECONDS, 2 * es.BACKOFF_SECONDS]
