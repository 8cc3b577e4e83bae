"""Search inside likelihoods: what is indexed, the query, and the embedded database backend.

One behaviour, two engines: DatabaseBackend (SQLite FTS5; a plain substring search on other
databases) is the zero-set-up default; hepstore.search_es.ElasticsearchBackend is used when
ELASTICSEARCH_URL is set. Both take a SearchQuery and return a SearchResult.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from hepstore.errors import HepstoreError
from hepstore.models import Likelihood, SearchDocument

log = logging.getLogger(__name__)
PAGE_SIZE = 20
FACETS = ("collaboration", "year", "modifier_type", "label")


# The accepted range of each numeric parameter (inclusive); the API schema declares the same.
# Bounded so that every accepted value fits the database's integer columns.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "year": (0, 9999),
    "label_min": (-1e300, 1e300),
    "label_max": (-1e300, 1e300),
    "npars_min": (0, 2**31 - 1),
    "npars_max": (0, 2**31 - 1),
    "page": (1, 10**6),
}


class SearchUnavailable(HepstoreError):
    code = "search_unavailable"
    status = 503


class BadQuery(HepstoreError):
    code = "bad_query"
    status = 400


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    collaboration: str = ""
    year: int | None = None
    modifier_type: str = ""
    label: str = ""
    label_min: float | None = None  # with label: some point has label >= label_min
    label_max: float | None = None
    npars_min: int | None = None
    npars_max: int | None = None
    sort: str = "relevance"  # or "date"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> SearchQuery:
        def number(name, kind):
            raw = params.get(name)
            if raw in (None, ""):
                return None
            try:
                value = kind(raw)
            except ValueError as exc:
                what = "a whole number" if kind is int else "a number"
                raise BadQuery(f"{name} must be {what}, got {raw!r}") from exc
            lo, hi = PARAMETER_RANGES[name]
            if not lo <= value <= hi:  # also false for NaN
                raise BadQuery(f"{name} must lie between {lo:g} and {hi:g}, got {raw!r}")
            return value

        sort = params.get("sort") or "relevance"
        if sort not in ("relevance", "date"):
            raise BadQuery("sort must be 'relevance' or 'date'")
        query = cls(
            text=(params.get("q") or "").strip(),
            collaboration=params.get("collaboration") or "",
            year=number("year", int),
            modifier_type=params.get("modifier_type") or "",
            label=params.get("label") or "",
            label_min=number("label_min", float),
            label_max=number("label_max", float),
            npars_min=number("npars_min", int),
            npars_max=number("npars_max", int),
            sort=sort,
            page=number("page", int) or 1,
        )
        if (query.label_min is not None or query.label_max is not None) and not query.label:
            raise BadQuery("label_min/label_max need label=<name>")
        return query


@dataclass
class SearchResult:
    total: int
    hits: list[dict] = field(default_factory=list)
    facets: dict[str, list[tuple]] = field(default_factory=dict)
    page: int = 1
    backend: str = ""

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "page": self.page,
            "page_size": PAGE_SIZE,
            "backend": self.backend,
            "hits": self.hits,
            "facets": {
                k: [{"value": v, "count": c} for v, c in items] for k, items in self.facets.items()
            },
        }


# --------------------------------------------------------------------------- documents
def build_document(likelihood: Likelihood) -> dict:
    """Everything indexed about one likelihood and its analysis."""
    from hepstore import blobs

    version = likelihood.version
    analysis = version.analysis
    summary = likelihood.summary or {}
    ws = blobs.read_json(likelihood.background_id)
    channels = [c["name"] for c in ws["channels"]]
    samples = sorted({s["name"] for c in ws["channels"] for s in c["samples"]})
    modifiers = sorted(
        {m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}
    )
    labels = list(likelihood.labels or [])
    ranges: dict[str, list[float]] = {}
    for values in likelihood.signals.values_list("values", flat=True):
        for label, value in zip(labels, values, strict=False):
            if isinstance(value, int | float) and not isinstance(value, bool):
                lo, hi = ranges.get(label, [value, value])
                ranges[label] = [min(lo, value), max(hi, value)]
    return {
        "likelihood": likelihood.pk,
        "analysis": analysis.pk,
        "title": analysis.title,
        "abstract": analysis.abstract,
        "collaboration": analysis.collaboration.name,
        "year": analysis.year,
        "inspire_id": analysis.inspire_id,
        "arxiv_id": analysis.arxiv_id,
        "doi": analysis.doi,
        "keywords": list(analysis.keywords or []),
        "region": likelihood.region,
        "version": version.number,
        "channels": channels,
        "samples": samples,
        "modifiers": modifiers,
        "modifier_types": sorted((summary.get("modifiers_by_type") or {}).keys()),
        "poi": summary.get("poi", ""),
        "n_parameters": summary.get("parameters"),
        "n_bins": summary.get("bins") or 0,
        "labels": labels,
        "label_ranges": ranges,
        "n_points": summary.get("signal_points") or 0,
        "created": likelihood.created.isoformat(),
    }


def body_text(doc: dict) -> str:
    parts = [
        doc["collaboration"],
        doc["region"],
        doc["poi"],
        doc["arxiv_id"],
        doc["doi"],
        str(doc["inspire_id"] or ""),
        *doc["keywords"],
        *doc["channels"],
        *doc["samples"],
        *doc["modifiers"],
        *doc["modifier_types"],
        *doc["labels"],
    ]
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------- database backend
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"


def _fts_query(text: str) -> str:
    """User text to an FTS5 query: every word must match (as a prefix)."""
    words = re.findall(r"[\w.\-]+", text)
    if not words:
        raise BadQuery("the query has no words to search for")
    return " AND ".join('"' + w.replace('"', '""') + '"*' for w in words)


PG_VECTOR = (
    "(setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(abstract, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'C'))"
)


def _pg_query(text: str) -> str:
    """User text to a PostgreSQL tsquery: every word (split like the parser does) as a prefix."""
    words = [w for w in re.split(r"[^\w]+|_", text) if w]
    if not words:
        raise BadQuery("the query has no words to search for")
    return " & ".join(f"{w.lower()}:*" for w in words)


def _marked_to_html(text: str) -> str:
    escaped = html.escape(text)
    return escaped.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


class DatabaseBackend:
    name = "database"

    def __init__(self) -> None:
        self.fts = connection.vendor == "sqlite"

    def index(self, docs: list[dict]) -> None:
        with transaction.atomic():
            for doc in docs:
                SearchDocument.objects.update_or_create(
                    likelihood_id=doc["likelihood"], defaults=_row(doc)
                )
                if self.fts:
                    with connection.cursor() as cur:
                        cur.execute(
                            "DELETE FROM hepstore_search_fts WHERE rowid = %s", [doc["likelihood"]]
                        )
                        cur.execute(
                            "INSERT INTO hepstore_search_fts(rowid, title, abstract, body)"
                            " VALUES (%s, %s, %s, %s)",
                            [doc["likelihood"], doc["title"], doc["abstract"], body_text(doc)],
                        )

    def rebuild(self, docs: list[dict]) -> None:
        with transaction.atomic():
            SearchDocument.objects.all().delete()
            if self.fts:
                with connection.cursor() as cur:
                    cur.execute("DELETE FROM hepstore_search_fts")
            self.index(docs)

    def search(self, query: SearchQuery) -> SearchResult:
        where, params = ["1 = 1"], []
        hits_cte, join, score = "", "", "0"
        if query.text:
            if self.fts:
                # MATERIALIZED: run the MATCH once, not once per document row.
                hits_cte = (
                    "WITH hits AS MATERIALIZED (SELECT rowid AS id, "
                    "bm25(hepstore_search_fts, 10.0, 3.0, 1.0) AS score "
                    "FROM hepstore_search_fts WHERE hepstore_search_fts MATCH %s) "
                )
                params.append(_fts_query(query.text))
                join, score = "JOIN hits ON hits.id = d.likelihood_id", "hits.score"
            elif connection.vendor == "postgresql":
                # PostgreSQL's own full-text search: weighted title > abstract > body, ranked
                # by ts_rank (negated, so that ascending order is best first as with bm25).
                hits_cte = (
                    "WITH hits AS MATERIALIZED (SELECT likelihood_id AS id, "
                    "-ts_rank(" + PG_VECTOR + ", q) AS score "
                    "FROM hepstore_searchdocument, to_tsquery('english', %s) q "
                    "WHERE " + PG_VECTOR + " @@ q) "
                )
                params.append(_pg_query(query.text))
                join, score = "JOIN hits ON hits.id = d.likelihood_id", "hits.score"
            else:
                for word in query.text.split():
                    where.append(
                        "(LOWER(d.title) LIKE %s OR LOWER(d.abstract) LIKE %s OR "
                        "LOWER(d.body) LIKE %s)"
                    )
                    params += [f"%{word.lower()}%"] * 3
        filters, fparams = self._filters(query)
        where += filters
        params += fparams
        # One pass over the matching rows: the count, the facets and the order are computed
        # here from a few narrow columns, which is cheaper than one SQL query for each.
        sql = (
            f"{hits_cte}SELECT d.likelihood_id, {score}, d.collaboration, d.year, "
            f"d.modifier_types, d.labels, d.created FROM hepstore_searchdocument d {join} "
            f"WHERE {' AND '.join(where)}"
        )
        with connection.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        # Newest first, then (stable) by relevance when ranking by relevance.
        rows.sort(key=lambda r: (r[6], r[0]), reverse=True)
        if query.sort == "relevance" and query.text:
            rows.sort(key=lambda r: r[1])
        start = (query.page - 1) * PAGE_SIZE
        page_ids = [r[0] for r in rows[start : start + PAGE_SIZE]]
        return SearchResult(
            len(rows), self._hits(page_ids, query), _facets(rows), query.page, self.name
        )

    def _filters(self, query: SearchQuery) -> tuple[list[str], list]:
        where, params = [], []
        if query.collaboration:
            where.append("d.collaboration = %s")
            params.append(query.collaboration)
        if query.year is not None:
            where.append("d.year = %s")
            params.append(query.year)
        if query.npars_min is not None:
            where.append("d.n_parameters >= %s")
            params.append(query.npars_min)
        if query.npars_max is not None:
            where.append("d.n_parameters <= %s")
            params.append(query.npars_max)
        json_has = (
            "EXISTS (SELECT 1 FROM json_each(d.{col}) WHERE value = %s)"
            if connection.vendor == "sqlite"
            else "d.{col}::jsonb ? %s"
        )
        if query.modifier_type:
            where.append(json_has.format(col="modifier_types"))
            params.append(query.modifier_type)
        if query.label:
            where.append(json_has.format(col="labels"))
            params.append(query.label)
            if connection.vendor == "sqlite":
                bound = "CAST(json_extract(d.label_ranges, %s) AS REAL)"
                path = "$." + '"' + query.label.replace('"', "") + '"'
                lo, hi = [path + "[0]"], [path + "[1]"]
            else:  # PostgreSQL
                bound = "((d.label_ranges::jsonb -> %s) ->> %s)::float"
                lo, hi = [query.label, 0], [query.label, 1]
            if query.label_min is not None:
                where.append(f"{bound} >= %s")
                params += [*hi, query.label_min]
            if query.label_max is not None:
                where.append(f"{bound} <= %s")
                params += [*lo, query.label_max]
        return where, params

    def _hits(self, ids: list[int], query: SearchQuery) -> list[dict]:
        docs = {d.likelihood_id: d for d in SearchDocument.objects.filter(likelihood_id__in=ids)}
        return [_hit(docs[i], highlight(docs[i], query.text)) for i in ids if i in docs]


def highlight(doc: SearchDocument, text: str) -> dict:
    """HTML with the query's words marked: the whole title, snippets of abstract and body."""
    words = [w.rstrip("sS") or w for w in re.findall(r"[\w.\-]+", text or "")]
    if not words:
        return {}
    pattern = re.compile(
        r"(?<![\w])(" + "|".join(re.escape(w) for w in words) + r")[\w]*", re.IGNORECASE
    )
    out = {}
    for key, value, whole in (
        ("title", doc.title, True),
        ("abstract", doc.abstract, False),
        ("body", doc.body, False),
    ):
        first = pattern.search(value or "")
        if first is None:
            continue
        if not whole:
            start = max(0, value.rfind(" ", 0, max(0, first.start() - 80)) + 1)
            end = value.find(" ", first.end() + 120)
            end = len(value) if end < 0 else end
            value = (
                ("…" if start > 0 else "") + value[start:end] + ("…" if end < len(value) else "")
            )
        marked = pattern.sub(lambda m: MARK_OPEN + m.group(0) + MARK_CLOSE, value)
        out[key] = _marked_to_html(marked)
    return out


