"""The print door: the DICOM Basic Print SCP, its layout, rendering and spool."""
