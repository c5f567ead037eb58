"""Column refinement beside Atomap's 2D-Gaussian refinement on the real SrTiO3 ADF image."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from layerscope.stem import find_columns, read_image, refine_columns

REPO = Path(__file__).resolve().parents[1]
STO = REPO.parent / "shared" / "data" / "atomap-sto-adf" / "test_ADF_cropped.hdf5"


@pytest.mark.peer
def test_positions_agree_with_atomap_2d_gaussian():
    if not STO.is_file():
        pytest.skip(f"real data not present: {STO}")
    am = pytest.importorskip("atomap.api")
    img = read_image(STO)
    start = find_columns(img.data, separation_px=0.15 / img.pixel_size_nm)
    assert len(start) == 117
    sub = am.Sublattice(start, image=img.data)
    sub.find_nearest_neighbors()
    sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4)
    ref = np.stack([sub.x_position, sub.y_position], axis=1)
    ours = refine_columns(img.data, start).positions_px
    d, j = cKDTree(ref).query(ours)
    assert np.all(d < 1.0)
    # drop the columns cut by the image edge (their fit windows differ by construction)
    ny, nx = img.data.shape
    inner = (ours[:, 0] > 12) & (ours[:, 0] < nx - 13) & (ours[:, 1] > 12) & (ours[:, 1] < ny - 13)
    rms = np.sqrt(np.mean(np.sum((ours[inner] - ref[j[inner]]) ** 2, axis=1) / 2))
    assert rms < 0.1  # px, per axis
