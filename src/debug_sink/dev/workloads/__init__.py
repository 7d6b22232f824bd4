"""Labeled workloads to measure the correlator on, by name, and which of them it was tuned on.

Owns :data:`WORKLOADS`. Each generator is pure and seeded and returns a
:class:`~debug_sink.dev.synthetic.Workload` (events in arrival waves, the true recoveries);
:func:`debug_sink.dev.fill.measure` loads one wave by wave, runs the correlator after each and
scores its links.

- ``synthetic`` (:mod:`debug_sink.dev.synthetic`) and ``synthetic-intended`` (the same with
  half the given-up errors naming the strategy the agent intended, the false-link shape the
  issue reports): the **tuning** workloads, the ones the correlator's weights were chosen on.
- ``pipelines`` (:mod:`.pipelines`) and ``branches`` (:mod:`.branches`): **held out**,
  written from descriptions of agent fleets before the weights were changed and never used to
  choose them; each documents its conventions. Their scores are the ones to believe.
- ``support`` (:mod:`.support`): a customer-support fleet written from its description
  without reading the correlator's rules or weights; it documents its conventions. Held out
  until its misses were used to choose the retry chains and typed new-step retries of the
  correlator (issue 13's fourth round): now a **tuning** workload.
- ``coding`` (:mod:`.coding`): **held out**, a fleet of software-engineering agents written
  from its description without reading the correlator's rules, weights or tests; it documents
  its conventions and its truth.
- ``analysis`` (:mod:`.analysis`): **held out**, a fleet of data-analysis / research agents
  written from its description without reading the correlator's rules, weights or tests; it
  documents its conventions and its truth.
- ``web`` (:mod:`.web`): **held out**, a fleet of browser-automation agents written from its
  description without reading the correlator's rules, weights or tests (issue 13, fifth
  round, after the rules were fixed); it documents its conventions and its truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from debug_sink.dev import synthetic
from debug_sink.dev.synthetic import Workload
from debug_sink.dev.workloads import analysis, branches, coding, pipelines, support, web

__all__ = ["WORKLOADS", "LabeledWorkload"]

#: ``make(seed, stated_fraction)``.
Maker = Callable[[int | None, float], Workload]


@dataclass(frozen=True, slots=True)
class LabeledWorkload:
    """A generator: ``make(seed, stated_fraction)``, ``None`` meaning its default seed."""

    role: Literal["tuning", "held-out"]
    make: Maker
    summary: str


def _synthetic(intended: float) -> Maker:
    def make(seed: int | None, stated_fraction: float) -> Workload:
        if stated_fraction:
            raise ValueError("the synthetic workload has no agents that state their links")
        config = synthetic.SyntheticConfig(p_intended_strategy=intended)
        if seed is not None:
            config = synthetic.SyntheticConfig(seed=seed, p_intended_strategy=intended)
        return synthetic.generate(config)

    return make


def _fleet(config: Callable[..., Any], generate: Callable[[Any], Workload]) -> Maker:
    """The maker of a fleet generator whose config takes ``seed`` and ``stated_fraction``."""

    def make(seed: int | None, stated_fraction: float) -> Workload:
        seeded = {} if seed is None else {"seed": seed}
        return generate(config(stated_fraction=stated_fraction, **seeded))

    return make


_pipelines = _fleet(pipelines.PipelineConfig, pipelines.generate)
_branches = _fleet(branches.BranchConfig, branches.generate)
_support = _fleet(support.SupportConfig, support.generate)
_coding = _fleet(coding.CodingConfig, coding.generate)
_analysis = _fleet(analysis.AnalysisConfig, analysis.generate)
_web = _fleet(web.WebConfig, web.generate)


#: The workloads by name.
WORKLOADS: Final[dict[str, LabeledWorkload]] = {
    "synthetic": LabeledWorkload(
        "tuning",
        _synthetic(0.0),
        "interleaved agents, retries, fallbacks, delegation, give-ups, late arrivals",
    ),
    "synthetic-intended": LabeledWorkload(
        "tuning",
        _synthetic(0.5),
        "synthetic, half the errors given up on naming the strategy the agent intended",
    ),
    "pipelines": LabeledWorkload(
        "held-out",
        _pipelines,
        "long item pipelines: operations recur as new work, fallback to another agent with "
        "the same operation, no recovery_attempted, intended strategies on giving up, "
        "duplicates",
    ),
    "branches": LabeledWorkload(
        "held-out",
        _branches,
        "parallel branches of one agent name and operation, delegation to another agent, "
        "no recovery_success, agents offline for two waves, duplicates",
    ),
    "support": LabeledWorkload(
        "tuning",
        _support,
        "support tickets: tool agents in sequence or parallel, retries reported three ways, "
        "circuit breakers, alternative tools, escalation to a human minutes to hours later, "
        "give-ups followed by new work of the same operation, duplicates",
    ),
    "coding": LabeledWorkload(
        "held-out",
        _coding,
        "coding tasks: fix-and-retest loops of parallel subtasks, retries reported three "
        "ways, LLM provider fallback, human approval minutes to hours later, duplicates",
    ),
    "analysis": LabeledWorkload(
        "held-out",
        _analysis,
        "analysis requests: parallel query repair loops, code repair with a chunked "
        "fallback, proxy retries, critic rejections recovered by the critic or a human "
        "hours later, buffered errors arriving after their recovery, 2 s clock skew",
    ),
    "web": LabeledWorkload(
        "held-out",
        _web,
        "browser tasks: parallel tabs, transient retries reported three ways, login and "
        "re-run after session expiry, CAPTCHAs solved by another agent minutes later, rate "
        "limits rescheduled, selector drift, duplicates",
    ),
}
