"""Conventions of a TOF Rietveld refinement where respected codes differ — explicit and recorded.

Two codes given the same file can land in different places because they make different, equally
defensible choices. layerscope offers each choice, defaults to the one of the code whose parameter
files the user gave (a GSAS-II ``.instprm`` was calibrated with GSAS-II's profile; a FullProf
``.pcr``/``.irf`` with FullProf's), and writes the choice into ``summary.json``, the CIFs and the log.

=============  ===========================================  ============================================
option         ``"gsas2"`` (GSAS-II)                         ``"exact"`` / FullProf-style
=============  ===========================================  ============================================
lorentz        GSAS-II's EPSVOIGT: both Lorentzian tails     the exact convolution of the back-to-back
               on the rise-side sign (``tof_profile``)       exponentials with the Lorentzian (``exact``)
scattering     ILL Neutron Data Booklet 2003 (``gsas2``)     Sears 1992 (``sears1992``)
reflections    d ≥ low TOF limit / difC (``gsas2``)           down to 3 % below the first point, so the
                                                             tails of peaks outside enter (``tails``)
zero_counts    points with y ≤ 0 get weight 0 (``exclude``)   fitted with σ = 1 count (``fit``)
start_broad.   1 µm size, 1000·10⁻⁶ microstrain, Lorentzian  the same (``gsas2``) or none (``none``)
background     Chebyshev of the first kind over the fitted range (``chebyshev-1``; both codes)
=============  ===========================================  ============================================

Points whose file gives σ = 0 always carry weight 0 (w = 1/σ² is undefined there; GSAS-II does the same).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from layerscope.crystal.scattering import SCATTERING_TABLES

__all__ = ["Conventions", "GSAS2", "FULLPROF", "LAYERSCOPE", "PRESETS", "conventions_for", "OPTIONS"]

#: allowed values of each convention
OPTIONS = {
    "lorentz": ("exact", "gsas2"),
    "scattering": SCATTERING_TABLES,
    "reflections": ("tails", "gsas2"),
    "zero_counts": ("fit", "exclude"),
    "start_broadening": ("gsas2", "none"),
    "background": ("chebyshev-1",),
}


@dataclass(frozen=True)
class Conventions:
    """The conventions one refinement used, and why (``origin``)."""

    lorentz: str = "exact"
    scattering: str = "sears1992"
    reflections: str = "tails"
    zero_counts: str = "fit"
    start_broadening: str = "gsas2"
    background: str = "chebyshev-1"
    #: where the choice came from: "GSAS-II .instprm", "FullProf .pcr", "strategy file", "user", …
    origin: str = "layerscope default"

    def __post_init__(self):
        for key, allowed in OPTIONS.items():
            v = getattr(self, key)
            if v not in allowed:
                raise ValueError(f"convention {key} must be one of {', '.join(allowed)}, got {v!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def with_options(self, origin: str | None = None, **options) -> "Conventions":
        """A copy with the given options set (None values ignored); unknown names raise."""
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown convention(s) {', '.join(sorted(unknown))}; known: {', '.join(OPTIONS)}")
        opts = {k: v for k, v in options.items() if v is not None}
        if not opts:
            return self
        return replace(self, **opts, origin=origin or self.origin)

    def describe(self) -> str:
        return (f"conventions ({self.origin}): TOF Lorentzian {self.lorentz}, scattering lengths "
                f"{self.scattering}, reflections {self.reflections}, zero counts {self.zero_counts}, "
                f"starting broadening {self.start_broadening}, background {self.background}")


GSAS2 = Conventions("gsas2", "gsas2", "gsas2", "exclude", "gsas2", origin="GSAS-II")
FULLPROF = Conventions("exact", "sears1992", "tails", "fit", "none", origin="FullProf")
LAYERSCOPE = Conventions(origin="layerscope default")
#: named sets: "gsas2", "fullprof", and "layerscope" (the conventions of layerscope's own simulators:
#: exact profile, Sears lengths, reflection tails, zero counts fitted, no sample broadening to start from)
PRESETS = {"gsas2": GSAS2, "fullprof": FULLPROF,
           "layerscope": replace(LAYERSCOPE, start_broadening="none", origin="layerscope's simulators")}


def conventions_for(instrument_path=None) -> Conventions:
    """Default conventions for an instrument file: GSAS-II's for ``.instprm``/``.prm``, FullProf's
    for ``.irf``/``.pcr``, layerscope's (exact profile, Sears lengths) otherwise."""
    if instrument_path is None:
        return LAYERSCOPE
    suffix = str(instrument_path).lower().rsplit(".", 1)[-1]
    if suffix in ("instprm", "prm", "iparm"):
        return replace(GSAS2, origin=f"GSAS-II instrument file {instrument_path}")
    if suffix in ("irf", "pcr"):
        return replace(FULLPROF, origin=f"FullProf file {instrument_path}")
    return LAYERSCOPE
