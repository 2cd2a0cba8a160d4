"""Latent-variable models: the VAE family."""

from kgen.models.latent.vae import VAE

__all__ = ["VAE"]
