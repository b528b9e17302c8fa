"""Search a collection: text → image (hybrid), image → image (visual), and near-duplicates.

Text queries (there is no CLIP: text meets images through what perception wrote down):

1. **Semantic**: the query is embedded with the sentence encoder and compared (cosine) with
   each item's embedded summary (caption, classifier labels with their synonyms, colours,
   text read) — ``S = clip((cos - 0.10) / 0.55, 0, 1)``.
2. **Keyword**: BM25 over each item's document (stemmed, stop words removed), normalised by the
   best BM25 among the candidates — ``K = bm25 / max bm25``.
3. **Exact concepts**: the query is parsed into concepts — COCO objects (with synonyms:
   "people" → person), ImageNet classes ("espresso"), colour words, and other words — and each
   concept is looked up in what perception found: a detected object (its score), a classifier
   label or a label that is a kind of the object (its score), an image or object colour, a word
   in the OCR text. ``E`` is the mean strength over the query's concepts.

``score = 0.45·S + 0.20·K + 0.35·E`` (``HYBRID_WEIGHTS``). Candidates are the union of the top
``CANDIDATES`` of the vector search and of the keyword search, both with the filters applied
inside the store (pre-filtering). ``why`` lists the matched objects, labels, colours and text.

Image queries rank by cosine similarity of the visual embedding (EfficientNet, 1280-d).
``find_duplicates`` groups items whose visual embeddings are at least ``threshold`` similar,
plus identical files (one item indexed from several paths).

The rooms: ``query`` (reading a query into concepts), ``filters`` (the ``--where`` language,
time bounds, path globs), ``ranking`` (``E``, ``S`` and the ``why`` lines), ``results`` (the
result types and their JSON), ``retrieve`` (``SearchQuery`` and ``search``), ``duplicates``.
Applications call these through ``oculi.library.Library``.
"""

from oculi.tasks.search.duplicates import DUPLICATE_EXACT_LIMIT, DUPLICATE_THRESHOLD, find_duplicates, validate_threshold
from oculi.tasks.search.filters import build_filter, parse_time, parse_where
from oculi.tasks.search.query import MAX_QUERY_CHARS, STOP_WORDS, Concept, QueryConcepts, keyword_query, parse_query, validate_query
from oculi.tasks.search.ranking import COLOUR_WEIGHT, HYBRID_WEIGHTS, SEM_HI, SEM_LO, VISUAL_LO, explain, semantic_score
from oculi.tasks.search.results import DuplicateGroup, DuplicatesReport, SearchResult, SearchResults
from oculi.tasks.search.retrieve import CANDIDATES, MAX_TOP_K, SearchQuery, search

__all__ = [
    "CANDIDATES", "COLOUR_WEIGHT", "DUPLICATE_EXACT_LIMIT", "DUPLICATE_THRESHOLD", "HYBRID_WEIGHTS", "MAX_QUERY_CHARS",
    "MAX_TOP_K", "SEM_HI", "SEM_LO", "STOP_WORDS", "VISUAL_LO", "Concept", "DuplicateGroup", "DuplicatesReport",
    "QueryConcepts", "SearchQuery", "SearchResult", "SearchResults", "build_filter", "explain", "find_duplicates",
    "keyword_query", "parse_query", "parse_time", "parse_where", "search", "semantic_score", "validate_query",
    "validate_threshold",
]
