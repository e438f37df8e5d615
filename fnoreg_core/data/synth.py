"""SynthMorph-style synthetic registration pairs at any 2D/3D size, no data needed (numpy/scipy only).

(Over 500 lines on purpose: label maps, deformations, contrasts and the pair source are the steps
of one generator, documented and tested together.)

In the spirit of SynthMorph (Hoffmann et al., IEEE TMI 2022): a random label map ``S`` (the argmax
of smooth noise channels inside a random head-shaped blob, or one of a list of real label maps used
as shape priors) is deformed twice by independent random diffeomorphisms, and an image is
synthesised from each deformed label map (random per-label intensities, noise, blur, bias field,
gamma)::

    moving_labels = S o phi_m      fixed_labels = S o phi_f      phi = exp(v), v smooth and random
    moving = synth(moving_labels)  fixed = synth(fixed_labels)

:class:`SynthPairs` is a :class:`~fnoreg_core.data.base.PairSource`: ``load(i)`` is a pure function
of ``(seed, i)`` (same pair in any order, process or DataLoader worker). :func:`SynthStream` wraps one
as an infinite PyTorch ``IterableDataset`` (torch imported only there).

The steps are public functions, usable on their own:

* :func:`smooth_noise` - Gaussian noise with a correlation length, on any grid.
* :func:`random_label_map` - argmax of smooth noise channels, optional background blob.
* :func:`random_velocity`, :func:`integrate_velocity` (scaling and squaring),
  :func:`random_deformation` (both, on a coarse grid, upsampled), :func:`resize_ddf_vox`,
  :func:`compose_ddf_vox`.
* :func:`warp` - ``out(p) = volume(p + u(p))``, nearest (labels) or ``map_coordinates`` (images).
* :func:`upsample_linear` - fast separable linear resize, corners aligned.
* :func:`random_contrast`, :func:`synthesize_image` - label map to image in [0, 1].

Units and conventions
---------------------
Displacements here are ``_vox`` fields of :mod:`fnoreg_core.fields`: ``(ndim, *spatial)``,
channel ``i`` along array axis ``i``, pull (``out(p) = in(p + u(p))``), in voxels of the grid
the field lives on. Convert with :func:`fnoreg_core.fields.ddf_vox_to_norm` for a network.
Grids of different sizes cover the same field of view with their corner voxel centres aligned
(``align_corners=True``, as :func:`fnoreg_core.data.base.resize_image`). Sizes of random structures
(``*_scale`` arguments of :class:`SynthPairs`) are fractions of the mean side length of the grid, so
a given seed gives statistically the same pairs at every resolution.

Performance (one core): smooth fields are drawn on a coarse lattice, smoothed at low resolution and
upsampled with a separable linear interpolation; velocities are integrated on a coarse grid and
the displacement upsampled; the shared label map is warped once per image (nearest, which also
resamples a prior of another size) and the images are synthesised from the warped labels (no image
interpolation). A pair at 80x96x112 costs about 0.25 s of one core, 160x192 about 15 ms and
160x192x224 about 1.5 s; ``benchmarks/data_pairs.py`` measures it. No BLAS calls, so DataLoader
workers do not oversubscribe the cores.

Reproducibility: sample ``i`` comes from ``numpy.random.default_rng([seed, i])`` alone, so it is the
same in every process and order, for a given numpy version (numpy does not promise identical
random streams across versions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from fnoreg_core.data.base import PairSource

__all__ = [
    "SynthPairs",
    "Contrast",
    "smooth_noise",
    "upsample_linear",
    "random_label_map",
    "random_velocity",
    "integrate_velocity",
    "compose_ddf_vox",
    "resize_ddf_vox",
    "random_deformation",
    "warp",
    "random_contrast",
    "synthesize_image",
]

_LATTICE_SUBDIV = 4  # smooth_noise: intermediate grid points per lattice cell (where it is smoothed)
_SLAB_MIN = 4096  # resize/warp the first spatial axis slice by slice when a slice has this many values


# ------------------------------------------------------------------------------------------------
# grids and smooth noise


def _check_shape(shape: Sequence[int], name: str = "shape") -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"expected {name} as a sequence of ints, got {shape!r}") from None
    if len(out) not in (2, 3) or min(out) < 2:
        raise ValueError(f"expected a 2D or 3D {name} with every size >= 2, got {out}")
    return out


def _axis_weights(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from m >= 2 to n points, corners aligned: ``x[i0] + w * (x[i0+1] - x[i0])``."""
    pos = np.arange(n, dtype=np.float64) * ((m - 1) / max(n - 1, 1))
    i0 = np.minimum(np.floor(pos).astype(np.intp), m - 2)
    return i0, (pos - i0).astype(np.float32)


