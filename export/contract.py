"""What happens before and after the network: ONE definition for the Python runtime and the ONNX graphs.

The network (``model.onnx``) takes intensity-normalised images and returns a displacement in
normalised grid units (:mod:`fnoreg_core.fields`). Everything around it is defined here, twice in
form but once in content, side by side:

=====================  ===================================  ==========================================
step                   numpy (the Python runtime)           ONNX nodes (the end-to-end graph)
=====================  ===================================  ==========================================
intensity              :func:`normalise_image`              :func:`normalise_nodes`
displacement units     :func:`ddf_units`                    :func:`ddf_units_nodes`
moved image            :func:`warp_image_vox`               :func:`warp_nodes`
=====================  ===================================  ==========================================

The numpy side calls the project's single definitions (:func:`fnoreg_core.intensity.normalise`,
:mod:`fnoreg_core.fields`, :func:`fnoreg_core.geometry.warp_vox`); the ONNX side reproduces them
operation for operation (the percentile is computed in float32 exactly as ``numpy.percentile``
does), and ``tests/export/test_end_to_end.py`` checks every pair on random inputs. Builders import
``onnx`` lazily: this module is torch- and onnx-free at import (the runtime imports it).

Axis order of the end-to-end graph
----------------------------------
Its tensors are in **voxel-buffer order**: ``(B, C, nz, ny, nx)`` (2-D: ``(B, C, ny, nx)``), the
memory layout of a NIfTI file's data block, of an ITK/SimpleITK image buffer and of
``SimpleITK.GetArrayFromImage``: x (voxel index i) varies fastest. A NIfTI reader in any language
can feed its voxel buffer unchanged. The network inside works in nibabel's array order
``(i, j, k)``; the graph transposes in and out (:data:`BUFFER_PERM`). Displacement channels are
always voxel axes i, j, k (``ddf_vox``) or world axes R, A, S (``ddf_mm``), in that order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fnoreg_core.fields import ddf_norm_to_vox, ddf_vox_to_mm
from fnoreg_core.intensity import IntensityNorm, normalise

__all__ = ["E2E_INPUTS", "E2E_OUTPUTS", "NETWORK_INPUTS", "NETWORK_OUTPUT", "E2E_CONVENTION", "buffer_perm",
           "to_buffer_order", "from_buffer_order", "normalise_image", "ddf_units", "warp_image_vox",
           "GraphBuilder", "normalise_nodes", "ddf_units_nodes", "warp_nodes"]

#: Inputs of the end-to-end graph (all required; ``fixed_affine`` = identity gives ``ddf_mm == ddf_vox``).
E2E_INPUTS = ("fixed", "moving", "fixed_affine")
#: Outputs of the end-to-end graph (``moved`` only in the variant with the warp).
E2E_OUTPUTS = ("ddf_vox", "ddf_mm", "moved")
NETWORK_INPUTS = ("moving", "fixed")
NETWORK_OUTPUT = "ddf_norm"

E2E_CONVENTION = (
    "tensors in voxel-buffer order (B, C, nz, ny, nx) (2-D: (B, C, ny, nx)), x fastest as in a NIfTI file; "
    "ddf_vox channel c = displacement along voxel axis c (i, j, k) in voxels, ddf_mm channel c = world axis "
    "c (R, A, S) in mm = fixed_affine[:3, :3] @ ddf_vox; pull fixed->moving: moved(p) = moving(p + ddf_vox(p))"
)


def buffer_perm(dims: int) -> list[int]:
    """Transpose between array order ``(B, C, i, j, k)`` and buffer order ``(B, C, k, j, i)`` (its own inverse)."""
    return [0, 1] + list(range(1 + dims, 1, -1))


def to_buffer_order(array: np.ndarray, dims: int) -> np.ndarray:
    """``(B, C, *spatial)`` array order -> buffer order (a view; ``np.ascontiguousarray`` to feed it)."""
    return np.transpose(array, buffer_perm(dims))


def from_buffer_order(array: np.ndarray, dims: int) -> np.ndarray:
    """Buffer order -> array order (a view)."""
    return np.transpose(array, buffer_perm(dims))


# ------------------------------------------------------------------------------------------------
# numpy: what the Python runtime calls


def normalise_image(image: np.ndarray, norm: IntensityNorm) -> tuple[np.ndarray, dict[str, float]]:
    """The card's intensity normalisation of one image (any shape) -> float32 in [0, 1] and its parameters.

    :func:`fnoreg_core.intensity.normalise`; the graph's version is :func:`normalise_nodes`.
    """
    return normalise(image, norm)


def ddf_units(ddf_norm: np.ndarray, affine: np.ndarray | None = None,
              spatial_shape: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The network's ``ddf_norm`` ``(dims, *spatial)`` -> ``(ddf_vox, ddf_mm)`` float32.

    ``ddf_vox``: voxels along array axis i, j(, k) of ``spatial_shape`` (default: the field's own
    grid); ``ddf_mm = affine[:dims, :dims] @ ddf_vox`` (world RAS mm; identity affine when None).
    The graph's version is :func:`ddf_units_nodes`.
    """
    ddf_norm = np.asarray(ddf_norm)
    dims = ddf_norm.shape[0]
    shape = tuple(ddf_norm.shape[1:]) if spatial_shape is None else tuple(spatial_shape)
    ddf_vox = np.asarray(ddf_norm_to_vox(ddf_norm, shape), dtype=np.float32)
    affine = np.eye(dims + 1) if affine is None else np.asarray(affine, dtype=np.float64)
    ddf_mm = np.asarray(ddf_vox_to_mm(ddf_vox, affine), dtype=np.float32)
    return ddf_vox, ddf_mm


