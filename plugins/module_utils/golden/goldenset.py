# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The golden set: loading, schema validation and selection of the queries to run.

The format is described (with a JSON Schema) in the collection's ``docs/golden.md``.
Loading never stops at the first problem: every problem found is reported at once, each
with where it is, so a person fixes a hand-written file in one pass.
"""

from __future__ import annotations

import collections
import typing as t
from dataclasses import dataclass, field

from .. import yaml_text
from ..errors import GoldenSetInvalid
from .metrics import BASELINE_METRICS, is_relevant

FORMAT_VERSION = 1
SET_KEYS = frozenset(
    {
        "version",
        "name",
        "description",
        "k",
        "baseline",
        "shard_baselines",
        "corpus",
        "metadata",
        "queries",
    }
)
QUERY_KEYS = frozenset(
    {
        "qid",
        "text",
        "expected_ids",
        "relevance",
        "must_pass",
        "shard",
        "baseline",
        "description",
        "tags",
    }
)
QUERY_BASELINE_KEYS = frozenset({"ids", "scores"})
# Enough to fix a file in one pass without flooding a task result.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class QueryBaseline:
    """A query's answer recorded from a healthy system: ranked ids and, where known,
    their scores."""

    ids: t.Tuple[str, ...]
    scores: t.Optional[t.Tuple[float, ...]] = None


@dataclass(frozen=True)
class GoldenQuery:
    """One golden query; ``relevance`` maps each expected document id to its grade:
    its judgments, as trec_eval's qrels hold them (0 = judged not relevant)."""

    qid: str
    text: str
    relevance: t.Mapping[str, int]
    must_pass: bool = False
    shard: t.Optional[str] = None
    baseline: t.Optional[QueryBaseline] = None

    @property
    def expected_ids(self) -> t.Tuple[str, ...]:
        return tuple(self.relevance)

    @property
    def relevant_ids(self) -> t.Tuple[str, ...]:
        """Expected ids relevant at trec_eval's default level: grade 1 or more."""
        return tuple(doc for doc, grade in self.relevance.items() if is_relevant(grade))

    @property
    def judged(self) -> bool:
        """Whether the query has judgments; trec_eval leaves a query without any out
        of its means."""
        return bool(self.relevance)


@dataclass(frozen=True)
class GoldenSet:
    """A validated golden set; ``document`` is the file as read, kept so a capture
    preserves it."""

    source: str
    name: str
    queries: t.Tuple[GoldenQuery, ...]
    k: t.Optional[int] = None
    baseline: t.Mapping[str, float] = field(default_factory=dict)
    # Each shard's own queries' metrics, for a run that selects one shard.
    shard_baselines: t.Mapping[str, t.Mapping[str, float]] = field(default_factory=dict)
    document: t.Mapping[str, t.Any] = field(default_factory=dict)


@dataclass
class Problems:
    """Schema problems found so far, each prefixed with where it is."""

    items: t.List[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append("%s: %s" % (where, message) if where else message)


def load_golden_file(path: str, *, require_expected: bool = True) -> GoldenSet:
    """Read, parse and validate the golden set in the YAML (or JSON) file ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise GoldenSetInvalid(
            "Failed to read the golden set %s: %s" % (path, error),
            resource=path,
            next_step="Check the path given in golden_set.",
        ) from error
    return load_golden_text(text, path, require_expected=require_expected)


def load_golden_text(
    text: str, source: str, *, require_expected: bool = True
) -> GoldenSet:
    """Parse and validate golden set YAML; ``source`` names it in messages."""
    try:
        data = yaml_text.load(text)
    except yaml_text.YamlSyntaxError as error:
        raise GoldenSetInvalid(
            "Failed to parse the golden set %s: it is not valid YAML" % source,
            resource=source,
            reason=" ".join(str(error).split()),
            next_step="Fix the YAML syntax at the position given.",
        ) from error
    return parse_golden_set(data, source, require_expected=require_expected)


def dump_yaml(document: t.Mapping[str, t.Any]) -> str:
    """A golden set as YAML, keys in the order given, the way a person would write
    it."""
    return yaml_text.dump(
        dict(document), sort_keys=False, allow_unicode=True, width=120
    )


def parse_golden_set(
    data: t.Any, source: str, *, require_expected: bool = True
) -> GoldenSet:
    """A :class:`GoldenSet` from parsed YAML, or :class:`GoldenSetInvalid` listing every
    problem.

    ``require_expected`` is False when capturing a baseline, where queries may still
    lack their expected documents.
    """
    problems = Problems()
    if not isinstance(data, dict):
        problems.add(
            "",
            "the golden set must be a mapping with a 'queries' list, not %s"
            % _kind(data),
        )
        _raise_if_any(problems, source)
    _check_keys(data, SET_KEYS, "", problems)
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.add(
            "version",
            "unsupported version %r (this collection reads version %d)"
            % (data.get("version"), FORMAT_VERSION),
        )
    k = _positive_int(data.get("k"), "k", problems)
    baseline = parse_baseline_metrics(data.get("baseline"), "baseline", problems)
    shard_baselines = _parse_shard_baselines(data.get("shard_baselines"), problems)
    queries = _parse_queries(data.get("queries"), problems, require_expected)
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        problems.add("name", "must be a string")
    _raise_if_any(problems, source)
    return GoldenSet(
        source=source,
        name=name or _default_name(source),
        queries=queries,
        k=k,
        baseline=baseline,
        shard_baselines=shard_baselines,
        document=data,
    )


def parse_baseline_metrics(
    value: t.Any, where: str, problems: Problems
) -> t.Dict[str, float]:
    """Baseline metrics: names from :data:`BASELINE_METRICS`, each a number in [0,
    1]."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping of metric name to value")
        return {}
    metrics: t.Dict[str, float] = {}
    for name, number in value.items():
        if name not in BASELINE_METRICS:
            problems.add(
                where,
                "unknown metric %r (known: %s)" % (name, ", ".join(BASELINE_METRICS)),
            )
        elif not _is_number(number) or not 0 <= number <= 1:
            problems.add(
                "%s.%s" % (where, name),
                "must be a number between 0 and 1, not %r" % (number,),
            )
        else:
            metrics[name] = float(number)
    return metrics


