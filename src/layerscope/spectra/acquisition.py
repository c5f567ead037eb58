"""What the acquisition files say about how an EELS spectrum was recorded, and whether a low-loss
and a core-loss acquisition can be calibrated on each other.

:func:`spectrometer_settings` reads the Gatan DigitalMicrograph tags that rosettasciio (or
HyperSpy's ``original_metadata``) keeps: the spectrometer's energy-loss setting and drift-tube
voltage, the dispersion, exposure, the acquisition's date, start time and experiment id, the beam
energy and collection angle. Missing tags are simply absent (never guessed).

:func:`pairing_notes` compares a core-loss and a low-loss acquisition. A zero-loss calibration
moves each core-loss spectrum by the shift that puts the zero-loss peak of the *same pixel, same
moment* at 0 eV. That is exact for simultaneous DualEELS (both halves read out together, the drift
tube adding a fixed, calibrated offset to the core-loss half). When the low-loss data come from a
separate acquisition (another start time, the spectrometer at another energy-loss setting), the
shift only corrects the spectrometer zero as it was at the low-loss setting and moment: any drift
between the two acquisitions and any error of the drift-tube offset itself stay in the core-loss
axis, so its absolute energies must be checked on an edge. These notes say so.

Why this matters (measured, NMC spectrum image of ``shared/data/eels``): the core-loss
(12:02:18, drift tube 500 V, 5 s per pixel) and the zero-loss (12:08:33, drift tube 0 V, 0.5 ms)
spectrum images are two acquisitions. The zero-loss peaks sit at -3.2 eV (-2.9 to -3.3), and
exSpy's ``align_zero_loss_peak(also_align=[core_loss])`` moves the core-loss by the same amount as
:func:`layerscope.spectra.calibrate.zlp_shifts` (per pixel within 0.21 eV). After it the O-K
pre-edge peak lies at 521.4 eV and the Mn L3 maximum at 633.5 eV, 8-10 eV below where every
transition-metal oxide has them (529-531 and 640-644 eV); the Co and Ni L3 maxima (767.4 and
837.8 eV) lie 12 and 17 eV below the EELS Atlas edge energies (779, 855 eV). The offset grows with
the energy loss, and the L3-L2 separations measured on the same axis (Mn 10.2, Co 13.9, Ni 17.0 eV)
are 2-8 % smaller than the 2p spin-orbit splittings (about 11.2, 15.0, 17.3 eV): besides an offset
of the 500 V setting, the nominal 0.3 eV/channel dispersion of the core-loss seems ~2 % small.
Either way the offset is in the data (the core-loss energy scale), not in the calibration
arithmetic; ``--align-edge O-K`` puts the absolute scale right at the O-K pre-edge (Mn L3 then
at 642 eV), and the L3/L2 ratios do not depend on it (windows follow the L3 maximum).

Written by hand: a few dictionary look-ups on the tag tree rosettasciio returns.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

#: DigitalMicrograph tag (under ``ImageTags``) -> key of :func:`spectrometer_settings`.
_TAGS = {
    ("EELS Spectrometer", "Drift tube voltage (V)"): "drift_tube_V",
    ("EELS Spectrometer", "Drift tube enabled"): "drift_tube_enabled",
    ("EELS Spectrometer", "Energy loss (eV)"): "energy_loss_setting_eV",
    ("EELS Spectrometer", "Dispersion (eV/ch)"): "dispersion_eV_per_channel",
    ("EELS Spectrometer", "HT offset (V)"): "ht_offset_V",
    ("EELS Spectrometer", "Instrument name"): "spectrometer",
    ("EELS", "Acquisition", "Exposure (s)"): "exposure_s",
    ("EELS", "Experimental Conditions", "Collection semi-angle (mrad)"): "collection_semiangle_mrad",
    ("EELS", "Experimental Conditions", "Convergence semi-angle (mrad)"): "convergence_semiangle_mrad",
    ("SI", "Acquisition", "Date"): "date",
    ("SI", "Acquisition", "Start time"): "start_time",
    ("SI", "Acquisition", "End time"): "end_time",
    ("Meta Data", "Experiment keywords", "TagGroup0", "Experiment ID"): "experiment_id",
    ("Microscope Info", "Voltage"): "beam_energy_V",
    ("DataBar", "Acquisition Date"): "date",
    ("DataBar", "Acquisition Time"): "start_time",
}


def _image_tags(original_metadata) -> dict | None:
    """The ``ImageTags`` group of the image holding the data (the largest one in ``ImageList``)."""
    om = original_metadata
    if hasattr(om, "as_dictionary"):
        om = om.as_dictionary()
    if not isinstance(om, dict):
        return None
    images = om.get("ImageList")
    if not isinstance(images, dict):
        return om.get("ImageTags") if isinstance(om.get("ImageTags"), dict) else None
    best, size = None, -1
    for grp in images.values():
        if not isinstance(grp, dict) or not isinstance(grp.get("ImageTags"), dict):
            continue
        dims = (grp.get("ImageData") or {}).get("Dimensions") or {}
        n = 1
        for v in dims.values():
            try:
                n *= int(v)
            except (TypeError, ValueError):
                pass
        if n > size:
            best, size = grp["ImageTags"], n
    return best


def spectrometer_settings(original_metadata) -> dict:
    """Acquisition settings found in DM tags (``{}`` if none): see the module's ``_TAGS``."""
    tags = _image_tags(original_metadata)
    if not tags:
        return {}
    out = {}
    sat = ((tags.get("EELS") or {}).get("Acquisition") or {}).get("Saturation fraction")
    if sat is not None:
        try:
            v = np.asarray(sat, float).ravel()
            v = v[np.isfinite(v)]
            if len(v):
                out["saturation_fraction_max"] = float(v.max())
        except (TypeError, ValueError):
            pass
    for path, key in _TAGS.items():
        node = tags
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if node is None or isinstance(node, dict) or key in out:
            continue
        out[key] = node.item() if hasattr(node, "item") else node
    return out


