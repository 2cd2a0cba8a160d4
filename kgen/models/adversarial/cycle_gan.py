"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017).

Two generators, G: A -> B and F: B -> A, and two discriminators, D_B (real
b vs G(a)) and D_A (real a vs F(b)), trained on two *unrelated* sets of
images. With least-squares adversarial losses (Mao et al. 2017), as in the
paper:

    d_loss = 1/2 E[(D_B(b) - 1)^2 + D_B(G(a))^2] + 1/2 E[(D_A(a) - 1)^2 + D_A(F(b))^2]
    g_loss = E[(D_B(G(a)) - 1)^2] + E[(D_A(F(b)) - 1)^2]
             + lambda   * (E|F(G(a)) - a|_1 + E|G(F(b)) - b|_1)     cycle consistency
             + lambda_i * (E|G(b) - b|_1 + E|F(a) - a|_1)           identity

with lambda = 10 and lambda_i = 0.5 * lambda (the paper's identity weight).
Cycle consistency is what ties a translation to its input when no pairs
exist; the identity term keeps G from changing what is already in B.

The two generators are one player (one optimizer over both), the two
discriminators the other, so the composite `AdversarialOptimizer` of
`base.py` and its one adversarial step serve unchanged: `generate` returns
both translations `(G(a), F(b))`.

Networks, scaled down to fit small images:

- **ResNet generator** (Johnson et al. 2016, as in the paper): a 7x7 stride-1
  convolution, `downsamples` stride-2 convolutions, `res_blocks` residual
  blocks (two 3x3 convolutions), as many stride-2 transposed convolutions
  back, a 7x7 convolution to the image; instance norm and ReLU. Zero
  ("same") padding instead of the paper's reflection padding.
- **PatchGAN discriminators** on single images (see `pix2pix.py`), instance
  norm.
- Not implemented: the paper's history buffer of 50 generated images for the
  discriminators (each step uses the current fakes) and its learning-rate
  decay schedule.

#### References

- Zhu, J.-Y., Park, T., Isola, P. & Efros, A. A. Unpaired Image-to-Image
  Translation using Cycle-Consistent Adversarial Networks. ICCV 2017.
- Mao, X. et al. Least Squares Generative Adversarial Networks. ICCV 2017.
"""

from keras import ops

from kgen.errors import DataError
from kgen.models.adversarial.translation import TranslationModel
from kgen.models.adversarial.translation_networks import (
    auto_patch_filters,
    check_translation_norm,
    patch_discriminator,
    resnet_generator,
)
from kgen.registry import register_model


@register_model("cycle_gan", family="adversarial",
                tiny=dict(generator_filters=4, res_blocks=1, discriminator_filters=(4,)),
                tiny_dataset="digits_bold")
class CycleGAN(TranslationModel):
    """CycleGAN (Zhu et al. 2017): two generators and two PatchGANs, least-squares, cycle and identity losses.

    Logs `d_loss` (= `d_a` + `d_b`), `g_loss`, the generators' adversarial
    term `g_adv`, the cycle-consistency error `cycle` (mean of the two L1
    reconstruction errors) and the identity error `identity` (mean of the two).

    Args:
        input_shape: shape of one image `(H, W, C)`; both domains share it.
        num_levels: grey levels of the data (unused by the networks).
        num_classes: must be None.
        generator_filters: channels of the generators' first convolution.
        downsamples: stride-2 convolutions in each generator (paper: 2).
        res_blocks: residual blocks in each generator (paper: 6 at 128x128, 9 at 256x256).
        discriminator_filters: channels of the PatchGANs' strided layers, or
            None for (64, 128, 256) cut to fit the image (8x8: (64,)).
        norm: "instance" (the paper), "batch" or "none".
        cycle_weight: lambda, the weight of cycle consistency (paper: 10).
        identity_weight: the identity loss weight as a fraction of lambda
            (paper: 0.5, i.e. 5); 0 turns it off.
        output_activation: "sigmoid", "tanh" or "auto".

    Example:

    >>> import kgen
    >>> data = kgen.load_dataset("digits_bold")
    >>> model = kgen.build_model("cycle_gan", input_shape=(8, 8, 1), generator_filters=8, res_blocks=1)
    >>> model.compile()
    >>> n = min(len(data.x), len(data.x_source))
    >>> _ = model.fit((data.x_source[:n], data.x[:n]), epochs=1, batch_size=32, verbose=0)
    >>> model.translate(data.x_source[:4], direction="a2b").shape
    (4, 8, 8, 1)
    """

    needs_pairs = False
    directions = {"translate_a2b": "a2b", "translate_b2a": "b2a"}
    metric_names = ("d_loss", "g_loss", "d_a", "d_b", "g_adv", "cycle", "identity")

    def __init__(self, input_shape, num_levels=None, num_classes=None, generator_filters=64, downsamples=1,
                 res_blocks=6, discriminator_filters=None, norm="instance", cycle_weight=10.0, identity_weight=0.5,
                 output_activation="auto", **kwargs):
        super().__init__(input_shape, num_levels, num_classes, output_activation, **kwargs)
        self.generator_filters = int(generator_filters)
        self.downsamples = int(downsamples)
        self.res_blocks = int(res_blocks)
        self.norm = check_translation_norm(norm)
        self.discriminator_filters = (auto_patch_filters(self.data_shape) if discriminator_filters is None
                                      else tuple(int(f) for f in discriminator_filters))
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        # === Layers ===
        args = (self.data_shape, self.generator_filters, self.downsamples, self.res_blocks, self.norm,
                self.output_activation)
        self.generator_ab = resnet_generator(*args, name="generator_ab")
        self.generator_ba = resnet_generator(*args, name="generator_ba")
        self.discriminator_a = patch_discriminator(self.data_shape, self.discriminator_filters, self.norm,
                                                   name="discriminator_a")
        self.discriminator_b = patch_discriminator(self.data_shape, self.discriminator_filters, self.norm,
                                                   name="discriminator_b")
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator_filters": self.generator_filters,
            "downsamples": self.downsamples,
            "res_blocks": self.res_blocks,
            "discriminator_filters": list(self.discriminator_filters),
            "norm": self.norm,
            "cycle_weight": self.cycle_weight,
            "identity_weight": self.identity_weight,
        })
        return config

    # === Players: both generators vs both discriminators ===

    def generator_variables(self):
        return list(self.generator_ab.trainable_variables) + list(self.generator_ba.trainable_variables)

    def discriminator_variables(self):
        return list(self.discriminator_a.trainable_variables) + list(self.discriminator_b.trainable_variables)

    def translator(self, direction):
        self._check_direction(direction)
        return self.generator_ab if direction == "a2b" else self.generator_ba

    # === Adversarial step pieces (see base.AdversarialModel) ===

    def generate(self, latent, labels=None, training=False):
        """Both translations `(G(a), F(b))` of the condition `(a, b)`."""
        a, b = labels
        return self.generator_ab(a, training=training), self.generator_ba(b, training=training)

    @staticmethod
    def _lsgan_d(disc, real, fake, training):
        real_out, fake_out = disc(real, training=training), disc(fake, training=training)
        return 0.5 * (ops.mean(ops.square(real_out - 1.0)) + ops.mean(ops.square(fake_out)))

    def discriminator_loss(self, real, fake, latent, labels=None, training=True):
        a, b = labels
        fake_b, fake_a = fake
        d_a = self._lsgan_d(self.discriminator_a, a, fake_a, training)
        d_b = self._lsgan_d(self.discriminator_b, b, fake_b, training)
        return d_a + d_b, {"d_a": d_a, "d_b": d_b}

    def generator_loss(self, latent, labels=None, training=True, **_):
        a, b = labels
        fake_b = self.generator_ab(a, training=training)
        fake_a = self.generator_ba(b, training=training)
        adv = (ops.mean(ops.square(self.discriminator_b(fake_b, training=training) - 1.0))
               + ops.mean(ops.square(self.discriminator_a(fake_a, training=training) - 1.0)))
        cycle_a = ops.mean(ops.abs(self.generator_ba(fake_b, training=training) - a))
        cycle_b = ops.mean(ops.abs(self.generator_ab(fake_a, training=training) - b))
        loss = adv + self.cycle_weight * (cycle_a + cycle_b)
        logs = {"g_adv": adv, "cycle": 0.5 * (cycle_a + cycle_b)}
        if self.identity_weight > 0:
            identity = (ops.mean(ops.abs(self.generator_ab(b, training=training) - b))
                        + ops.mean(ops.abs(self.generator_ba(a, training=training) - a)))
            loss = loss + self.identity_weight * self.cycle_weight * identity
            logs["identity"] = 0.5 * identity
        return loss, logs

    # === Evaluation ===

    def evaluate_extra(self, prepared, batch_size=256):
        """Cycle reconstruction errors on a prepared split (and the L1 to targets when paired).

        Returns `cycle_a` = mean |F(G(a)) - a| and `cycle_b` = mean |G(F(b)) - b|
        per pixel, and for paired data `l1` = mean |G(a) - b| and
        `l1_b2a` = mean |F(b) - a|; all exact over the split, in [0, 1] pixel units.
        """
        if prepared.x_source is None:
            raise DataError("CycleGAN: evaluation needs a translation split (sources and targets).")
        a, b = prepared.x_source, prepared.x
        fake_b = self.translate(a, "a2b", batch_size)
        fake_a = self.translate(b, "b2a", batch_size)
        out = {
            "cycle_a": self.mean_abs_error(self.translate(fake_b, "b2a", batch_size), a),
            "cycle_b": self.mean_abs_error(self.translate(fake_a, "a2b", batch_size), b),
        }
        if getattr(prepared.source, "paired", False):
            out["l1"] = self.mean_abs_error(fake_b, b)
            out["l1_b2a"] = self.mean_abs_error(fake_a, a)
        return out

