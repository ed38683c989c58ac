"""Likelihood heads of the DeepAR-style LSTM: negative binomial and Tweedie.

A head maps LSTM hidden states ``[..., hidden]`` plus the series scale to the parameters of a
per-step demand distribution in *raw units* (no further rescaling needed by the caller), and
knows that distribution's negative log-likelihood, mean and sampler::

    head = make_head("negbin", hidden=64)
    params = head(hidden_states, scale)      # dict of tensors, each [...]
    loss = head.nll(params, y)               # [...]
    paths = head.sample(params, generator)   # [...]

Parametrisations (``s`` = series scale >= 1, ``softplus`` keeps parameters positive):

* negative binomial (``"negbin"``, DeepAR, Salinas et al. 2020): ``mu = softplus(.) * s`` and
  ``alpha = softplus(.) / sqrt(s)``. ``Var = mu + alpha * mu**2``, so for fixed network outputs the
  variance grows like ``s + s**1.5`` (between Poisson and constant coefficient of variation). The
  pmf is ``scipy.stats.nbinom(n=1/alpha, p=1/(1+alpha*mu))``.
* Tweedie (``"tweedie"``, power ``1 < p < 2``, compound Poisson-gamma): ``mu = softplus(.) * s`` and
  ``phi = softplus(.) * s**(1.5 - p)``. ``Var = phi * mu**p`` then also grows like ``s**1.5`` for
  fixed network outputs, matching the negative binomial. ``Y = sum_{i<=N} G_i`` with
  ``N ~ Poisson(lam)``, ``G_i ~ Gamma(a, scale=g)``, ``lam = mu**(2-p) / (phi*(2-p))``,
  ``a = (2-p)/(p-1)``, ``g = phi*(p-1)*mu**(p-1)``. The log-density is the exact series
  expansion (Dunn and Smyth 2005): ``log P(0) = -lam`` and, for ``y > 0``,
  ``log f(y) = -lam - y/g - log y + log sum_j exp(j*log(lam) + j*a*log(y/g) - lgamma(j+1) -
  lgamma(j*a))``. The sum runs over ``SERIES_TERMS`` values of ``j`` centred on its mode; where the
  mode is large the terms are taken every ``step`` integers and the sum is ``step`` times their sum
  (a Riemann sum of a smooth, bell-shaped summand; relative error far below 1e-6).

NLLs are computed in float64 (lgamma cancellation) and returned in the parameters' dtype.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from inventory_scale.errors import ConfigError

Params = dict[str, torch.Tensor]

EPS = 1e-6  # floor of every positive parameter: keeps logs and 1/alpha finite
SERIES_TERMS = 32  # terms of the Tweedie series kept per observation
SERIES_WIDTH = 6.0  # half-width of the series window in standard deviations of j


class LikelihoodHead(nn.Module, ABC):
    """A linear map from hidden states to the parameters of a positive distribution.

    Subclasses set ``name`` and ``param_names`` and implement the distribution's maths.
    """

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, len(self.param_names))

    def forward(self, hidden: torch.Tensor, scale: torch.Tensor) -> Params:
        """Distribution parameters in raw units.

        Args:
            hidden: ``[..., hidden]`` LSTM outputs.
            scale: series scale (>= 1), broadcastable to ``hidden.shape[:-1]`` (``[B, 1]`` for
                ``[B, T, hidden]``).

        Returns:
            ``{name: [...]}`` for every name in ``param_names``.
        """
        raw = F.softplus(self.proj(hidden)) + EPS  # [..., P]
        return self._rescale(raw.unbind(dim=-1), scale)

    @abstractmethod
    def _rescale(self, raw: tuple[torch.Tensor, ...], scale: torch.Tensor) -> Params:
        """Map positive unscaled parameters (each ``[...]``) to raw units."""

    @abstractmethod
    def nll(self, params: Params, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood ``[...]`` of observations ``y`` ``[...]`` (raw units, >= 0)."""

    @abstractmethod
    def mean(self, params: Params) -> torch.Tensor:
        """Mean ``[...]`` of the distribution."""

    @abstractmethod
    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw ``[...]`` per element; ``generator`` must live on the parameters' device."""


class NegativeBinomialHead(LikelihoodHead):
    """Negative binomial with mean ``mu`` and dispersion ``alpha`` (``Var = mu + alpha*mu**2``)."""

    name = "negbin"
    param_names = ("mu", "alpha")

    def _rescale(self, raw: tuple[torch.Tensor, ...], scale: torch.Tensor) -> Params:
        mu, alpha = raw  # [...], [...]
        return {"mu": mu * scale, "alpha": alpha / torch.sqrt(scale)}

    def nll(self, params: Params, y: torch.Tensor) -> torch.Tensor:
        """``-scipy.stats.nbinom.logpmf(y, n=1/alpha, p=1/(1+alpha*mu))``, elementwise ``[...]``."""
        mu, alpha = params["mu"].double(), params["alpha"].double()  # [...]
        yd = y.double()  # [...]
        n = 1.0 / alpha  # [...]
        log1p_am = torch.log1p(alpha * mu)  # [...] = -log p
        logpmf = (
            torch.lgamma(yd + n)
            - torch.lgamma(n)
            - torch.lgamma(yd + 1.0)
            - n * log1p_am
            + yd * (torch.log(alpha) + torch.log(mu) - log1p_am)
        )  # [...]
        return (-logpmf).to(params["mu"].dtype)

    def mean(self, params: Params) -> torch.Tensor:
        """``mu`` ``[...]``."""
        return params["mu"]

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """Gamma-Poisson mixture: ``lam ~ Gamma(1/alpha, scale=alpha*mu)``, ``y ~ Poisson(lam)``."""
        mu, alpha = params["mu"], params["alpha"]  # [...]
        rate = torch._standard_gamma(1.0 / alpha, generator=generator) * alpha * mu  # [...]
        return torch.poisson(rate, generator=generator)  # [...]