def _parse_shard_baselines(
    value: t.Any, problems: Problems
) -> t.Dict[str, t.Dict[str, float]]:
    """``shard_baselines``: shard id to the baseline metrics of that shard's
    queries."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add("shard_baselines", "must be a mapping of shard id to metrics")
        return {}
    return {
        str(shard): parse_baseline_metrics(
            metrics, "shard_baselines.%s" % shard, problems
        )
        for shard, metrics in value.items()
    }


def select_queries(
    golden: GoldenSet, qids: t.Sequence[str] | None, shard: str | None
) -> t.Tuple[GoldenQuery, ...]:
    """The queries to run: those named in ``qids`` (all when empty), and only
    ``shard``'s when given."""
    chosen = golden.queries
    if qids:
        known = {query.qid for query in chosen}
        unknown = [qid for qid in qids if qid not in known]
        if unknown:
            raise GoldenSetInvalid(
                "Failed to select queries: %s not in the golden set %s"
                % (", ".join(unknown), golden.source),
                resource=golden.source,
                next_step="Use qids that the golden set defines.",
            )
        wanted = set(qids)
        chosen = tuple(query for query in chosen if query.qid in wanted)
    if shard:
        chosen = tuple(query for query in chosen if query.shard == shard)
    if not chosen:
        raise GoldenSetInvalid(
            "Failed to select queries: no query of the golden set %s is for shard %s"
            % (golden.source, shard),
            resource=golden.source,
            next_step="Give each query that targets one shard its 'shard' field, or "
            "omit shard "
            "to run every query.",
        )
    return chosen


def _parse_queries(
    value: t.Any, problems: Problems, require_expected: bool
) -> t.Tuple[GoldenQuery, ...]:
    if not isinstance(value, list):
        problems.add(
            "queries",
            "must be a list of queries" if value is not None else "is missing",
        )
        return ()
    if not value:
        problems.add("queries", "the golden set has no queries")
    parsed: t.List[GoldenQuery] = []
    first_seen: t.Dict[str, int] = {}
    for index, entry in enumerate(value):
        query = _parse_query(entry, "queries[%d]" % index, problems, require_expected)
        if query is None:
            continue
        if query.qid in first_seen:
            problems.add(
                "queries[%d]" % index,
                "duplicate qid %r (first at queries[%d])"
                % (query.qid, first_seen[query.qid]),
            )
            continue
        first_seen[query.qid] = index
        parsed.append(query)
    return tuple(parsed)


def _parse_query(
    entry: t.Any, where: str, problems: Problems, require_expected: bool
) -> GoldenQuery | None:
    if not isinstance(entry, dict):
        problems.add(
            where,
            "must be a mapping with qid, text and expected_ids, not %s" % _kind(entry),
        )
        return None
    qid = entry.get("qid")
    if isinstance(qid, str) and qid.strip():
        where = "%s (qid %s)" % (where, qid)
    else:
        hint = " (quote numbers: '001')" if qid is not None else ", and is missing"
        problems.add(where, "qid must be a non-empty string%s" % hint)
    _check_keys(entry, QUERY_KEYS, where, problems)
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.add(where, "text must be a non-empty string")
    relevance = _parse_relevance(entry, where, problems, require_expected)
    must_pass = entry.get("must_pass", False)
    if not isinstance(must_pass, bool):
        problems.add(where, "must_pass must be true or false")
    elif must_pass and relevance is not None and not _any_relevant(relevance):
        problems.add(
            where,
            "a must_pass query needs at least one relevant expected id (grade >= 1)",
        )
    shard = entry.get("shard")
    if shard is not None and not (isinstance(shard, str) and shard):
        problems.add(where, "shard must be a non-empty string")
    baseline = _parse_query_baseline(entry.get("baseline"), where, problems)
    if (
        relevance is None
        or not isinstance(qid, str)
        or not qid.strip()
        or not isinstance(text, str)
    ):
        return None
    return GoldenQuery(
        qid=qid,
        text=text,
        relevance=relevance,
        must_pass=must_pass is True,
        shard=shard if isinstance(shard, str) else None,
        baseline=baseline,
    )


