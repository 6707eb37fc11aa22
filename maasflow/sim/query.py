"""Server-side machine selection: the `GET machines/` filters and `op=allocate` constraints.

The simulator's reading of MAAS's `ReadNodesForm`/`AcquireNodeForm`
(`src/maasserver/node_constraint_filter_forms.py`, facts §2.4 and §3.2). Repeated keys are
OR-ed, `tags` are AND-ed, `not_*` exclude, `cpu_count`/`mem` are minimums; unknown names,
zones, pools, tags, statuses and malformed MACs answer 400 JSON. Allocation picks the
cheapest (cpu_count + memory/1024) Ready, unlocked machine the caller may edit, or answers
409 with MAAS's sentence. Pods, devices, storage and interface constraints are accepted but
not modelled: no simulated machine is in a pod, and every one satisfies the others.
"""

from __future__ import annotations

from collections.abc import Callable

from maasflow.sim.auth import User
from maasflow.sim.forms import MAC_RE, parse_mac
from maasflow.sim.http import Params, fail, field_errors
from maasflow.sim.machine import Machine
from maasflow.sim.statuses import ALLOCATE_FROM, FILTER_NAMES, SIMPLE_STATUS, Status
from maasflow.sim.world import World, visible

Values = Callable[[Machine], set[str]]

FACETS: dict[str, Values] = {
    "id": lambda m: {m.system_id},
    "hostname": lambda m: {m.hostname, m.fqdn},
    "mac_address": lambda m: set(m.macs),
    "domain": lambda m: {m.domain.name},
    "agent_name": lambda m: {m.agent_name},
    "status": lambda m: {Status(m.status).name.lower()},
    "simple_status": lambda m: {SIMPLE_STATUS[m.status]},
    "tags": lambda m: set(m.tags),
    "arch": lambda m: {m.architecture, m.architecture.split("/")[0]},
    "zone": lambda m: {m.zone.name},
    "pool": lambda m: {m.pool.name},
    "owner": lambda m: {m.owner or ""},
    "power_state": lambda m: {m.power_state},
    "fabrics": lambda m: {"fabric-0"},
    "vlans": lambda m: {"untagged", "0"},
    "subnets": lambda m: {nic.subnet.cidr for nic in m.nics},
    "pod": lambda m: set(),
    "pod_type": lambda m: set(),
    "deployment_target": lambda m: {"default"} if m.status == Status.DEPLOYED else set(),
    "devices": lambda m: set(),
}
NEGATIONS = {
    "not_id": "id",
    "not_hostname": "hostname",
    "not_domain": "domain",
    "not_agent_name": "agent_name",
    "not_status": "status",
    "not_simple_status": "simple_status",
    "not_tags": "tags",
    "not_arch": "arch",
    "not_in_zone": "zone",
    "not_in_pool": "pool",
    "not_owner": "owner",
    "not_power_state": "power_state",
    "not_fabrics": "fabrics",
    "not_vlans": "vlans",
    "not_subnets": "subnets",
    "not_pod": "pod",
    "not_pod_type": "pod_type",
}
MINIMUMS: dict[str, tuple[Callable[[Machine], float], str]] = {
    "cpu_count": (lambda m: m.cpu_count, "Invalid CPU count: number required."),
    "mem": (lambda m: m.memory, "Invalid memory: number of MiB required."),
    "cpu_speed": (lambda m: 2400, "Invalid CPU speed: number required."),
    "link_speed": (lambda m: 1000, "Invalid link speed: number required."),
}
ALLOCATE_KEYS = frozenset(
    [
        "name",
        "system_id",
        "arch",
        "cpu_count",
        "mem",
        "tags",
        "not_tags",
        "zone",
        "not_in_zone",
        "pool",
        "not_in_pool",
        "subnets",
        "not_subnets",
        "fabrics",
        "not_fabrics",
        "fabric_classes",
        "not_fabric_classes",
        "interfaces",
        "storage",
        "devices",
        "pod",
        "not_pod",
        "pod_type",
        "not_pod_type",
    ]
)
ALLOCATE_OPTIONS = frozenset(
    [
        "op",
        "agent_name",
        "comment",
        "bridge_all",
        "bridge_type",
        "bridge_stp",
        "bridge_fd",
        "dry_run",
        "verbose",
    ]
)
_MATCH_ALL = frozenset({"fabric_classes", "not_fabric_classes", "interfaces", "storage"})
_MULTI_VALUED = frozenset({"tags", "not_tags"})


def select(world: World, user: User, params: Params) -> list[Machine]:
    """The machines `GET machines/` lists for `user` with these filters, in id order."""
    wanted = _clean(params)
    known = FACETS.keys() | NEGATIONS.keys() | MINIMUMS.keys()
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise field_errors({name: ["No such constraint."] for name in unknown})
    _validate(world, wanted)
    test = _matcher(wanted)
    return [m for m in world.machines.values() if visible(m, user) and test(m)]