def warp_image_vox(moving: np.ndarray, ddf_vox: np.ndarray) -> np.ndarray:
    """``moving`` sampled at ``p + ddf_vox(p)`` on its own grid, linear, ITK's border rule.

    Points up to half a voxel outside take the edge value, points further out are 0
    (:func:`fnoreg_core.geometry.warp_vox`). The graph's version is :func:`warp_nodes`.
    """
    from fnoreg_core.geometry import warp_vox

    return warp_vox(np.asarray(moving, dtype=np.float32), ddf_vox, order=1)


# ------------------------------------------------------------------------------------------------
# ONNX: the same steps as graph nodes


class GraphBuilder:
    """ONNX nodes and constant initialisers with unique names under one ``prefix``."""

    def __init__(self, prefix: str = "e2e/"):
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, out: str | None = None, **attrs):
        """Append a node; returns its output name (a list when ``outputs > 1``)."""
        from onnx import helper

        names = [out] if out is not None else [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self._name(op_type), **attrs))
        return names if outputs > 1 else names[0]

    def const(self, value, dtype, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name


def normalise_nodes(g: GraphBuilder, image: str, norm: IntensityNorm, out: str | None = None) -> str:
    """Nodes for :func:`normalise_image` of every image of a batch ``(B, 1, *spatial)`` float32.

    Per image: ``lo`` = minimum; ``hi`` = the ``high_pct`` percentile of the voxels above ``lo``
    (``numpy.percentile``'s linear method, in float32 as numpy computes it: TopK of the largest
    values, two of them interpolated) or the maximum (``minmax``); ``clip((x - lo) / (hi - lo), 0, 1)``
    with ``hi - lo`` rounded from double as numpy does; a constant image gives 0.
    """
    from onnx import TensorProto

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    zero, one = g.const(0.0, np.float32), g.const(1.0, np.float32)
    if norm.method == "none":
        return g.op("Clip", image, zero, one, out=out)
    axis1 = g.const([1], np.int64)
    flat = g.op("Reshape", image, g.const([0, -1], np.int64))                      # (B, N)
    lo = g.op("ReduceMin", flat, axis1, keepdims=1)                                # (B, 1)
    if norm.method == "minmax":
        hi = g.op("ReduceMax", flat, axis1, keepdims=1)
    else:
        count = g.op("ReduceSum", g.op("Cast", g.op("Greater", flat, lo), to=i64), axis1, keepdims=1)  # n (B, 1)
        one_i = g.const(1, np.int64)
        # numpy: quantile = float32(q) / float32(100); virtual index = float32(n - 1) * quantile
        quantile = g.const(np.float32(norm.high_pct) / np.float32(100.0), np.float32)
        virtual = g.op("Mul", g.op("Cast", g.op("Sub", count, one_i), to=f32), quantile)
        below = g.op("Floor", virtual)
        gamma = g.op("Sub", virtual, below)
        # ascending rank floor(v) among the n foreground values = descending rank n - 1 - floor(v) among
        # all voxels (background voxels equal lo and sort last); the next value is one rank higher
        rank0 = g.op("Sub", g.op("Sub", count, one_i), g.op("Cast", below, to=i64))
        rank1 = g.op("Max", g.op("Sub", rank0, one_i), g.const(0, np.int64))
        k = g.op("Add", g.op("ReduceMax", rank0, keepdims=0), one_i)              # >= 1 (n = 0: rank 0)
        top, _ = g.op("TopK", flat, g.op("Reshape", k, g.const([1], np.int64)), outputs=2, axis=1, largest=1,
                      sorted=1)
        prev = g.op("GatherElements", top, rank0, axis=1)
        nxt = g.op("GatherElements", top, rank1, axis=1)
        diff = g.op("Sub", nxt, prev)
        low_side = g.op("Add", prev, g.op("Mul", diff, gamma))                       # numpy._lerp
        high_side = g.op("Sub", nxt, g.op("Mul", diff, g.op("Sub", one, gamma)))
        hi = g.op("Where", g.op("GreaterOrEqual", gamma, g.const(0.5, np.float32)), high_side, low_side)
    f64 = TensorProto.DOUBLE
    span = g.op("Cast", g.op("Sub", g.op("Cast", hi, to=f64), g.op("Cast", lo, to=f64)), to=f32)
    span = g.op("Where", g.op("Greater", hi, lo), span, one)                        # constant image -> 0
    scaled = g.op("Clip", g.op("Div", g.op("Sub", flat, lo), span), zero, one)
    return g.op("Reshape", scaled, g.op("Shape", image), out=out)


def _spatial_sizes(g: GraphBuilder, tensor_buffer: str, dims: int, dtype: int) -> str:
    """(dims,) sizes of a buffer-order tensor's spatial axes in VOXEL-AXIS order (nx, ny[, nz]), cast."""
    shape = g.op("Shape", tensor_buffer)
    sizes = g.op("Gather", shape, g.const(list(range(1 + dims, 1, -1)), np.int64), axis=0)
    return g.op("Cast", sizes, to=dtype)


def ddf_units_nodes(g: GraphBuilder, ddf_norm_array: str, affine: str, dims: int,
                    out_vox: str | None = None, out_mm: str | None = None) -> tuple[str, str]:
    """Nodes for :func:`ddf_units`: ``ddf_norm`` (B, dims, *spatial) ARRAY order -> ``(ddf_vox, ddf_mm)``
    (B, dims, *spatial) BUFFER order; channel c: voxel axis c (voxels) / world axis c (mm).

    ``affine`` is a (dims + 1, dims + 1) float32 tensor (voxel -> world of the grid).
    """
    from onnx import TensorProto

    f32 = TensorProto.FLOAT
    shape = g.op("Shape", ddf_norm_array)
    sizes = g.op("Cast", g.op("Slice", shape, g.const([2], np.int64), g.const([2 + dims], np.int64)), to=f32)
    scale = g.op("Div", g.op("Sub", sizes, g.const(1.0, np.float32)), g.const(2.0, np.float32))  # (N - 1) / 2
    scale = g.op("Reshape", scale, g.const([1, dims] + [1] * dims, np.int64))
    ddf_vox = g.op("Transpose", g.op("Mul", ddf_norm_array, scale), perm=buffer_perm(dims), out=out_vox)
    linear = g.op("Slice", affine, g.const([0, 0], np.int64), g.const([dims, dims], np.int64))
    columns = g.op("Reshape", ddf_vox, g.const([0, dims, -1], np.int64))           # (B, dims, M)
    ddf_mm = g.op("Reshape", g.op("MatMul", linear, columns), g.op("Shape", ddf_vox), out=out_mm)
    return ddf_vox, ddf_mm


def warp_nodes(g: GraphBuilder, moving_buffer: str, ddf_vox_buffer: str, dims: int, out: str | None = None) -> str:
    """Nodes for :func:`warp_image_vox` on buffer-order tensors: GridSample (opset 20, linear, border,
    align_corners) at ``p + ddf_vox(p)``, times 0 where that point is more than half a voxel outside."""
    from onnx import TensorProto

    f32 = TensorProto.FLOAT
    shape = g.op("Shape", ddf_vox_buffer)
    ones = [1] * (2 + dims)
    axes = []
    for c in range(dims):  # voxel axis c varies along buffer axis 1 + dims - c
        position = 1 + dims - c
        size = g.op("Gather", shape, g.const([position], np.int64), axis=0)
        index = g.op("Range", g.const(0.0, np.float32), g.op("Cast", g.op("Squeeze", size), to=f32),
                     g.const(1.0, np.float32))
        view = list(ones)
        view[position] = -1
        axes.append(g.op("Reshape", index, g.const(view, np.int64)))
    spatial = g.op("Slice", shape, g.const([2], np.int64), g.const([2 + dims], np.int64))
    full = g.op("Concat", g.const([1, 1], np.int64), spatial, axis=0)
    base = g.op("Concat", *[g.op("Expand", a, full) for a in axes], axis=1)          # (1, dims, *spatial)
    points = g.op("Add", ddf_vox_buffer, base)                                       # voxel coordinates
    sizes = g.op("Reshape", _spatial_sizes(g, ddf_vox_buffer, dims, f32), g.const([1, dims] + [1] * dims, np.int64))
    unit = g.op("Div", g.const(2.0, np.float32), g.op("Sub", sizes, g.const(1.0, np.float32)))
    grid = g.op("Sub", g.op("Mul", points, unit), g.const(1.0, np.float32))           # align_corners=True
    grid = g.op("Transpose", grid, perm=[0] + list(range(2, 2 + dims)) + [1])        # (B, *spatial, dims): x first
    sampled = g.op("GridSample", moving_buffer, grid, align_corners=1, mode="linear", padding_mode="border")
    half = g.const(0.5, np.float32)
    inside = g.op("And", g.op("GreaterOrEqual", points, g.op("Neg", half)),
                  g.op("Less", points, g.op("Sub", sizes, half)))
    inside = g.op("ReduceMin", g.op("Cast", inside, to=f32), g.const([1], np.int64), keepdims=1)
    return g.op("Mul", sampled, inside, out=out)
