"""Spectroscopy: EELS edge ratios (Mn L3/L2 → valence, O-K pre-edge), EDS K lines, sXAS."""

from layerscope.spectra.calibration import MN_L3L2_TAN2012, ValenceCalibration
from layerscope.spectra.eels import (fit_power_law, line_profile, o_k_pre_edge,
                                     subtract_background, white_line_ratio)
from layerscope.spectra.io import Spectrum, read_spectrum

__all__ = ["MN_L3L2_TAN2012", "Spectrum", "ValenceCalibration", "fit_power_law", "line_profile",
           "o_k_pre_edge", "read_spectrum", "subtract_background", "white_line_ratio"]
