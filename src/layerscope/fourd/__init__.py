"""4D-STEM: readers, virtual detectors, template libraries, phase/orientation/twin maps.

>>> from layerscope.fourd import paper_detector
>>> round(paper_detector().disc_radius_px, 2)
1.54
"""

from layerscope.fourd.calibrate import Calibration, calibrate_pattern, calibrate_scan
from layerscope.fourd.detector import DetectorGeometry, paper_detector, render_rings, render_spots
from layerscope.fourd.index import FIELDS, Matcher, index_patterns, misorientation_deg, prepare_matcher
from layerscope.fourd.io import Scan4D, read_scan, write_scan
from layerscope.fourd.library import TemplateLibrary, beam_directions, build_library
from layerscope.fourd.maps import OrientationMaps, index_scan, ipf_colours, twin_map, write_maps
from layerscope.fourd.peaks import BraggPeaks, index_peaks, read_bragg_peaks
from layerscope.fourd.strain import StrainMaps, find_disks, strain_map
from layerscope.fourd.virtual import annular_mask, centre_of_mass, disc_mask, virtual_image

__all__ = [
    "DetectorGeometry", "paper_detector", "render_spots", "render_rings", "FIELDS", "Matcher", "index_patterns",
    "misorientation_deg", "prepare_matcher", "Scan4D", "read_scan", "write_scan", "TemplateLibrary",
    "beam_directions", "build_library", "OrientationMaps", "index_scan", "ipf_colours", "twin_map", "write_maps",
    "annular_mask", "centre_of_mass", "disc_mask", "virtual_image", "Calibration", "calibrate_pattern",
    "calibrate_scan", "BraggPeaks", "index_peaks", "read_bragg_peaks", "StrainMaps", "find_disks", "strain_map",
]
