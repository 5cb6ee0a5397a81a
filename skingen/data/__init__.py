"""Data path: source readers, manifest, lesion-grouped split, phantom dataset, HDF5 shards."""