class TweedieHead(LikelihoodHead):
    """Tweedie (compound Poisson-gamma) with mean ``mu``, dispersion ``phi`` and fixed power ``p``.

    Args:
        hidden: width of the hidden states.
        power: Tweedie power ``p`` in (1, 2); ``Var = phi * mu**p``.
    """

    name = "tweedie"
    param_names = ("mu", "phi")

    def __init__(self, hidden: int, power: float = 1.5) -> None:
        if not 1.0 < power < 2.0:
            raise ConfigError(f"Tweedie power must be in (1, 2), got {power!r}")
        super().__init__(hidden)
        self.power = float(power)

    def _rescale(self, raw: tuple[torch.Tensor, ...], scale: torch.Tensor) -> Params:
        mu, phi = raw  # [...], [...]
        return {"mu": mu * scale, "phi": phi * scale ** (1.5 - self.power)}

    def _compound(self, mu: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor]:
        """Poisson rate ``lam`` ``[...]``, gamma shape ``a`` and gamma scale ``g`` ``[...]``."""
        p = self.power
        lam = mu ** (2.0 - p) / (phi * (2.0 - p))  # [...]
        g = phi * (p - 1.0) * mu ** (p - 1.0)  # [...]
        return lam, (2.0 - p) / (p - 1.0), g

    def nll(self, params: Params, y: torch.Tensor) -> torch.Tensor:
        """Exact (series-expansion) negative log-density, elementwise ``[...]``.

        ``y == 0`` gets ``-log P(Y=0) = lam``; ``y > 0`` the negative log-density.
        """
        mu, phi = params["mu"].double(), params["phi"].double()  # [...]
        yd = y.double()  # [...]
        lam, a, g = self._compound(mu, phi)  # [...], float, [...]
        positive = yd > 0  # [...]
        ys = torch.where(positive, yd, torch.ones_like(yd))  # [...] safe for logs
        slope = torch.log(lam) + a * (torch.log(ys) - torch.log(g))  # [...] coefficient of j
        with torch.no_grad():
            mode = torch.exp((slope - a * math.log(a)) / (1.0 + a)).clamp(1.0, 1e12)  # [...]
            half = SERIES_WIDTH * torch.sqrt(mode / (1.0 + a))  # [...] window half-width, ~6 sd
            fits = mode + half + 1.0 <= SERIES_TERMS  # [...] every integer from 1 fits
            step = torch.where(fits, 1.0, torch.ceil(2.0 * half / SERIES_TERMS))  # [...]
            start = torch.clamp(torch.floor(mode - 0.5 * SERIES_TERMS * step), min=1.0)  # [...]
            offsets = torch.arange(SERIES_TERMS, dtype=yd.dtype, device=yd.device)  # [K]
            j = start.unsqueeze(-1) + step.unsqueeze(-1) * offsets  # [..., K]
        terms = j * slope.unsqueeze(-1) - torch.lgamma(j + 1.0) - torch.lgamma(j * a)  # [..., K]
        log_series = torch.logsumexp(terms, dim=-1) + torch.log(step)  # [...]
        log_pos = -lam - ys / g - torch.log(ys) + log_series  # [...]
        logf = torch.where(positive, log_pos, -lam)  # [...]
        return (-logf).to(params["mu"].dtype)

    def mean(self, params: Params) -> torch.Tensor:
        """``mu`` ``[...]``."""
        return params["mu"]

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """``N ~ Poisson(lam)`` jumps, ``Y | N ~ Gamma(N*a, scale=g)`` (``Y = 0`` when ``N = 0``)."""
        lam, a, g = self._compound(params["mu"], params["phi"])  # [...], float, [...]
        jumps = torch.poisson(lam, generator=generator)  # [...]
        shape = torch.clamp(jumps * a, min=EPS)  # [...]
        total = torch._standard_gamma(shape, generator=generator) * g  # [...]
        return torch.where(jumps > 0, total, torch.zeros_like(total))  # [...]


HEADS: dict[str, type[LikelihoodHead]] = {
    NegativeBinomialHead.name: NegativeBinomialHead,
    TweedieHead.name: TweedieHead,
}


def make_head(name: str, hidden: int) -> LikelihoodHead:
    """Build the likelihood head called ``name`` ("negbin" or "tweedie") for ``hidden`` inputs.

    Raises:
        ConfigError: for an unknown name.
    """
    if name not in HEADS:
        raise ConfigError(f"config key 'model.likelihood' must be one of {sorted(HEADS)}, got {name!r}")
    return HEADS[name](hidden)
