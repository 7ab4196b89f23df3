"""Object parts: 2-D shapes in object coordinates (metres), each with a class and colour.

A shape is a function (u, v, px) -> bool mask, u metres right of the object's centre and v
metres above the ground (broadcasting arrays); `px`, the size of one pixel in metres at the
object's depth, keeps thin parts at least one pixel wide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

Mask = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


@dataclass
class Part:
    """One piece of an object: a class, a shape in object coordinates, a colour."""

    label: int
    mask: Mask
    color: np.ndarray


def jitter(rng: np.random.Generator, color: ArrayLike, amount: float = 12.0) -> np.ndarray:
    """`color` plus Gaussian noise per channel, kept in 0..255 (float32 (3,))."""
    jittered = np.asarray(color, np.float32) + np.float32(amount) * rng.standard_normal(
        3, np.float32
    )
    return np.minimum(np.maximum(jittered, 0), 255)


def rect(u0: float, u1: float, v0: float, v1: float) -> Mask:
    def mask(u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
        hu, hv = max(u1 - u0, px) / 2, max(v1 - v0, px) / 2
        return (np.abs(u - (u0 + u1) / 2) <= hu) & (np.abs(v - (v0 + v1) / 2) <= hv)

    return mask


def ellipse(cu: float, cv: float, ru: float, rv: float, wobble: np.ndarray | None = None) -> Mask:
    """An ellipse; `wobble` (n, 2) bends its outline by radial harmonics
    amp * cos(k * theta + phase), k = 3, 4, ..."""

    def mask(u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
        du, dv = (u - cu) / max(ru, px / 2), (v - cv) / max(rv, px / 2)
        r = np.hypot(du, dv)
        if wobble is None:
            return r <= 1
        direction = (du + 1j * dv) / np.maximum(r, 1e-6)  # e^(i theta)
        power, outline = direction**3, 1.0
        for amp, phase in wobble:
            outline = outline + amp * (power * np.exp(1j * phase)).real
            power = power * direction
        return r <= outline

    return mask


def ring(cu: float, cv: float, radius: float, width: float) -> Mask:
    def mask(u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
        return np.abs(np.hypot(u - cu, v - cv) - radius) <= max(width, px) / 2

    return mask


def segment(a: tuple[float, float], b: tuple[float, float], width: float) -> Mask:
    """A thick line from a to b."""

    def mask(u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
        (ua, va), (ub, vb) = a, b
        du, dv = ub - ua, vb - va
        t = np.clip(((u - ua) * du + (v - va) * dv) / (du * du + dv * dv), 0, 1)
        return np.hypot(u - ua - t * du, v - va - t * dv) <= max(width, px) / 2

    return mask


def trapezoid(v0: float, v1: float, half0: float, half1: float) -> Mask:
    """Symmetric about u=0; half width `half0` at v0, `half1` at v1."""

    def mask(u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
        t = (v - v0) / (v1 - v0)
        return (t >= 0) & (t <= 1) & (np.abs(u) <= half0 + (half1 - half0) * t)

    return mask


def triangle(cv: float, size: float, down: bool) -> Mask:
    """Equilateral-ish triangle centred at (0, cv); pointing down (yield) or up (warning)."""
    top, bottom = cv + size / 2, cv - size / 2
    return trapezoid(bottom, top, size / 2, 0) if not down else trapezoid(bottom, top, 0, size / 2)
