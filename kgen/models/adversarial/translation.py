"""`TranslationModel`: what pix2pix and CycleGAN share.

How (source, target) batches enter the one adversarial step of `base.py` (the
source rides in the step's `labels` slot as the condition `(source, target)`),
translation panels, `evaluate_extra`, export endpoints that take an image.
"""

import math

import keras
import numpy as np
from keras import ops

from kgen.errors import DataError, UsageError
from kgen.models.adversarial.base import AdversarialModel


class TranslationModel(AdversarialModel):
    """Shared by pix2pix and CycleGAN: (source, target) batches, translation grids, export.

    `fit((a, b))` trains on sources `a` and targets `b` (aligned pairs, or an
    equal-length random alignment of two unpaired domains). Inside the one
    adversarial step of `base.py` the real batch is `b` and the condition
    passed as `labels` is `(a, b)`; there is no latent noise.
    """

    # Whether the model needs a[i] to be the source of b[i].
    needs_pairs = True
    # Export endpoint name -> translation direction.
    directions = {"translate": "a2b"}

    def __init__(self, input_shape, num_levels=None, num_classes=None, output_activation="auto", **kwargs):
        if num_classes is not None:
            raise UsageError(f"{type(self).__name__} translates images; it takes no class labels.")
        if len(tuple(input_shape)) != 3:
            raise UsageError(
                f"{type(self).__name__} translates images (H, W, C), got input_shape {tuple(input_shape)}."
            )
        super().__init__(input_shape, num_levels, None, latent_dim=0, output_activation=output_activation, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("latent_dim", None)
        return config

    # === Data ===

    def check_data(self, data):
        name = type(self).__name__
        if data.x_source is None:
            raise DataError(
                f"{data.name} is not a translation data set; {name} needs source (A) and target (B) images: "
                "use digits_inpaint (paired), digits_bold (unpaired) or a folder with A/ and B/ of PNGs."
            )
        if self.needs_pairs and not data.paired:
            raise DataError(
                f"{data.name} is unpaired (A/ and B/ file names differ); {name} needs pairs with the same "
                "file names in A/ and B/. Train cycle_gan for unpaired data."
            )
        for what, shape in (("target (B)", data.shape), ("source (A)", tuple(data.x_source.shape[1:]))):
            if shape != self.data_shape:
                raise DataError(
                    f"{data.name}: {what} images have shape {shape}, the model expects {self.data_shape}; "
                    "train a new model on this data set."
                )

    def translation_inputs(self, source, target):
        """What `fit` takes: the pair `(source, target)` of float32 arrays."""
        if source is None:
            raise DataError(f"{type(self).__name__} needs source images: train it on a translation data set.")
        return (np.asarray(source, "float32"), np.asarray(target, "float32"))

    def fit_inputs(self, x, labels=None, source=None):
        return self.translation_inputs(source, x)

    def model_inputs(self, x, labels=None):
        raise UsageError(
            f"{type(self).__name__} trains on (source, target) pairs: use translation_inputs(source, target)."
        )

    def unpack_batch(self, data):
        """A `fit` batch `(a, b)` -> (real targets b, condition (a, b))."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict):
            x, y = x["source"], x["target"]
        elif isinstance(x, (tuple, list)) and y is None:
            if len(x) != 2:
                raise UsageError("fit a translation model on (source, target) pairs: model.fit((a, b)).")
            x, y = x
        if y is None:
            raise UsageError("fit a translation model on (source, target) pairs: model.fit((a, b)).")
        source, target = ops.cast(x, "float32"), ops.cast(y, "float32")
        return target, (source, target)

    def draw_latent(self, batch):
        return None  # no latent noise (pix2pix's noise is the generator's dropout)

    # === Translation ===

    def translator(self, direction):
        """The generator network for `direction` ("a2b" or "b2a")."""
        raise NotImplementedError

    def _check_direction(self, direction):
        allowed = sorted(set(self.directions.values()))
        if direction not in allowed:
            raise UsageError(
                f'{type(self).__name__} translates in direction {" or ".join(allowed)}, not "{direction}".'
            )

    def _check_images(self, x, what="images"):
        x = np.asarray(x, "float32")
        if x.ndim == 3 and len(self.data_shape) == 3:
            x = x[None]
        if tuple(x.shape[1:]) != self.data_shape:
            raise UsageError(f"{what} have shape {tuple(x.shape[1:])}, the model expects {self.data_shape}.")
        return x

    def translate(self, x, direction="a2b", batch_size=256):
        """Translated images (NumPy) for `x`, a batch `(N, H, W, C)` or one image."""
        self._check_direction(direction)
        x = self._check_images(x, "source images")
        net = self.translator(direction)
        fn = self.compiled_fn(f"translate_{direction}", lambda a: net(a, training=False))
        return self.batched(fn, [x], batch_size)

    def call(self, inputs, training=False):
        """`model(a)`: the translation A -> B."""
        return self.translator("a2b")(inputs, training=training)

    def noise_spec(self, n):
        raise UsageError(self._no_sampling_message())

    def sample(self, n, seed=None, labels=None, temperature=1.0, batch_size=256):
        raise UsageError(self._no_sampling_message())

    def _no_sampling_message(self):
        return (
            f"{type(self).__name__} translates images, it does not sample from noise: use model.translate(a), "
            "or `kgen sample --checkpoint X` (it translates the test split)."
        )

    def translation_panels(self, source, target=None, direction="a2b", per_row=None):
        """Images and columns of a grid: source | translated (| target) triplets, side by side."""
        source = self._check_images(source, "source images")
        translated = self.translate(source, direction)
        columns = [source, translated] + ([self._check_images(target, "target images")] if target is not None else [])
        k, n = len(columns), len(source)
        per_row = per_row or max(1, int(math.ceil(math.sqrt(n))))
        panels = np.stack(columns, axis=1).reshape((n * k,) + self.data_shape)
        return panels, per_row * k

    # === Evaluation ===

    def pixel_scale(self):
        """Factor from the model's data units to [0, 1] pixel units (0.5 for tanh models on [-1, 1])."""
        return 0.5 if self.output_activation == "tanh" else 1.0

    def mean_abs_error(self, a, b):
        """Per-pixel mean |a - b| over every example, in [0, 1] pixel units."""
        return float(np.mean(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64")))) * self.pixel_scale()

    def evaluate_extra(self, prepared, batch_size=256):
        """Per-pixel L1 between translations and targets on a prepared split (paired data).

        Returns `{"l1": ...}`, the mean absolute error per pixel in [0, 1]
        pixel units (exact over the split; lower is better).
        """
        if prepared.x_source is None or not getattr(prepared.source, "paired", False):
            raise DataError(f"{type(self).__name__}: the L1 error needs a paired translation split.")
        return {"l1": self.mean_abs_error(self.translate(prepared.x_source, batch_size=batch_size), prepared.x)}

    # === Export ===

    @property
    def litert_endpoints(self):
        return tuple(self.directions)

    def export_endpoints(self):
        """translate(image) -> translated image (CycleGAN: translate_a2b, translate_b2a)."""
        spec = [((None,) + self.data_shape, "float32")]

        def endpoint(net):  # a closure: the exported function's only argument is the image
            def translate(image):
                return net(image, training=False)

            return translate

        return {name: (endpoint(self.translator(direction)), spec) for name, direction in self.directions.items()}
