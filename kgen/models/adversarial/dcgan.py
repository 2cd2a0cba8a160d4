"""Deep convolutional GAN (Radford, Metz & Chintala 2016).

The cross-entropy game of Goodfellow et al. (2014) (see `gan.py`) played by
convolutional players built to the DCGAN guidelines: strided convolutions
instead of pooling, transposed convolutions to upsample, BatchNorm in both
players (not on the generator's output or the discriminator's input layer),
ReLU in the generator with a tanh (or sigmoid) output, LeakyReLU(0.2) in the
discriminator, no hidden fully connected layers, weights from N(0, 0.02),
and Adam with learning rate 2e-4 and beta_1 = 0.5.

The paper's latent-space walks and vector arithmetic are methods of every
kgen GAN: `interpolate(z0, z1, num_steps)` and `latent_arithmetic(a, b, c)`.

#### References

- Radford, A., Metz, L. & Chintala, S. Unsupervised Representation Learning
  with Deep Convolutional Generative Adversarial Networks. ICLR 2016.
- White, T. Sampling Generative Networks. arXiv:1609.04468, 2016 (slerp).
"""

from kgen.models.adversarial.gan import _StandardGAN
from kgen.registry import register_model


@register_model("dcgan", family="adversarial",
                tiny=dict(latent_dim=4, generator_filters=(8, 4), discriminator_filters=(4, 8)))
class DCGAN(_StandardGAN):
    """Deep convolutional GAN (Radford et al. 2016): transposed-conv generator, strided-conv discriminator, BatchNorm.

    Logs `d_loss`, `g_loss`, `d_real` and `d_fake` (the discriminator's mean
    probability of "real" on real and generated batches).

    Args:
        input_shape: `(H, W, C)`, H and W divisible by `2 ** len(filters)`.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None (see the conditional GAN, "cgan").
        latent_dim: size of z ~ N(0, I).
        generator_filters: channels of the generator's feature maps, smallest
            map first: `(128, 64)` maps z to 2x2x128, 4x4x64, then 8x8xC for
            8x8 images.
        discriminator_filters: channels of the discriminator's stride-2
            convolutions, e.g. `(64, 128)`.
        kernel_size: convolution kernel size (4, as in common DCGAN code;
            the paper used 5).
        loss: the generator's loss, "non_saturating" or "minimax".
        output_activation: "tanh" with `data.scale = "symmetric"` (the
            paper), "sigmoid" for [0, 1] images, or "auto" (sigmoid).

    Example:

    >>> import kgen
    >>> gan = kgen.build_model("dcgan", input_shape=(8, 8, 1), latent_dim=32)
    >>> gan.compile()
    >>> _ = gan.fit(kgen.load_dataset("digits").x, epochs=1, verbose=0)
    >>> z = gan.draw_noise(2, seed=0)[0]
    >>> gan.interpolate(z[0], z[1], num_steps=5).shape
    (5, 8, 8, 1)
    """

    architecture = "conv"

    def __init__(self, input_shape, num_levels=None, num_classes=None, latent_dim=100, generator_filters=(128, 64),
                 discriminator_filters=(64, 128), kernel_size=4, loss="non_saturating", output_activation="auto",
                 **kwargs):
        super().__init__(input_shape, num_levels, num_classes, latent_dim, loss, output_activation, **kwargs)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        self.kernel_size = int(kernel_size)
        self._build_conv(self.generator_filters, self.discriminator_filters, self.kernel_size)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator_filters": list(self.generator_filters),
            "discriminator_filters": list(self.discriminator_filters),
            "kernel_size": self.kernel_size,
        })
        return config
