"""The daemon: one pass every period (start to start), from the listing to one action a machine.

With an `EventFeed` (`-events on`) a turn of the loop comes about every second instead: a
full pass when the feed says one is due, else an event pass that re-reads by id only the
machines MAAS's event log names and those due again without an event (`revisits`: after
an action, a backoff's end, a provisioning poll each period, a deferred action), and
decides for them alone; every other machine keeps what the last pass made of it.

A pass lists the machines once, keeps the ones the filters select, gives each its desire
(`desire_for`: one stored over HTTP, else the first `-targets` rule that selects it, else
Deployed with the global settings), lets each machine's long-lived `Flow` decide from what MAAS
says now (level-triggered), and hands any action to the executor, which never blocks the pass,
while it has room (free slots plus a small queue; the machines beyond are deferred to a later
pass and counted in the pass's one line). Per machine it holds back what would repeat or
hammer: an action still in flight, a write MAAS accepted that no listing shows yet
(`unseen_writes`), and an action backing off after failures (`setbacks`, so a doomed machine
costs one request per backoff step and never a slot while it waits). With `-retry-failed N` it
hands the lifecycle each machine's retry budget (`retry_budget`), and always whether the
machine is adopted: already running when first seen, so left alone (`adoption`). Every machine
MAAS lists gets a reason in its view (`views`): the decision's, or what held it back (in
flight, an unseen write, a backoff, a pause, the filters), logged at debug once per change.
Each action's outcome goes into the machine's history (`history`, through the store). An
operator can pause it (no action starts but provisioning polls; those under way finish), resume
it, and retry one machine (its holds cleared; `daemon.control`). An orchestrator can store a
machine's desired state (`daemon.desire_api`): every pass reads the stored desires again
(`desired_states`), and such a desire wins over the rules in `desire_for`. The loop owns the
period, the backoff after a failed pass (`maasflow.common.backoff`), health, metrics, the
systemd watchdog's answer (every step marks its progress in `liveness`) and shutdown. Its time
comes from one injected `Clock` (wall time for timestamps, monotonic time for durations and the
stuck check, sleeps), so tests move time instead of waiting for it. It does not speak HTTP to
MAAS itself (the client does), decide anything (the lifecycle does) or carry out actions (the
actuator does).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from maasflow.common.backoff import Backoff, interruptible_sleep
from maasflow.common.clock import SYSTEM_CLOCK, Clock
from maasflow.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MaasError,
    NotLeader,
    StoreError,
    TemporaryMaasError,
    Unauthorized,
)
from maasflow.daemon.actions import Actuator, Outcome
from maasflow.daemon.adoption import Adoptions
from maasflow.daemon.applied import AppliedDeploys
from maasflow.daemon.desire import Provisioning
from maasflow.daemon.desired_states import DesiredStates
from maasflow.daemon.event_feed import POLL_S, EventFeed
from maasflow.daemon.executor import Executor
from maasflow.daemon.history import Event, EventKind, event_kind
from maasflow.daemon.lifecycle import (
    DEPLOYED,
    QUIET,
    Action,
    ActionKind,
    Decision,
    Flow,
    Observation,
    Phase,
    PhaseListener,
    ProvisionState,
    ProvisionView,
    Target,
)
from maasflow.daemon.liveness import Liveness
from maasflow.daemon.maas.client import AnswerLost, MaasClient, longest_silence
from maasflow.daemon.maas.decoding import UnreadableAnswer
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.maas.models import User
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.metrics import Metrics
from maasflow.daemon.retry_budget import DEFAULT_TAG, RetryBudgets
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.setbacks import Setback, Setbacks
from maasflow.daemon.store import ProvisionRecord
from maasflow.daemon.stored_desire import public
from maasflow.daemon.targets import DEFAULT, Chosen, Targets, default_desire, wanted
from maasflow.daemon.telemetry import Health
from maasflow.daemon.unseen_writes import UnseenWrites
from maasflow.daemon.views import MachineViews

log = structlog.get_logger(__name__)

BACKOFF_CAP_S = 300.0
MAX_REREAD = 1000  # more machines to re-read by id than this: list them all instead
REREAD_BATCH = 200  # system_ids in one `GET machines/?id=...` (a URL of ~3 KB)
RETRIED_STATUSES = frozenset({2, 11})  # Failed commissioning, Failed deployment (-retry-failed)
MAX_UNWRITTEN_EVENTS = 1000  # history kept in memory while the store refuses it
# MAAS's answers that mean "this name is refused" (taken, bad domain, not admin): the name is
# not asked for again. Anything else (a 500, a 401 during a key rotation) is retried.
REFUSED_NAME = (BadRequest, Forbidden, Conflict)


@dataclass
class PassSummary:
    seen: int
    selected: int
    started: int
    by_status: dict[str, int]
    by_phase: dict[str, int]
    deferred: int = 0  # machines with an action that found no room in the executor


class Daemon:
    """Drives selected machines towards their targets (Deployed by default) and provisioning."""

    def __init__(
        self,
        client: MaasClient,
        actuator: Actuator,
        *,
        filters: FilterSpec,
        mappings: Mappings,
        period: float,
        concurrency: int = 16,
        always_rename: bool = True,
        provision_existing: bool = False,
        commission_unknown_power: bool = False,
        retry_failed: int = 0,
        quarantine_tag: str = DEFAULT_TAG,
        metrics: Metrics | None = None,
        health: Health | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rand: Callable[[], float] = random.random,
        liveness: Liveness | None = None,
        targets: Targets | None = None,
        feed: EventFeed | None = None,
    ) -> None:
        self.client = client
        self.feed = feed  # None: `-events off`, a full listing every period
        self.actuator = actuator
        self.filters = filters
        self.targets = targets or Targets()  # `-targets`: what each machine should be
        self.default = Chosen(DEFAULT, default_desire(actuator.distro))
        self.applied = AppliedDeploys(actuator.store)  # what each deploy sent, for `redeploy`
        actuator.provisioning_of = self._provisioning_of
        self.mappings = mappings
        self.period = period
        self.always_rename = always_rename
        self.metrics = metrics or Metrics()
        self.health = health or Health(period)
        self.clock = clock
        self.liveness = liveness or Liveness(longest_silence(), clock)
        self._stuck_logged = False
        self._pass_backoff = Backoff(period, max(BACKOFF_CAP_S, period), rand=rand)
        self._identify_backoff = Backoff(period, BACKOFF_CAP_S, rand=rand)
        self._retry_in = period  # the wait drawn when the last pass failed
        machine_backoff = Backoff(period, max(BACKOFF_CAP_S, period), rand=rand)
        self.setbacks = Setbacks(actuator.store, machine_backoff)
        self.budgets = RetryBudgets(
            actuator.store,
            retry_failed,
            quarantine_tag,
            machine_backoff,
            read_only=getattr(client, "read_only", False),  # -preview writes nothing
        )
        self.adoptions = Adoptions(
            actuator.store,
            provision_existing=provision_existing,
            read_only=getattr(client, "read_only", False),
        )
        self.commission_unknown_power = commission_unknown_power
        self.unseen = UnseenWrites()
        self.executor = Executor(concurrency)
        self.flows: dict[str, Flow] = {}
        self.views = MachineViews()
        self.me = ""
        self.passes = 0
        self.failed_actions = 0
        self.skipped_actions = 0  # actions that ended "skipped" since the last pass's line
        self._deferred = 0  # this pass: machines with an action that found no executor room
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._pass_started: float | None = None  # monotonic start of the pass under way
        self._acted_at: dict[str, float] = {}  # system_id -> monotonic time its action ended
        self._in_flight: dict[str, ActionKind] = {}  # system_id -> its action under way
        # With events: system_id -> monotonic time it is due to be read again without one.
        self.revisits: dict[str, float] = {}
        self._pass_logged_at = float("-inf")  # monotonic time of the last "pass" line at info
        self._history: list[Event] = []  # noted, not yet written (`flush_history`)
        self.desired = DesiredStates(  # stored over HTTP (`daemon.desire_api`); read every pass
            actuator.store,
            self.views,
            clock=clock.time,
            note=self._desire_noted,
            me=lambda: self.me,
        )
        self.paused = False  # `maasflow pause`: no new action but provisioning polls
        self.metrics.watch(lambda: self.executor.in_flight, lambda: self.health.check()[0])
        self._refused_names: dict[str, str] = {}  # system_id -> a hostname MAAS refused
        # Role, leader and epoch for /state, when several daemons share a database.
        self.leadership: Callable[[], dict[str, Any]] | None = None

    # -- start-up -------------------------------------------------------------------

    async def identify(self, *, retry: bool = True) -> str:
        """Ask MAAS who our key belongs to; retry what may heal with capped backoff.

        A rejected key (401), a refused user (403), no answer or a busy or failing MAAS may
        heal (the key is rotated, MAAS comes back): reported in health and retried. Any
        other refusal (a redirect, 404, 410: the URL does not lead to MAAS's API) cannot
        change by waiting and is raised. Without `retry` the first failure is raised.
        """
        attempt = 0
        while True:
            self.liveness.progressed()
            try:
                user = await self.client.whoami()
            except MaasError as exc:
                self.health.set_problem(_problem(exc))
                if not retry:
                    raise
                if not _may_heal(exc):
                    raise _hopeless(exc) from None
                attempt += 1
                await self._identify_later(attempt, exc)
                continue
            return self._identified(user)

    async def _identify_later(self, attempt: int, exc: MaasError) -> None:
        delay = self._identify_backoff.delay(attempt)
        log.error("cannot identify to MAAS; retrying", reason=_problem(exc), retry_in_s=delay)
        self.liveness.progressed(then_idle=delay)
        await self.clock.sleep(delay)

    def _identified(self, user: User) -> str:
        self.me = user.username
        if not user.is_superuser:
            log.warning(
                "API key is not an admin's: MAAS refuses commissioning to non-admin users",
                user=user.username,
            )
        return user.username

    # -- one pass -------------------------------------------------------------------

    async def run_pass(self) -> PassSummary:
        """List once, decide per selected machine, start actions; never waits for them."""
        started_at = self.clock.time()
        self.flush_history()  # what the actions since the last pass noted: one transaction
        if self.feed is not None:
            await self.feed.before_full_listing()
        listed_at = self._pass_started = self.clock.monotonic()
        self.liveness.progressed()
        try:
            machines = await self.client.list_machines()
        except MaasError as exc:
            self._pass_failed(exc, started_at)
            raise
        finally:
            self._pass_started = None
            self.liveness.progressed()
        records = self._records()
        if records is None:  # deciding without them would provision everything again
            return PassSummary(len(machines), 0, 0, {}, self.views.phase_counts())
        if self.passes == 0:
            self._warn_unrecorded(machines, records)
        self.revisits.clear()  # every machine is decided again now
        summary = self._decide_all(machines, records, listed_at)
        self._pass_ok(summary, started_at)
        return summary

    async def run_event_pass(self) -> PassSummary | None:
        """Read the machines MAAS's event log names since the last look, and those due again
        without an event (`revisits`), by id; decide for them alone. None when a full listing
        is due instead (`EventFeed.full_due` says why); no machine is read when nothing
        changed and nothing is due."""
        assert self.feed is not None, "event passes need an EventFeed"
        started_at = self.clock.time()
        self.flush_history()
        self.liveness.progressed()
        changed = await self.feed.changes()
        self.liveness.progressed()
        if changed is None:
            return None
        wanted = changed | self._due_revisits()
        if not wanted:  # MAAS answered and nothing changed: a pass, logged at debug
            summary = PassSummary(0, 0, 0, self.views.status_counts(), self.views.phase_counts())
            self._pass_ok(summary, started_at, quiet=True)
            return summary
        if len(wanted) > MAX_REREAD:
            self.feed.ask_full()
            return None
        return await self._reread(sorted(wanted), started_at)

    def _due_revisits(self) -> set[str]:
        now = self.clock.monotonic()
        return {sid for sid, due in self.revisits.items() if due <= now}

    async def _reread(self, system_ids: list[str], started_at: float) -> PassSummary | None:
        listed_at = self._pass_started = self.clock.monotonic()
        try:
            machines = []
            for at in range(0, len(system_ids), REREAD_BATCH):
                batch = system_ids[at : at + REREAD_BATCH]
                machines += await self.client.list_machines_by_id(batch)
                self.liveness.progressed()
        except MaasError as exc:
            self._pass_failed(exc, started_at)
            if self.feed is not None:
                self.feed.ask_full()
            raise
        finally:
            self._pass_started = None
        records = self._records()
        if records is None:  # undecided: asked for again at the next pass
            self.revisits.update(dict.fromkeys(system_ids, listed_at))
            return PassSummary(len(machines), 0, 0, {}, self.views.phase_counts())
        summary = self._decide_some(machines, set(system_ids), records, listed_at)
        summary.by_status = self.views.status_counts()  # the gauges count every machine
        self._pass_ok(summary, started_at)
        return summary

    def _records(self) -> dict[str, ProvisionRecord] | None:
        """Every provisioning record by system_id; None (health says why) if unreadable."""
        try:
            records = {r.system_id: r for r in self.actuator.store.all()}
            self.desired.reload()  # deciding without them would undo what was asked
        except StoreError as exc:
            self.health.store_failed("read", str(exc))
            log.error("state store cannot be read; no decision this pass", reason=str(exc))
            return None
        self.health.store_ok("read")
        return records

    def _warn_unrecorded(
        self, machines: Sequence[MachineData], records: dict[str, ProvisionRecord]
    ) -> None:
        """Once, at the first pass, with -provision-existing: Deployed machines of ours that
        have no record will be provisioned (again). Expected on a first start; after a lost
        state directory, not. Without it they are adopted and left as they run."""
        if not self.adoptions.provision_existing:
            return  # such machines are adopted, not provisioned (`daemon.adoption`)
        unrecorded = [
            m.system_id
            for m in machines
            if m.status == DEPLOYED
            and m.owner == self.me
            and m.system_id not in records
            and self.filters.selects(m)
            and self._provisioned_here(m)
        ]
        if unrecorded:
            log.warning(
                "Deployed machines without a provisioning record: they will be provisioned; "
                "if the state directory was lost, they are provisioned again",
                count=len(unrecorded),
                system_ids=unrecorded[:20],
            )

    def _decide_all(
        self, machines: Sequence[MachineData], records: dict[str, ProvisionRecord], listed_at: float
    ) -> PassSummary:
        self.views.begin_pass()
        selected, started = self._decide_each(machines, records, listed_at)
        self._forget_missing({m.system_id for m in selected})
        self.views.end_pass({m.system_id for m in machines})
        return self._summary(machines, selected, started)

    def _decide_some(
        self,
        machines: Sequence[MachineData],
        asked: set[str],
        records: dict[str, ProvisionRecord],
        listed_at: float,
    ) -> PassSummary:
        """An event pass: decide for the machines re-read by id; forget those asked for that
        MAAS no longer has (deleted); leave every other machine as the last pass left it."""
        selected, started = self._decide_each(machines, records, listed_at)
        listed = {m.system_id for m in machines}
        chosen = {m.system_id for m in selected}
        self._forget_missing(asked & chosen | (set(self.flows) - asked))
        for system_id in asked - listed:
            self.revisits.pop(system_id, None)
        return self._summary(machines, selected, started)

    def _decide_each(
        self, machines: Sequence[MachineData], records: dict[str, ProvisionRecord], listed_at: float
    ) -> tuple[list[MachineData], int]:
        selected: list[MachineData] = []
        started = self._deferred = 0
        now = self.clock.monotonic()
        for machine in machines:
            refusal = self.filters.reason(machine)
            if refusal is not None:
                self.revisits.pop(machine.system_id, None)
                self.views.left_out(machine, f"filtered out: {refusal}")
                self._left_alone(machine, f"filtered out: {refusal}")
                continue
            selected.append(machine)
            started += self._consider(machine, records, listed_at, now)
        return selected, started

    def _summary(
        self, machines: Sequence[MachineData], selected: list[MachineData], started: int
    ) -> PassSummary:
        self.metrics.observe_backing_off(self.setbacks.waiting(self.clock.time()))
        return PassSummary(
            seen=len(machines),
            selected=len(selected),
            started=started,
            by_status=dict(Counter(m.status_name or str(m.status) for m in selected)),
            by_phase=self.views.phase_counts(),
            deferred=self._deferred,
        )

    def _consider(
        self,
        machine: MachineData,
        records: dict[str, ProvisionRecord],
        listed_at: float,
        now: float,
    ) -> int:
        """Decide for one selected machine and start its action, unless something holds it
        back; 1 when an action started. Whatever holds it back becomes its reason."""
        sid = machine.system_id
        self.revisits[sid] = now  # read again at the next event pass unless settled below
        if self._stale_or_busy(sid, listed_at):
            if sid in self._in_flight:  # its action's end makes it due (the executor may
                self.revisits.pop(sid)  # still say busy for a moment after that end)
            return self._left_alone(machine, self._busy_reason(sid))
        if self.unseen.holds(machine, listed_at, now):
            return self._left_alone(machine, "waiting for MAAS to show the write it accepted")
        decision = self.decide(machine, records, PhaseLog(machine, self.metrics))
        self._remember(machine, decision, records.get(sid))
        action = decision.action
        if action is None:
            self._settle(machine, decision, records.get(sid), now)
            return self._left_alone(machine, decision.reason)
        setback = self.held(machine, action)
        if setback is not None:
            self.revisits[sid] = now + max(setback.retry_at - self.clock.time(), 0.0)
            return self._left_alone(machine, _backing_off(setback))
        if self.paused and action.kind is not ActionKind.PROVISION_POLL:
            self.revisits.pop(sid)  # `resume` lists every machine again
            return self._left_alone(machine, f"paused: would {describe_action(action)}")
        if self.executor.room == 0:  # back-pressure: counted in the pass's line
            self._deferred += 1
            return self._left_alone(
                machine, f"no free action slot: would {describe_action(action)}"
            )
        self.views.said(sid, decision.reason)
        return self._start(machine, action)

    def _settle(
        self, machine: MachineData, decision: Decision, record: ProvisionRecord | None, now: float
    ) -> None:
        """No action: the machine waits for an event, unless its decision depends on time
        (a failed provisioning's retry, a `-retry-failed` backoff): then for a period."""
        retrying = decision.phase is Phase.RETRYING
        failed_retry = retrying or (self.budgets.limit > 0 and machine.status in RETRIED_STATUSES)
        failed_run = record is not None and record.state != ProvisionState.COMPLETE
        if failed_retry or failed_run:
            self.revisits[machine.system_id] = now + self.period
        else:
            self.revisits.pop(machine.system_id, None)

    def _left_alone(self, machine: MachineData, reason: str) -> int:
        """The machine gets no action this pass, for `reason`: shown, and logged once per change."""
        self.views.explain(machine.system_id, reason)
        if self.views.said(machine.system_id, reason):
            log.debug(
                "machine left alone", system_id=machine.system_id, hostname=machine.hostname,
                status=machine.status_name or machine.status, reason=reason,
            )  # fmt: skip
        return 0

    def _busy_reason(self, system_id: str) -> str:
        kind = self._in_flight.get(system_id)
        if kind is not None:
            return f"{kind} in flight"
        return "waiting for a listing newer than its last action"

    def _stale_or_busy(self, system_id: str, listed_at: float) -> bool:
        """Skip a machine whose action is in flight, or ended after the listing was asked for.

        In the second case the listing may predate the action's effect (MAAS answered the
        listing first): deciding from it would repeat the action. The next pass sees the truth.
        """
        if self.executor.busy(system_id):
            return True
        return self._acted_at.get(system_id, float("-inf")) > listed_at

    def decide(
        self,
        machine: MachineData,
        records: dict[str, ProvisionRecord],
        listener: PhaseListener = QUIET,
    ) -> Decision:
        """What this machine's flow makes of what MAAS says now; `listener` hears phase entries."""
        chosen = self.desire_for(machine)
        self.desired.decided(machine.system_id, chosen.label, chosen.desire)
        flow = self._flow(machine, chosen.desire.target)
        return flow.observe(self._observation(machine, records, chosen), listener)

    def desire_for(self, machine: MachineData) -> Chosen:
        """What `machine` should be, and why: the desire an orchestrator stored over HTTP
        ("api"), else the first targets rule that selects it, else the default. Every pass
        (and the preview) asks here."""
        stored = self.desired.winning(machine.system_id)
        if stored is not None:
            return Chosen(*stored)
        return self.targets.choose(machine) or self.default

    def _provisioned_here(self, machine: MachineData) -> bool:
        """Whether a Deployed `machine` would be provisioned: its desire is Deployed and it
        has a provisioner (its rule's, or PROVISION_URL's)."""
        desire = self.desire_for(machine).desire
        if desire.target is not Target.DEPLOYED:
            return False
        return self.actuator.provisioner is not None or desire.provision is not None

    def _provisioning_of(self, machine: MachineData) -> Provisioning | None:
        return self.desire_for(machine).desire.provision

    def _flow(self, machine: MachineData, target: Target) -> Flow:
        flow = self.flows.get(machine.system_id)
        if flow is None:
            flow = self.flows[machine.system_id] = Flow(machine.system_id, target)
        flow.retarget(target)
        return flow

    def held(self, machine: MachineData, action: Action) -> Setback | None:
        """The setback that keeps `action` from being sent for `machine` now, if any."""
        return self.setbacks.holds(machine.system_id, action.kind, self.clock.time())

    def _observation(
        self, machine: MachineData, records: dict[str, ProvisionRecord], chosen: Chosen
    ) -> Observation:
        quarantined, retry = self.budgets.view(machine, self.clock.monotonic())
        record = records.get(machine.system_id)
        return Observation(
            status=machine.status,
            power_state=machine.power_state,
            owner=machine.owner,
            locked=machine.locked,
            power_type=machine.power_type,
            me=self.me,
            desired_hostname=self._rename_to(machine),
            hostname=machine.hostname,
            provision=self._provision_view(chosen, record),
            helper_script=bool(self.actuator.power_helper),
            always_rename=self.always_rename,
            quarantined=quarantined,
            retry=retry,
            wanted=wanted(chosen, self.actuator.distro),
            applied=self.applied.get(machine.system_id),
            adopted=self._adopted(machine, records, chosen),
            commission_unknown_power=self.commission_unknown_power,
        )

    def _adopted(
        self, machine: MachineData, records: dict[str, ProvisionRecord], chosen: Chosen
    ) -> bool:
        """The Observation's `adopted`: the one place it is decided (`daemon.adoption`).

        A targets rule or a desired-state request that selects the machine (its desire is not
        the default) overrides adoption: someone asked for this machine explicitly.
        """
        explicit = chosen.label != DEFAULT
        sid = machine.system_id
        now = self.clock.time()
        return self.adoptions.adopted(sid, machine.status, sid in records, now, explicit)

    def _rename_to(self, machine: MachineData) -> str | None:
        """The mapped name, unless the machine has it already or MAAS refused it before.

        A dotted mapping is an FQDN (MAAS takes the part after the first dot as the domain,
        facts §3.8), so it is compared with the machine's fqdn.
        """
        wanted = self.mappings.hostname_for(machine)
        current = machine.fqdn if wanted and "." in wanted else machine.hostname
        if wanted is None or wanted == current:
            return None
        if self._refused_names.get(machine.system_id) == wanted:
            return None
        return wanted

    def _provision_view(
        self, chosen: Chosen, record: ProvisionRecord | None
    ) -> ProvisionView | None:
        """None when nothing provisions the machine: no PROVISION_URL and no rule's override."""
        if self.actuator.provisioner is None and chosen.desire.provision is None:
            return None
        if record is None:
            return ProvisionView(state=ProvisionState.NONE, retry_due=False, poll=False)
        state = ProvisionState(record.state)
        due = state is ProvisionState.FAILED and (record.next_attempt_at or 0) <= self.clock.time()
        # Running, and no task of ours on it (the pass skips busy machines): a URL job to
        # poll, or a script run a previous daemon left, to adopt.
        poll = state is ProvisionState.RUNNING
        return ProvisionView(state=state, retry_due=due, poll=poll)

    def _remember(
        self, machine: MachineData, decision: Decision, record: ProvisionRecord | None
    ) -> None:
        self.views.observed(machine, decision, record)
        sid = machine.system_id
        self.views.backoff(sid, self.setbacks.get(sid), self.budgets.used(sid))

    def _forget_missing(self, present: set[str]) -> None:
        for system_id in [s for s in self.flows if s not in present]:
            if not self.executor.busy(system_id):
                self.flows.pop(system_id, None)
                self.desired.forget(system_id)
                self.views.forget(system_id)
                self._acted_at.pop(system_id, None)
                self.revisits.pop(system_id, None)
                self._refused_names.pop(system_id, None)
                self.unseen.forget(system_id)
                self.setbacks.cleared(system_id)
                self.budgets.forget(system_id)

    # -- actions ----------------------------------------------------------------------

    def _start(self, machine: MachineData, action: Action) -> int:
        decided = self.clock.monotonic()
        sid = machine.system_id

        async def run() -> None:
            try:
                await self._act(machine, action, decided)
            finally:
                self._in_flight.pop(sid, None)

        started = self.executor.submit(sid, run)
        if started:
            self._in_flight[sid] = action.kind
        return int(started)

    async def _act(self, machine: MachineData, action: Action, decided: float) -> None:
        started = self.clock.monotonic()
        structlog.contextvars.bind_contextvars(
            system_id=machine.system_id, hostname=machine.hostname
        )
        try:
            if started - decided > self.period:
                # It waited for a slot (behind long provisioning runs) past a whole period:
                # MAAS may have moved on since; the next pass decides from what it says now.
                outcome = Outcome("skipped", f"waited {started - decided:.0f}s for a slot")
            else:
                outcome = await self._outcome(machine, action)
        finally:
            structlog.contextvars.unbind_contextvars("system_id", "hostname")
        self._acted_at[machine.system_id] = self.clock.monotonic()
        if self.feed is not None:  # read it again soon: not every write makes an event
            wait = self.period if action.kind is ActionKind.PROVISION_POLL else 0.0
            self.revisits[machine.system_id] = self._acted_at[machine.system_id] + wait
        self._record_action(machine, action, outcome, self._acted_at[machine.system_id] - started)

    async def _outcome(self, machine: MachineData, action: Action) -> Outcome:
        if action.spends_retry:
            self._spend_retry(machine, action)
        try:
            outcome = await self.actuator.perform(machine, action)
        except NotLeader as exc:  # fenced: nothing was sent; the leader acts instead
            return Outcome("skipped", str(exc))
        except MaasError as exc:
            return self._refused(machine, action, exc)
        except Exception as exc:
            log.exception("action crashed", action=action.kind)
            return self._set_back(machine, action, f"{type(exc).__name__}: {exc}")
        if outcome.result != "failed":
            self._accepted(machine, action)
        return outcome

    def _spend_retry(self, machine: MachineData, action: Action) -> None:
        used = self.budgets.spend(machine.system_id)
        self.metrics.observe_retry(action.kind)
        log.info(
            "retrying a failed machine",
            system_id=machine.system_id,
            hostname=machine.hostname,
            status=machine.status_name or machine.status,
            action=action.kind,
            retry=f"{used}/{self.budgets.limit}",
        )

    def _accepted(self, machine: MachineData, action: Action) -> None:
        self.setbacks.cleared(machine.system_id)
        self.unseen.wrote(machine, action.kind, self.clock.monotonic())
        if action.kind is ActionKind.DEPLOY:
            self._applied(machine, action)
        if action.kind is ActionKind.QUARANTINE:
            self.metrics.observe_quarantine()
            log.warning(
                "machine quarantined: maasflow leaves it alone until the tag is removed",
                system_id=machine.system_id,
                hostname=machine.hostname,
                status=machine.status_name or machine.status,
                tag=action.params.get("tag"),
                retries=self.budgets.used(machine.system_id),
            )

    def _applied(self, machine: MachineData, action: Action) -> None:
        """Remember what this deploy sent; a store that refuses is reported, not fatal (the
        machine is then never redeployed for a change, as when nothing was remembered)."""
        try:
            self.applied.deployed(machine.system_id, action.params)
        except StoreError as exc:
            self.health.store_failed("applied", str(exc))
            log.error("state store refused the applied deploy parameters", reason=str(exc))

    def _refused(self, machine: MachineData, action: Action, exc: MaasError) -> Outcome:
        """MAAS did not do `action` (or may not have): back off, or give up on a refused name."""
        if action.spends_retry and _certainly_not_done(exc):
            self.budgets.refund(machine.system_id)
        detail = str(exc)
        if isinstance(exc, Forbidden) and action.kind is ActionKind.COMMISSION:
            detail += " (commissioning needs an admin API key: maas apikey --username <admin>)"
        if action.kind is ActionKind.RENAME and isinstance(exc, REFUSED_NAME):
            # MAAS refuses this name (taken, bad domain, not admin): stop asking, so the
            # machine's own next step is not blocked behind the rename forever.
            self._refused_names[machine.system_id] = action.params["hostname"]
            return Outcome("failed", detail)
        return self._set_back(machine, action, detail)

    def _set_back(self, machine: MachineData, action: Action, detail: str) -> Outcome:
        self.setbacks.failed(machine.system_id, action.kind, detail, self.clock.time())
        return Outcome("failed", detail)

    def _record_action(
        self, machine: MachineData, action: Action, outcome: Outcome, duration: float
    ) -> None:
        sid = machine.system_id
        self.views.acted(sid, action.kind, outcome.result, outcome.detail, self.clock.time())
        self.views.backoff(sid, self.setbacks.get(sid), self.budgets.used(sid))
        if outcome.result == "failed":
            self.failed_actions += 1
        if outcome.result == "skipped":
            self.skipped_actions += 1
        self.metrics.observe_action(action.kind, outcome.result, duration)
        if outcome.provisioned_in is not None:
            self.metrics.observe_provision(outcome.result, outcome.provisioned_in)
        self._note(machine.system_id, machine.hostname, event_kind(action.kind), action.kind,
                   outcome.result, outcome.detail)  # fmt: skip
        emit = {"failed": log.warning, "skipped": log.debug}.get(outcome.result, log.info)
        extra: dict[str, object] = {"params": dict(action.params), "detail": outcome.detail}
        setback = self.setbacks.get(machine.system_id)
        if outcome.result == "failed" and setback is not None and setback.action == action.kind:
            # One line per backoff step: the action is not sent again before retry_in_s.
            extra["failures"] = setback.failures
            extra["retry_in_s"] = round(setback.retry_at - self.clock.time(), 1)
        emit(
            "action",
            system_id=machine.system_id,
            hostname=machine.hostname,
            status=machine.status_name or machine.status,
            action=action.kind,
            outcome=outcome.result,
            duration_s=round(duration, 3),
            **{k: v for k, v in extra.items() if v},
        )

    def _note(
        self, system_id: str, hostname: str, kind: str, action: str, outcome: str, detail: str
    ) -> None:
        """Add one line to the machine's history; written with the next `flush_history`."""
        self._history.append(
            Event(system_id, hostname, self.clock.time(), kind, action, outcome, detail)
        )
        del self._history[:-MAX_UNWRITTEN_EVENTS]

    def _desire_noted(
        self, system_id: str, hostname: str, kind: str, action: str, outcome: str, detail: str
    ) -> None:
        """A desire stored or cleared over HTTP: noted in the history, and (with events) the
        machine is read again at the next pass, since MAAS writes no event for it."""
        self._note(system_id, hostname, kind, action, outcome, detail)
        self.revisits[system_id] = self.clock.monotonic()

    def flush_history(self) -> None:
        """Write the noted events in one batch; a store that refuses them is reported and they
        are kept for the next try (the newest MAX_UNWRITTEN_EVENTS)."""
        if not self._history:
            return
        try:
            self.actuator.store.add_events(self._history)
        except StoreError as exc:
            self.health.store_failed("history", str(exc))
            log.error("state store refused the machines' history", reason=str(exc))
            return
        self._history.clear()
        self.health.store_ok("history")

    def history(self, key: str) -> dict[str, Any] | None:
        """The machine `key` (system_id or hostname) as `/state` shows it, and its recent
        history; None when neither the last pass nor the store knows it."""
        self.flush_history()
        view = self.views.find(key)
        system_id = key if view is None else view.system_id
        events = self.actuator.store.events(system_id)
        if view is None and not events:
            return None
        stored = self.desired.get(system_id)
        return {
            "generated_at": self.clock.time(),
            "machine": None if view is None else asdict(view),
            "events": [asdict(e) for e in events],
            "desired": None if stored is None else public(stored),
        }

    # -- control (`maasflow pause|resume|retry`, see daemon.control) --------------------------

    def pause(self) -> None:
        """Start no new action (provisioning polls go on); those under way finish."""
        self.paused = True
        self.metrics.observe_paused(True)
        log.warning("paused: no MAAS writes or provisioning starts until resumed")

    def resume(self) -> None:
        """Act again from the next pass (with events, a full one: paused machines wait for none)."""
        self.paused = False
        if self.feed is not None:
            self.feed.ask_full()
        self.metrics.observe_paused(False)
        log.warning("resumed")

    def retry(self, key: str) -> dict[str, Any]:
        """Clear what holds machine `key` back so the next pass tries it: its backoff, its
        failed-machine retry budget, a failed provisioning's wait, a hostname MAAS refused.
        Raises LookupError when the last pass did not list it."""
        view = self.views.find(key)
        if view is None:
            raise LookupError(key)
        sid = view.system_id
        cleared = self._clear_holds(sid)
        self._acted_at.pop(sid, None)
        self.revisits[sid] = self.clock.monotonic()  # with events: read at the next pass
        detail = ", ".join(cleared) or "nothing held it back"
        self._note(sid, view.hostname, EventKind.OPERATOR, "retry", "ok", detail)
        log.warning("operator retry", system_id=sid, hostname=view.hostname, cleared=detail)
        answer: dict[str, Any] = {"system_id": sid, "hostname": view.hostname, "cleared": cleared}
        answer["reason"] = view.reason
        if view.phase is Phase.QUARANTINED:
            answer["note"] = f"it carries the tag {self.budgets.tag}: remove it in MAAS"
        elif not view.selected:
            answer["note"] = "the filters leave it out: maasflow does not act on it"
        return answer

    def _clear_holds(self, system_id: str) -> list[str]:
        cleared = []
        if self.setbacks.get(system_id) is not None:
            self.setbacks.cleared(system_id)
            cleared.append("backoff")
        if self.budgets.reset(system_id):
            cleared.append("retry budget")
        if self.actuator.store.retry_now(system_id) is not None:
            cleared.append("failed provisioning's wait")
        if self._refused_names.pop(system_id, None) is not None:
            cleared.append("refused hostname")
        return cleared

    # -- pass bookkeeping -------------------------------------------------------------------

    def _pass_ok(self, summary: PassSummary, started_at: float, quiet: bool = False) -> None:
        now = self.clock.time()
        self.passes += 1
        self.consecutive_failures = 0
        self.last_error = None
        self.health.pass_ok(now)
        self.metrics.observe_pass(now - started_at, True, summary.by_status, summary.by_phase)
        # An event pass that read nothing is logged at info at most once a period, as often
        # as `-events off` logs its passes; else at debug.
        loud = not quiet or self.clock.monotonic() - self._pass_logged_at >= self.period
        if loud:
            self._pass_logged_at = self.clock.monotonic()
        (log.info if loud else log.debug)(
            "pass",
            seen=summary.seen,
            selected=summary.selected,
            statuses=summary.by_status,
            started=summary.started,
            deferred=summary.deferred,
            failed=self.failed_actions,
            skipped=self.skipped_actions,
            in_flight=self.executor.in_flight,
            duration_s=round(now - started_at, 3),
        )
        self.failed_actions = self.skipped_actions = 0

    def _pass_failed(self, exc: MaasError, started_at: float) -> None:
        now = self.clock.time()
        self.consecutive_failures += 1
        self.last_error = _problem(exc)
        self.health.pass_failed(self.last_error, now)
        self.metrics.observe_pass(now - started_at, False, {}, {})
        self._retry_in = self._pass_backoff.delay(self.consecutive_failures)
        log.error("pass failed", reason=self.last_error, next_in_s=round(self._retry_in, 1))

    def next_delay(self, spent: float = 0.0) -> float:
        """What is left of the period after a pass that took `spent` seconds (none when it
        took longer: periods count start to start, so `-period 15s` is a 15 s cycle); after
        failed passes, the capped backoff drawn when the last one failed, counted from then.
        With events the cycle is a second (the period when shorter: health expects a pass
        within three periods)."""
        if self.consecutive_failures:
            return self._retry_in
        cycle = self.period if self.feed is None else min(self.period, POLL_S)
        return max(cycle - spent, 0.0)

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_pass: Callable[[], None] | None = None) -> None:
        """First pass at once, then one starting every period, until `stop` is set."""
        while not stop.is_set():
            began = self.clock.monotonic()
            if not await self._pass_unless_stopped(stop):
                return
            if on_pass is not None:
                on_pass()
            delay = self.next_delay(self.clock.monotonic() - began)
            self.liveness.progressed(then_idle=delay)
            await interruptible_sleep(delay, stop, self.clock.sleep)

    async def step(self) -> PassSummary | None:
        """One turn of the loop: a full pass, or with events (`-events on`) a full pass when
        one is due and else an event pass. None when neither ran: a full listing is due but
        waits out the period since the last (the event log failed)."""
        if self.feed is None:
            return await self.run_pass()
        if self.feed.full_due() is None and not self.feed.waiting():
            summary = await self.run_event_pass()
            if summary is not None or self.feed.full_due() is None:
                return summary
        if self.feed.full_due() is None:
            return None  # the event log failed: plain polling, a full pass each period
        return await self.run_pass()

    async def _pass_unless_stopped(self, stop: asyncio.Event) -> bool:
        """Run one pass; abandon it when `stop` is set first (it only reads, so that is safe).

        A pass can spend minutes retrying a busy MAAS (Retry-After); SIGTERM must not wait
        for that. Returns False when the pass was abandoned.
        """
        pass_task = asyncio.create_task(self.step())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({pass_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not pass_task.done():
            pass_task.cancel()
            await asyncio.gather(pass_task, return_exceptions=True)
            return False
        # A failed pass is already logged and counted; the next one comes after backoff.
        with contextlib.suppress(MaasError):
            pass_task.result()
        return True

    def loop_alive(self) -> bool:
        """False once the loop's next step is overdue (`daemon.liveness`): it hangs somewhere.

        Logs once when that happens, and once when the loop moves again.
        """
        alive = self.liveness.alive()
        if alive == self._stuck_logged:  # it changed since the last check
            self._stuck_logged = not alive
            if alive:
                log.warning("loop moves again")
            else:
                overdue = round(self.liveness.overdue_s(), 1)
                log.error("loop stuck: a step is overdue", overdue_s=overdue)
        return alive

    async def shutdown(self, grace: float) -> None:
        """Stop starting actions; let running ones finish within `grace` seconds."""
        cancelled = await self.executor.drain(grace)
        self.flush_history()
        log.info("stopped", cancelled_actions=cancelled)

    def _with_desires(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`rows` (`/state`'s machines), each with a stored desire marked (`desired`)."""
        for row in rows:
            stored = self.desired.get(row["system_id"])
            if stored is not None:
                row["desired"] = public(stored)
        return rows

    def status_line(self) -> str:
        """One line for systemd's STATUS=: how the last pass went."""
        paused = "PAUSED; " if self.paused else ""
        if self.last_error:
            return f"{paused}pass failed: {self.last_error}"[:200]
        phases = self.views.phase_counts()
        counts = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
        return f"{paused}{self.passes} passes; {len(self.views)} machines: {counts}"[:200]

    def snapshot(self, left_out: bool = False) -> dict[str, Any]:
        """The JSON document `/state` serves (schema in `maasflow.daemon.telemetry`); with
        `left_out`, machines the filters leave out too."""
        return {
            "generated_at": self.clock.time(),
            "maas_url": self.client.base_url,
            "paused": self.paused,
            "pass": {
                "count": self.passes,
                "last_ok_at": self.health.last_success_at,
                "last_error": self.last_error,
            },
            "machines": self._with_desires(self.views.rows(left_out=left_out)),
            **({"leadership": self.leadership()} if self.leadership else {}),
        }


def _backing_off(setback: Setback) -> str:
    when = datetime.fromtimestamp(setback.retry_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    failures = f"{setback.failures} failure{'s' if setback.failures != 1 else ''}"
    return f"{setback.action} backing off until {when} ({failures})"


def describe_action(action: Action) -> str:
    """`deploy (Allocated to us: deploy)`: the action and why."""
    return f"{action.kind} ({action.reason})" if action.reason else str(action.kind)


def _may_heal(exc: MaasError) -> bool:
    """Whether waiting can change MAAS's answer to who-am-I (see `Daemon.identify`)."""
    if isinstance(exc, TemporaryMaasError | Unauthorized | Forbidden):
        return True
    return exc.status is not None and exc.status >= 500


def _hopeless(exc: MaasError) -> MaasError:
    """`exc`, its message saying that retrying is pointless and what to check."""
    hint = "; waiting cannot change this answer: check the MAAS URL (-maas, MAAS_URL)"
    return type(exc)(exc.method, exc.path, exc.status, exc.message + hint)


class PhaseLog:
    """One machine's `PhaseListener`: counts every phase entry, logs a resync and a human's turn.

    Built per machine per pass (the flow stays free of I/O and of the machine's MAAS fields);
    the flow calls it once per phase entry, so each line below is logged once, not per pass.
    """

    __slots__ = ("machine", "metrics")

    def __init__(self, machine: MachineData, metrics: Metrics) -> None:
        self.machine = machine
        self.metrics = metrics

    def entered(
        self, flow: Flow, phase: Phase, reason: str, *, came_from: Phase | None, resync: bool
    ) -> None:
        machine = self.machine
        self.metrics.observe_phase_entry(phase)
        status = machine.status_name or machine.status
        ids = {"system_id": machine.system_id, "hostname": machine.hostname}
        if resync and came_from is not None:
            self.metrics.observe_resync(came_from, phase)
            log.info(
                "flow.resync",
                **ids,
                from_phase=came_from,
                to_phase=phase,
                status=status,
                reason=reason,
            )
        if _needs_a_human(phase, machine):
            log.warning(
                "machine needs a human",
                **ids,
                status=status,
                phase=phase,
                reason=reason,
                status_message=machine.status_message,
                error_description=machine.error_description,
            )


def _needs_a_human(phase: Phase, machine: MachineData) -> bool:
    if phase is Phase.FAILED or phase is Phase.UNKNOWN:
        return True
    return phase is Phase.WAITING and machine.status == 0  # New, power unknown


def _certainly_not_done(exc: MaasError) -> bool:
    """MAAS answered the write with an error, or it never left: the write did not happen."""
    return exc.method != "GET" and not isinstance(exc, AnswerLost | UnreadableAnswer)


def _problem(exc: MaasError) -> str:
    if isinstance(exc, Unauthorized):
        return f"API key rejected by MAAS: {exc.message}"
    if exc.status is None or exc.status >= 500:
        return f"MAAS unreachable: {exc}"
    return str(exc)
