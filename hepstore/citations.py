"""How to cite and where to find an analysis: external links (INSPIRE, arXiv, DOI, HEPData)
and, per version of its likelihoods, a BibTeX entry and a plain citation line."""

from __future__ import annotations

from urllib.parse import quote

from hepstore.models import Analysis, AnalysisVersion


def record_path(analysis: Analysis) -> str:
    """The citable path of the analysis: /record/ins<N> when it has an INSPIRE id."""
    if analysis.inspire_id:
        return f"/record/ins{analysis.inspire_id}"
    return analysis.get_absolute_url()


def links(analysis: Analysis) -> dict[str, str]:
    """URLs of the publication elsewhere, for the identifiers the analysis has."""
    found = {}
    if analysis.inspire_id:
        found["inspire"] = f"https://inspirehep.net/literature/{analysis.inspire_id}"
        found["hepdata"] = f"https://www.hepdata.net/record/ins{analysis.inspire_id}"
    if analysis.arxiv_id:
        found["arxiv"] = f"https://arxiv.org/abs/{quote(analysis.arxiv_id)}"
    if analysis.doi:
        found["doi"] = f"https://doi.org/{quote(analysis.doi, safe='/')}"
    return found


def _key(analysis: Analysis, version: AnalysisVersion) -> str:
    ident = f"ins{analysis.inspire_id}" if analysis.inspire_id else f"analysis{analysis.pk}"
    return f"hepstore:{ident}:v{version.number}"


def _bib_text(text: str) -> str:
    """A value inside braces: unbalanced braces would end the field early, so drop them."""
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "").replace("}", "")


def bibtex(analysis: Analysis, version: AnalysisVersion, url: str) -> str:
    """A BibTeX @misc entry for one version of the analysis's likelihoods; url is the
    absolute address of the record."""
    year = analysis.year or version.created.year
    fields = [
        ("title", f"{{{_bib_text(analysis.title)}}}"),
        ("collaboration", _bib_text(analysis.collaboration.name)),
        ("year", str(year)),
        ("howpublished", f"HistFactory likelihoods, version {version.number}"),
    ]
    if analysis.arxiv_id:
        fields += [("eprint", _bib_text(analysis.arxiv_id)), ("archivePrefix", "arXiv")]
    if analysis.doi:
        fields.append(("doi", _bib_text(analysis.doi)))
    if analysis.inspire_id:
        fields.append(("note", f"INSPIRE {analysis.inspire_id}"))
    fields.append(("url", url))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{_key(analysis, version)},\n{body}\n}}\n"


def citation_line(analysis: Analysis, version: AnalysisVersion, url: str) -> str:
    """One line: collaboration, title, identifiers, likelihood version and where it is."""
    parts = [f"{analysis.collaboration.name} Collaboration", f"\u201c{analysis.title}\u201d"]
    if analysis.arxiv_id:
        parts.append(f"arXiv:{analysis.arxiv_id}")
    if analysis.doi:
        parts.append(f"doi:{analysis.doi}")
    if analysis.inspire_id:
        parts.append(f"INSPIRE {analysis.inspire_id}")
    parts.append(f"likelihoods version {version.number} ({version.created:%Y-%m-%d}), {url}")
    return ", ".join(parts) + "."


def citations(analysis: Analysis, version: AnalysisVersion, url: str) -> dict[str, str]:
    return {
        "text": citation_line(analysis, version, url),
        "bibtex": bibtex(analysis, version, url),
    }
