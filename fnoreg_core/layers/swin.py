"""A compact 2D/3D Swin Transformer encoder (shifted-window attention) that exports to ONNX.

Written for TransMorph [2]_ after Swin [1]_. MONAI's ``SwinTransformer`` was considered: it needs
``einops`` (not a dependency here) and chooses window sizes and padding with Python branches on
the feature size, which a dynamic-shape export cannot trace. Here every size-dependent quantity
(window padding, the shifted-window attention mask) is computed with tensor ops from the sizes, so
one exported graph serves every input size.

Tokens are kept channels-last, ``(B, *spatial, C)``, between blocks.

References
----------
.. [1] Liu, Z. et al. "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
   ICCV 2021.
.. [2] Chen, J. et al. "TransMorph: Transformer for unsupervised medical image registration",
   Medical Image Analysis 2022 (reference code junyuchen245/TransMorph_Transformer_for_Medical_Image_Registration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SwinEncoder", "SwinBlock", "WindowAttention", "PatchMerging", "window_partition", "window_reverse",
           "shifted_window_mask"]


def window_partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """(B, *S, C) with every S_i a multiple of window_i -> (B * n_windows, prod(window), C)."""
    d = len(window)
    b, c = x.shape[0], x.shape[-1]
    split = [b]
    for n, w in zip(x.shape[1:1 + d], window):
        split += [n // w, w]
    x = x.reshape(split + [c])
    # (B, n0, w0, n1, w1, [n2, w2,] C) -> (B, n0, n1, [n2,] w0, w1, [w2,] C)
    order = [0] + [1 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)] + [1 + 2 * d]
    return x.permute(order).reshape(-1, math.prod(window), c)


def window_reverse(windows: torch.Tensor, window: Sequence[int], sizes: Sequence) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * n_windows, prod(window), C) -> (B, *sizes, C)."""
    d = len(window)
    c = windows.shape[-1]
    counts = [n // w for n, w in zip(sizes, window)]
    x = windows.reshape([-1] + counts + list(window) + [c])
    order = [0]
    for i in range(d):
        order += [1 + i, 1 + d + i]
    return x.permute(order + [1 + 2 * d]).reshape([-1] + list(sizes) + [c])


def shifted_window_mask(sizes: Sequence, window: Sequence[int], shift: Sequence[int], device=None) -> torch.Tensor:
    """Additive attention mask of shifted windows, (n_windows, N, N) with 0 or -100.

    After a cyclic shift by ``-shift``, a window at the end of an axis holds tokens from both ends
    of the (padded) feature map; tokens of different regions must not attend to each other.
    ``sizes`` are the padded feature sizes (multiples of ``window``; int or SymInt).
    """
    d = len(window)
    region = None
    for i, (n, w, s) in enumerate(zip(sizes, window, shift)):
        pos = torch.arange(n, device=device, dtype=torch.int64)
        # 0: untouched, 1: the last window minus the shifted strip, 2: the strip shifted in
        ids = (pos >= n - w).to(torch.int64) + (pos >= n - s).to(torch.int64)
        view = [1] * d
        view[i] = -1
        term = (ids * 3 ** i).reshape(view)
        region = term if region is None else region + term
    region = region.unsqueeze(0).unsqueeze(-1).to(torch.float32)  # (1, *sizes, 1)
    ids = window_partition(region, window).squeeze(-1)  # (n_windows, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def _relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """(N, N) int64 index into the relative-position bias table of a window."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)  # (d, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (d, N, N)
    index = torch.zeros(rel.shape[1:], dtype=torch.int64)
    for i, w in enumerate(window):
        stride = math.prod(2 * v - 1 for v in window[i + 1:])
        index += (rel[i] + w - 1) * stride
    return index


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative-position bias.

    Shapes
    ------
    x : (B * n_windows, N, C) -> (B * n_windows, N, C); mask : (n_windows, N, N) or None
    """

    def __init__(self, dim: int, window: Sequence[int], heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"expected channels divisible by the number of heads, got {dim} and {heads}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros(math.prod(2 * w - 1 for w in window), heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", _relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (b, heads, N, N)
        bias = self.bias_table[self.bias_index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            n_windows = mask.shape[0]
            attn = attn.reshape(-1, n_windows, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.reshape(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _DropPath(nn.Module):
    """Stochastic depth: drop the residual branch of whole samples while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class SwinBlock(nn.Module):
    """``x + Attn(LN(x))`` over (shifted) windows, then ``x + MLP(LN(x))``.

    The feature map is zero-padded (after the first norm) to multiples of the window and cropped
    back, as in TransMorph. Shapes: x (B, *S, C) -> (B, *S, C).
    """

    def __init__(self, dim: int, heads: int, window: Sequence[int], shift: bool, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(w // 2 for w in window) if shift else (0,) * len(window)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads, qkv_bias)
        self.drop_path = _DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    @property
    def shifted(self) -> bool:
        return any(self.shift)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        d = len(self.window)
        sizes = x.shape[1:1 + d]
        y = self.norm1(x)
        pads = [0, 0]  # channels
        for n, w in zip(reversed(sizes), reversed(self.window)):
            pads += [0, (-n) % w]
        y = F.pad(y, pads)
        padded = y.shape[1:1 + d]
        axes = tuple(range(1, 1 + d))
        if self.shifted:
            y = torch.roll(y, shifts=tuple(-s for s in self.shift), dims=axes)
        y = self.attn(window_partition(y, self.window), mask if self.shifted else None)
        y = window_reverse(y, self.window, padded)
        if self.shifted:
            y = torch.roll(y, shifts=self.shift, dims=axes)
        y = y[(slice(None),) + tuple(slice(0, n) for n in sizes)]
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve every spatial size: concatenate 2^d neighbours, LayerNorm, Linear to ``2 * dim``.

    Shapes: x (B, *S, C) with even S -> (B, *S/2, 2C).
    """

    def __init__(self, dim: int, spatial_dims: int):
        super().__init__()
        self.d = spatial_dims
        self.norm = nn.LayerNorm(2 ** spatial_dims * dim)
        self.reduction = nn.Linear(2 ** spatial_dims * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.d
        b, c = x.shape[0], x.shape[-1]
        split = [b]
        for n in x.shape[1:1 + d]:
            split += [n // 2, 2]
        x = x.reshape(split + [c])
        order = [0] + [1 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)] + [1 + 2 * d]
        x = x.permute(order)
        x = x.reshape(list(x.shape[:1 + d]) + [2 ** d * c])
        return self.reduction(self.norm(x))


class SwinEncoder(nn.Module):
    """Patch embedding + Swin stages; returns one feature map per stage, channels first.

    Parameters
    ----------
    spatial_dims : 2 or 3
    in_channels : input channels (2: moving and fixed)
    embed_dim : channels of the first stage (doubled at every later stage)
    depths, heads : blocks and attention heads per stage
    window : window size per axis
    patch_size : stride of the patch embedding
    mlp_ratio, qkv_bias, drop_path_rate : as in Swin

    Shapes
    ------
    x : (B, in_channels, *S), every S_i a multiple of ``patch_size * 2 ** (len(depths) - 1)``
    -> list of (B, embed_dim * 2**i, *S / (patch_size * 2**i)) for each stage i
    """

    def __init__(self, spatial_dims: int, in_channels: int, embed_dim: int, depths: Sequence[int],
                 heads: Sequence[int], window: Sequence[int], patch_size: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0):
        super().__init__()
        if len(window) != spatial_dims:
            raise ValueError(f"expected {spatial_dims} window sizes, got {tuple(window)}")
        if len(depths) != len(heads):
            raise ValueError(f"expected one head count per stage, got depths {tuple(depths)} and heads {tuple(heads)}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.d = spatial_dims
        self.window = tuple(window)
        self.patch_embed = conv(in_channels, embed_dim, patch_size, stride=patch_size)
        self.patch_norm = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.norms = nn.ModuleList()
        start = 0
        for i, (depth, h) in enumerate(zip(depths, heads)):
            dim = embed_dim * 2 ** i
            self.stages.append(nn.ModuleList([
                SwinBlock(dim, h, window, shift=j % 2 == 1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                          drop_path=rates[start + j])
                for j in range(depth)
            ]))
            start += depth
            self.norms.append(nn.LayerNorm(dim))
            if i < len(depths) - 1:
                self.merges.append(PatchMerging(dim, spatial_dims))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        d = self.d
        x = self.patch_embed(x)
        x = self.patch_norm(x.movedim(1, -1))  # channels last from here on
        shift = tuple(w // 2 for w in self.window)
        outs = []
        for i, blocks in enumerate(self.stages):
            sizes = x.shape[1:1 + d]
            padded = [n + (-n) % w for n, w in zip(sizes, self.window)]
            mask = shifted_window_mask(padded, self.window, shift, x.device).to(x.dtype) if len(blocks) > 1 else None
            for block in blocks:
                x = block(x, mask)
            outs.append(self.norms[i](x).movedim(-1, 1).contiguous())
            if i < len(self.merges):
                x = self.merges[i](x)
        return outs


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
