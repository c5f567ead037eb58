"""Files of a simulated HAADF image: ``image.tif`` (calibrated), ``truth_columns.csv``, ``truth.h5``.

:func:`write_haadf_simulation` is what ``layerscope simulate haadf`` runs (the simulators themselves
return arrays and truth objects; this writes them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope._io import write_csv

__all__ = ["write_haadf_simulation"]


def write_haadf_simulation(out, *, scene: str = "twins", size: int = 384, pixel_size_nm: float | None = None,
                           dose: float = 4.0e4, shell_nm=(2.0, 5.0), seed: int = 0) -> dict:
    """Simulate one HAADF scene and write its image and truth into ``out``.

    scene : ``twins``, ``I``, ``II``, ``O1``, ``domains``, ``disordered``, ``lowmag`` or ``shell``;
    size : image size (px; square, ``shell`` is size/2 × size); pixel_size_nm : sampling (default 0.015,
    1.0 for lowmag, 0.03 for shell); dose : e/Å²; shell_nm : spinel shell thickness (start, end), nm.
    Returns ``{"pixel_size_nm", "shape", "message"}``.
    """
    from layerscope.simulate.haadf import (
        VARIANT_NAMES, domain_scene, simulate_haadf, simulate_particles_lowmag, twin_scene, uniform_scene,
    )

    if pixel_size_nm is None:
        pixel_size_nm = {"lowmag": 1.0, "shell": 0.03}.get(scene, 0.015)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if scene == "lowmag":
        return _lowmag(out, simulate_particles_lowmag, pixel_size_nm, seed)
    extent = size * pixel_size_nm * 10
    probe = 0.035
    if scene == "twins":
        scn = twin_scene((extent, extent))
    elif scene == "shell":
        from layerscope.simulate.haadf import shell_scene

        scn, _ = shell_scene((extent, extent / 2), shell_nm=tuple(shell_nm))
        probe = 0.05
    elif scene in ("domains", "disordered"):
        scn = domain_scene((extent, extent), order=1.0 if scene == "domains" else 0.0)
    else:
        scn = uniform_scene((extent, extent), scene)
    shape = (size // 2, size) if scene == "shell" else (size, size)
    sim = simulate_haadf(scn, pixel_size_nm=pixel_size_nm, dose_e_per_A2=dose, seed=seed, shape=shape,
                         probe_sigma_nm=probe)
    region_names = {"domains": ("A", "B", "C"), "disordered": ("A", "B", "C"),
                    "shell": ("layered", "spinel", "vacuum")}.get(scene, VARIANT_NAMES)
    import tifffile

    tifffile.imwrite(out / "image.tif", sim.image.astype(np.float32), imagej=True,
                     resolution=(1 / pixel_size_nm, 1 / pixel_size_nm), metadata={"unit": "nm"})
    px = pixel_size_nm
    names = ("TM", "O", "Li")
    write_csv(out / "truth_columns.csv",
              zip(sim.columns_px[:, 0], sim.columns_px[:, 1], sim.columns_px[:, 0] * px, sim.columns_px[:, 1] * px,
                  [names[s] for s in sim.sublattice], [region_names[v] for v in sim.variant], sim.layer),
              ["x_px", "y_px", "x_nm", "y_nm", "sublattice", "variant", "layer"], fmt=None)
    import h5py

    with h5py.File(out / "truth.h5", "w") as f:
        f["variant_map"] = sim.variant_map
        f["pore_mask"] = sim.pore_mask
        f["expected_counts"] = sim.expected
        f.attrs["variant_names"] = list(region_names)
        f.attrs["metadata"] = json.dumps(sim.metadata, default=str)
    return {"pixel_size_nm": px, "shape": list(sim.image.shape),
            "message": f"{int(np.sum(sim.sublattice == 0))} TM columns, image {sim.image.shape} → {out}"}


def _lowmag(out: Path, simulate, px, seed) -> dict:
    import h5py
    import tifffile

    sim = simulate(pixel_size_nm=px, seed=seed)
    tifffile.imwrite(out / "image.tif", sim.image.astype(np.float32), imagej=True,
                     resolution=(1 / px, 1 / px), metadata={"unit": "nm"})
    with h5py.File(out / "truth.h5", "w") as f:
        f["particle_labels"] = sim.particle_labels
        f["defect_labels"] = sim.defect_labels
        f["defect_particle"] = sim.defect_particle
        f["defects_per_particle"] = np.asarray(sim.defects_per_particle)
    return {"pixel_size_nm": px, "shape": list(sim.image.shape),
            "message": f"{len(sim.defects_per_particle)} particles with {list(sim.defects_per_particle)} defects → {out}"}
