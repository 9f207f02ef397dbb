"""A printed timeline of steps with their durations, for `lab up` and the drills."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool


@dataclass
class Timeline:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        """A line under the current step (a symptom, a result)."""
        for line in text.splitlines() or [""]:
            print(f"            {line}", file=self.out, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"[{self.elapsed:6.2f}s] {name} ...", file=self.out, flush=True)
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self._finish(name, began, ok=False)
            raise
        self._finish(name, began, ok=True)

    def _finish(self, name: str, began: float, ok: bool) -> None:
        seconds = time.monotonic() - began
        self.steps.append(Step(name, seconds, ok))
        print(f"[{self.elapsed:6.2f}s] {'done' if ok else 'FAILED'}: {name} ({seconds:.2f}s)", file=self.out,
              flush=True)

    def summary(self) -> str:
        width = max((len(s.name) for s in self.steps), default=0)
        lines = [f"  {s.name:<{width}}  {s.seconds:6.2f}s  {'ok' if s.ok else 'FAILED'}" for s in self.steps]
        return "\n".join([*lines, f"  {'total':<{width}}  {self.elapsed:6.2f}s"])