def _facets(rows: list[tuple]) -> dict[str, list[tuple]]:
    counters = {name: Counter() for name in FACETS}
    for _, _, collaboration, year, _, _, _ in rows:
        counters["collaboration"][collaboration] += 1
        if year is not None:
            counters["year"][year] += 1
    # The lists are stored as JSON text; few distinct ones recur, so count each text once.
    for index, name in ((4, "modifier_type"), (5, "label")):
        for text, n in Counter(r[index] for r in rows).items():
            values = text if isinstance(text, list) else json.loads(text) if text else []
            for value in values:
                counters[name][value] += n
    return {
        name: sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))[:20]
        for name, c in counters.items()
    }


def _row(doc: dict) -> dict:
    from django.utils.dateparse import parse_datetime

    return {
        "analysis_id": doc["analysis"],
        "title": doc["title"],
        "abstract": doc["abstract"],
        "collaboration": doc["collaboration"],
        "year": doc["year"],
        "version": doc["version"],
        "body": body_text(doc),
        "modifier_types": doc["modifier_types"],
        "labels": doc["labels"],
        "label_ranges": doc["label_ranges"],
        "n_parameters": doc["n_parameters"],
        "n_bins": doc["n_bins"],
        "n_points": doc["n_points"],
        "created": parse_datetime(doc["created"]),
        "document": doc,
    }


