"""HAADF-STEM images of layered oxides with ground truth (viewed along <100>_O3 and <210>_O3).

Modules
-------
:mod:`.structures`
    <100>_O3 projected columns of O3 (twin variants I/II, O1) and the
    uniform / twin scenes of Fig. 4 (coherent (001) and incoherent {012}
    boundaries, pores).
:mod:`.projection`
    Columns projected from :mod:`layerscope.crystal` phases: the O3'
    superstructure domains A/B/C along <210>_O3 (Fig. 1d,e) and a particle
    edge with a spinel shell (Supp. Figs. 1, 11, 12).
:mod:`.imaging`
    A scene → an image: incoherent Z-contrast columns (``Z**1.7``), probe
    core and tail, drift, line jitter, Poisson and read noise; the truth
    (column positions in the recorded frame, variant and pore maps).
:mod:`.lowmag`
    Low-magnification images of particles with pore/trench defects (table S4).

Everything here is NumPy; no analysis code is imported, so the truth is
independent of what the analysis does. Every public name is importable from
``layerscope.simulate.haadf`` itself.
"""

from layerscope.simulate.haadf.imaging import HAADFSimulation, render_haadf, simulate_haadf
from layerscope.simulate.haadf.lowmag import TABLE_S4_DEFECTS, LowMagSimulation, simulate_particles_lowmag
from layerscope.simulate.haadf.projection import (
    DOMAIN_NAMES, DOMAIN_ZONES, ProjectedColumns, ShellTruth, domain_scene, project_phase, shell_scene,
)
from layerscope.simulate.haadf.structures import (
    O3_A_ANGSTROM, O3_C_ANGSTROM, O3_LI_SITE, O3_O_SITE, O3_TM_SITE, O3_Z_OXYGEN, SUBLATTICE_NAMES,
    VARIANT_NAMES, Z_EXPONENT, HAADFScene, StackingMotif, ideal_m_over_n, projected_columns, twin_scene,
    uniform_scene,
)

__all__ = [
    "StackingMotif",
    "projected_columns",
    "HAADFScene",
    "HAADFSimulation",
    "twin_scene",
    "uniform_scene",
    "render_haadf",
    "simulate_haadf",
    "ideal_m_over_n",
    "LowMagSimulation",
    "simulate_particles_lowmag",
    "TABLE_S4_DEFECTS",
    "DOMAIN_ZONES",
    "DOMAIN_NAMES",
    "ProjectedColumns",
    "project_phase",
    "domain_scene",
    "ShellTruth",
    "shell_scene",
    "VARIANT_NAMES",
    "SUBLATTICE_NAMES",
    "Z_EXPONENT",
    "O3_A_ANGSTROM",
    "O3_C_ANGSTROM",
    "O3_Z_OXYGEN",
    "O3_TM_SITE",
    "O3_LI_SITE",
    "O3_O_SITE",
]
