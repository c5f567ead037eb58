"""Forward simulators with ground truth (operando TOF series, HAADF images, 4D-STEM scans, spectra)."""
