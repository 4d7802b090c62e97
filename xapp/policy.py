"""Trigger policy: may a drift in a cell group launch a re-distillation job now?

Per group (an E2 node, a cell or a UE group, per ``policy.group_by``): a cooldown after a successful
job, exponential backoff after failed ones (``backoff_initial_s * backoff_factor**(failures-1)``,
capped at ``backoff_max_s``), at most one job in flight, and a manual skip window. Globally: at most
``max_concurrent_jobs`` jobs in flight. A manual trigger bypasses cooldown, backoff and skip, never
the one-in-flight rule or the budget; an automatic retry of a failed job (due when its backoff ends)
bypasses only the backoff. A job that could not start for lack of data is ``released``: the group
is free again with neither cooldown nor backoff.

The state per group is a ``GroupState`` that the caller persists (the registry), so a restarted
xApp keeps its cooldowns and backoffs. Times are UNIX seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from xapp.config import PolicyConfig
from xapp.logs import decision

LAUNCH = "launch"
SUPPRESS_REASONS = ("in_flight", "budget", "cooldown", "backoff", "manual_skip", "disabled")


@dataclass(frozen=True)
class GroupState:
    """What the policy remembers about one group (UNIX seconds; 0 = never/none)."""

    cooldown_until: float = 0.0
    backoff_until: float = 0.0
    skip_until: float = 0.0
    failures: int = 0
    """Consecutive failed jobs (reset by a success)."""
    job_id: str = ""
    """The job in flight, "" when none."""

    def to_dict(self) -> dict[str, Any]:
        """JSON/msgpack-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupState:
        """Inverse of ``to_dict`` (unknown keys ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    """``action`` is ``launch`` or ``suppress``; ``reason`` names why (``SUPPRESS_REASONS``)."""

    group: str
    action: str
    reason: str
    until: float = 0.0
    """For time-based suppressions, when they end (UNIX seconds)."""

    @property
    def launch(self) -> bool:
        return self.action == LAUNCH


class PolicyStore(Protocol):
    """Where group states live (the registry implements it)."""

    def group_states(self) -> dict[str, GroupState]: ...

    def put_group_state(self, group: str, state: GroupState) -> None: ...


class Policy:
    """Decides and records; every decision is logged (``xapp.logs.decision``)."""

    def __init__(self, config: PolicyConfig, store: PolicyStore,
                 on_suppress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.store = store
        self._on_suppress = on_suppress

    def _state(self, group: str) -> GroupState:
        return self.store.group_states().get(group, GroupState())

    def in_flight(self) -> int:
        """Jobs in flight over all groups."""
        return sum(1 for s in self.store.group_states().values() if s.job_id)

    def decide(self, group: str, now: float, manual: bool = False,
               retry: bool = False) -> Decision:
        """Whether a drift, a manual trigger or a retry in ``group`` may launch a job at ``now``."""
        state = self._state(group)
        result = self._evaluate(group, state, now, manual, retry)
        fields: dict[str, Any] = {"group": group, "manual": manual, "retry": retry,
                                  "reason": result.reason}
        if result.until:
            fields["until"] = result.until
        if result.launch:
            decision("trigger", **fields)
        else:
            decision("trigger_suppressed", **fields)
            if self._on_suppress is not None:
                self._on_suppress(result.reason)
        return result

    def _evaluate(self, group: str, state: GroupState, now: float, manual: bool,
                  retry: bool) -> Decision:
        if manual and not self.config.manual_trigger_enabled:
            return Decision(group, "suppress", "disabled")
        if state.job_id:
            return Decision(group, "suppress", "in_flight")
        if self.in_flight() >= self.config.max_concurrent_jobs:
            return Decision(group, "suppress", "budget")
        if not manual:
            for reason, until in (("manual_skip", state.skip_until),
                                  ("backoff", 0.0 if retry else state.backoff_until),
                                  ("cooldown", state.cooldown_until)):
                if now < until:
                    return Decision(group, "suppress", reason, until)
        return Decision(group, LAUNCH, "manual" if manual else "retry" if retry else "drift")

    def started(self, group: str, job_id: str) -> None:
        """Record that ``job_id`` now runs for ``group``."""
        self.store.put_group_state(group, replace(self._state(group), job_id=job_id))

    def finished(self, group: str, job_id: str, succeeded: bool, now: float) -> GroupState:
        """Record the end of ``job_id``: cooldown on success, backoff on failure."""
        state = self._state(group)
        if state.job_id and state.job_id != job_id:
            decision("job_finish_mismatch", level=logging.WARNING, group=group, job_id=job_id,
                     in_flight=state.job_id)
        c = self.config
        if succeeded:
            state = GroupState(cooldown_until=now + c.cooldown_s, skip_until=state.skip_until)
        else:
            failures = state.failures + 1
            wait = min(c.backoff_initial_s * c.backoff_factor ** (failures - 1), c.backoff_max_s)
            state = replace(state, job_id="", failures=failures, backoff_until=now + wait)
        self.store.put_group_state(group, state)
        decision("policy_update", group=group, job_id=job_id, succeeded=succeeded,
                 failures=state.failures, cooldown_until=state.cooldown_until,
                 backoff_until=state.backoff_until)
        return state

    def released(self, group: str, job_id: str) -> GroupState:
        """``job_id`` ended without running (no data yet): free the group, no cooldown, no
        backoff, failure count unchanged."""
        state = replace(self._state(group), job_id="")
        self.store.put_group_state(group, state)
        decision("policy_update", group=group, job_id=job_id, released=True,
                 failures=state.failures)
        return state

    def skip(self, group: str, duration_s: float, now: float) -> GroupState:
        """Suppress drift-triggered jobs in ``group`` for ``duration_s`` (0 = lift the skip)."""
        if duration_s < 0:
            raise ValueError(f"skip duration must be >= 0 s, got {duration_s}")
        state = replace(self._state(group), skip_until=now + duration_s if duration_s else 0.0)
        self.store.put_group_state(group, state)
        decision("manual_skip", group=group, until=state.skip_until)
        return state
