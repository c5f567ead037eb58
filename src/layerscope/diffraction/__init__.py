"""Diffraction: reflection lists, structure factors, the TOF profile and the powder-pattern model.

>>> from layerscope.crystal import preset_phase
>>> from layerscope.diffraction import reflections
>>> r = reflections(preset_phase("Al"), d_min=1.0)
>>> r.hkl[0].tolist(), int(r.multiplicity[0])
([1, 1, 1], 8)
"""

from layerscope.diffraction.background import chebyshev_background, chebyshev_basis
from layerscope.diffraction.fractions import molar_fractions, scales_from_weight_fractions, weight_fractions
from layerscope.diffraction.instrument import TOFInstrument, gppd_like, read_instprm, write_instprm
from layerscope.diffraction.pattern import (
    PatternModel, PatternResult, build_model, compute_pattern, initial_params, make_pattern_function, reflection_table,
)
from layerscope.diffraction.readers import (
    PowderData, read_fullprof, read_gsas, read_powder, read_xye, write_gsas_fxye,
)
from layerscope.diffraction.reflections import ReflectionList, d_spacings, reflections
from layerscope.diffraction.structure_factors import structure_factors
from layerscope.diffraction.tof_profile import tof_from_d, tof_peak

__all__ = [
    "ReflectionList", "reflections", "d_spacings", "structure_factors", "tof_from_d", "tof_peak",
    "TOFInstrument", "read_instprm", "write_instprm", "gppd_like", "PatternModel", "PatternResult",
    "build_model", "initial_params", "make_pattern_function", "compute_pattern", "reflection_table", "chebyshev_basis",
    "chebyshev_background", "weight_fractions", "molar_fractions", "scales_from_weight_fractions",
    "PowderData", "read_powder", "read_gsas", "read_fullprof", "read_xye", "write_gsas_fxye",
]
