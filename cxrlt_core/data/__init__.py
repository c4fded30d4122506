"""Data: manifests (CSV -> ids + label matrix), radiograph I/O and preprocessing, transforms, samplers."""
