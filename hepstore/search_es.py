"""Elasticsearch 8/9 backend of search, through the official Python client.

Documents live in a versioned index (hepstore-likelihoods-<timestamp>) behind the alias
hepstore-likelihoods; a rebuild fills a new index and then switches the alias in one atomic
request, so search never goes down. Requests are retried with backoff by the client; when the
cluster cannot be reached the caller gets SearchUnavailable (the archive keeps working).
"""

from __future__ import annotations

import html
import time

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from hepstore.search import (
    PAGE_SIZE,
    SearchQuery,
    SearchResult,
    SearchUnavailable,
    body_text,
    hit_from_document,
)

ALIAS = "hepstore-likelihoods"
RETRIES = 3
BACKOFF_SECONDS = 0.2
MAPPING = {
    "properties": {
        "likelihood": {"type": "integer"},
        "analysis": {"type": "integer"},
        "title": {"type": "text", "analyzer": "english"},
        "abstract": {"type": "text", "analyzer": "english"},
        "body": {"type": "text"},
        "collaboration": {"type": "keyword"},
        "year": {"type": "integer"},
        "version": {"type": "integer"},
        "region": {"type": "keyword"},
        "modifier_types": {"type": "keyword"},
        "labels": {"type": "keyword"},
        "label_ranges": {"type": "object", "enabled": False},
        "label_min": {"type": "object", "dynamic": True},
        "label_max": {"type": "object", "dynamic": True},
        "n_parameters": {"type": "integer"},
        "n_bins": {"type": "integer"},
        "n_points": {"type": "integer"},
        "created": {"type": "date"},
        "source": {"type": "object", "enabled": False},
    }
}


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(self, url: str, client: Elasticsearch | None = None):
        # Retries are ours (with backoff), not the client's immediate ones.
        self.client = client or Elasticsearch(url, request_timeout=10, max_retries=0)

    def _call(self, fn, *args, **kwargs):
        """Call the client; connection failures, timeouts and 429/502/503/504 answers are
        retried with exponential backoff, then reported as SearchUnavailable."""
        error = None
        for attempt in range(RETRIES):
            try:
                return fn(*args, **kwargs)
            except TransportError as exc:
                error = exc
            except ApiError as exc:
                if exc.meta.status not in (429, 502, 503, 504):
                    raise SearchUnavailable(
                        f"the search cluster refused the request ({exc})"
                    ) from exc
                error = exc
            if attempt + 1 < RETRIES:
                time.sleep(BACKOFF_SECONDS * 2**attempt)
        raise SearchUnavailable(
            f"the search cluster is unreachable or failing ({error})"
        ) from error

    @staticmethod
    def _action(index: str, doc: dict) -> dict:
        source = {
            k: doc[k]
            for k in (
                "likelihood",
                "analysis",
                "title",
                "abstract",
                "collaboration",
                "year",
                "version",
                "region",
                "modifier_types",
                "labels",
                "label_ranges",
                "n_parameters",
                "n_bins",
                "n_points",
                "created",
            )
        }
        source["body"] = body_text(doc)
        source["label_min"] = {k: v[0] for k, v in doc["label_ranges"].items()}
        source["label_max"] = {k: v[1] for k, v in doc["label_ranges"].items()}
        source["source"] = doc
        return {"_index": index, "_id": str(doc["likelihood"]), "_source": source}

    def index(self, docs: list[dict]) -> None:
        if not self._call(self.client.indices.exists_alias, name=ALIAS):
            self.rebuild(docs)
            return
        self._call(
            helpers.bulk, self.client, [self._action(ALIAS, d) for d in docs], refresh="wait_for"
        )

    def rebuild(self, docs: list[dict]) -> None:
        new = f"{ALIAS}-{int(time.time() * 1000)}"
        self._call(self.client.indices.create, index=new, mappings=MAPPING)
        self._call(
            helpers.bulk, self.client, [self._action(new, d) for d in docs], refresh="wait_for"
        )
        actions = [{"add": {"index": new, "alias": ALIAS}}]
        if self._call(self.client.indices.exists_alias, name=ALIAS):
            old = self._call(self.client.indices.get_alias, name=ALIAS)
            actions = [{"remove": {"index": name, "alias": ALIAS}} for name in old] + actions
        self._call(self.client.indices.update_aliases, actions=actions)

    def search(self, query: SearchQuery) -> SearchResult:
        must = (
            [
                {
                    "multi_match": {
                        "query": query.text,
                        "fields": ["title^10", "abstract^3", "body"],
                        "operator": "and",
                    }
                }
            ]
            if query.text
            else []
        )
        filters = []
        for field_, value in (
            ("collaboration", query.collaboration),
            ("year", query.year),
            ("modifier_types", query.modifier_type),
            ("labels", query.label),
        ):
            if value not in ("", None):
                filters.append({"term": {field_: value}})
        if query.npars_min is not None or query.npars_max is not None:
            bounds = {}
            if query.npars_min is not None:
                bounds["gte"] = query.npars_min
            if query.npars_max is not None:
                bounds["lte"] = query.npars_max
            filters.append({"range": {"n_parameters": bounds}})
        if query.label and query.label_min is not None:
            filters.append({"range": {f"label_max.{query.label}": {"gte": query.label_min}}})
        if query.label and query.label_max is not None:
            filters.append({"range": {f"label_min.{query.label}": {"lte": query.label_max}}})
        body = {
            "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
            "from": (query.page - 1) * PAGE_SIZE,
            "size": PAGE_SIZE,
            "aggs": {
                "collaboration": {"terms": {"field": "collaboration", "size": 20}},
                "year": {"terms": {"field": "year", "size": 20}},
                "modifier_type": {"terms": {"field": "modifier_types", "size": 20}},
                "label": {"terms": {"field": "labels", "size": 20}},
            },
            "highlight": {
                "pre_tags": ["\x02"],
                "post_tags": ["\x03"],
                "fields": {"title": {"number_of_fragments": 0}, "abstract": {}, "body": {}},
            },
            "track_total_hits": True,
        }
        if query.sort == "date" or not query.text:
            body["sort"] = [{"created": "desc"}]
        response = self._call(self.client.search, index=ALIAS, **body)
        hits = []
        for hit in response["hits"]["hits"]:
            marks = {k: _html(v[0]) for k, v in hit.get("highlight", {}).items()}
            hits.append(hit_from_document(hit["_source"]["source"], marks))
        facets = {
            name: [(b["key"], b["doc_count"]) for b in agg["buckets"]]
            for name, agg in response.get("aggregations", {}).items()
        }
        return SearchResult(response["hits"]["total"]["value"], hits, facets, query.page, self.name)


def _html(text: str) -> str:
    return html.escape(text).replace("\x02", "<mark>").replace("\x03", "</mark>")
