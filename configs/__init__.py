"""Bundled TOML recipes, one per model x data set (installed as `kgen.configs`)."""
