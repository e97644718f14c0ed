"""The study's state as a pure function of its trial history.

Every decided trial carries a decision (system attribute :data:`DECISION`): its role, config,
parent trial and planned datasets. :func:`protocol_state` replays those trials in number order
into per-config :class:`~gnn_convergence.study.evidence.Evidence`, the walks, and the study's
answer so far (:mod:`~gnn_convergence.study.answer`). Nothing is kept between calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import Thresholds, classify
from gnn_convergence.study.answer import Answer, Band, study_answer
from gnn_convergence.study.evidence import (
    PENDING,
    ROBUST,
    Evidence,
    RobustRule,
    Run,
    Visit,
    better,
)
from gnn_convergence.study.space import Param, fingerprint
from gnn_convergence.study.vocabulary import (
    CONFIG,
    DATA_SEEDS,
    DECISION,
    ENQUEUED,
    FINGERPRINT,
    JUMP,
    MOVE,
    ON_GRID,
    PARENT,
    PER_SEED,
    REPORTED,
    ROLE,
    ROUND,
    START,
    finite,
)

WALK_ROLES = (START, JUMP, MOVE)
OPENERS = (START, JUMP)
DEFAULT_THRESHOLDS = Thresholds()
DEFAULT_RULE = RobustRule()

Config = tuple[int, ...]


@dataclass(frozen=True)
class Walk:
    """Trials from one start or jump up to the next one.

    Attributes:
        first: Number of the start or jump trial.
        visits: Every protocol trial in the walk's span, in number order.
        panel: The walk's datasets (those of its first trial).
        configs: Configs the walk visited (start/jump and moves), in visiting order.
        incumbent: The best config so far, by paired comparisons on the panel.
        stale: Finished moves since the incumbent last improved.
        rerun_owed: The opener's job was killed and no rerun of it is decided yet.
        role: The opener's role (start or jump).
    """

    first: int
    visits: tuple[Visit, ...]
    panel: tuple[int, ...] | None
    configs: tuple[Config, ...]
    incumbent: Config
    stale: int
    rerun_owed: bool
    role: str


@dataclass(frozen=True)
class ProtocolState:
    """Everything the protocol knows from a trial history (see :func:`protocol_state`)."""

    params: tuple[Param, ...]
    rule: RobustRule
    visits: tuple[Visit, ...]
    evidence: Mapping[Config, Evidence]
    walks: tuple[Walk, ...]
    answer: Answer

    @property
    def boundaries(self) -> tuple[Band, ...]:
        """The boundary bands around the recommended config."""
        return self.answer.bands

    def verdict(self, config: Config) -> str:
        """The config's verdict (pending when it never ran)."""
        ev = self.evidence.get(config)
        return ev.verdict if ev is not None else PENDING

    def robust_configs(self) -> list[Config]:
        """Configs whose verdict is robust, in the order they were first run."""
        return [c for c, ev in self.evidence.items() if ev.verdict == ROBUST]

    def first_number(self, config: Config) -> int:
        """Number of the config's first trial."""
        return self.evidence[config].visits[0].number

    def config_of(self, number: int | None) -> Config | None:
        """Config run by trial ``number``, None if unknown."""
        return next((v.config for v in self.visits if v.number == number), None)

    def values(self, config: Config) -> dict[str, Any]:
        """Parameter values of a config, by full name."""
        return {p.name: p.values[i] for p, i in zip(self.params, config, strict=True)}


def protocol_state(
    trials: Sequence[FrozenTrial],
    params: Sequence[Param],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule: RobustRule = DEFAULT_RULE,
) -> ProtocolState:
    """Replay decided trials into the protocol's state.

    Trials without a decision, with another space fingerprint, off-grid enqueued trials and
    waiting trials are ignored. A FAIL trial whose job never reported (``reported`` user
    attribute False: a killed or interrupted job) has no run and is decided again; a killed
    start or jump still opens its walk, whose rerun on the same panel is then owed. RUNNING
    trials are pending. A run's class comes from its connectivity_R2 and ``thresholds``; a
    trial without per-run records counts as one run of its value, a FAIL one as a failed run
    per planned dataset.
    """
    params = tuple(params)
    space = fingerprint(params)
    visits, killed = [], []
    for trial in sorted(trials, key=lambda t: t.number):
        visit = _visit(trial, space, thresholds)
        if visit is None:
            continue
        if trial.state == TrialState.FAIL and trial.user_attrs.get(REPORTED) is False:
            killed.append(visit)
        else:
            visits.append(visit)
    grouped: dict[Config, tuple[Visit, ...]] = {}
    for visit in visits:
        grouped[visit.config] = (*grouped.get(visit.config, ()), visit)
    evidence = {c: Evidence(vs, rule) for c, vs in grouped.items()}
    walks = _walks(visits, killed, evidence, rule)
    answer = study_answer(params, evidence, rule)
    return ProtocolState(params, rule, tuple(visits), evidence, walks, answer)


