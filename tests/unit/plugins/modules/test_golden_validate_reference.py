# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""golden_validate through main() against a real endpoint, its figures compared with
trec_eval's (pytrec_eval) per query and as means, in its result and its JSON report."""

from __future__ import annotations

import functools
import json
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.recovery.plugins.modules import golden_validate
from ansible_collections.ragops.recovery.tests.unit.golden_endpoint import (
    Endpoint,
    Reply,
    by_query,
    lab_answer,
)
from ansible_collections.ragops.recovery.tests.unit.runner import run as run_main
from ansible_collections.ragops.recovery.tests.unit.trec_eval_reference import (
    ALL_CASES,
    MEANS,
    PER_QUERY,
    WorldQuery,
    cases,
    run_of,
    trec_eval,
    world,
)

run = functools.partial(run_main, golden_validate)


def replies(queries: t.Sequence[WorldQuery]) -> t.Dict[str, Reply]:
    """What the endpoint answers each query text: HTTP 503 or the (shuffled) answer."""
    answers = {}
    for entry in queries:
        text = entry.golden_entry()["text"]
        if entry.answer is None:
            answers[text] = Reply(503, {"error": "shard unavailable"})
        else:
            ids = [doc for doc, _score in entry.answer]
            answers[text] = lab_answer(ids, [score for _doc, score in entry.answer])
    return answers


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("ranking", ["response", "score"])
def test_the_module_reports_what_trec_eval_computes(
    k: int, ranking: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = world(seed=k, size=112, k=k)
    assert cases(queries, k) == ALL_CASES - ({"fewer than k"} if k == 1 else set())
    golden = tmp_path / "golden.yml"
    golden.write_text(yaml.safe_dump({"queries": [e.golden_entry() for e in queries]}))
    report = tmp_path / "golden.json"
    with Endpoint(by_query(replies(queries))) as endpoint:
        result = run(
            capsys,
            golden_set=str(golden),
            url=endpoint.url,
            k=k,
            ranking=ranking,
            report_only=True,
            reports={"json": str(report)},
        )
    validation = result["validation"]
    assert json.loads(report.read_text()) == validation

    qrels = {entry.qid: entry.relevance for entry in queries}
    reference = trec_eval(qrels, run_of(queries, ranking), k)
    for row in validation["queries"]:
        expected = reference.per_query.get(row["qid"], dict.fromkeys(PER_QUERY))
        assert {name: row[name] for name in PER_QUERY} == expected, row["qid"]
    metrics = validation["metrics"]
    assert {metric: metrics[metric] for metric in MEANS} == reference.means
    errors = sum(1 for entry in queries if entry.answer is None)
    empty = sum(1 for entry in queries if entry.answer == [])
    assert metrics["error_rate"] == errors / len(queries)
    assert metrics["empty_rate"] == empty / len(queries)
    kinds = {row["error_kind"] for row in validation["queries"]}
    assert kinds == {None, "http"}