def choose_for_allocation(world: World, user: User, params: Params) -> Machine:
    """The machine `op=allocate` would take; 400 for bad constraints, 409 when none fits."""
    cleaned = _clean(params)
    unknown = [n for n in cleaned if n not in ALLOCATE_KEYS and n not in ALLOCATE_OPTIONS]
    if unknown:
        raise field_errors({name: ["No such constraint."] for name in unknown})
    constraints = {n: v for n, v in cleaned.items() if n in ALLOCATE_KEYS}
    _validate(world, constraints)
    test = _allocation_matcher(constraints)
    candidates = [
        m
        for m in world.machines.values()
        if m.status in ALLOCATE_FROM and not m.locked and visible(m, user) and test(m)
    ]
    if not candidates:
        raise fail(409, _nothing_available(constraints))
    return min(candidates, key=lambda m: (m.cpu_count + m.memory / 1024, m.id))


def _clean(params: Params) -> Params:
    cleaned: Params = {}
    for name, values in params.items():
        if name == "op" or name.startswith("oauth_"):
            continue
        if name in _MULTI_VALUED:
            values = [part for value in values for part in value.replace(",", " ").split()]
        cleaned[name] = values
    return cleaned


def _validate(world: World, wanted: Params) -> None:
    errors: dict[str, list[str]] = {}
    for name, values in wanted.items():
        facet = NEGATIONS.get(name, name)
        problem = _value_problem(world, facet, values)
        if problem:
            errors[name] = [problem]
    if errors:
        raise field_errors(errors)


def _value_problem(world: World, facet: str, values: list[str]) -> str | None:
    if facet in MINIMUMS:
        return None if _numbers(values) is not None else MINIMUMS[facet][1]
    missing: list[str] = []
    if facet == "zone":
        missing = [v for v in values if v not in world.zones]
        return f"No such zone(s): {', '.join(missing)}." if missing else None
    if facet == "pool":
        missing = [v for v in values if v not in world.pools]
        return f"No such pool(s): {', '.join(missing)}." if missing else None
    if facet == "tags":
        missing = [v for v in values if v not in world.tags]
        return "No such tag(s): " + ", ".join(f"'{v}'" for v in missing) + "." if missing else None
    if facet == "mac_address":
        bad = [v for v in values if not MAC_RE.match(v.strip())]
        return f"'{bad[0][:64]}' is not a valid MAC address." if bad else None
    return _choice_problem(facet, values)


def _choice_problem(facet: str, values: list[str]) -> str | None:
    choices = {
        "status": set(FILTER_NAMES),
        "simple_status": set(SIMPLE_STATUS.values()),
        "power_state": {"on", "off", "unknown", "error"},
    }.get(facet)
    if choices is None:
        return None
    bad = [v for v in values if v not in choices]
    if bad:
        return f"Select a valid choice. {bad[0][:64]} is not one of the available choices."
    return None


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _matcher(wanted: Params) -> Callable[[Machine], bool]:
    tests = [_test(name, values) for name, values in wanted.items()]
    return lambda machine: all(test(machine) for test in tests)


def _test(name: str, values: list[str]) -> Callable[[Machine], bool]:
    if name in MINIMUMS:
        getter, floor = MINIMUMS[name][0], max(_numbers(values) or [0.0])
        return lambda m: getter(m) >= floor
    if name in _MATCH_ALL:
        return lambda m: True
    negated = name in NEGATIONS
    facet = FACETS[NEGATIONS.get(name, name)]
    want = {parse_mac(v) or v for v in values} if name == "mac_address" else set(values)
    if name == "tags":
        return lambda m: want <= facet(m)
    if negated:
        return lambda m: not (want & facet(m))
    return lambda m: bool(want & facet(m))


def _allocation_matcher(constraints: Params) -> Callable[[Machine], bool]:
    tests = []
    for name, values in constraints.items():
        if name == "name":
            tests.append(_name_test(values))
        elif name == "system_id":
            tests.append(_test("id", values))
        else:
            tests.append(_test(name, values))
    return lambda machine: all(test(machine) for test in tests)


def _name_test(values: list[str]) -> Callable[[Machine], bool]:
    """`name` is a hostname or an FQDN; with an FQDN both parts must match."""
    return lambda m: any(v == m.fqdn if "." in v else v == m.hostname for v in values)


def _nothing_available(constraints: Params) -> str:
    if not constraints:
        return "No machine available."
    if list(constraints) == ["system_id"]:
        return f"No machine with system ID {constraints['system_id'][0][:64]} available."
    given = [(name, values) for name, values in constraints.items()]
    resolved = " ".join(f"{name}={','.join(values)}" for name, values in given)
    return f'No available machine matches constraints: {given!r} (resolved to "{resolved}")'
