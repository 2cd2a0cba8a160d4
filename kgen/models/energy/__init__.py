"""Energy-based models: restricted Boltzmann machines, trained by contrastive divergence, scored with AIS."""

from kgen.models.energy.rbm import RBM

__all__ = ["RBM"]
