"""Bilinear upsampling layers: the reference's fixed ``C -> C`` deconvolutions (C^2 kernel products per
cell, over the whole padded map), computed while fixed and bilinear as the same numbers by bilinear
interpolation of the zero-padded input over the kept window only; parameters and state dict unchanged."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: A window of an upsampled map: offset (the same along both axes, as the nets' crops) and (h, w).
Crop = tuple[int, Sequence[int]]
#: How far a fixed upsampler's weight may be from the bilinear kernel and still count as holding it (a
#: kernel written by Caffe's own filler differs in the last bits at most).
BILINEAR_ATOL = 1e-6

_dense_only = False


def cropped(x: torch.Tensor, offset: int, size: Sequence[int]) -> torch.Tensor:
    """The ``size`` window of ``x`` at ``(offset, offset)``: the nets' crops."""
    return x[..., offset : offset + size[0], offset : offset + size[1]]


@contextlib.contextmanager
def dense_upsampling() -> Iterator[None]:
    """Run every :class:`Upsampler` as the reference's dense deconvolution while inside: what the paper's
    cost figures count (``describe`` and the benchmark count FLOPs inside it)."""
    global _dense_only
    before, _dense_only = _dense_only, True
    try:
        yield
    finally:
        _dense_only = before


def bilinear_kernel(size: int) -> torch.Tensor:
    """The size x size bilinear interpolation kernel of the reference (``upsample_filt``)."""
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    profile = 1 - (torch.arange(size, dtype=torch.float64) - center).abs() / factor
    return torch.outer(profile, profile).float()


def bilinear_upsampling_weight(channels: int, size: int) -> torch.Tensor:
    """A ConvTranspose2d weight that upsamples each channel on its own (class i -> class i)."""
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = bilinear_kernel(size)
    return weight


def holds_bilinear_kernel(weight: torch.Tensor) -> bool:
    """Whether a C x C x k x k deconvolution weight is the bilinear kernel on the diagonal, zero elsewhere
    (reads the values, a host-device wait on a GPU: call it when the weight changes, not every step)."""
    channels, out, kh, kw = weight.shape
    if channels != out or kh != kw:
        return False
    diagonal = weight.detach().diagonal(dim1=0, dim2=1)  # k x k x C
    kernel = bilinear_kernel(kh).to(diagonal.device, torch.float32)[..., None]
    off_diagonal = torch.count_nonzero(weight.detach()) - torch.count_nonzero(diagonal)
    return bool(off_diagonal == 0) and torch.allclose(diagonal.float(), kernel, rtol=0, atol=BILINEAR_ATOL)


def interpolates(kernel: int, stride: int) -> bool:
    """Whether the bilinear deconvolution (``kernel``, ``stride``) is exactly a bilinear interpolation of
    its zero-padded input: the kernel's factor is the stride, its centre on a pixel (odd kernels) or
    half-way with an even stride, and the stride a power of two, so that every coordinate and weight is
    exact in binary floating point (FCN's x2 ... x32 with kernel 2s, FCN-AlexNet's 63 / 32)."""
    if (kernel + 1) // 2 != stride or stride & (stride - 1):
        return False
    return kernel % 2 == 1 or stride % 2 == 0


def _axis_window(length: int, kernel: int, stride: int, offset: int, size: int) -> tuple[int, int, int, int]:
    """For one axis: the padded-input rows ``[a, b)`` to interpolate, the interpolated length, and where
    the output ``[offset, offset + size)`` starts in it. Output o is interpolation index ``p = o + shift``
    of source coordinate ``p / s`` (odd kernels, ``align_corners``) or ``(p + 0.5) / s - 0.5`` (even)."""
    align = kernel % 2 == 1
    shift = stride - (kernel - 1) // 2 if align else stride // 2
    first, last = offset + shift, offset + size - 1 + shift

    def row(p: int) -> int:  # floor of the source coordinate of interpolation index p
        return p // stride if align else (2 * p + 1 - stride) // (2 * stride)

    a = min(max(row(first), 0), length + 1)
    b = min(length + 2, row(last) + 2)
    out = (b - a - 1) * stride + 1 if align else (b - a) * stride
    return a, b, out, first - a * stride