def _resize_axis(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Linear resize of one axis by gathering (``take``), corners aligned."""
    m = a.shape[axis]
    if m == n:
        return a
    if m == 1:
        return np.repeat(a, n, axis=axis)
    i0, w = _axis_weights(m, n)
    bshape = [1] * a.ndim
    bshape[axis] = n
    out = np.diff(a, axis=axis).take(i0, axis)
    out *= w.reshape(bshape)
    out += a.take(i0, axis)
    return out


def _first_axis_slices(a: np.ndarray, axis: int, n: int, buffer: np.ndarray | None = None):
    """Yield ``(i, slice i)`` of the linear resize of ``a`` along ``axis`` to n points, one at a time.

    Each slice is computed into ``buffer`` (shape of ``a`` without ``axis``; reused, so consume it
    before the next step). Streaming one slice at a time keeps the work in cache.
    """
    m = a.shape[axis]
    lead = (slice(None),) * axis
    if buffer is None:
        buffer = np.empty(a.shape[:axis] + a.shape[axis + 1:], np.float32)
    if m == 1:
        for i in range(n):
            buffer[...] = a[lead + (0,)]
            yield i, buffer
        return
    i0, w = _axis_weights(m, n)
    diff = np.diff(a, axis=axis)
    for i in range(n):
        np.multiply(diff[lead + (i0[i],)], w[i], out=buffer)
        buffer += a[lead + (i0[i],)]
        yield i, buffer


def upsample_linear(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Separable (bi/tri)linear resize of the LAST ``len(shape)`` axes to ``shape``, corners aligned.

    Same result as ``scipy.ndimage.zoom(order=1, grid_mode=False)`` (and
    :func:`~fnoreg_core.data.base.resize_image`) to float32 rounding, 10-50x faster: the inner axes
    are resized first by gathering, the first spatial axis last, slice by slice. Leading axes
    (channels) are kept. Returns float32.
    """
    out = np.asarray(array, dtype=np.float32)
    shape = tuple(int(n) for n in shape)
    lead = out.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"cannot resize a {out.ndim}-D array to a {len(shape)}-D shape {shape}")
    for ax in reversed(range(1, len(shape))):
        out = _resize_axis(out, lead + ax, shape[ax])
    m, n = out.shape[lead], shape[0]
    if m == n:
        return np.ascontiguousarray(out)
    slice_size = out.size // m
    if slice_size < _SLAB_MIN:
        return _resize_axis(out, lead, n)
    res = np.empty(out.shape[:lead] + shape, np.float32)
    index = (slice(None),) * lead
    for i, values in _first_axis_slices(out, lead, n):
        res[index + (i,)] = values
    return res


def _lattice_shape(shape: Sequence[int], spacing: float) -> tuple[int, ...]:
    return tuple(max(2, int(math.ceil((n - 1) / max(spacing, 1e-6))) + 1) for n in shape)


def _smooth_noise_mid(shape: tuple[int, ...], rng: np.random.Generator, spacing: float,
                      channels: int) -> np.ndarray:
    """:func:`smooth_noise` before its last upsampling: (channels, *mid) with mid <= shape."""
    lattice = _lattice_shape(shape, spacing)
    noise = rng.standard_normal((channels, *lattice), dtype=np.float32)
    mid = tuple(min(n, (m - 1) * _LATTICE_SUBDIV + 1) for n, m in zip(shape, lattice))
    field = upsample_linear(noise, mid)
    sigma = [0.0] + [0.5 * (k - 1) / (m - 1) for k, m in zip(mid, lattice)]
    field = ndimage.gaussian_filter(field, sigma, mode="reflect", truncate=3.0)
    rms = np.sqrt(np.mean(np.square(field, dtype=np.float64), axis=tuple(range(1, field.ndim)), keepdims=True))
    field /= np.maximum(rms, 1e-12).astype(np.float32)
    return field


def smooth_noise(shape: Sequence[int], rng: np.random.Generator, spacing: float, channels: int = 1) -> np.ndarray:
    """Smooth Gaussian noise with a correlation length of about ``spacing`` voxels.

    White noise on a lattice with ``spacing`` voxels between points, upsampled linearly to a grid
    with 4 points per lattice cell, smoothed there by a Gaussian of half a lattice cell (removes
    the kinks of linear interpolation), scaled to unit RMS per channel, and upsampled linearly to
    ``shape``. Cost: a few passes over ``channels * prod(shape)``.

    Parameters
    ----------
    shape : 2 or 3 ints
        Output grid (array order).
    rng : numpy Generator
    spacing : float
        Lattice spacing in voxels of ``shape`` (> 0). Larger = smoother.
    channels : int
        Independent noise fields.

    Returns
    -------
    (channels, *shape) float32
        About zero mean, unit RMS per channel.
    """
    shape = tuple(int(n) for n in shape)
    return upsample_linear(_smooth_noise_mid(shape, rng, spacing, channels), shape)


# ------------------------------------------------------------------------------------------------
# label maps


def random_label_map(shape: Sequence[int], rng: np.random.Generator, n_labels: int = 16,
                     spacing: float | None = None, background: bool = True) -> np.ndarray:
    """A random label map: the argmax of ``n_labels`` smooth noise channels (SynthMorph).

    Parameters
    ----------
    shape : 2 or 3 ints
    rng : numpy Generator
    n_labels : int >= 1
        Number of foreground labels, valued 1..n_labels.
    spacing : float, optional
        Correlation length of the noise in voxels (about the size of one structure). Default:
        1/8 of the mean side length.
    background : bool
        True: label 0 outside a random head-shaped blob (an ellipse/ellipsoid with a randomly
        perturbed radius, 75-95 % of the field of view), like a skull-stripped scan. False: the
        labels fill the whole grid.

    Returns
    -------
    (*shape) int16
        Values in {0, ..., n_labels} (0 only with ``background``); not every label is
        guaranteed to occur.
    """
    shape = _check_shape(shape)
    if n_labels < 1 or n_labels > np.iinfo(np.int16).max:
        raise ValueError(f"expected 1 <= n_labels <= 32767, got {n_labels}")
    if spacing is None:
        spacing = float(np.mean(shape)) / 8.0
    # Smooth all channels at an intermediate resolution (cheap), resize the inner axes, then finish
    # the resize and the argmax one slice of the first axis at a time (stays in cache).
    coarse = _smooth_noise_mid(shape, rng, spacing, channels=n_labels + 1)
    r2 = None
    if background:  # an ellipse/ellipsoid with random centre and radii; the last channel perturbs it
        r2 = []
        for axis, n in enumerate(shape):
            centre, radius = rng.uniform(-0.05, 0.05), rng.uniform(0.75, 0.95)
            x = (np.linspace(-1.0, 1.0, n, dtype=np.float32) - np.float32(centre)) / np.float32(radius)
            r2.append(np.square(x).reshape([n if j == axis else 1 for j in range(len(shape))]))
    labels = np.empty(shape, np.int16)
    if int(np.prod(shape[1:])) < _SLAB_MIN:
        _argmax_labels(upsample_linear(coarse, shape), labels, None if r2 is None else sum(r2))
        return labels
    inner = coarse
    for ax in reversed(range(1, len(shape))):
        inner = _resize_axis(inner, 1 + ax, shape[ax])
    rest = None if r2 is None else sum(r2[1:])[0]
    for i, values in _first_axis_slices(inner, 1, shape[0]):
        _argmax_labels(values, labels[i], None if r2 is None else rest + r2[0].ravel()[i])
    return labels


