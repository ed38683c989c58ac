"""Seed ensembles: K forecasters of one shard, trained from different seeds, sampled as one mixture.

An equal-weight mixture of K independently trained networks is the cheapest dependable accuracy
gain for global neural forecasters (every top M5 entry averaged several fits): each member's
weights carry its own optimisation noise, and averaging cancels part of it. Here the mixture is
exact in distribution: of ``num_paths`` paths, member ``k`` draws ``num_paths // K`` (one more
for the first ``num_paths % K`` members), so quantiles, means and protection-interval demand
read from the pooled paths are those of the mixture, and the optimizer sees it unchanged::

    forecaster = Ensemble([load_forecaster(p) for p in member_paths])
    paths = forecaster.sample(batch, 200, generator=gen)  # [B, 200, H]: 67 + 67 + 66 paths

Members must share the feature layout (``scaler_state``) and the horizon: they are fits of the
same config on the same shard, so a mismatch means checkpoints from different runs were mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from inventory_scale.distributed.sharding import derive_seed
from inventory_scale.errors import SchemaError
from inventory_scale.models.module import ForecastModule


def member_seed(shard_seed: int, member: int) -> int:
    """Training seed of ensemble member ``member``; member 0 keeps the shard's own seed.

    So ``model.ensemble=1`` trains exactly the model it trained before ensembles existed, and
    member 0 of a larger ensemble is that same model.
    """
    return shard_seed if member == 0 else derive_seed(shard_seed, f"member{member}")


def combine_member_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One shard's training stats from its members' (in member order): member 0's, plus for several
    members ``members``, each one's ``val_loss`` and ``epochs``, and ``steps`` / ``seconds`` summed."""
    out = {k: v for k, v in parts[0].items() if k != "member"}
    if len(parts) > 1:
        out.update(
            members=len(parts),
            member_val_loss=[p.get("val_loss") for p in parts],
            member_epochs=[p.get("epochs") for p in parts],
            steps=sum(int(p.get("steps", 0)) for p in parts),
            seconds=round(sum(float(p.get("seconds", 0.0)) for p in parts), 2),
        )
    return out


def path_counts(num_paths: int, members: int) -> list[int]:
    """Paths each member draws: ``num_paths`` split as evenly as possible, first members first."""
    if members < 1 or num_paths < members:
        raise ValueError(
            f"cannot split {num_paths} paths over {members} members (need 1 <= members <= paths)"
        )
    base, extra = divmod(num_paths, members)
    return [base + int(k < extra) for k in range(members)]


class Ensemble:
    """Equal-weight mixture of trained :class:`ForecastModule` members (what forecasting needs of one).

    Exposes the attributes the forecast code reads from a single module: ``scaler_state``,
    ``net`` (its ``config.horizon``), ``device``, ``to`` and ``sample``.
    """

    def __init__(self, members: Sequence[ForecastModule]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            if (m.scaler_state or {}) != (first.scaler_state or {}):
                raise SchemaError(
                    f"ensemble member {k} was trained on a different feature layout than member 0 "
                    f"(scaler_state differs): checkpoints of different runs were mixed"
                )
            if m.net.config.horizon != first.net.config.horizon:
                raise SchemaError(
                    f"ensemble member {k} forecasts {m.net.config.horizon} periods, member 0 "
                    f"{first.net.config.horizon}"
                )
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def scaler_state(self) -> dict[str, Any] | None:
        return self.members[0].scaler_state

    @property
    def net(self) -> Any:
        return self.members[0].net

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def to(self, device: str | torch.device) -> Ensemble:
        self.members = [m.to(device) for m in self.members]
        return self

    def eval(self) -> Ensemble:
        for m in self.members:
            m.eval()
        return self

    def sample(
        self, batch: dict[str, torch.Tensor], num_paths: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[B, num_paths, H]``: member ``k``'s :func:`path_counts` share, members in order."""
        counts = path_counts(num_paths, len(self.members))
        return torch.cat(
            [m.sample(batch, c, generator=generator) for m, c in zip(self.members, counts, strict=True)],
            dim=1,
        )


Forecaster = ForecastModule | Ensemble


def as_forecaster(members: Sequence[ForecastModule]) -> Forecaster:
    """The single module itself for one member, an :class:`Ensemble` for several."""
    return members[0] if len(members) == 1 else Ensemble(members)