def _hit(d: SearchDocument, highlights: dict) -> dict:
    return hit_from_document(d.document, highlights)


def hit_from_document(doc: dict, highlights: dict) -> dict:
    """One search hit from an indexed document (both backends)."""
    return {
        "likelihood": doc["likelihood"],
        "analysis": doc["analysis"],
        "title": doc["title"],
        "collaboration": doc["collaboration"],
        "year": doc["year"],
        "region": doc["region"],
        "version": doc["version"],
        "n_parameters": doc["n_parameters"],
        "n_points": doc["n_points"],
        "labels": doc["labels"],
        "label_ranges": doc["label_ranges"],
        "url": f"/likelihoods/{doc['likelihood']}/",
        "highlights": highlights,
    }


# --------------------------------------------------------------------------- entry points
def backend():
    if settings.ELASTICSEARCH_URL:
        from hepstore.search_es import ElasticsearchBackend

        return ElasticsearchBackend(settings.ELASTICSEARCH_URL)
    return DatabaseBackend()


def search(query: SearchQuery) -> SearchResult:
    return backend().search(query)


def _documents(likelihoods) -> list[dict]:
    return [
        build_document(lh) for lh in likelihoods.select_related("version__analysis__collaboration")
    ]


def index_version(version_pk: int) -> None:
    """Index (or re-index) the likelihoods of one version; called after ingestion commits.

    The database documents are always written (the page filters use them); an unreachable
    Elasticsearch is logged and caught up by `manage.py reindex`."""
    docs = _documents(Likelihood.objects.filter(version_id=version_pk))
    DatabaseBackend().index(docs)
    if settings.ELASTICSEARCH_URL:
        backend().index(docs)


def reindex() -> int:
    docs = _documents(Likelihood.objects.all())
    DatabaseBackend().rebuild(docs)
    if settings.ELASTICSEARCH_URL:
        backend().rebuild(docs)
    return len(docs)