def _argmax_labels(values: np.ndarray, out: np.ndarray, r2: np.ndarray | None) -> None:
    """``out = 1 + argmax(values[:-1])``, and 0 where ``r2 > (1 + 0.15 * values[-1])**2`` (if r2 given)."""
    n_labels = values.shape[0] - 1
    best = values[0].copy()
    out[...] = 1
    for k in range(1, n_labels):
        better = values[k] > best
        np.maximum(best, values[k], out=best)
        out[better] = k + 1
    if r2 is not None:
        wobble = values[n_labels] * np.float32(0.15)
        wobble += np.float32(1.0)
        out[r2 > np.square(wobble)] = 0


# ------------------------------------------------------------------------------------------------
# deformations


def random_velocity(shape: Sequence[int], rng: np.random.Generator, std: float, spacing: float) -> np.ndarray:
    """A smooth random stationary velocity field (SVF) on grid ``shape``.

    Parameters
    ----------
    shape : 2 or 3 ints
    rng : numpy Generator
    std : float
        RMS of each velocity component, in voxels of ``shape``.
    spacing : float
        Correlation length in voxels of ``shape`` (see :func:`smooth_noise`).

    Returns
    -------
    (ndim, *shape) float32
        Velocity in voxels of ``shape``, channel i along array axis i.
    """
    shape = _check_shape(shape)
    return smooth_noise(shape, rng, spacing, channels=len(shape)) * np.float32(std)