def _parse_relevance(
    entry: t.Mapping[str, t.Any], where: str, problems: Problems, require_expected: bool
) -> t.Dict[str, int] | None:
    """Expected ids in their listed order, each with its grade (1 unless
    ``relevance`` says otherwise; 0 is a judgment of not relevant)."""
    if "expected_ids" not in entry:
        if require_expected:
            problems.add(
                where,
                "expected_ids is missing (use [] for a query without relevant "
                "documents)",
            )
            return None
        return {}
    expected = _document_ids(entry["expected_ids"], where + ".expected_ids", problems)
    if expected is None:
        return None
    grades = entry.get("relevance") or {}
    if not isinstance(grades, dict):
        problems.add(where, "relevance must map expected ids to grades")
        return None
    relevance = {doc: 1 for doc in expected}
    for doc, grade in grades.items():
        key = str(doc)
        if key not in relevance:
            problems.add(
                where + ".relevance", "%r is not one of the expected_ids" % key
            )
        elif isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
            problems.add(
                where + ".relevance",
                "grade of %s must be a whole number >= 0 (0: judged not relevant), "
                "not %r" % (key, grade),
            )
        else:
            relevance[key] = grade
    return relevance


def _any_relevant(relevance: t.Mapping[str, int]) -> bool:
    return any(is_relevant(grade) for grade in relevance.values())


def _parse_query_baseline(
    value: t.Any, where: str, problems: Problems
) -> QueryBaseline | None:
    if value is None:
        return None
    where += ".baseline"
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with ids and optional scores")
        return None
    _check_keys(value, QUERY_BASELINE_KEYS, where, problems)
    ids = _document_ids(value.get("ids", []), where + ".ids", problems, unique=False)
    scores = value.get("scores")
    if scores is not None and (
        not isinstance(scores, list) or not all(_is_number(s) for s in scores)
    ):
        problems.add(where, "scores must be a list of numbers")
        return None
    if ids is None:
        return None
    if scores is not None and len(scores) != len(ids):
        problems.add(where, "has %d scores for %d ids" % (len(scores), len(ids)))
        return None
    return QueryBaseline(
        tuple(ids), tuple(float(s) for s in scores) if scores is not None else None
    )


def _document_ids(
    value: t.Any, where: str, problems: Problems, unique: bool = True
) -> t.List[str] | None:
    """Document ids as strings (integer ids, as Qdrant uses, are accepted and
    compared as text)."""
    if not isinstance(value, list):
        problems.add(where, "must be a list of document ids")
        return None
    ids: t.List[str] = []
    for doc in value:
        if isinstance(doc, bool) or not isinstance(doc, (str, int)) or doc == "":
            problems.add(
                where,
                "%r is not a document id (a non-empty string or an integer)" % (doc,),
            )
            return None
        ids.append(str(doc))
    duplicates = (
        sorted(doc for doc, count in collections.Counter(ids).items() if count > 1)
        if unique
        else []
    )
    if duplicates:
        problems.add(where, "lists %s more than once" % ", ".join(duplicates))
        return None
    return ids


def _positive_int(value: t.Any, where: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.add(where, "must be a whole number >= 1, not %r" % (value,))
        return None
    return value


def _check_keys(
    mapping: t.Mapping[str, t.Any],
    allowed: t.FrozenSet[str],
    where: str,
    problems: Problems,
) -> None:
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        problems.add(
            where,
            "unknown key%s %s (allowed: %s)"
            % (plural, ", ".join(unknown), ", ".join(sorted(allowed))),
        )


def _raise_if_any(problems: Problems, source: str) -> None:
    if problems.items:
        count = len(problems.items)
        raise GoldenSetInvalid(
            "Failed to load the golden set %s: %d problem%s, first: %s"
            % (source, count, "s" if count > 1 else "", problems.items[0]),
            resource=source,
            reason="; ".join(problems.items[:10]),
            next_step="Fix the golden set (its format is in docs/golden.md of the "
            "collection) and run again.",
            partial={"problems": list(problems.items)},
        )


def _is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: t.Any) -> str:
    return "nothing" if value is None else "a %s" % type(value).__name__


def _default_name(source: str) -> str:
    base = source.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base
