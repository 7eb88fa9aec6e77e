"""Money metered on what a cluster holds (issue 17): every node that offers slots, from the
first look that finds it to the first that does not, priced by its type. Pure: the executor
looks at the cluster (the backend's ``held_nodes()``) and hands each look to :meth:`HeldNodes.observe`.

Why: on a cluster the cloud bills machines, not jobs. A node held while its slots wait idle
(a round that uses fewer workers, a machine the autoscaler has not returned yet) costs money
that the jobs' slot-seconds do not show; this meter shows it. Each node is billed as one
rental, with the experiment's billing granularity and minimum
(:func:`seer_torch.policies.billing.billed_seconds`):

    cost = sum over nodes of price_usd_per_hour / 3600 * billed_seconds(end_s - start_s)

``price_usd_per_hour`` is the node's type's (:class:`seer_torch.config.NodeType`: the type
with the node's slot count), else ``budget.price_usd_per_slot_hour`` times its slots. A node
still held is billed through the time asked for (so the money check can look ahead). The
times are the run's clock at the looks, so a node's span is known to within the time between
two looks (:data:`seer_torch.backends.ray_backend.NODE_LOOK_S`).

Machine start (issue 17): the executor tells the meter each request it makes of the autoscaler
(:meth:`HeldNodes.asked`). A request for more slots than were asked for and held waits for
that many; a node first seen while one waits started ``now_s -`` that request's time, its
*machine start*, and fills the oldest waiting request first (:attr:`HeldNodes.machine_starts_s`,
their median :meth:`HeldNodes.machine_start_s`: what SEER plans a round that needs new machines
with). Nodes no request waits for (those held before the first request, one the autoscaler
launched beyond the request) have none.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seer_torch.config import NodeType
from seer_torch.policies.billing import billed_seconds

__all__ = ["HeldNodes", "NodeSpan", "RoundNodes", "round_nodes"]


@dataclass
class NodeSpan:
    """One node held from ``start_s`` to ``end_s`` (``None``: still held), seconds on the run's
    clock; ``node_type`` is its type's name (``""``: none listed, priced by the slot)."""

    node_id: str
    slots: int
    node_type: str
    price_usd_per_hour: float
    start_s: float
    end_s: float | None = None

    def held_s(self, at_s: float) -> float:
        """Seconds held by ``at_s`` (its end, once it has one)."""
        end = self.end_s if self.end_s is not None else max(at_s, self.start_s)
        return end - self.start_s


@dataclass(frozen=True)
class RoundNodes:
    """The machines one planned round needs (``seer plan`` with ``[resources] node_types``).

    Attributes:
        slots: slots busy at once (``min(n_k, num_slots // W_k) * W_k``).
        node_type: the type that holds them at the least cost per hour.
        nodes: how many of it (``ceil(slots / node_type.slots)``).
        cost_usd: ``nodes * price_usd_per_hour / 3600 * duration_s``: the machines held for
            the whole round, idle slots included (the plan's own money counts only the jobs'
            slot-seconds at the slot price). No billing minimum: a node held across rounds is
            one rental, so a minimum per round would count it again.
    """

    slots: int
    node_type: NodeType
    nodes: int
    cost_usd: float


