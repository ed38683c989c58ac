"""The allocation problem of one warehouse and its result (shared by the greedy and MILP solvers).

See :mod:`inventory_scale.inventory.allocate` for the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inventory_scale.inventory.newsvendor import ProfitCurve

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Problem:
    """One warehouse's decision: ``N`` series sharing a budget and a capacity.

    Attributes:
        curve: expected profit per order-up-to level, ``N`` rows.
        position: ``[N]`` inventory position (on hand + in transit) before ordering.
        cost: ``[N]`` unit cost (capital per unit ordered).
        volume: ``[N]`` m^3 per unit.
        case_pack: ``[N]`` order multiple (>= 1).
        moq: ``[N]`` minimum order quantity (0 = none).
        budget: capital available for these orders (``inf`` = unconstrained).
        capacity: m^3 available for these orders (``inf`` = unconstrained).
        shelf_free_level: ``[N]`` optional order-up-to level the series would have without a shelf
            life (names ``shelf_life`` as the binding constraint where it is higher).
    """

    curve: ProfitCurve
    position: F64
    cost: F64
    volume: F64
    case_pack: F64
    moq: F64
    budget: float = float("inf")
    capacity: float = float("inf")
    shelf_free_level: F64 | None = None

    @property
    def n(self) -> int:
        return int(self.position.size)

    @property
    def moq_packs(self) -> F64:
        """``[N]`` the smallest non-zero order: the MOQ rounded up to whole packs."""
        return np.maximum(np.ceil(self.moq / self.case_pack - 1e-9), 1.0) * self.case_pack

    def take(self, idx: npt.NDArray[np.int64], budget: float, capacity: float) -> Problem:
        """The sub-problem of the series ``idx`` with the given limits."""
        return Problem(
            self.curve.take(idx),
            self.position[idx],
            self.cost[idx],
            self.volume[idx],
            self.case_pack[idx],
            self.moq[idx],
            budget,
            capacity,
            None if self.shelf_free_level is None else self.shelf_free_level[idx],
        )

    def gain(self, qty: F64) -> F64:
        """``[N]`` expected profit of ordering ``qty`` over ordering nothing."""
        return self.curve.value(self.position + qty) - self.curve.value(self.position)


@dataclass(frozen=True)
class Allocation:
    """The order of every series of one warehouse and why.

    Attributes:
        qty: ``[N]`` order quantities (pack multiples, 0 or >= MOQ).
        wanted: ``[N]`` unconstrained (continuous) quantities.
        relaxed: ``[N]`` Lagrangian (continuous) quantities under budget and capacity.
        binding: ``[N]`` constraint that set each quantity (``none``, ``budget``, ...).
        budget_price: shadow price of capital (per currency unit), 0 when the budget is slack.
        capacity_price: shadow price of capacity (per m^3), 0 when capacity is slack.
        objective: total expected profit of the orders (over ordering nothing).
        solver: ``greedy``, ``milp`` or ``milp->greedy`` (MILP failed or was no better).
        seconds: solve time.
    """

    qty: F64
    wanted: F64
    relaxed: F64
    binding: npt.NDArray[np.str_]
    budget_price: float
    capacity_price: float
    objective: float
    solver: str
    seconds: float