def bilinear_upsample(
    x: torch.Tensor,
    kernel: int,
    stride: int,
    offset: Sequence[int] = (0, 0),
    size: Sequence[int] | None = None,
) -> torch.Tensor:
    """``conv_transpose2d(x, bilinear_upsampling_weight(C, kernel), stride=stride)``, cropped to ``size``
    at ``offset`` (default: the whole output), by bilinear interpolation of that window alone; equal to
    the deconvolution to float rounding (about 1e-7 relative). Needs ``interpolates(kernel, stride)``."""
    if not interpolates(kernel, stride):
        raise ValueError(f"a {kernel} x {kernel} bilinear kernel at stride {stride} is not an interpolation")
    full = [(n - 1) * stride + kernel for n in x.shape[-2:]]
    size = full if size is None else list(size)
    if any(o < 0 or o + n > f for o, n, f in zip(offset, size, full, strict=True)):
        raise ValueError(
            f"crop {tuple(size)} at offset {tuple(offset)} lies outside the upsampled map {tuple(full)}"
        )
    (ay, by, hy, sy), (ax, bx, hx, sx) = (
        _axis_window(n, kernel, stride, o, m) for n, o, m in zip(x.shape[-2:], offset, size, strict=True)
    )
    padded = F.pad(x, (1, 1, 1, 1))[..., ay:by, ax:bx]
    out = F.interpolate(padded, size=(hy, hx), mode="bilinear", align_corners=kernel % 2 == 1)
    return out[..., sy : sy + size[0], sx : sx + size[1]]


class Upsampler(nn.ConvTranspose2d):
    """A bias-free ``C -> C`` deconvolution that upsamples by its stride, bilinear at the start; while fixed
    and bilinear it interpolates (:func:`bilinear_upsample`). Whether the weight holds the kernel is read
    again when it changes (in place, loaded, moved), never every step; compiled code uses the last reading."""

    def __init__(self, channels: int, kernel: int, stride: int, learnable: bool = False) -> None:
        super().__init__(channels, channels, kernel, stride=stride, bias=False)
        with torch.no_grad():
            self.weight.copy_(bilinear_upsampling_weight(channels, kernel))
        self.weight.requires_grad_(learnable)
        self._fast_route = interpolates(kernel, stride)
        self._bilinear = True
        self._seen: tuple | None = None
        self.register_load_state_dict_post_hook(Upsampler._read_after_loading)

    def _check_weight(self, force: bool = False) -> bool:
        """Whether the weight holds the bilinear kernel, read again if it changed since the last reading."""
        w = self.weight
        if w.device.type == "meta":  # shapes only (FLOP counting): as built
            return self._bilinear
        key = (w._version, w.data_ptr(), w.dtype)  # _version: torch's in-place counter (no public API)
        if force or key != self._seen:
            self._bilinear = holds_bilinear_kernel(w)
            self._seen = key
        return self._bilinear

    def _read_after_loading(self, incompatible_keys: object) -> None:
        self._check_weight(force=True)  # compiled code reads the flag without looking at the weight

    def interpolating(self) -> bool:
        """Whether this layer currently computes by interpolation (fixed and bilinear)."""
        if _dense_only or not self._fast_route or self.weight.requires_grad:
            return False
        if torch.compiler.is_compiling():
            return self._bilinear
        return self._check_weight()

    def forward(
        self, x: torch.Tensor, output_size: list[int] | None = None, *, crop: Crop | None = None
    ) -> torch.Tensor:
        """The upsampled map, or with ``crop = (offset, (h, w))`` its ``h x w`` window at ``(offset,
        offset)``: computed alone when interpolating (the final upsampler of a net keeps only that)."""
        if output_size is None and self.interpolating():
            offset, size = crop if crop is not None else (0, None)
            return bilinear_upsample(x, self.kernel_size[0], self.stride[0], (offset, offset), size)
        out = super().forward(x, output_size)
        return out if crop is None else cropped(out, *crop)


def make_upsampler(
    channels: int, factor: int, learnable: bool = False, kernel: int | None = None
) -> Upsampler:
    """A bias-free ``factor``x upsampling layer (kernel 2 * factor unless given: FCN-AlexNet's is 63),
    bilinear, frozen by default as in the reference code (learning rate 0)."""
    return Upsampler(channels, 2 * factor if kernel is None else kernel, factor, learnable)
