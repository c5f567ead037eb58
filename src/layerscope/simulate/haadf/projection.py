"""Columns projected from crystal-core phases: <210>_O3 superstructure domains (Fig. 1d,e) and a particle edge with a spinel shell (Supp. Figs. 1, 11, 12)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.simulate.haadf.structures import _Z, Z_EXPONENT, HAADFScene

#: Paper, Fig. 1d and Supp. Fig. 5a-c: O3' domains A, B, C are O3' viewed along
#: [110], [-100] and [1-10] (the same beam direction, <210>_O3, on three
#: in-plane orientations of the Li@TM6 honeycomb order).
DOMAIN_ZONES = {"A": (1, 1, 0), "B": (-1, 0, 0), "C": (1, -1, 0)}
DOMAIN_NAMES = ("A", "B", "C")


def _species_weight(species) -> float:
    return float(sum(occ * _Z[el] ** Z_EXPONENT for el, occ in species))


@dataclass(frozen=True)
class ProjectedColumns:
    """Columns of a phase projected along a zone axis, in Å (image frame).

    ``u`` runs along the layers (perpendicular to ``up_hkl``), ``w`` along the
    plane normal. ``weight`` is ``Σ occ Z**1.7`` per Å of column length,
    relative to the brightest column. ``sublattice``: 0 cation column of a TM
    layer (TM or Li-rich 2b columns), 1 O, 2 columns of the Li layer.
    """

    positions_angstrom: np.ndarray
    weight: np.ndarray
    sublattice: np.ndarray
    repeat_angstrom: float
    layer_spacing_angstrom: float


def project_phase(
    phase,
    zone_uvw,
    up_hkl=(0, 0, 1),
    extent_angstrom: tuple[float, float] = (60.0, 60.0),
    *,
    origin_frac=(0.0, 0.5, 0.0),
    origin_angstrom=(1.0, 2.0),
    margin_angstrom: float = 3.0,
    normalise: bool = True,
) -> ProjectedColumns:
    """Project a :class:`layerscope.crystal.Phase` along ``zone_uvw`` into columns.

    Every atom of the expanded structure (``phase.expand()``, with site
    occupancies) in one repeat ``|t|`` of the zone axis ``t = M·uvw`` is
    projected onto the plane normal to ``t``; atoms landing on the same point
    form one column of weight ``Σ occ Z**1.7 / |t|`` (incoherent Z-contrast,
    exponent 1.7). The image frame has ``w`` along the normal of the planes
    ``up_hkl`` (the layers for ``(001)``) and ``u = w × zone``. The point
    ``origin_frac`` (default the 2b site at the centre of a TM honeycomb of
    O3') sits at ``origin_angstrom``, so different zones of one phase share the
    framework columns. ``normalise=False`` keeps the absolute ``Σ occ Z**1.7``
    per Å (to combine phases in one scene).
    """
    M = np.array(phase.gemmi_cell.orth.mat.tolist())
    Minv = np.linalg.inv(M)
    t = M @ np.asarray(zone_uvw, float)
    L = float(np.linalg.norm(t))
    ez = t / L
    nrm = Minv.T @ np.asarray(up_hkl, float)
    ey = nrm - (nrm @ ez) * ez
    ey /= np.linalg.norm(ey)
    ex = np.cross(ey, ez)
    R = np.array([ex, ey, ez])
    W, H = extent_angstrom
    u0, w0 = origin_angstrom
    m = margin_angstrom
    corners = np.array([[x, y, z] for x in (-u0 - m, W - u0 + m) for y in (-w0 - m, H - w0 + m) for z in (0, L)])
    fc = (Minv @ (R.T @ corners.T)).T
    lo = np.floor(fc.min(axis=0)) - 1
    hi = np.ceil(fc.max(axis=0)) + 1
    ex_sites = phase.expand()
    frac = ex_sites.frac - np.asarray(origin_frac)
    wts = np.array([_species_weight(phase.sites[i].species) for i in ex_sites.site_index])
    grids = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    allf = (grids[:, None, :] + frac[None, :, :]).reshape(-1, 3)
    allw = np.tile(wts, len(grids))
    xyz = allf @ (R @ M).T
    ok = (
        (xyz[:, 2] >= -1e-9) & (xyz[:, 2] < L - 1e-9)
        & (xyz[:, 0] > -u0 - m) & (xyz[:, 0] < W - u0 + m)
        & (xyz[:, 1] > -w0 - m) & (xyz[:, 1] < H - w0 + m)
    )
    xyz, allw = xyz[ok], allw[ok]
    key = np.round(xyz[:, :2] / 0.01).astype(np.int64)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    weight = np.bincount(inv, allw) / L
    pos = np.zeros((len(uniq), 2))
    np.add.at(pos, inv, xyz[:, :2])
    pos /= np.bincount(inv)[:, None]
    pos += np.array([u0, w0])
    # O columns: every atom in them is O.
    is_o = np.bincount(inv, np.array([phase.sites[i].species[0][0] == "O" for i in ex_sites.site_index])
                       [np.tile(np.arange(len(frac)), len(grids))[ok]].astype(float)) == np.bincount(inv)
    rel = weight / weight.max()
    sub = np.where(is_o, 1, np.where(rel < 0.1, 2, 0))
    if normalise:
        weight = rel
    h = float(1.0 / np.linalg.norm(nrm))
    return ProjectedColumns(pos, weight, sub, L, h)


def domain_scene(
    extent_angstrom: tuple[float, float] = (48.0, 48.0),
    *,
    layout=None,
    order: float = 1.0,
    phase=None,
) -> HAADFScene:
    """O3' structural domains A, B, C viewed along <210>_O3 (Fig. 1d,e; Supp. Fig. 5a-c).

    The bright–bright–dark contrast along each TM row is the TM–TM–Li(2b)
    order of the Li@TM6 honeycomb; the three domains differ in how that
    pattern is stacked from one layer to the next. Columns are projected
    from ``phase`` (default ``preset_phase("lrm-pristine:O3p")``, table S1)
    along the zones of :data:`DOMAIN_ZONES`.

    Parameters
    ----------
    layout : callable (u, w) -> domain index array, optional
        Default: upper half split into A (left) and B (right), lower half C.
    order : float
        Degree of Li/TM in-layer order, 0..1: the weight of every TM-layer
        cation column becomes ``mean + order * (w - mean)`` (mean over that
        layer's columns), so ``order = 0`` is the fully disordered O3 of
        Supp. Fig. 16b with the same composition, and the modulation along
        the TM rows scales with ``order``.

    The returned scene's ``variant`` holds the domain index (0 A, 1 B, 2 C);
    ``region_fn`` gives it for any point.
    """
    if phase is None:
        from layerscope.crystal import preset_phase

        phase = preset_phase("lrm-pristine:O3p")
    if not 0.0 <= order <= 1.0:
        raise ValueError(f"order must be within 0..1, got {order}")
    W, H = extent_angstrom

    def default_layout(u, w):
        u, w = np.asarray(u), np.asarray(w)
        return np.where(w > H / 2, 2, np.where(u < W / 2, 0, 1))

    region_fn = layout or default_layout
    pos_all, w_all, s_all, v_all, l_all = [], [], [], [], []
    h = None
    for v, name in enumerate(DOMAIN_NAMES):
        pc = project_phase(phase, DOMAIN_ZONES[name], (0, 0, 1), extent_angstrom)
        h = pc.layer_spacing_angstrom
        layer = np.rint((pc.positions_angstrom[:, 1] - 2.0) / h).astype(int)
        wt = pc.weight.copy()
        tm = pc.sublattice == 0
        mean_tm = wt[tm].mean()
        wt[tm] = mean_tm + order * (wt[tm] - mean_tm)
        # a column belongs to the domain that owns its TM layer point
        keep = region_fn(pc.positions_angstrom[:, 0], 2.0 + layer * h) == v
        pos_all.append(pc.positions_angstrom[keep])
        w_all.append(wt[keep])
        s_all.append(pc.sublattice[keep])
        v_all.append(np.full(keep.sum(), v))
        l_all.append(layer[keep])
    pos = np.concatenate(pos_all)
    inside = (pos[:, 0] > -3) & (pos[:, 0] < W + 3) & (pos[:, 1] > -3) & (pos[:, 1] < H + 3)
    cat = [np.concatenate(x)[inside] for x in (w_all, s_all, v_all, l_all)]
    wts = cat[0] / cat[0][cat[1] == 0].max()
    return HAADFScene(pos[inside], wts, cat[1], cat[2], cat[3], extent_angstrom, None, region_fn, ())


# ---- particle edge with a surface spinel shell (Supp. Figs. 1, 11, 12) ---------------------------


@dataclass(frozen=True)
class ShellTruth:
    """Geometry of a simulated particle edge (Å, scene frame).

    The surface is the line ``u = surface_u0 + surface_slope * w`` (vacuum at
    smaller u); the spinel/layered interface lies ``thickness_angstrom(w)``
    further in, measured along the surface normal.
    """

    surface_u0: float
    surface_slope: float
    thickness_start_angstrom: float
    thickness_end_angstrom: float
    extent_angstrom: tuple

    def thickness_angstrom(self, w):
        """Shell thickness (normal to the surface) at the surface point of height ``w``."""
        H = self.extent_angstrom[1]
        f = np.clip(np.asarray(w, float) / H, 0.0, 1.0)
        return self.thickness_start_angstrom + f * (self.thickness_end_angstrom - self.thickness_start_angstrom)

    def region(self, u, w):
        """0 layered core, 1 spinel shell, 2 vacuum."""
        u, w = np.asarray(u, float), np.asarray(w, float)
        cos = 1.0 / np.hypot(1.0, self.surface_slope)
        depth = (u - (self.surface_u0 + self.surface_slope * w)) * cos  # along the normal
        # the surface point whose normal passes through (u, w)
        w_s = w + depth * self.surface_slope * cos
        t = self.thickness_angstrom(w_s)
        return np.where(depth < 0, 2, np.where(depth < t, 1, 0))


def shell_scene(
    extent_angstrom: tuple[float, float] = (150.0, 75.0),
    *,
    shell_nm: tuple[float, float] = (2.0, 5.0),
    surface_u0_angstrom: float = 20.0,
    surface_slope: float = 0.1,
    core_phase=None,
    shell_phase=None,
) -> tuple[HAADFScene, ShellTruth]:
    """A particle edge: vacuum, a spinel shell of varying thickness, the layered core.

    Viewed along [010]_O3' ∥ [110]_S with (001)_O3' ∥ (1-11)_S (the
    orientation relationship of Supp. Fig. 1), so the TM layers of the core
    continue as cation planes of the spinel. Columns are projected from the
    crystal core (defaults: table S1's O3' and spinel,
    ``preset_phase("lrm-pristine:O3p")`` / ``("lrm-pristine:S")``); the shell's
    (1-11) spacing (4.657 Å) is strained onto the core's layer spacing
    (4.744 Å), a coherent shell. The thickness grows linearly along the
    surface from ``shell_nm[0]`` to ``shell_nm[1]`` (2–5 nm pristine,
    5–10 nm charged in the paper).

    Returns the scene (``variant`` 0 layered, 1 spinel) and its :class:`ShellTruth`.
    """
    from layerscope.crystal import preset_phase

    core_phase = core_phase or preset_phase("lrm-pristine:O3p")
    shell_phase = shell_phase or preset_phase("lrm-pristine:S")
    truth = ShellTruth(surface_u0_angstrom, surface_slope, 10 * shell_nm[0], 10 * shell_nm[1], extent_angstrom)
    core = project_phase(core_phase, (0, 1, 0), (0, 0, 1), extent_angstrom, origin_frac=(0, 0, 0),
                         normalise=False)
    # project a taller slab of spinel, then strain it along w onto the core's layer spacing
    h_s = 1.0 / np.linalg.norm(np.linalg.inv(np.array(shell_phase.gemmi_cell.orth.mat.tolist())).T
                               @ np.array([1.0, -1.0, 1.0]))
    f = core.layer_spacing_angstrom / h_s
    tall = (extent_angstrom[0], extent_angstrom[1] / f + 4.0)
    sh = project_phase(shell_phase, (1, 1, 0), (1, -1, 1), tall, origin_frac=(0, 0, 0), normalise=False)
    sh_pos = sh.positions_angstrom.copy()
    sh_pos[:, 1] = 2.0 + (sh_pos[:, 1] - 2.0) * f
    pos_l, wt_l, sub_l, var_l = [], [], [], []
    for v, (pos, wt, sub) in enumerate(((core.positions_angstrom, core.weight, core.sublattice),
                                        (sh_pos, sh.weight, sh.sublattice))):
        keep = truth.region(pos[:, 0], pos[:, 1]) == v
        pos_l.append(pos[keep])
        wt_l.append(wt[keep])
        sub_l.append(sub[keep])
        var_l.append(np.full(keep.sum(), v))
    pos, sub, var = np.concatenate(pos_l), np.concatenate(sub_l), np.concatenate(var_l)
    wts = np.concatenate(wt_l) / core.weight.max()
    W, H = extent_angstrom
    inside = (pos[:, 0] > -3) & (pos[:, 0] < W + 3) & (pos[:, 1] > -3) & (pos[:, 1] < H + 3)
    layer = np.rint((pos[:, 1] - 2.0) / core.layer_spacing_angstrom).astype(int)
    scene = HAADFScene(pos[inside], wts[inside], sub[inside], var[inside], layer[inside], extent_angstrom,
                       None, truth.region, ())
    return scene, truth