def _start(s: dict) -> datetime | None:
    try:
        return datetime.strptime(f"{s['date']} {s['start_time']}", "%m/%d/%Y %I:%M:%S %p")
    except (KeyError, ValueError, TypeError):
        return None


def pairing_notes(core: dict, low: dict) -> list[str]:
    """Warnings about calibrating the core-loss acquisition ``core`` on the low-loss ``low``.

    Both are :func:`spectrometer_settings` dicts; an empty one gives no note (nothing known).
    """
    if not core or not low:
        return []
    notes = []
    t0, t1 = _start(core), _start(low)
    separate = (core.get("experiment_id") and low.get("experiment_id")
                and core["experiment_id"] != low["experiment_id"]) or (t0 and t1 and t0 != t1)
    if separate:
        when = (f"started {abs((t1 - t0).total_seconds()) / 60:.1f} min "
                f"{'after' if t1 > t0 else 'before'} the core-loss" if t0 and t1 else
                "another experiment")
        ec, el = core.get("energy_loss_setting_eV"), low.get("energy_loss_setting_eV")
        dc, dl = core.get("drift_tube_V"), low.get("drift_tube_V")
        setting = (f" at spectrometer energy-loss setting {el:g} eV (drift tube {dl:g} V) against "
                   f"{ec:g} eV ({dc:g} V) for the core-loss" if None not in (ec, el, dc, dl) else "")
        notes.append(
            f"the low-loss data are a separate acquisition ({when}){setting}, not simultaneous "
            f"DualEELS: the zero-loss shift corrects the spectrometer zero as it was then; energy "
            f"drift between the acquisitions and any error of the drift-tube/energy-loss offset of "
            f"the core-loss stay in its axis (check the absolute scale on an edge: --align-edge); "
            f"per-pixel shifts may also belong to slightly different places if the specimen drifted")
    if low.get("saturation_fraction_max", 0.0) >= 0.95:
        notes.append(f"the low-loss acquisition reached {low['saturation_fraction_max']:.0%} of the detector's "
                     f"saturation (DM tag 'Saturation fraction'): a clipped zero-loss peak makes t/λ too "
                     f"large and Fourier-ratio deconvolution over-correct")
    dc, dl = core.get("dispersion_eV_per_channel"), low.get("dispersion_eV_per_channel")
    if dc and dl and abs(dc - dl) > 1e-6 * max(abs(dc), abs(dl)):
        notes.append(f"dispersions differ ({dc:g} eV/ch core-loss, {dl:g} eV/ch low-loss): the "
                     f"zero-loss position is taken on the low-loss's own axis (in eV), as it should")
    return notes
