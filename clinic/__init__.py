"""clinic: a DICOM Modality Worklist, MPPS and Basic Print service for small clinics."""

__version__ = "0.1.0"
