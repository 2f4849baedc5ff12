"""The worklist door: Modality Worklist C-FIND, Verification (and MPPS)."""
