"""Drive pyxem's template matching on layerscope's data and orientation grid (tests and bench only).

pyxem (with diffsims and orix) is a test/bench-only peer: nothing in layerscope
imports this module. It turns a layerscope scan and template library into pyxem's
inputs and pyxem's answer back into layerscope's conventions:

* Templates: diffsims simulates the library's own orientations. orix's rotation
  of a template is Uᵀ (U: crystal Cartesian → lab as in layerscope; both put
  a ∥ x, c* ∥ z), with the Bunge angle φ1 — a rotation about the beam — set to 0,
  because pyxem's in-plane angle replaces φ1.
* Patterns: pyxem measures azimuths with the opposite handedness to layerscope's
  detector (rows are +g_y), so patterns are handed over with their rows reversed,
  and the axes are calibrated so that the direct beam (``geometry.centre_px``)
  sits at zero.
* Results: U is rebuilt from pyxem's template, in-plane angle and mirror flag in
  layerscope's convention (:func:`pyxem_index`); the template index gives the phase.
"""

from __future__ import annotations

import numpy as np

__all__ = ["orix_phase", "pyxem_signal", "pyxem_simulation", "pyxem_index"]


def pyxem_signal(patterns, geometry, *, gamma: float = 0.5, n_radial: int | None = None, n_azimuth: int = 360):
    """Polar (azimuthal-integral 2D) pyxem signal of a stack of patterns (n, ky, kx), intensities P^γ."""
    from pyxem.signals import Diffraction2D

    pats = np.asarray(patterns, dtype=np.float32)[:, ::-1, :] ** gamma
    s = Diffraction2D(np.ascontiguousarray(pats)[None])
    ax_x, ax_y = s.axes_manager.signal_axes
    cy, cx = geometry.centre_px
    for ax in (ax_x, ax_y):
        ax.scale, ax.units = geometry.pixel_inv_angstrom, "1/Å"
    ax_x.offset = -cx * geometry.pixel_inv_angstrom
    ax_y.offset = -(geometry.shape[0] - 1 - cy) * geometry.pixel_inv_angstrom
    n_r = n_radial or geometry.shape[0]
    polar = s.get_azimuthal_integral2d(npt=n_r, npt_azim=n_azimuth, inplace=False)
    # background (diffuse rings, amorphous support): the median over azimuth at every radius
    polar.data = np.clip(polar.data - np.median(polar.data, axis=-1, keepdims=True), 0, None)
    return polar


def orix_phase(phase):
    """orix Phase holding every position of the expanded cell (expanded by gemmi, as layerscope's
    structure factors are) with its occupancy and B, so that no space-group setting or origin
    choice has to be agreed on through a CIF (a CIF round trip gave diffsims a different spinel)."""
    from diffpy.structure import Atom, Lattice, Structure
    from orix.crystal_map import Phase as OrixPhase

    exp = phase.expand()
    atoms = [Atom(sym, xyz=frac, occupancy=occ, Uisoequiv=phase.sites[i].biso / (8 * np.pi**2))
             for frac, i in zip(exp.frac, exp.site_index) for sym, occ in phase.sites[i].species]
    return OrixPhase(name=phase.name, space_group=phase.space_group.number,
                     structure=Structure(atoms=atoms, lattice=Lattice(*phase.cell)))


def pyxem_simulation(library, phases, *, kv: float = 200.0, precession_deg: float = 0.8,
                     max_excitation_error: float = 0.05):
    """diffsims templates of every phase at the library's own orientations (same grid as layerscope)."""
    from diffsims.generators.simulation_generator import SimulationGenerator
    from orix.quaternion import Rotation

    ophases, rots = [orix_phase(p) for p in phases], []
    for ip in range(len(phases)):
        u = library.rotation[library.phase_index == ip]
        euler = Rotation.from_matrix(np.transpose(u, (0, 2, 1))).to_euler()
        euler[:, 0] = 0.0
        rots.append(Rotation.from_euler(euler))
    gen = SimulationGenerator(accelerating_voltage=kv, precession_angle=precession_deg)
    multi = len(phases) > 1
    return gen.calculate_diffraction2d(ophases if multi else ophases[0], rotation=rots if multi else rots[0],
                                       reciprocal_radius=library.geometry.g_max_inv_angstrom,
                                       max_excitation_error=max_excitation_error, with_direct_beam=False)


def pyxem_index(polar, simulation, sizes):
    """pyxem's best match per pattern → phase index (n,) into the library's phases and U (n, 3, 3).

    ``sizes`` are the numbers of templates of each phase, in the simulation's order.
    pyxem's α is a whole azimuth bin of ``polar`` (no sub-bin refinement) and comes
    out about one bin (360°/n_azimuth) from layerscope's: use ≥ 720 bins for
    sub-degree comparisons. U is rebuilt from pyxem's template, α and mirror flag as
    R_z(α)·[diag(1, −1, −1)]·U_template: a template matched mirrored (φ → −φ) is
    the pattern of the crystal turned 180° about the lab x axis.
    """
    from orix.quaternion import Rotation

    res = polar.get_orientation(simulation, n_best=1)
    raw = np.asarray(res.data).reshape(-1, 4)            # index, correlation, in-plane angle (deg), mirror
    index = raw[:, 0].astype(int)
    phase = np.searchsorted(np.cumsum(sizes), index, side="right")
    quats = np.concatenate([np.atleast_2d(r.data) for r in np.atleast_1d(simulation.rotations)])
    u0 = np.transpose(Rotation(quats[index]).to_matrix().reshape(-1, 3, 3), (0, 2, 1))
    u0 = np.where(raw[:, 3, None, None] < 0, np.diag([1.0, -1.0, -1.0]) @ u0, u0)
    a = np.radians(raw[:, 2])
    c, s = np.cos(a), np.sin(a)
    rz = np.zeros((len(a), 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1.0
    return phase, rz @ u0
