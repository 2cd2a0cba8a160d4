"""Adversarial models: GAN, DCGAN, conditional GAN, WGAN-GP, InfoGAN, BEGAN.

Each trains through plain `model.compile()` + `model.fit(x)` on TensorFlow,
JAX and PyTorch: the one adversarial step lives in `base.py`, the per-backend
adapter in `kgen.backend.adversarial`.
"""

from kgen.models.adversarial.base import AdversarialModel, AdversarialOptimizer
from kgen.models.adversarial.began import BEGAN
from kgen.models.adversarial.bgan import BGAN
from kgen.models.adversarial.bigan import BiGAN
from kgen.models.adversarial.cgan import ConditionalGAN
from kgen.models.adversarial.cycle_gan import CycleGAN
from kgen.models.adversarial.dcgan import DCGAN
from kgen.models.adversarial.gan import GAN
from kgen.models.adversarial.info_gan import InfoGAN
from kgen.models.adversarial.pix2pix import Pix2Pix
from kgen.models.adversarial.semi_supervised_gan import SemiSupervisedGAN
from kgen.models.adversarial.wgan_gp import WGANGP

__all__ = ["GAN", "DCGAN", "ConditionalGAN", "WGANGP", "InfoGAN", "BEGAN", "SemiSupervisedGAN", "BiGAN", "Pix2Pix", "CycleGAN", "BGAN", "AdversarialModel", "AdversarialOptimizer"]
