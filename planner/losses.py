"""Losses of the world model: the JEPA prediction loss, and the anti-collapse regularisers SIGReg (LeJEPA) and
VICReg."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigreg(x: torch.Tensor, num_slices: int = 128, knots: int = 17, t_max: float = 3.0, generator=None):
    """Sketched isotropic Gaussian regulariser (LeJEPA): the Epps-Pulley statistic of random 1-D projections of the
    embeddings against a standard Gaussian, averaged over the projections.

    For a slice u = x @ a (|a| = 1): N * integral_0^tmax |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt * 2 (the
    integrand is even in t), with phi_N the empirical characteristic function, by the trapezoid rule.
    """
    # x: (N, D)
    n, d = x.shape
    a = torch.randn(d, num_slices, device=x.device, dtype=x.dtype, generator=generator)
    a = a / a.norm(dim=0, keepdim=True)
    proj = x @ a  # (N, S)
    t = torch.linspace(0.0, t_max, knots, device=x.device, dtype=x.dtype)
    xt = proj.unsqueeze(-1) * t  # (N, S, K)
    real = torch.cos(xt).mean(0)  # (S, K)
    imag = torch.sin(xt).mean(0)
    gauss = torch.exp(-0.5 * t**2)
    integrand = ((real - gauss) ** 2 + imag**2) * gauss
    dt = t_max / (knots - 1)
    w = torch.full((knots,), dt, device=x.device, dtype=x.dtype)
    w[0] = w[-1] = dt / 2
    stat = n * (integrand @ (2 * w))  # (S,)
    return stat.mean()


def vicreg(x: torch.Tensor, std_target: float = 1.0, eps: float = 1e-4):
    """Variance (hinge on each dimension's std) + covariance (off-diagonal squared) terms of VICReg."""
    # x: (N, D)
    x = x - x.mean(0)
    std = torch.sqrt(x.var(0) + eps)
    var_loss = F.relu(std_target - std).mean()
    cov = (x.T @ x) / max(x.shape[0] - 1, 1)
    off = cov - torch.diag(torch.diag(cov))
    cov_loss = (off**2).sum() / x.shape[1]
    return var_loss + cov_loss


def regulariser(name: str):
    if name == "sigreg":
        return sigreg
    if name == "vicreg":
        return vicreg
    if name == "none":
        return lambda x: x.new_zeros(())
    raise ValueError(f"unknown regulariser {name!r}: use sigreg, vicreg or none")


def prediction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between predicted and target latents (targets carry no gradient)."""
    return F.mse_loss(pred, target.detach())