def _interp_linear(field: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``field`` (C, *G) sampled linearly at ``coords`` (ndim, *P) voxel positions, edges extended."""
    return np.stack([ndimage.map_coordinates(f, coords, order=1, mode="nearest", prefilter=False) for f in field])


def _compose_affine(ddf: np.ndarray, affine: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Displacement of ``phi o A`` for ``phi = id + ddf``: ``u'(p) = A(p) - p + ddf(A(p))`` (voxels),
    ``A(p) = c + M (p - c) + t`` with ``c`` the grid centre."""
    matrix, shift = affine
    shape = ddf.shape[1:]
    centre = (np.array(shape, float) - 1.0) / 2.0
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    flat = grid.reshape(len(shape), -1) - centre[:, None].astype(np.float32)
    mapped = (matrix.astype(np.float32) @ flat + (centre + shift)[:, None].astype(np.float32)).reshape(grid.shape)
    return (mapped - grid + _interp_linear(ddf, mapped)).astype(np.float32, copy=False)


def _identity_plus(ddf: np.ndarray) -> np.ndarray:
    """Sampling positions ``p + ddf(p)`` in voxels (a new array)."""
    pos = np.array(ddf, dtype=np.float64 if ddf.dtype == np.float64 else np.float32, copy=True)
    ndim = pos.shape[0]
    for axis, n in enumerate(pos.shape[1:]):
        bshape = [1] * ndim
        bshape[axis] = n
        pos[axis] += np.arange(n, dtype=pos.dtype).reshape(bshape)
    return pos


def compose_ddf_vox(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Displacement of ``x -> y = x + inner(x) -> y + outer(y)`` (apply ``inner`` first).

    Both ``(ndim, *G)`` in voxels of the same grid G; ``outer`` is sampled linearly (edges
    extended). In pull terms: warping by the result = warping by ``outer``, then by ``inner``.
    """
    return (inner + _interp_linear(outer, _identity_plus(inner))).astype(inner.dtype, copy=False)


def integrate_velocity(vel_vox: np.ndarray, steps: int | None = None) -> np.ndarray:
    """Displacement of ``exp(v)``, the time-1 flow of a stationary velocity field, by scaling and squaring.

    ``u_0 = v / 2**steps``; ``steps`` times ``u <- u + u o (id + u)`` (linear interpolation, edges
    extended). For a smooth ``v`` the result is diffeomorphic (Jacobian determinant > 0).

    Parameters
    ----------
    vel_vox : (ndim, *G) float array
        Velocity in voxels of its grid G, channel i along array axis i.
    steps : int, optional
        Squarings. Default: enough that ``max |v| / 2**steps <= 0.25`` voxel, at least 4.

    Returns
    -------
    (ndim, *G) float32
        Displacement in voxels of G (pull convention: ``p -> p + u(p)``).
    """
    v = np.asarray(vel_vox, dtype=np.float64)
    if v.ndim not in (3, 4) or v.shape[0] != v.ndim - 1:
        raise ValueError(f"expected a velocity of shape (ndim, *spatial) with ndim 2 or 3, got {v.shape}")
    if steps is None:
        vmax = float(np.max(np.abs(v))) if v.size else 0.0
        steps = max(4, int(math.ceil(math.log2(max(vmax, 1e-12) / 0.25))))
    u = v / float(2 ** steps)
    for _ in range(int(steps)):
        u = compose_ddf_vox(u, u)
    return u.astype(np.float32)


def resize_ddf_vox(ddf_vox: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A displacement field resampled linearly to grid ``shape`` (same field of view, corners aligned).

    Channel i is rescaled by ``(shape[i] - 1) / (G_i - 1)`` so it stays in voxels of the new grid.
    Returns float32 ``(ndim, *shape)``.
    """
    u = np.asarray(ddf_vox, dtype=np.float32)
    shape = _check_shape(shape)
    if u.shape[0] != len(shape) or u.ndim != len(shape) + 1:
        raise ValueError(f"expected a field of shape ({len(shape)}, *spatial), got {u.shape}")
    out = upsample_linear(u, shape)
    for axis, (n, m) in enumerate(zip(shape, u.shape[1:])):
        if n != m:
            out[axis] *= np.float32((n - 1) / (m - 1))
    return out


def _integration_shape(shape: tuple[int, ...], spacing: float, subdiv: float) -> tuple[int, ...]:
    step = max(spacing / subdiv, 1.0)
    return tuple(min(n, max(3, int(math.ceil((n - 1) / step)) + 1)) for n in shape)


def random_deformation(shape: Sequence[int], rng: np.random.Generator, std: float, spacing: float,
                       subdiv: float = 2.0, return_velocity: bool = False):
    """A random smooth diffeomorphic displacement field on ``shape``: ``exp(v)`` of a random SVF.

    The velocity (:func:`random_velocity`) is drawn and integrated (:func:`integrate_velocity`) on
    a coarse grid with ``subdiv`` points per ``spacing`` (voxels of the coarse grid internally),
    and the displacement is upsampled linearly to ``shape`` (:func:`resize_ddf_vox`).

    Parameters
    ----------
    shape : 2 or 3 ints
    rng : numpy Generator
    std : float
        RMS of each velocity component, in voxels of ``shape``. Displacements reach 3-5x this.
    spacing : float
        Correlation length of the velocity in voxels of ``shape``.
    subdiv : float
        Coarse grid points per ``spacing`` (>= 1).
    return_velocity : bool
        Also return the coarse velocity (in voxels of its own grid), e.g. to integrate ``-v`` for
        the inverse.

    Returns
    -------
    (ndim, *shape) float32
        Displacement in voxels of ``shape``; with ``return_velocity``, ``(ddf_vox, vel_coarse_vox)``.
    """
    shape = _check_shape(shape)
    coarse = _integration_shape(shape, spacing, subdiv)
    scale = [(m - 1) / (n - 1) for n, m in zip(shape, coarse)]
    vel = random_velocity(coarse, rng, 1.0, spacing * float(np.mean(scale)))
    for axis, s in enumerate(scale):
        vel[axis] *= np.float32(std * s)
    ddf = resize_ddf_vox(integrate_velocity(vel), shape)
    return (ddf, vel) if return_velocity else ddf


def warp(volume: np.ndarray, ddf_vox: np.ndarray, order: int = 1) -> np.ndarray:
    """Pull-warp ``volume``: ``out(p) = volume(p + u(p))``.

    ``order=0`` is a fast nearest-neighbour gather (rounding half up, as
    ``scipy.ndimage.map_coordinates(order=0)``); other orders call ``map_coordinates``.

    Parameters
    ----------
    volume : (*S_in) array
        Image (``order=1``) or label map (``order=0``). ``S_in`` may differ from the field's grid:
        the volume is taken to cover the same field of view, corners aligned (a resize and a warp
        in one interpolation).
    ddf_vox : (ndim, *S_out) float array
        Displacement in voxels of the OUTPUT grid ``S_out``, channel i along array axis i.
    order : int
        0 nearest (labels; keeps the dtype), 1 linear (images; float32 out), up to 5 (spline).

    Returns
    -------
    (*S_out) array
        Positions outside the volume take the nearest edge value.
    """
    vol = np.asarray(volume)
    u = np.asarray(ddf_vox)
    if u.ndim != vol.ndim + 1 or u.shape[0] != vol.ndim:
        raise ValueError(f"expected ddf_vox of shape ({vol.ndim}, *spatial) for a {vol.ndim}-D volume, got {u.shape}")
    if order == 0:
        return _warp_nearest(vol, u.astype(np.float32, copy=False))
    pos = _identity_plus(u.astype(np.float32, copy=False))
    for axis, (m, n) in enumerate(zip(vol.shape, u.shape[1:])):
        if m != n:
            pos[axis] *= np.float32((m - 1) / max(n - 1, 1))
    src = vol.astype(np.float32, copy=False)
    return ndimage.map_coordinates(src, pos, order=order, mode="nearest", output=np.float32)


def _warp_nearest(vol: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`warp` with ``order=0``: a gather of rounded positions, a block of the first axis at a time
    (4x faster than ``map_coordinates``; positions are clipped to the volume, i.e. edges extended)."""
    ndim, out_shape = u.shape[0], u.shape[1:]
    out = np.empty(out_shape, vol.dtype)
    flat_vol = vol.reshape(-1)
    scale = [np.float32((m - 1) / max(n - 1, 1)) for m, n in zip(vol.shape, out_shape)]
    grids = [np.arange(n, dtype=np.float32).reshape([n if j == axis else 1 for j in range(ndim)])
             for axis, n in enumerate(out_shape)]
    rows = max(1, 4 * _SLAB_MIN // max(1, int(np.prod(out_shape[1:]))))
    for start in range(0, out_shape[0], rows):
        block = slice(start, min(start + rows, out_shape[0]))
        flat = None
        for axis in range(ndim):
            pos = u[axis, block] + (grids[axis][block] if axis == 0 else grids[axis])
            if scale[axis] != 1:
                pos *= scale[axis]
            pos += np.float32(0.5)  # round half up, as map_coordinates(order=0)
            np.floor(pos, out=pos)
            np.clip(pos, 0, vol.shape[axis] - 1, out=pos)
            index = pos.astype(np.intp)
            if flat is None:
                flat = index
            else:
                flat *= vol.shape[axis]
                flat += index
        out[block] = flat_vol.take(flat)
    return out


# ------------------------------------------------------------------------------------------------
# intensities


@dataclass(frozen=True)
class Contrast:
    """Intensity model of one image (see :func:`synthesize_image`).

    means, stds : (C,) float32, per label class; class 0 is background (mean and std 0)
    blur_sigma : Gaussian blur in voxels (0: none)
    bias_std : log-space RMS of the multiplicative bias field (0: none)
    gamma : exponent applied after normalisation to [0, 1]
    """

    means: np.ndarray
    stds: np.ndarray
    blur_sigma: float
    bias_std: float
    gamma: float


def random_contrast(n_classes: int, rng: np.random.Generator, max_noise: float = 0.05,
                    max_blur: float = 1.0, max_bias: float = 0.1, gamma_std: float = 0.15,
                    background: bool = True) -> Contrast:
    """Draw a :class:`Contrast` for label classes ``0..n_classes-1``.

    Means ~ U(0.1, 1), noise stds ~ U(0, max_noise) per class (class 0 black and noise-free when
    ``background``); blur sigma ~ U(0, max_blur) voxels; bias RMS ~ U(0, max_bias) (log space);
    gamma = exp(N(0, gamma_std)).
    """
    means = rng.uniform(0.1, 1.0, n_classes).astype(np.float32)
    stds = rng.uniform(0.0, max_noise, n_classes).astype(np.float32)
    if background:
        means[0] = stds[0] = 0.0
    return Contrast(means=means, stds=stds, blur_sigma=float(rng.uniform(0.0, max_blur)),
                    bias_std=float(rng.uniform(0.0, max_bias)), gamma=float(np.exp(rng.normal(0.0, gamma_std))))


def synthesize_image(labels: np.ndarray, rng: np.random.Generator, contrast: Contrast | None = None,
                     bias_spacing: float | None = None) -> np.ndarray:
    """An image of a label map: per-class Gaussian intensities, blur, bias field, [0, 1], gamma.

    Parameters
    ----------
    labels : (*S) int array
        Class indices ``0..C-1`` into the contrast tables (0 = background when the contrast says
        so). Remap arbitrary label values first, e.g. ``np.unique(labels, return_inverse=True)``.
    rng : numpy Generator
        Draws the noise and bias field (and the contrast when not given).
    contrast : Contrast, optional
        Default: :func:`random_contrast` with ``labels.max() + 1`` classes.
    bias_spacing : float, optional
        Correlation length of the bias field in voxels (default: 1/3 of the mean side length).

    Returns
    -------
    (*S) float32 in [0, 1]
        ``(clip(means[l] + stds[l] * n, 0) * blur * exp(bias) / max) ** gamma``.
    """
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"expected an integer label map, got dtype {lab.dtype}")
    if contrast is None:
        contrast = random_contrast(int(lab.max()) + 1, rng)
    if lab.size and (lab.min() < 0 or lab.max() >= len(contrast.means)):
        raise ValueError(f"labels must be class indices in [0, {len(contrast.means)}), got "
                         f"[{lab.min()}, {lab.max()}]")
    image = contrast.means[lab]
    if np.any(contrast.stds > 0):
        noise = rng.standard_normal(lab.shape, dtype=np.float32)
        noise *= contrast.stds[lab]
        image += noise
        np.maximum(image, 0.0, out=image)
    if contrast.blur_sigma > 0.05:
        image = ndimage.gaussian_filter(image, contrast.blur_sigma, mode="nearest", truncate=3.0)
    if contrast.bias_std > 0:
        spacing = bias_spacing if bias_spacing is not None else float(np.mean(lab.shape)) / 3.0
        bias = smooth_noise(lab.shape, rng, spacing)[0]
        bias *= np.float32(contrast.bias_std)
        image *= np.exp(bias)
    peak = float(image.max()) if image.size else 0.0
    if peak > 0:
        image *= np.float32(1.0 / peak)
    if contrast.gamma != 1.0:
        np.power(image, np.float32(contrast.gamma), out=image)
    np.clip(image, 0.0, 1.0, out=image)
    return image.astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------------
# the pair source


class SynthPairs(PairSource):
    """SynthMorph-style synthetic pairs on any 2D/3D grid (see the module docstring).

    Parameters
    ----------
    shape : 2 or 3 ints
        Spatial size of every sample (array order), each >= 2.
    n_pairs : int
        Length of the sequence (``load`` accepts any index >= 0; see :func:`SynthStream`).
    seed : int >= 0
        Sample ``i`` is a pure function of ``(seed, i)`` and the settings below.
    n_labels : int
        Foreground labels of the random label maps (values 1..n_labels, 0 = background).
        Ignored with ``label_maps``.
    label_maps : list of int arrays, optional
        Real label maps used as shape priors (SynthMorph): each pair picks one at random and
        deforms it twice, resampled to ``shape`` (nearest) in the same interpolation. Each map
        must be ``len(shape)``-D, any size (covering the field of view of ``shape``, corners
        aligned), with values in int16 range; 0 = background. Arrays only (no file reading).
    label_names : dict, optional
        ``{label: name}``; default ``{k: "synth_k"}`` for random maps, ``{}`` with ``label_maps``.
    contrast : "same" | "random"
        "same" (default; FNOReg trains with MSE): moving and fixed share one intensity model
        (means, stds, blur, bias strength, gamma) and differ only by their noise and bias-field
        draws. "random": independent models (contrast-invariant training, as SynthMorph).
    background : bool
        Random label maps: label 0 outside a head-shaped blob. Label 0 is always rendered black.
    deform_std : float
        Maximum RMS of the velocity components as a fraction of the mean side length; each warp
        draws its RMS from U(0, deform_std). Default 0.025: RMS up to 2.4 voxels and displacements up
        to about 10 voxels at 80x96x112 (0.2 in normalised units).
    deform_scale : float
        Correlation length of the velocity, fraction of the mean side length (default 1/8).
    label_scale : float
        Size of the random structures, fraction of the mean side length (default 1/8).
    max_noise, max_blur, max_bias, gamma_std : float
        Intensity model (:func:`random_contrast`): noise std in [0, 1] image units, blur sigma in
        voxels, log bias-field RMS, log-gamma std.

    max_rotation_deg, max_scaling, max_shift : float
        Random relative affine between moving and fixed (default 0: none), composed into the fixed
        deformation about the grid centre: rotation angles U(-r, r) degrees about each axis (one in
        2D), per-axis scale factors 1 + U(-s, s), translation U(-t, t) times each side length.
    images : list of float arrays, optional
        Real intensity images in [0, 1], one per ``label_maps`` entry (same shape): with probability
        ``real_fraction`` a pair deforms the chosen prior's image (linear) instead of synthesising
        intensities from its labels, then applies a random gamma (``gamma_std``) and noise
        (U(0, ``max_noise``)).
    real_fraction : float in [0, 1]
        See ``images``. Default 0.

    Samples have the layout of :mod:`fnoreg_core.data.base`. ``load(i, return_ddf=True)`` (3-5x
    slower) adds three ``(ndim, *shape)`` float32 displacements in voxels of ``shape``:
    ``"ddf_vox"``, the true fixed->moving pull field (``moving(p + u(p)) ~ fixed(p)`` up to noise
    and intensity; convert with :func:`fnoreg_core.fields.ddf_vox_to_norm` for a network), and
    ``"moving_deform_vox"`` / ``"fixed_deform_vox"``, the random deformations applied to the shared
    label map ``S`` (``moving_labels(p) = S(p + u(p))``).
    """

    has_labels = True

    def __init__(self, shape: Sequence[int], n_pairs: int = 1000, seed: int = 0, n_labels: int = 16,
                 label_maps: Sequence[np.ndarray] | None = None, label_names: dict[int, str] | None = None,
                 contrast: str = "same", background: bool = True, deform_std: float = 0.025,
                 deform_scale: float = 0.125, label_scale: float = 0.125, max_noise: float = 0.05,
                 max_blur: float = 1.0, max_bias: float = 0.1, gamma_std: float = 0.15,
                 max_rotation_deg: float = 0.0, max_scaling: float = 0.0, max_shift: float = 0.0,
                 images: Sequence[np.ndarray] | None = None, real_fraction: float = 0.0) -> None:
        self.shape = _check_shape(shape)
        self.dims = len(self.shape)
        if int(n_pairs) < 1:
            raise ValueError(f"expected n_pairs >= 1, got {n_pairs}")
        if int(seed) < 0:
            raise ValueError(f"expected a seed >= 0, got {seed}")
        if contrast not in ("same", "random"):
            raise ValueError(f"expected contrast 'same' or 'random', got {contrast!r}")
        for name, value in (("deform_std", deform_std), ("max_noise", max_noise), ("max_blur", max_blur),
                            ("max_bias", max_bias), ("gamma_std", gamma_std)):
            if not value >= 0:
                raise ValueError(f"expected {name} >= 0, got {value}")
        for name, value in (("deform_scale", deform_scale), ("label_scale", label_scale)):
            if not value > 0:
                raise ValueError(f"expected {name} > 0, got {value}")
        self.n_pairs, self.seed, self.contrast = int(n_pairs), int(seed), contrast
        self.background, self.deform_std = bool(background), float(deform_std)
        self.deform_scale, self.label_scale = float(deform_scale), float(label_scale)
        self.max_noise, self.max_blur, self.max_bias, self.gamma_std = (float(max_noise), float(max_blur),
                                                                        float(max_bias), float(gamma_std))
        for name, value in (("max_rotation_deg", max_rotation_deg), ("max_scaling", max_scaling),
                            ("max_shift", max_shift)):
            if not value >= 0:
                raise ValueError(f"expected {name} >= 0, got {value}")
        if not 0.0 <= real_fraction <= 1.0:
            raise ValueError(f"expected 0 <= real_fraction <= 1, got {real_fraction}")
        if max_scaling >= 1:
            raise ValueError(f"expected max_scaling < 1, got {max_scaling}")
        self.max_rotation_deg, self.max_scaling, self.max_shift = (float(max_rotation_deg), float(max_scaling),
                                                                   float(max_shift))
        self.real_fraction = float(real_fraction)
        self._images: list[np.ndarray] = []
        if images is not None:
            if label_maps is None or len(images) != len(label_maps):
                raise ValueError("images need label_maps of the same count (one image per label map)")
            for k, (img, lm) in enumerate(zip(images, label_maps)):
                img = np.asarray(img, dtype=np.float32)
                if img.shape != np.shape(lm):
                    raise ValueError(f"images[{k}] has shape {img.shape}, label_maps[{k}] {np.shape(lm)}; expected equal")
                if not np.all(np.isfinite(img)):
                    raise ValueError(f"images[{k}] holds NaN or infinite values")
                self._images.append(img)
        if self.real_fraction > 0 and not self._images:
            raise ValueError("real_fraction > 0 needs images")
        self._size = float(np.mean(self.shape))
        self._priors: list[tuple[np.ndarray, np.ndarray]] = []  # (class-index map, label values)
        if label_maps is not None:
            if len(label_maps) == 0:
                raise ValueError("expected at least one label map in label_maps, got an empty list")
            for k, lm in enumerate(label_maps):
                self._priors.append(self._prepare_prior(lm, k))
            self.n_labels = max(len(values) - 1 for _, values in self._priors)
            self.label_names = dict(label_names or {})
        else:
            if not 1 <= int(n_labels) <= 254:
                raise ValueError(f"expected 1 <= n_labels <= 254, got {n_labels}")
            self.n_labels = int(n_labels)
            self.label_names = dict(label_names) if label_names is not None else {
                k: f"synth_{k}" for k in range(1, self.n_labels + 1)}

    def _prepare_prior(self, label_map: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(label_map)
        if arr.ndim != self.dims or min(arr.shape) < 2:
            raise ValueError(f"label_maps[{k}] has shape {arr.shape}; expected a {self.dims}-D map (as shape "
                             f"{self.shape}) with every size >= 2")
        if not np.issubdtype(arr.dtype, np.integer):
            floating = np.issubdtype(arr.dtype, np.floating)
            if not (floating and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
                raise TypeError(f"label_maps[{k}] must hold integer labels, got dtype {arr.dtype}")
        values, index = np.unique(arr, return_inverse=True)
        info = np.iinfo(np.int16)
        if values.min() < info.min or values.max() > info.max:
            raise ValueError(f"label_maps[{k}] has labels outside the int16 range: [{values.min()}, {values.max()}]")
        values = values.astype(np.int16)
        if values[0] != 0:  # class 0 is always background (black): reserve it even when absent
            values = np.concatenate([np.zeros(1, np.int16), values])
            index = index + 1
        dtype = np.uint8 if len(values) <= 256 else np.int16
        return index.reshape(arr.shape).astype(dtype), values

    def __len__(self) -> int:
        return self.n_pairs

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``: seeded by ``(seed, index)`` only."""
        return np.random.default_rng([self.seed, int(index)])

    def load(self, index: int, return_ddf: bool = False) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            raise IndexError(f"expected a pair index >= 0, got {index}")
        rng = self.rng(index)
        shape, size = self.shape, self._size
        # 1. the shared label map (class indices) and its label values
        prior = -1
        if self._priors:
            prior = int(rng.integers(len(self._priors)))
            classes, values = self._priors[prior]
        else:
            classes = random_label_map(shape, rng, self.n_labels, spacing=self.label_scale * size,
                                       background=self.background)
            values = np.arange(self.n_labels + 1, dtype=np.int16)
        # 2. two independent diffeomorphisms
        spacing = self.deform_scale * size
        ddfs, vels = [], []
        for _ in range(2):
            std = rng.uniform(0.0, self.deform_std) * size
            ddf, vel = random_deformation(shape, rng, std, spacing, return_velocity=True)
            ddfs.append(ddf)
            vels.append(vel)
        if self.max_rotation_deg or self.max_scaling or self.max_shift:  # relative affine, on the fixed side
            ddfs[1] = _compose_affine(ddfs[1], self._random_affine(rng))
        real = bool(self._images) and self.real_fraction > 0 and rng.uniform() < self.real_fraction
        # 3. deformed label maps, 4. images
        contrast = random_contrast(len(values), rng, self.max_noise, self.max_blur, self.max_bias, self.gamma_std)
        sample: dict[str, Any] = {"name": f"synth-s{self.seed}-{index:06d}"}
        for key, ddf in zip(("moving", "fixed"), ddfs):
            warped = warp(classes, ddf, order=0)
            if self.contrast == "random" and key == "fixed":
                contrast = random_contrast(len(values), rng, self.max_noise, self.max_blur, self.max_bias,
                                           self.gamma_std)
            if real:
                sample[key] = self._augment_real(warp(self._images[prior], ddf, order=1), rng)[None]
            else:
                sample[key] = synthesize_image(warped, rng, contrast)[None]
            sample[f"{key}_labels"] = values[warped][None]
        if return_ddf:
            sample["moving_deform_vox"], sample["fixed_deform_vox"] = ddfs
            sample["ddf_vox"] = self._true_ddf(ddfs[0], ddfs[1], vels[0])
        return sample

    def _random_affine(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(M, t)`` in voxels: ``A(p) = c + M (p - c) + t`` about the grid centre ``c``."""
        nd = self.dims
        rot = np.eye(nd)
        angles = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg, 1 if nd == 2 else 3))
        planes = [(0, 1)] if nd == 2 else [(1, 2), (0, 2), (0, 1)]
        for angle, (i, j) in zip(angles, planes):
            r = np.eye(nd)
            r[i, i] = r[j, j] = np.cos(angle)
            r[i, j], r[j, i] = -np.sin(angle), np.sin(angle)
            rot = r @ rot
        scale = 1.0 + rng.uniform(-self.max_scaling, self.max_scaling, nd)
        shift = rng.uniform(-self.max_shift, self.max_shift, nd) * np.array(self.shape, float)
        return rot @ np.diag(scale), shift

    def _augment_real(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A warped real image in [0, 1]: random gamma and Gaussian noise."""
        image = np.clip(image, 0.0, 1.0)
        gamma = float(np.exp(rng.normal(0.0, self.gamma_std)))
        np.power(image, np.float32(gamma), out=image)
        noise_std = rng.uniform(0.0, self.max_noise)
        if noise_std > 0:
            image += rng.normal(0.0, noise_std, image.shape).astype(np.float32)
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)

    def _true_ddf(self, ddf_moving: np.ndarray, ddf_fixed: np.ndarray, vel_moving: np.ndarray,
                  refine: int = 2) -> np.ndarray:
        """Fixed->moving pull displacement ``phi_m^-1 o phi_f - id`` in voxels of ``shape``.

        moving = S o phi_m and fixed = S o phi_f, so moving(p + u(p)) = fixed(p) for
        p + u(p) = phi_m^-1(phi_f(p)). Start: ``phi_m^-1 ~ exp(-v_m)`` from the coarse grid; then
        ``refine`` fixed-point steps ``u <- u_f - u_m o (id + u)`` at full resolution (each divides
        the error by about ``1 / |grad u_m|``; mean error ~0.01 voxel after 2 at 80x96x112).
        """
        inv = integrate_velocity(-vel_moving)
        scale = np.array([(m - 1) / (n - 1) for n, m in zip(self.shape, inv.shape[1:])], np.float32)
        scale = scale.reshape((-1,) + (1,) * self.dims)
        u = ddf_fixed + _interp_linear(inv, _identity_plus(ddf_fixed) * scale) / scale
        for _ in range(refine):
            u = ddf_fixed - _interp_linear(ddf_moving, _identity_plus(u))
        return u.astype(np.float32, copy=False)

    def describe(self) -> str:
        size = "x".join(str(n) for n in self.shape)
        prior = f"{len(self._priors)} label-map priors" if self._priors else f"{self.n_labels} random labels"
        extra = ""
        if self.max_rotation_deg or self.max_scaling or self.max_shift:
            extra += (f", affine (rotation {self.max_rotation_deg:g} deg, scaling {self.max_scaling:g}, "
                      f"shift {self.max_shift:g})")
        if self.real_fraction:
            extra += f", {self.real_fraction:.0%} of pairs from the priors' real images"
        return (f"SynthPairs: {len(self)} pairs, {self.dims}D {size}, {prior}, contrast {self.contrast}{extra}, "
                f"seed {self.seed}")


# ------------------------------------------------------------------------------------------------
# PyTorch IterableDataset (torch imported lazily)

_STREAM_CLASS = None


def _stream_class():
    global _STREAM_CLASS
    if _STREAM_CLASS is not None:
        return _STREAM_CLASS
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    class SynthStream(IterableDataset):
        """Infinite PyTorch ``IterableDataset`` of a :class:`SynthPairs`: indices ``start, start+1, ...``.

        Indices are dealt to ``DataLoader`` workers in blocks of ``block`` consecutive indices (worker
        ``w`` of ``W`` takes blocks ``w, w + W, ...``). Set ``block`` to the loader's ``batch_size``:
        the loader then returns batch ``k`` = indices ``start + k*block ... start + (k+1)*block - 1``,
        the same sequence for any number of workers (each pair depends only on ``(seed, index)``).
        Samples are tensors as :class:`~fnoreg_core.data.torch_dataset.TorchPairs` gives them
        (images float32, labels int64, ``name`` str) plus ``index`` (int). ``stop`` (exclusive) makes
        the stream finite.
        """

        def __init__(self, source: SynthPairs, start: int = 0, stop: int | None = None, block: int = 1) -> None:
            super().__init__()
            if start < 0 or (stop is not None and stop < start):
                raise ValueError(f"expected 0 <= start <= stop, got start={start}, stop={stop}")
            if block < 1:
                raise ValueError(f"expected block >= 1, got {block}")
            self.source, self.start, self.stop, self.block = source, int(start), stop, int(block)

        def __iter__(self):
            info = get_worker_info()
            worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
            first = self.start + worker * self.block
            while self.stop is None or first < self.stop:
                for index in range(first, first + self.block):
                    if self.stop is not None and index >= self.stop:
                        return
                    yield self._tensors(index)
                first += n_workers * self.block

        def _tensors(self, index: int) -> dict[str, Any]:
            sample = self.source.load(index)
            out: dict[str, Any] = {"name": sample["name"], "index": index}
            for key in ("moving", "fixed"):
                out[key] = torch.from_numpy(sample[key])
            for key in ("moving_labels", "fixed_labels"):
                out[key] = torch.from_numpy(sample[key].astype(np.int64))
            return out

    SynthStream.__module__, SynthStream.__qualname__ = __name__, "SynthStream"
    _STREAM_CLASS = SynthStream
    return SynthStream


def __getattr__(name: str):
    # ``SynthStream`` is built on first access so that importing this module does not import torch.
    if name == "SynthStream":
        return _stream_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
