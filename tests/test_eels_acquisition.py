"""Acquisition settings from DM tags and the low-loss / core-loss pairing notes (synthetic tags)."""

from layerscope.spectra.acquisition import pairing_notes, spectrometer_settings


def _om(dt, loss, start, disp=0.3, eid=None):
    tags = {"EELS Spectrometer": {"Drift tube voltage (V)": dt, "Energy loss (eV)": loss,
                                  "Dispersion (eV/ch)": disp},
            "SI": {"Acquisition": {"Date": "1/2/2020", "Start time": start}}}
    if eid:
        tags["Meta Data"] = {"Experiment keywords": {"TagGroup0": {"Experiment ID": eid}}}
    return {"ImageList": {"TagGroup0": {"ImageData": {"Dimensions": {"Data0": 8}}, "ImageTags": {}},
                          "TagGroup1": {"ImageData": {"Dimensions": {"Data0": 2048, "Data1": 4}},
                                        "ImageTags": tags}}}


def test_settings_read_from_the_data_image_not_the_thumbnail():
    s = spectrometer_settings(_om(500.0, 500.0, "10:00:00 AM"))
    assert s["drift_tube_V"] == 500.0 and s["energy_loss_setting_eV"] == 500.0
    assert s["start_time"] == "10:00:00 AM" and "exposure_s" not in s     # absent, not guessed
    assert spectrometer_settings({}) == {} and spectrometer_settings(None) == {}


def test_separate_acquisitions_are_named_simultaneous_ones_are_not():
    core = spectrometer_settings(_om(500.0, 500.0, "10:00:00 AM"))
    low = spectrometer_settings(_om(0.0, 0.0, "10:06:30 AM"))
    notes = pairing_notes(core, low)
    assert len(notes) == 1 and "separate acquisition (started 6.5 min after the core-loss)" in notes[0]
    assert "setting 0 eV (drift tube 0 V) against 500 eV (500 V)" in notes[0]
    # DualEELS: one experiment, one start time, the drift tube differs by design -> no note
    dual = spectrometer_settings(_om(0.0, 0.0, "10:00:00 AM", eid="SI_1"))
    assert pairing_notes(spectrometer_settings(_om(500.0, 500.0, "10:00:00 AM", eid="SI_1")), dual) == []
    assert pairing_notes({}, low) == [] and pairing_notes(core, {}) == []
    d = pairing_notes(core, spectrometer_settings(_om(0.0, 0.0, "10:00:00 AM", disp=0.05)))
    assert len(d) == 1 and "dispersions differ (0.3 eV/ch core-loss, 0.05 eV/ch low-loss)" in d[0]


def test_saturated_low_loss_is_named():
    om = _om(0.0, 0.0, "10:06:30 AM")
    om["ImageList"]["TagGroup1"]["ImageTags"]["EELS"] = {"Acquisition": {"Saturation fraction": [float("inf"), 0.4, 0.97]}}
    low = spectrometer_settings(om)
    assert low["saturation_fraction_max"] == 0.97
    notes = pairing_notes(spectrometer_settings(_om(500.0, 500.0, "10:06:30 AM")), low)
    assert len(notes) == 1 and "reached 97% of the detector's saturation" in notes[0]
