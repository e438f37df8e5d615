"""Registration pairs from four sources behind one interface (:class:`PairSource`).

``--data`` specs understood by :func:`open_source` (and so by fnoreg-train / fnoreg-eval):

=================  ==========================================================================
``synth``          SynthMorph-style synthetic pairs at any size (:mod:`.synth`), no data needed
``synth:brains[:DIR]``  the same, deforming brain-shaped label maps (fsaverage aseg and MNI152
                   tissue classes of the template set, :func:`.templates.prior_volumes`), with a
                   random relative affine (:data:`BRAIN_AFFINE`)
``synth:brains+real[:DIR]``  the same, and half of the pairs deform the real fsaverage / MNI152
                   images instead of synthesising intensities from their labels
``synth:mix[:DIR]``  half the pairs from random shapes, half from ``synth:brains+real`` (both with
                   the relative affine), interleaved by index (:class:`.mix.MixedPairs`)
``templates[:DIR]``  the offline real-brain set built by ``fnoreg-data templates`` (:mod:`.templates`)
``oasis:PATH``     OASIS-1, neurite-oasis / Learn2Reg layout, the paper's splits (:mod:`.oasis`)
``pairs:CSV``      a user's own NIfTI pairs listed in a CSV (:mod:`.pairs`)
=================  ==========================================================================

The modules are imported lazily so that ``import fnoreg_core.data`` stays light and torch-free.
"""

from __future__ import annotations

from typing import Sequence

from fnoreg_core.data.base import PairSource, ResizedPairs, check_sample, resize_image, resize_labels

__all__ = ["PairSource", "ResizedPairs", "check_sample", "resize_image", "resize_labels", "open_source",
           "DataSpecError", "SPLITS", "SPECS_HELP"]

SPLITS = ("train", "val", "test")

#: The ``--data`` specs in one line, for the CLIs' ``--help`` (the table above says what each is).
SPECS_HELP = ("synth | synth:brains[:DIR] | synth:brains+real[:DIR] | synth:mix[:DIR] | templates[:DIR] | "
              "oasis:PATH | pairs:CSV")

#: Relative affine of ``synth:brains`` pairs: real brains differ by about this much after MNI alignment.
BRAIN_AFFINE = dict(max_rotation_deg=5.0, max_scaling=0.06, max_shift=0.03)


class DataSpecError(ValueError):
    """A ``--data`` spec names an unknown source or a path that does not exist."""


def open_source(spec: str, dims: int, split: str = "train", shape: Sequence[int] | None = None,
                seed: int = 0, synth_options: dict | None = None) -> PairSource:
    """Open the pair source named by ``spec`` (see the module docstring).

    Parameters
    ----------
    dims : 2 or 3
    split : "train" | "val" | "test"
    shape : spatial size of the returned samples (resampled if the source differs); required for
        ``synth``, optional otherwise
    seed : random seed (synthetic data)
    synth_options : keyword arguments of :class:`~fnoreg_core.data.synth.SynthPairs` for ``synth``
        specs (e.g. ``{"contrast": "random", "deform_std": 0.03}``); they override the spec's defaults

    Raises
    ------
    DataSpecError
        Unknown source kind, a missing path, or a source that cannot serve ``dims``.
    """
    if split not in SPLITS:
        raise DataSpecError(f"unknown split {split!r}, expected one of {SPLITS}")
    if dims not in (2, 3):
        raise DataSpecError(f"expected dims 2 or 3, got {dims}")
    kind, _, arg = spec.partition(":")
    if kind == "synth":
        from fnoreg_core.data.synth import SynthPairs

        if shape is None:
            raise DataSpecError("synthetic data needs a size (e.g. --res 80x96x112)")
        offsets = {"train": 0, "val": 1_000_003, "test": 2_000_003}
        n_pairs = {"train": 10_000, "val": 16, "test": 32}[split]
        user = dict(synth_options or {})
        try:
            if arg.partition(":")[0] == "mix":  # half random shapes, half brains (+ their real images)
                from fnoreg_core.data.mix import MixedPairs

                root = arg.partition(":")[2] or None
                shapes = SynthPairs(tuple(shape), n_pairs=n_pairs, seed=seed + offsets[split],
                                    **{**BRAIN_AFFINE, **user})
                brains = SynthPairs(tuple(shape), n_pairs=n_pairs, seed=seed + offsets[split] + 7,
                                    **{**_brain_options(root, dims, real=True), **user})
                source = MixedPairs([shapes, brains])
            else:
                options = _brain_options(arg, dims) if arg else {}
                source = SynthPairs(tuple(shape), n_pairs=n_pairs, seed=seed + offsets[split], **{**options, **user})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataSpecError):
                raise
            raise DataSpecError(f"bad synthetic data option: {exc}") from None
    elif kind == "templates":
        from fnoreg_core.data.templates import TemplatePairs

        source = TemplatePairs(root=arg or None, dims=dims, split=split)
    elif kind == "oasis":
        from fnoreg_core.data.oasis import OasisPairs

        if not arg:
            raise DataSpecError("oasis needs its folder: --data oasis:/path/to/neurite-oasis")
        source = OasisPairs(arg, dims=dims, split=split)
    elif kind == "pairs":
        from fnoreg_core.data.pairs import CsvPairs

        if not arg:
            raise DataSpecError("pairs needs a CSV file: --data pairs:/path/to/pairs.csv")
        source = CsvPairs(arg, shape=shape)
    else:
        raise DataSpecError(f"unknown data source {spec!r}; expected synth, templates[:DIR], oasis:PATH or pairs:CSV")
    if source.dims != dims:
        raise DataSpecError(f"{spec!r} holds {source.dims}D pairs, but a {dims}D model was asked for")
    if shape is not None:
        source = source.resized(shape)
    return source


def _brain_options(arg: str | None, dims: int, real: bool | None = None) -> dict:
    """SynthPairs options of ``synth:brains[+real][:DIR]`` (``arg`` is the part after ``synth:``;
    with ``real`` given, ``arg`` is the template folder or None)."""
    prior_kind, _, prior_root = (arg or "").partition(":")
    if real is None:
        if prior_kind not in ("brains", "brains+real"):
            raise DataSpecError(f"unknown synthetic prior {arg!r}; expected synth, synth:brains[:DIR], "
                                "synth:brains+real[:DIR] or synth:mix[:DIR]")
        real = prior_kind == "brains+real"
    else:
        prior_root = arg or ""
    from fnoreg_core.data.templates import HARMONISED_LABELS, prior_volumes

    images, priors = prior_volumes(prior_root or None, dims)
    options = dict(label_maps=priors, label_names=dict(HARMONISED_LABELS), **BRAIN_AFFINE)
    if real:
        options.update(images=images, real_fraction=0.5)
    return options
