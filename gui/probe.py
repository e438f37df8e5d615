"""Cursor readout and landmark mapping, Qt-free: what ITK-SNAP's Cursor Inspector / Slicer's Data Probe show.

Landmarks are mapped with the registration result the state holds: its displacement field
``ddf_mm`` (fixed -> moving, world RAS mm, on the fixed grid; the composed field of every pipeline
stage), sampled linearly at the landmark, exactly as :func:`fnoreg_core.geometry.pull` samples it
when the runtime warps the moving image. Nothing is recomputed here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["readout", "readout_rows", "map_points", "axis_codes"]


def axis_codes(affine: np.ndarray, ndim: int = 3) -> list[tuple[str, str]]:
    """(letter at low index, letter at high index) per array axis, from the voxel -> RAS affine.

    >>> axis_codes(np.eye(4))
    [('L', 'R'), ('P', 'A'), ('I', 'S')]
    """
    out = []
    for i in range(ndim):
        col = np.asarray(affine, dtype=np.float64)[:3, i]
        k = int(np.argmax(np.abs(col)))
        pos, neg = "RAS"[k], "LPI"[k]
        out.append((neg, pos) if col[k] >= 0 else (pos, neg))
    return out


def _world(affine: np.ndarray, ndim: int, vox: np.ndarray) -> np.ndarray:
    """(ndim, N) world mm of voxel coordinates (ndim, N)."""
    from fnoreg_core.geometry import affine_nd

    a = affine_nd(affine, ndim)
    return a[:ndim, :ndim] @ vox + a[:ndim, ndim:]


def _to_vox(affine: np.ndarray, ndim: int, world: np.ndarray) -> np.ndarray:
    from fnoreg_core.geometry import affine_nd

    a = np.linalg.inv(affine_nd(affine, ndim))
    return a[:ndim, :ndim] @ world + a[:ndim, ndim:]


def map_points(state: Any, points: Sequence[Sequence[float]]) -> list[dict]:
    """Fixed-grid points mapped into the moving image through the state's registration result.

    Parameters
    ----------
    state : ViewerState
        Its ``result.ddf_mm`` ((ndim, *fixed_shape) float32, world RAS mm, fixed -> moving) is
        sampled linearly at each point (0 beyond half a voxel outside, ITK's rule); without a
        result the points map by world coordinates alone (identity transform).
    points : sequence of (ndim,) fixed voxel coordinates, array order

    Returns
    -------
    list of dict, one per point: ``fixed_vox``, ``fixed_mm`` (RAS), ``u_mm`` (displacement, RAS mm),
    ``moving_mm`` (RAS), ``moving_vox`` (the moving image's grid as the state holds it) and
    ``registered`` (a result was used).
    """
    from fnoreg_core.geometry import sample

    if state.fixed is None or not len(points):
        return []
    ndim = state.fixed.ndim
    p = np.asarray(points, dtype=np.float64).reshape(-1, ndim).T            # (ndim, N)
    fixed_mm = _world(state.fixed.affine, ndim, p)
    res = state.result
    if res is not None:
        u = np.stack([sample(np.asarray(res.ddf_mm[c], dtype=np.float64), p, 1) for c in range(ndim)])
        moving_aff = res.moving_affine
    else:
        u = np.zeros_like(fixed_mm)
        moving_aff = state.moving.affine if state.moving is not None else state.fixed.affine
    moving_mm = fixed_mm + u
    moving_vox = _to_vox(moving_aff, ndim, moving_mm)
    return [{"fixed_vox": tuple(p[:, i]), "fixed_mm": tuple(fixed_mm[:, i]), "u_mm": tuple(u[:, i]),
             "moving_mm": tuple(moving_mm[:, i]), "moving_vox": tuple(moving_vox[:, i]),
             "registered": res is not None} for i in range(p.shape[1])]


def _value_at_world(vol: Any, world: np.ndarray) -> float | None:
    """Nearest-voxel value of a volume at world points (ndim, 1), None outside it."""
    ndim = vol.ndim
    v = np.floor(_to_vox(vol.affine, ndim, world)[:, 0] + 0.5).astype(int)
    if np.any(v < 0) or np.any(v >= np.asarray(vol.shape)):
        return None
    return float(vol.data[tuple(v)])


def readout(state: Any, point: Sequence[int] | None = None) -> dict:
    """Everything known at one fixed voxel (default: the mouse's voxel, else the crosshair).

    Returns
    -------
    dict with ``voxel`` (array order), ``world_mm`` (RAS), ``fixed``, ``moving`` (the moving image at
    the same world point, before registration), ``moved``, ``fixed_label``, ``moved_label``
    (value, name or ""), ``u_mm`` (vector, RAS mm), ``u_norm_mm``, ``jacobian``, ``maps_to_mm``
    (where the transform sends the point, RAS mm); None for what is not available. Empty without images.
    """
    if state.fixed is None:
        return {}
    ndim = state.fixed.ndim
    if point is None:
        point = state.hover if state.hover is not None else tuple(state.slices[:ndim])
    v = tuple(int(np.clip(x, 0, n - 1)) for x, n in zip(point, state.fixed.shape))
    world = _world(state.fixed.affine, ndim, np.asarray(v, dtype=np.float64).reshape(ndim, 1))
    res = state.result
    out = {"voxel": v, "world_mm": tuple(float(w) for w in world[:, 0]),
           "fixed": float(state.fixed.data[v]),
           "moving": _value_at_world(state.moving, world) if state.moving is not None else None,
           "moved": float(res.moved[v]) if res is not None else None,
           "fixed_label": None, "moved_label": None, "u_mm": None, "u_norm_mm": None, "jacobian": None,
           "maps_to_mm": None}
    names = state.label_names
    if state.fixed_labels is not None:
        lab = int(state.fixed_labels.data[v])
        out["fixed_label"] = (lab, names.get(lab, ""))
    ml = state.moved_labels_or_moving()
    if ml is not None:
        lab = int(ml[v])
        out["moved_label"] = (lab, names.get(lab, ""))
    if res is not None:
        u = tuple(float(res.ddf_mm[c][v]) for c in range(ndim))
        out["u_mm"], out["u_norm_mm"] = u, float(np.sqrt(sum(c * c for c in u)))
        out["jacobian"] = float(res.jacobian[v])
        out["maps_to_mm"] = tuple(w + c for w, c in zip(out["world_mm"], u))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def readout_rows(state: Any, point: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """:func:`readout` as (name, text) rows for the Cursor Inspector and the status bar."""
    r = readout(state, point)
    if not r:
        return []
    vec = lambda t: "-" if t is None else "(" + ", ".join(f"{x:.1f}" for x in t) + ")"  # noqa: E731
    lab = lambda t: "-" if t is None else (f"{t[0]} {t[1]}".strip())  # noqa: E731
    where = "mouse" if point is None and state.hover is not None else "crosshair"
    return [("voxel", f"{', '.join(map(str, r['voxel']))}  ({where})"), ("world RAS mm", vec(r["world_mm"])),
            ("fixed", _fmt(r["fixed"])), ("moving (same point)", _fmt(r["moving"])), ("moved", _fmt(r["moved"])),
            ("fixed label", lab(r["fixed_label"])), ("moved label", lab(r["moved_label"])),
            ("|u| mm", _fmt(r["u_norm_mm"])), ("u RAS mm", vec(r["u_mm"])),
            ("J (Jacobian)", _fmt(r["jacobian"])), ("maps to RAS mm", vec(r["maps_to_mm"]))]
