# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A validation run: rounds of golden queries until enough consecutive rounds pass (or
cannot).

The only part of the engine with I/O and time: it sends the queries (through
:mod:`query`), then hands answers to the pure evaluation and verdict.  Pauses between
rounds go through the one :class:`Waiter`, so tests drive rounds with a fake clock.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ..waiter import Clock, Waiter
from . import verdict as v
from .evaluation import QueryResult, aggregate, evaluate_answer
from .goldenset import GoldenQuery, GoldenSet
from .query import QueryApi, run_queries


@dataclass(frozen=True)
class Plan:
    """Everything a validation needs, decided before the first query is sent."""

    golden: GoldenSet
    queries: t.Tuple[GoldenQuery, ...]
    k: int
    api: QueryApi
    criteria: v.Criteria
    concurrency: int = 8
    deadline: float = 300.0
    rounds: int = 1
    max_rounds: int = 1
    round_interval: float = 5.0
    shard: t.Optional[str] = None


@dataclass(frozen=True)
class Round:
    number: int
    results: t.Tuple[QueryResult, ...]
    summary: t.Dict[str, t.Optional[float]]
    verdict: v.RoundVerdict
    duration: float


@dataclass
class Outcome:
    """The rounds run, the streak of passing rounds at the end, and the overall
    verdict."""

    plan: Plan
    rounds: t.List[Round] = field(default_factory=list)
    streak: int = 0
    duration: float = 0.0
    deadline_hit: bool = False

    @property
    def last(self) -> Round:
        return self.rounds[-1]

    @property
    def passed(self) -> bool:
        return self.streak >= self.plan.rounds

    @property
    def findings(self) -> t.Tuple[v.Finding, ...]:
        """The last round's findings, plus one about the rounds when more than one
        was asked for."""
        extra = []
        if not self.passed and self.plan.rounds > 1:
            extra.append(
                v.Finding(
                    v.FAIL,
                    "rounds",
                    "needed %d consecutive passing rounds, got %d after %d round(s)%s"
                    % (
                        self.plan.rounds,
                        self.streak,
                        len(self.rounds),
                        " (the overall deadline ended the run)"
                        if self.deadline_hit
                        else "",
                    ),
                    value=float(self.streak),
                    limit=float(self.plan.rounds),
                )
            )
        return tuple(extra) + self.last.verdict.findings


def run_round(plan: Plan, number: int, deadline_at: float, clock: Clock) -> Round:
    """Send every query once, then score and judge the answers."""
    start = clock.now()
    answers = run_queries(
        plan.api,
        plan.queries,
        plan.k,
        concurrency=plan.concurrency,
        deadline_at=deadline_at,
        clock=clock,
    )
    results = tuple(
        evaluate_answer(query, answer, plan.k)
        for query, answer in zip(plan.queries, answers)
    )
    summary = aggregate(results, plan.criteria.min_recall)
    return Round(
        number,
        results,
        summary,
        v.judge(results, summary, plan.criteria),
        round(clock.now() - start, 3),
    )


def run_validation(plan: Plan, clock: Clock) -> Outcome:
    """Rounds until ``plan.rounds`` consecutive ones pass, the rounds left cannot get
    there, or time is up."""
    start = clock.now()
    deadline_at = start + plan.deadline
    outcome = Outcome(plan)

    def next_round() -> Outcome:
        if clock.now() >= deadline_at:
            # The pause ran into the deadline: a round now would only report every query
            # as late.
            outcome.deadline_hit = True
            return outcome
        latest = run_round(plan, len(outcome.rounds) + 1, deadline_at, clock)
        outcome.rounds.append(latest)
        outcome.streak = outcome.streak + 1 if latest.verdict.passed else 0
        return outcome

    def settled(current: Outcome) -> bool:
        left = plan.max_rounds - len(current.rounds)
        if (
            current.passed
            or current.deadline_hit
            or left < plan.rounds - current.streak
        ):
            return True
        current.deadline_hit = clock.now() >= deadline_at
        return current.deadline_hit

    # The settled predicate includes the deadline, so the waiter returns instead of
    # raising.
    Waiter(timeout=plan.deadline, interval=plan.round_interval, clock=clock).until(
        "consecutive passing rounds of golden queries", next_round, settled
    )
    outcome.duration = round(clock.now() - start, 3)
    return outcome
