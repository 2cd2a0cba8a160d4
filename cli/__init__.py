"""The `kgen` command (installed as `kgen.cli`, never as a top-level `cli`)."""
