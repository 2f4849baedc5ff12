"""DICOM plumbing shared by the worklist and print doors: guarded listeners, reactors,
status datasets and checks on received data sets."""
