"""Small pretrained checkpoints, each beside the recipe that made it (installed as `kgen.saved_models`)."""
