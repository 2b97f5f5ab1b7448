"""anymodal-ecg: ECG-style [leads, samples] recordings as .npy or .csv, as an anymodal modality plugin."""

__version__ = "0.1.0"
