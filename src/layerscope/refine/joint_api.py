"""``layerscope.refine_joint``: several powder histograms, each with its own instrument file, refined
jointly against one set of structures, from the notebook.

The histograms share each phase's cell, coordinates and B_iso; each keeps its own scale,
background, instrument and sample terms (``hist{i}.…``, ``PHASE@hist{i}.…``, i = place in the list
given): constant-wavelength histograms alone (X-ray and/or neutron) by
:func:`layerscope.refine.cw_run.refine_cw_files` (the engine of ``layerscope refine D1 D2 …
--instprm I1 I2 …``), several TOF banks or TOF and CW histograms together by
:func:`layerscope.refine.joint_run.refine_joint_files`. A pattern whose instrument file is of the
other kind stops with an :class:`~layerscope.InputError` naming both files.
"""

from __future__ import annotations

import os

from layerscope._errors import InputError

__all__ = ["refine_joint"]


def refine_joint(data, *, instruments, phases, strategy=None, limits=None, n_background=6, cycles=None,
                 texture=None, anomalous=None, scattering=None, prm_reading="gsas2", march_dollase=None,
                 progress=None, log=None):
    """Joint Rietveld refinement of several histograms (CW X-ray/neutron, TOF banks) against one structure.

    Parameters
    ----------
    data : list of paths
        The patterns (CW: GSAS raw, ``.xye``/``.xy``/``.csv`` in 2θ, ``.xrdml``; TOF: ``.gsa``/``.fxye``,
        ``.xye``), histogram i = data[i].
    instruments : list of paths
        One instrument file per pattern, in the same order (GSAS-II ``.instprm``, GSAS ``.prm``).
    phases : str, Path, Phase, or a list of them or of (Phase, scale) pairs
        Preset names, CIF paths or :class:`~layerscope.crystal.Phase` objects.
    strategy : None, path or Strategy, optional
        None (GSAS-II's usual order: scales + background, cells, profile + sample, atoms
        [, texture]), a strategy TOML path, or a :class:`~layerscope.refine.strategy.Strategy`.
    limits : tuple of float or list of tuples, optional
        None, one (low, high) 2θ range in degrees for all, or one per histogram (µs for a TOF bank).
    n_background : int or list of int
        Chebyshev background terms, one number or one per histogram.
    cycles : int, optional
        Maximum least-squares cycles per stage (overrides the strategy).
    texture : int, optional
        Spherical-harmonics order for the Bragg–Brentano histograms (adds a texture stage).
    anomalous : dict, optional
        ``{element: (f′, f″)}`` in electrons for the X-ray histograms (default gemmi's Cromer–Liberman).
    scattering : str, optional
        Neutron scattering-length table name (default that of the instrument files).
    prm_reading : {"gsas2", "as_written"}
        Read GSAS ``.prm`` files as GSAS-II does, or as written.
    march_dollase : dict, optional
        ``{phase: (h, k, l)}`` March–Dollase preferred-orientation axes.
    progress : callable, optional
        ``progress(stage_name, FitResult, [FitStats per histogram])`` after each stage.
    log : callable, optional
        ``log(str)`` for notes (default: silent).

    Returns
    -------
    CW histograms only: :class:`~layerscope.refine.cw_run.CWRun`; with TOF banks:
    :class:`~layerscope.refine.joint_run.JointRun`. Both give ``stages`` (name, FitResult,
    per-histogram FitStats), ``rwp``, ``rwp_by_histogram``, ``value(name)``/``esd(name)``,
    ``warnings``, ``converged``, ``histograms`` (what was read and how); a CWRun also the refined
    ``phases`` and ``conventions``. ``texture``, ``anomalous``, ``march_dollase`` and ``scattering``
    apply to CW-only refinements.

    Examples
    --------
    >>> import layerscope as ls                                                   # doctest: +SKIP
    >>> run = ls.refine_joint(["PBSO4.XRA", "PBSO4.CWN"], instruments=["INST_XRY.PRM", "inst_d1a.prm"],
    ...                       phases="PbSO4-Wyckoff.cif", limits=[(16, 110), (19, 120)])  # doctest: +SKIP
    >>> run.rwp_by_histogram                                                      # doctest: +SKIP
    """
    from layerscope.refine.cw_run import refine_cw_files, route

    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(instruments, (str, os.PathLike)):
        instruments = [instruments]
    data, instruments = [os.fspath(d) for d in data], [os.fspath(i) for i in instruments]
    kind = route(data, instruments)
    if kind == "tof":
        raise InputError(f"{data[0]} with {instruments[0]} is one time-of-flight bank: refine it with "
                         "layerscope.refine(data, instrument=..., phases=...)")
    if isinstance(phases, (str, os.PathLike)):
        phases = [phases]
    if limits is not None and len(limits) == 2 and all(isinstance(v, (int, float)) for v in limits):
        limits = [tuple(limits)]
    if kind == "joint":
        from layerscope.refine.joint_run import refine_joint_files

        given = [k for k, v in (("texture", texture), ("anomalous", anomalous), ("march_dollase", march_dollase),
                                ("scattering", scattering)) if v]
        if given:
            raise InputError(f"{', '.join(given)}: not available yet when time-of-flight banks are among the "
                             f"histograms ({', '.join(data)})")
        return refine_joint_files(data, instruments, list(phases), strategy=strategy, limits=limits,
                                  n_background=n_background, cycles=cycles, prm_reading=prm_reading,
                                  progress=progress, log=log or (lambda m: None))
    return refine_cw_files(data, instruments, list(phases), strategy=strategy, limits=limits,
                           n_background=n_background, cycles=cycles, texture=texture, anomalous=anomalous,
                           scattering=scattering, prm_reading=prm_reading, progress=progress,
                           log=log or (lambda m: None), march_dollase=march_dollase)
