"""The crystal core: phases with mixed-occupancy sites, presets, settings and CIF.

>>> from layerscope.crystal import preset_phase, d_inter_layer
>>> round(d_inter_layer(preset_phase("lrm-pristine:O3p")), 3)
4.744
"""

from layerscope.crystal.cif import read_cif, write_cif
from layerscope.crystal.phase import ExpandedSites, Phase, Site, metric_tensor, space_group, symmetry_operations
from layerscope.crystal.presets import Model, list_presets, preset, preset_phase
from layerscope.crystal.scattering import atomic_weight, b_coh_fm, normalise_species
from layerscope.crystal.settings import (
    d_inter_layer, d_intra_layer, d_spacing, o3_cell_from_o3p, o3_to_o3p_indices, o3p_cell_from_o3,
    o3p_to_o3_indices,
)
from layerscope.crystal.load import load_phases

__all__ = [
    "Phase", "Site", "ExpandedSites", "Model", "read_cif", "write_cif", "preset", "preset_phase", "list_presets",
    "b_coh_fm", "atomic_weight", "normalise_species", "metric_tensor", "space_group", "symmetry_operations",
    "d_spacing", "d_inter_layer", "d_intra_layer", "o3_to_o3p_indices", "o3p_to_o3_indices",
    "o3_cell_from_o3p", "o3p_cell_from_o3", "load_phases",
]