def _visit(trial: FrozenTrial, space: str, thresholds: Thresholds) -> Visit | None:
    decision = trial.system_attrs.get(DECISION)
    if not isinstance(decision, Mapping) or decision.get(FINGERPRINT) != space:
        return None
    if not decision.get(ON_GRID, True) or trial.state == TrialState.WAITING:
        return None
    planned = decision.get(DATA_SEEDS)
    data_seeds = tuple(int(s) for s in planned) if isinstance(planned, list) else None
    pending = trial.state == TrialState.RUNNING
    killed = trial.state == TrialState.FAIL and trial.user_attrs.get(REPORTED) is False
    role = decision[ROLE]
    return Visit(
        number=trial.number,
        role=role,
        config=tuple(int(i) for i in decision[CONFIG]),
        parent=decision.get(PARENT),
        data_seeds=data_seeds,
        runs=() if pending or killed else _runs(trial, role, data_seeds, thresholds),
        pending=pending,
        round=decision.get(ROUND),
    )


def _runs(
    trial: FrozenTrial, role: str, data_seeds: tuple[int, ...] | None, thresholds: Thresholds
) -> tuple[Run, ...]:
    def run(seed: Any, data_seed: Any, value: Any) -> Run:
        value = finite(value)
        return Run(trial.number, role, seed, data_seed, value, classify(value, thresholds))

    records = trial.user_attrs.get(PER_SEED)
    if isinstance(records, list) and records:
        return tuple(
            run(r.get("seed"), r.get("data_seed"), r.get("connectivity_R2"))
            for r in records
            if isinstance(r, Mapping)
        )
    if trial.state == TrialState.COMPLETE:
        return (run(None, None, trial.value),)
    return tuple(run(None, d, None) for d in data_seeds or (None,))


def _walks(
    visits: Sequence[Visit],
    killed: Sequence[Visit],
    evidence: Mapping[Config, Evidence],
    rule: RobustRule,
) -> tuple[Walk, ...]:
    """Spans of trials from each opener; a killed opener opens its span too, and the rerun
    of it (an opener whose parent is the killed trial) continues that span."""
    openers = {v.number for v in killed if v.role in OPENERS}
    spans: list[list[Visit]] = []
    for visit in sorted([*visits, *(v for v in killed if v.number in openers)], key=_number):
        rerun = visit.role in OPENERS and visit.parent in openers
        if visit.role in OPENERS and not rerun:
            spans.append([visit])
        elif visit.role != ENQUEUED and spans:
            spans[-1].append(visit)
    return tuple(_walk(span, openers, evidence, rule) for span in spans)


def _number(visit: Visit) -> int:
    return visit.number


def _walk(
    span: Sequence[Visit],
    openers: set[int],
    evidence: Mapping[Config, Evidence],
    rule: RobustRule,
) -> Walk:
    first = span[0]
    incumbent, stale = first.config, 0
    empty = Evidence((), rule)
    for visit in span:
        if visit.role == MOVE and not visit.pending:
            if better(evidence[visit.config], evidence.get(incumbent, empty)):
                incumbent, stale = visit.config, 0
            else:
                stale += 1
    killed = first.number in openers
    rerun = any(v.parent == first.number and v.role in OPENERS for v in span[1:])
    return Walk(
        first=first.number,
        visits=tuple(span),
        panel=first.data_seeds,
        configs=tuple(dict.fromkeys(v.config for v in span if v.role in WALK_ROLES)),
        incumbent=incumbent,
        stale=stale,
        rerun_owed=killed and not rerun,
        role=first.role,
    )