def round_nodes(num_trials: int, world_size: int, num_slots: int, duration_s: float,
                node_types: Sequence[NodeType]) -> RoundNodes | None:
    """How many machines of which type a round of ``num_trials`` jobs of ``world_size`` slots,
    run in waves on ``num_slots`` slots for ``duration_s`` seconds, holds, and what they cost
    (:class:`RoundNodes`); ``None`` without node types or trials. Of the node types, the one
    whose whole nodes hold the busy slots for the least money per hour (fewest nodes on a
    tie): on a cloud the autoscaler may pick another; this is what to expect of it, not what it
    must do. Pure.

    Raises:
        ValueError: ``world_size`` or ``num_slots`` under 1, or a negative ``duration_s``.
    """
    if world_size < 1 or num_slots < 1:
        raise ValueError(f"world_size, num_slots: got {world_size}, {num_slots}; allowed: >= 1")
    if not duration_s >= 0:
        raise ValueError(f"duration_s: got {duration_s!r}; allowed: seconds >= 0")
    if not node_types or num_trials <= 0:
        return None
    slots = min(num_trials, max(1, num_slots // world_size)) * world_size
    best = min(node_types, key=lambda t: (math.ceil(slots / t.slots) * t.price_usd_per_hour,
                                          math.ceil(slots / t.slots)))
    nodes = math.ceil(slots / best.slots)
    return RoundNodes(slots, best, nodes, nodes * best.price_usd_per_hour / 3600.0 * duration_s)


class HeldNodes:
    """The nodes a cluster held during a run, and what they cost.

    Args:
        node_types: the experiment's ``resources.node_types``.
        price_usd_per_slot_hour: the price of a slot of a node of no listed type.
        granularity_s, minimum_s: the billing increment and the least billed per node, seconds.
    """

    def __init__(self, node_types: Sequence[NodeType], price_usd_per_slot_hour: float,
                 granularity_s: float = 0.0, minimum_s: float = 0.0) -> None:
        self._types = {t.slots: t for t in node_types}
        self._slot_price = float(price_usd_per_slot_hour)
        self._granularity_s, self._minimum_s = float(granularity_s), float(minimum_s)
        self.spans: list[NodeSpan] = []
        self._open: dict[str, NodeSpan] = {}
        self.machine_starts_s: list[float] = []  # seconds, in the order the nodes came
        self._asked_slots = 0  # the latest request
        self._waiting: list[list[float]] = []  # requests still waiting: [asked at (s), slots to come]

    def held_slots(self) -> int:
        """Slots of the nodes held now (as of the latest look)."""
        return sum(s.slots for s in self._open.values())

    def asked(self, now_s: float, slots: int) -> None:
        """The executor asked the cluster for ``slots`` slots at ``now_s`` (replacing its
        previous request). What it asks beyond both the previous request and the slots held waits
        for new nodes from ``now_s``; a lower request drops the newest waiting slots it no longer
        asks for.

        Raises:
            ValueError: ``slots`` below 0.
        """
        if slots < 0:
            raise ValueError(f"slots: got {slots}; allowed: >= 0")
        held = self.held_slots()
        extra = slots - max(self._asked_slots, held)
        if extra > 0:
            self._waiting.append([now_s, float(extra)])
        else:
            excess = sum(w[1] for w in self._waiting) - max(0, slots - held)
            while excess > 0 and self._waiting:
                cut = min(excess, self._waiting[-1][1])
                self._waiting[-1][1] -= cut
                excess -= cut
                if self._waiting[-1][1] <= 0:
                    self._waiting.pop()
        self._asked_slots = slots

    def machine_start_s(self) -> float | None:
        """The median of :attr:`machine_starts_s`, seconds; ``None`` before any was measured."""
        return statistics.median(self.machine_starts_s) if self.machine_starts_s else None

    def observe(self, now_s: float, alive: Mapping[str, int]) -> None:
        """One look at the cluster at ``now_s``: ``alive`` maps each live node's id to its slots.
        A node seen for the first time starts now (and, when a request waits for it, its machine
        start is measured: the module notes); a held node not among them (or with no slots left)
        ended now."""
        for node_id, slots in alive.items():
            if slots > 0 and node_id not in self._open:
                kind = self._types.get(slots)
                span = NodeSpan(node_id, slots, kind.name if kind else "",
                                kind.price_usd_per_hour if kind else self._slot_price * slots, now_s)
                self.spans.append(span)
                self._open[node_id] = span
                if self._waiting:  # the node a waiting request asked for: its machine start
                    oldest = self._waiting[0]
                    self.machine_starts_s.append(max(0.0, now_s - oldest[0]))
                    oldest[1] -= slots
                    if oldest[1] <= 0:
                        self._waiting.pop(0)
        for node_id in [n for n in self._open if alive.get(n, 0) <= 0]:
            self._open.pop(node_id).end_s = now_s

    def close(self, now_s: float) -> None:
        """The run is over: every node still held ends at ``now_s`` (the run stops paying)."""
        self.observe(now_s, {})

    def cost_usd(self, at_s: float) -> float:
        """What the nodes cost through ``at_s`` (nodes still held billed through it), USD."""
        return sum(self._node_usd(s, at_s) for s in self.spans)

    def _node_usd(self, span: NodeSpan, at_s: float) -> float:
        return span.price_usd_per_hour / 3600.0 * billed_seconds(span.held_s(at_s), self._granularity_s,
                                                                  self._minimum_s)

    def to_dict(self, at_s: float, origin_s: float = 0.0) -> dict[str, Any]:
        """For ``results.json``: each node (id, type, slots, start and end in seconds since
        ``origin_s``, seconds held and billed, USD) and the sums: ``node_seconds``,
        ``slot_seconds`` (held), ``cost_usd``."""
        nodes = [{"node_id": s.node_id, "node_type": s.node_type or None, "slots": s.slots,
                  "price_usd_per_hour": s.price_usd_per_hour, "start_s": s.start_s - origin_s,
                  "end_s": None if s.end_s is None else s.end_s - origin_s,
                  "held_s": s.held_s(at_s),
                  "billed_s": billed_seconds(s.held_s(at_s), self._granularity_s, self._minimum_s),
                  "cost_usd": self._node_usd(s, at_s)} for s in self.spans]
        return {"nodes": nodes, "node_seconds": sum(n["held_s"] for n in nodes),
                "slot_seconds": sum(n["held_s"] * n["slots"] for n in nodes),
                "cost_usd": sum(n["cost_usd"] for n in nodes)}
