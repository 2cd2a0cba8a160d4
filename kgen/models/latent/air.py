"""Attend-Infer-Repeat (Eslami et al. 2016): a scene as a variable number of objects.

The generative model draws at most N objects. Object t is present with z_pres_t ~ Bernoulli(rho)
when object t - 1 was (z_pres_0 = 1), so the count n has the truncated geometric prior
p(n) = rho^n (1 - rho) (n < N), p(N) = rho^N. A present object has

- z_where = (log s, t_x, t_y) ~ N((log s_0, 0, 0), diag(sigma_s^2, sigma_t^2, sigma_t^2)): the window's
  half-size s and centre (t_x, t_y), relative to the canvas (canvas coordinates run over [-1, 1]);
- z_what ~ N(0, I): a code that a decoder MLP turns into a K x K window of pixel probabilities.

The inverse spatial transformer places each window on the canvas (bilinear sampling of the window
at canvas points, zero outside it); the windows of the present objects add up, and

    p(x | z) = prod_i Bernoulli(x_i; eps + (1 - 2 eps) clip(sum_t z_pres_t window_to_canvas_t, 0, 1))

with a floor `eps` (`likelihood_floor`): with no object the canvas is the background (0) everywhere.

Inference is amortised by a recurrent network: an LSTM reads the image and the previous object's
latents and, for t = 1..N, gives q(z_pres_t | ...) (a Bernoulli, 0 once an earlier step said 0),
q(z_where_t | ...) (a diagonal Gaussian); the spatial transformer cuts the K x K glimpse at z_where_t
out of the image and an encoder MLP gives q(z_what_t | glimpse) (a diagonal Gaussian). z_where and
z_what are reparameterised. **The estimator for the discrete z_pres is the score function with a
learned baseline (NVIL, Mnih & Gregor 2014), as in the paper**: the training loss is

    - ELBO_rb - sum_t stop_gradient(l_t - b_t(x)) log q(z_pres_t) + sum_t (stop_gradient(l_t) - b_t(x))^2,

where ELBO_rb uses the analytic KL of each Bernoulli and Gaussian given the sampled z_pres (an unbiased
ELBO estimate, "Rao-Blackwellised" over each step's z_pres), l_t is its part that depends on the
sampled z_pres_t (log p(x | z) minus the KLs of step t's z_where/z_what and of the later steps), and
b_t(x) = log p(x | empty canvas) + (the batch's leave-one-out mean of l_t - log p(x | empty canvas))
+ a baseline MLP's output for step t (trained by the squared error only): none of it depends on the
example's own z_pres_t, so the estimator stays unbiased. Its expected gradient
is the ELBO's gradient (`tests/models/latent/test_air.py` checks it against exact enumeration of z_pres).
`estimator = "reinforce"` drops the baseline (b = 0).

`score(x, iw_samples=k)` gives the ELBO and the importance-weighted bound (Burda et al. 2016) with
every latent sampled. `infer(x)` gives the count (z_pres_t = 1 while q > 1/2), the posterior means of
z_where and their boxes in pixels; `evaluate_extra` reports count accuracy on data labelled by count
(`multi_digits`, `multi_mnist`).

#### References

- Eslami, S. M. A., Heess, N., Weber, T., Tassa, Y., Szepesvari, D., Kavukcuoglu, K. & Hinton, G. E.
  Attend, Infer, Repeat: Fast Scene Understanding with Generative Models. NeurIPS 2016.
- Jaderberg, M., Simonyan, K., Zisserman, A. & Kavukcuoglu, K. Spatial Transformer Networks. NeurIPS 2015.
- Mnih, A. & Gregor, K. Neural Variational Inference and Learning in Belief Networks. ICML 2014.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from kgen import backend
from kgen.data.multi_digits import COUNT_DATASETS
from kgen.errors import DataError, UsageError
from kgen.models.base import LOG_2PI, GenerativeModel
from kgen.registry import register_model

ESTIMATORS = ("nvil", "reinforce")
WINDOW_BIAS = -2.0  # decoder logits start dark: an empty window adds little to the canvas


# === The spatial transformer (keras.ops: a grid and a gather) ===


def _centres(size):
    """Normalised centres of `size` pixels over [-1, 1] (pixel areas: the edges are -1 and 1)."""
    return (2.0 * np.arange(size, dtype="float32") + 1.0) / size - 1.0


def bilinear_sample(images, px, py):
    """Bilinear samples of `images` (B, H, W, C) at pixel coordinates `px`, `py` (B, P) -> (B, P, C).

    Pixel (i, j) has its centre at (px, py) = (j, i); points outside the image read zeros.
    Differentiable in the images and in the coordinates.
    """
    images, px, py = (ops.convert_to_tensor(a, "float32") for a in (images, px, py))
    h, w, c = (int(d) for d in images.shape[1:])
    flat = ops.reshape(images, (-1, h * w, c))
    x0 = ops.stop_gradient(ops.floor(px))
    y0 = ops.stop_gradient(ops.floor(py))
    fx, fy = px - x0, py - y0
    out = 0.0
    for dy, wy in ((0.0, 1.0 - fy), (1.0, fy)):
        for dx, wx in ((0.0, 1.0 - fx), (1.0, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = ops.cast((xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1), "float32")
            idx = ops.cast(ops.clip(yi, 0, h - 1) * w + ops.clip(xi, 0, w - 1), "int32")
            idx = ops.repeat(ops.expand_dims(idx, -1), c, axis=-1)
            values = ops.take_along_axis(flat, idx, axis=1)
            out = out + values * ops.expand_dims(wy * wx * inside, -1)
    return out


def tent_weights(p, size):
    """Bilinear interpolation weights (B, P, size) of pixel coordinates `p` (B, P) on an axis of `size` pixels.

    max(0, 1 - |p - i|) for pixel i: the two pixels around p share 1, pixels past the edge are absent
    (zero padding), as in `bilinear_sample`.
    """
    grid = ops.convert_to_tensor(np.arange(size, dtype="float32"))
    return ops.relu(1.0 - ops.abs(ops.expand_dims(p, -1) - grid))


def _axis_pixels(scale, shift, out_size, in_size):
    """Input pixel coordinates (B, out_size) that the out_size pixel centres read through u = scale * g + shift.

    `scale` and `shift` are (B, 1); u and g are normalised to [-1, 1] over each image's extent, and pixel
    p of an axis of n pixels has its centre at ((u + 1) n - 1) / 2. Written in pixel units, so that the
    identity map (scale 1, shift 0, equal sizes) reads every pixel exactly.
    """
    k = ops.convert_to_tensor((np.arange(out_size, dtype="float32") - (out_size - 1) / 2.0)[None])
    return scale * k * (in_size / out_size) + shift * (in_size / 2.0) + (in_size - 1) / 2.0


def affine_sample(images, scale, shift_x, shift_y, out_h, out_w):
    """`images` (B, H, W, C) read bilinearly at out pixel centres mapped by u = scale * g + shift (zeros outside).

    The map is axis-aligned (a scale and a shift), so bilinear sampling factorises into a row and a column
    interpolation (`tent_weights`): out = Wy . image . Wx^T, the same numbers as `bilinear_sample` at the
    grid's points, without a gather.
    """
    images, scale, shift_x, shift_y = (ops.convert_to_tensor(a, "float32") for a in (images, scale, shift_x, shift_y))
    h, w = int(images.shape[1]), int(images.shape[2])
    wy = tent_weights(_axis_pixels(scale, shift_y, out_h, h), h)  # (B, out_h, H)
    wx = tent_weights(_axis_pixels(scale, shift_x, out_w, w), w)  # (B, out_w, W)
    return ops.einsum("bih,bhwc,bjw->bijc", wy, images, wx)


def image_to_window(images, z_where, size):
    """The glimpse: a (B, size, size, C) window cut from `images` at z_where = (log s, t_x, t_y).

    Window point w (normalised, [-1, 1]^2) reads the image at s * w + t.
    """
    z_where = ops.convert_to_tensor(z_where, "float32")
    s = ops.exp(z_where[:, 0:1])
    return affine_sample(images, s, z_where[:, 1:2], z_where[:, 2:3], size, size)


def window_to_image(windows, z_where, height, width):
    """The inverse transformer: (B, K, K, C) windows placed on a (B, height, width, C) canvas.

    Canvas point u reads the window at (u - t) / s: the inverse of `image_to_window`'s map.
    """
    z_where = ops.convert_to_tensor(z_where, "float32")
    inv_s = ops.exp(-z_where[:, 0:1])
    return affine_sample(windows, inv_s, -z_where[:, 1:2] * inv_s, -z_where[:, 2:3] * inv_s, height, width)


def where_to_boxes(z_where, height, width):
    """(top, left, height, width) in pixels of the canvas region that windows at z_where cover (NumPy)."""
    z = np.asarray(z_where, "float64")
    s = np.exp(z[..., 0])
    left = (z[..., 1] - s + 1.0) * width / 2.0
    top = (z[..., 2] - s + 1.0) * height / 2.0
    return np.stack([top, left, s * height, s * width], axis=-1)


# === Distributions ===


def _gaussian_kl(loc, scale, prior_loc, prior_scale):
    """KL(N(loc, scale^2) || N(prior_loc, prior_scale^2)) summed over the last axis."""
    ratio = ops.square(scale / prior_scale)
    return 0.5 * ops.sum(ratio + ops.square((loc - prior_loc) / prior_scale) - 1.0 - ops.log(ratio), axis=-1)


def _gaussian_log_density(z, loc, scale):
    return ops.sum(-0.5 * (LOG_2PI + ops.square((z - loc) / scale)) - ops.log(scale), axis=-1)


def _bernoulli_kl(q, rho):
    """KL(Bernoulli(q) || Bernoulli(rho)), q a tensor in (0, 1), rho a number in (0, 1)."""
    q = ops.clip(q, 1e-6, 1.0 - 1e-6)
    return q * ops.log(q / rho) + (1.0 - q) * ops.log((1.0 - q) / (1.0 - rho))


def score_function_surrogate(signal, log_q, baseline=None):
    """The score-function (REINFORCE) term: value 0, gradient stop_gradient(signal - baseline) * grad log q.

    `signal` (the learning signal), `log_q` (the log-probability of the sampled value) and `baseline`
    broadcast together; add the result to an objective to maximise (its value is left unchanged).
    """
    centred = signal if baseline is None else signal - baseline
    return ops.stop_gradient(centred) * (log_q - ops.stop_gradient(log_q))


def leave_one_out_mean(values, mask):
    """Per row, the mean of `values` (B, N) over the other rows where `mask` is 1 (0 when there are none).

    A baseline for row i that the row's own samples do not affect (Mnih & Rezende 2016's VIMCO uses
    the same idea across samples); it centres the learning signal, the baseline MLP fits the rest.
    """
    total = ops.sum(values * mask, axis=0, keepdims=True)
    count = ops.sum(mask, axis=0, keepdims=True)
    return (total - values * mask) / ops.maximum(count - mask, 1.0)


@register_model("air", family="latent",
                tiny=dict(max_objects=2, window_size=4, what_dim=3, lstm_units=16, hidden_units=(16,),
                          baseline_units=(8,)))
class AIR(GenerativeModel):
    """Attend-Infer-Repeat (Eslami et al. 2016): up to N objects, each present, where and what.

    `log_prob(x)` is the ELBO (a lower bound on log p(x), nats); `score` adds the importance-weighted
    bound. The discrete z_pres is trained by the score function with a learned baseline (NVIL).

    Args:
        input_shape: canvas shape `(H, W, C)`.
        num_levels: 2 (binary canvases: a Bernoulli likelihood).
        max_objects: N, the most objects (LSTM steps).
        window_size: K, the side of the glimpse and of the decoded window (pixels).
        what_dim: size of z_what.
        lstm_units: units of the inference LSTM.
        hidden_units: hidden layers of the glimpse encoder (and, reversed, of the window decoder).
        baseline_units: hidden layers of the baseline MLP (NVIL).
        z_pres_prior: rho, the prior probability that object t is present when t - 1 was.
        scale_prior: s_0, the prior median of the window's half-size relative to the canvas's.
        scale_prior_std: sigma_s, the prior standard deviation of log s.
        shift_prior_std: sigma_t, the prior standard deviation of the window's centre.
        likelihood_floor: eps, the pixel probabilities' floor (and 1 - eps their ceiling).
        estimator: "nvil" (score function with the learned baseline) or "reinforce" (no baseline).
        baseline_weight: weight of the baseline's squared error in the loss.
        difference: the LSTM reads x minus the canvas of the objects so far (DAIR, Eslami et al.'s
            section 3.2) instead of x at every step (AIR).

    Example:

    >>> import kgen
    >>> air = kgen.build_model("air", input_shape=(24, 24, 1), num_levels=2, max_objects=2)
    >>> air.compile(optimizer="adam")
    >>> x = kgen.load_dataset("multi_digits", "valid").x[:32].round()
    >>> _ = air.fit(x, epochs=1, batch_size=16, verbose=0)
    >>> air.sample(4, seed=0).shape, air.infer(x[:3])["count"].shape
    ((4, 24, 24, 1), (3,))
    """

    log_prob_kind = "elbo"

    def __init__(
        self,
        input_shape,
        num_levels=2,
        num_classes=None,
        max_objects=3,
        window_size=8,
        what_dim=8,
        lstm_units=128,
        hidden_units=(128,),
        baseline_units=(64,),
        z_pres_prior=0.5,
        scale_prior=0.35,
        scale_prior_std=0.25,
        shift_prior_std=1.0,
        likelihood_floor=1e-3,
        estimator="nvil",
        baseline_weight=1.0,
        difference=True,
        **kwargs,
    ):
        super().__init__(input_shape, num_levels, num_classes, **kwargs)
        # === Config ===
        if num_classes is not None:
            raise UsageError("AIR is not conditional: train it without labels (model.conditional = false).")
        if len(self.data_shape) != 3:
            raise UsageError(f"AIR models images (H, W, C), got examples of shape {self.data_shape}.")
        if self.num_levels != 2:
            raise UsageError(f"AIR's Bernoulli likelihood needs binary canvases (2 levels), got {self.num_levels}; "
                             "binarize the data (data.binarize = \"dynamic\" or \"static\").")
        if estimator not in ESTIMATORS:
            raise UsageError(f'unknown estimator "{estimator}"; choose one of {", ".join(ESTIMATORS)}.')
        for key, value in (("z_pres_prior", z_pres_prior), ("likelihood_floor", likelihood_floor)):
            if not 0.0 < float(value) < (1.0 if key == "z_pres_prior" else 0.5):
                raise UsageError(f"{key} must lie in (0, {1 if key == 'z_pres_prior' else 0.5}), got {value}.")
        for key, value in (("max_objects", max_objects), ("window_size", window_size), ("what_dim", what_dim),
                           ("lstm_units", lstm_units)):
            if int(value) < 1:
                raise UsageError(f"{key} must be >= 1, got {value}.")
        for key, value in (("scale_prior", scale_prior), ("scale_prior_std", scale_prior_std),
                           ("shift_prior_std", shift_prior_std)):
            if not float(value) > 0:
                raise UsageError(f"{key} must be > 0, got {value}.")
        self.max_objects = int(max_objects)
        self.window_size = int(window_size)
        self.what_dim = int(what_dim)
        self.lstm_units = int(lstm_units)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.baseline_units = tuple(int(u) for u in baseline_units)
        self.z_pres_prior = float(z_pres_prior)
        self.scale_prior = float(scale_prior)
        self.scale_prior_std = float(scale_prior_std)
        self.shift_prior_std = float(shift_prior_std)
        self.likelihood_floor = float(likelihood_floor)
        self.estimator = estimator
        self.baseline_weight = float(baseline_weight)
        self.difference = bool(difference)
        self.where_prior_loc = np.array([math.log(self.scale_prior), 0.0, 0.0], "float32")
        self.where_prior_scale = np.array([self.scale_prior_std, self.shift_prior_std, self.shift_prior_std],
                                          "float32")
        h, w, c = self.data_shape
        k = self.window_size

        # === Layers ===
        self.rnn = layers.LSTMCell(self.lstm_units, name="rnn")
        self.pres_head = layers.Dense(1, name="pres_head")
        self.where_head = layers.Dense(6, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                       name="where_head")
        self.what_encoder = [layers.Dense(u, activation="relu", name=f"what_encoder_{i}")
                             for i, u in enumerate(self.hidden_units)]
        self.what_encoder_out = layers.Dense(2 * self.what_dim, name="what_encoder_out")
        self.what_decoder = [layers.Dense(u, activation="relu", name=f"what_decoder_{i}")
                             for i, u in enumerate(self.hidden_units[::-1])]
        self.what_decoder_out = layers.Dense(k * k * c, name="what_decoder_out")
        self.baseline_body = [layers.Dense(u, activation="relu", name=f"baseline_{i}")
                              for i, u in enumerate(self.baseline_units)]
        self.baseline_out = layers.Dense(self.max_objects, name="baseline_out")

        # === State and metrics ===
        self.seed_generator = keras.random.SeedGenerator(0)
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.count_tracker = keras.metrics.Mean(name="count")
        self.baseline_tracker = keras.metrics.Mean(name="baseline_error")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        n = self.num_dims
        rnn_in = n + 3 + self.what_dim + 1
        self.rnn.build((None, rnn_in))
        self.pres_head.build((None, self.lstm_units))
        self.where_head.build((None, self.lstm_units))
        d = self.window_size ** 2 * self.data_shape[-1]
        for layer in self.what_encoder:
            layer.build((None, d))
            d = layer.units
        self.what_encoder_out.build((None, d))
        d = self.what_dim
        for layer in self.what_decoder:
            layer.build((None, d))
            d = layer.units
        self.what_decoder_out.build((None, d))
        d = n
        for layer in self.baseline_body:
            layer.build((None, d))
            d = layer.units
        self.baseline_out.build((None, d))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_objects": self.max_objects,
            "window_size": self.window_size,
            "what_dim": self.what_dim,
            "lstm_units": self.lstm_units,
            "hidden_units": list(self.hidden_units),
            "baseline_units": list(self.baseline_units),
            "z_pres_prior": self.z_pres_prior,
            "scale_prior": self.scale_prior,
            "scale_prior_std": self.scale_prior_std,
            "shift_prior_std": self.shift_prior_std,
            "likelihood_floor": self.likelihood_floor,
            "estimator": self.estimator,
            "baseline_weight": self.baseline_weight,
            "difference": self.difference,
        })
        return config

    # === Networks ===

    def decode_window(self, z_what):
        """The decoded window's pixel probabilities (B, K, K, C) for codes z_what (B, what_dim)."""
        h = z_what
        for layer in self.what_decoder:
            h = layer(h)
        logits = self.what_decoder_out(h) + WINDOW_BIAS
        return ops.reshape(ops.sigmoid(logits), (-1, self.window_size, self.window_size, self.data_shape[-1]))

    def encode_glimpse(self, glimpse):
        """q(z_what | glimpse): (loc, scale), each (B, what_dim)."""
        h = ops.reshape(glimpse, (ops.shape(glimpse)[0], -1))
        for layer in self.what_encoder:
            h = layer(h)
        stats = self.what_encoder_out(h)
        return stats[:, : self.what_dim], ops.softplus(stats[:, self.what_dim:]) + 1e-4

    def baseline(self, x):
        """b_t(x): the baseline of each step's learning signal (B, N)."""
        h = ops.reshape(x, (ops.shape(x)[0], -1))
        for layer in self.baseline_body:
            h = layer(h)
        return self.baseline_out(h)

    def render(self, z_pres, z_where, z_what):
        """The canvas (B, H, W, C): the sum of the present objects' windows placed at z_where.

        z_pres (B, N), z_where (B, N, 3), z_what (B, N, what_dim).
        """
        z_pres, z_where, z_what = (ops.convert_to_tensor(a, "float32") for a in (z_pres, z_where, z_what))
        height, width = self.data_shape[:2]
        canvas = 0.0
        for t in range(self.max_objects):
            window = self.decode_window(z_what[:, t])
            placed = window_to_image(window, z_where[:, t], height, width)
            canvas = canvas + placed * ops.reshape(z_pres[:, t], (-1, 1, 1, 1))
        return canvas

    def pixel_probs(self, canvas):
        """Bernoulli probabilities of the pixels: eps + (1 - 2 eps) clip(canvas, 0, 1)."""
        eps = self.likelihood_floor
        return eps + (1.0 - 2.0 * eps) * ops.clip(canvas, 0.0, 1.0)

    def log_likelihood(self, x, canvas):
        """log p(x | z) per example for a canvas."""
        p = self.pixel_probs(canvas)
        ll = x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p)
        return ops.sum(ops.reshape(ll, (ops.shape(ll)[0], -1)), axis=-1)

    def run(self, x, u, eps_where, eps_what, z_pres=None):
        """The inference network and the model on a batch, with the noise given.

        Args:
            x: canvases (B, H, W, C).
            u: uniforms (B, N): z_pres_t = 1 when u_t < q(z_pres_t = 1 | ...) (and z_pres_{t-1} = 1).
            eps_where: standard normals (B, N, 3); z_where = loc + scale * eps.
            eps_what: standard normals (B, N, what_dim).
            z_pres: None, or values (B, N) that replace the sampled z_pres (forced objects).

        Returns:
            A dict of tensors: `ll` (B,), per step (B, N) `q_pres`, `z_pres`, `prev_pres`,
            `kl_pres`, `kl_where`, `kl_what`, `log_q_pres` (of the sampled value, 0 after a stop),
            `log_ratio` (log p(z_t) - log q(z_t) of the sampled latents), and `z_where` (B, N, 3),
            `z_what` (B, N, what_dim), `canvas` (B, H, W, C).
        """
        x, u, eps_where, eps_what = (ops.convert_to_tensor(a, "float32") for a in (x, u, eps_where, eps_what))
        batch = ops.shape(x)[0]
        height, width = self.data_shape[:2]
        x_flat = ops.reshape(x, (batch, self.num_dims))
        rho = self.z_pres_prior
        prior_loc = ops.convert_to_tensor(self.where_prior_loc)
        prior_scale = ops.convert_to_tensor(self.where_prior_scale)
        state = [ops.zeros((batch, self.lstm_units)), ops.zeros((batch, self.lstm_units))]
        prev_where = ops.zeros((batch, 3))
        prev_what = ops.zeros((batch, self.what_dim))
        prev_pres = ops.ones((batch,))
        canvas = ops.zeros_like(x)
        steps = {k: [] for k in ("q_pres", "z_pres", "prev_pres", "kl_pres", "kl_where", "kl_what",
                                 "log_q_pres", "log_ratio", "z_where", "z_what")}
        for t in range(self.max_objects):
            seen = x_flat
            if self.difference:  # DAIR: the part of the image the objects so far do not explain
                seen = x_flat - ops.reshape(ops.clip(canvas, 0.0, 1.0), (batch, self.num_dims))
            inputs = ops.concatenate([seen, prev_where, prev_what, ops.expand_dims(prev_pres, -1)], axis=-1)
            h, state = self.rnn(inputs, state)
            q = ops.sigmoid(self.pres_head(h)[:, 0])
            stats = self.where_head(h)
            where_loc = stats[:, :3] + prior_loc
            where_scale = ops.softplus(stats[:, 3:] - 2.0) + 1e-4
            z_where = where_loc + where_scale * eps_where[:, t]
            glimpse = image_to_window(x, z_where, self.window_size)
            what_loc, what_scale = self.encode_glimpse(glimpse)
            z_what = what_loc + what_scale * eps_what[:, t]
            if z_pres is None:
                pres = prev_pres * ops.cast(u[:, t] < q, "float32")
            else:
                pres = ops.cast(z_pres[:, t], "float32")
            pres = ops.stop_gradient(pres)
            window = self.decode_window(z_what)
            canvas = canvas + window_to_image(window, z_where, height, width) * ops.reshape(pres, (-1, 1, 1, 1))
            qc = ops.clip(q, 1e-6, 1.0 - 1e-6)
            log_q = pres * ops.log(qc) + (1.0 - pres) * ops.log(1.0 - qc)
            log_p = pres * math.log(rho) + (1.0 - pres) * math.log(1.0 - rho)
            where_ratio = (_gaussian_log_density(z_where, prior_loc, prior_scale)
                           - _gaussian_log_density(z_where, where_loc, where_scale))
            what_ratio = (_gaussian_log_density(z_what, 0.0, 1.0)
                          - _gaussian_log_density(z_what, what_loc, what_scale))
            steps["q_pres"].append(q)
            steps["z_pres"].append(pres)
            steps["prev_pres"].append(prev_pres)
            steps["kl_pres"].append(prev_pres * _bernoulli_kl(q, rho))
            steps["kl_where"].append(pres * _gaussian_kl(where_loc, where_scale, prior_loc, prior_scale))
            steps["kl_what"].append(pres * _gaussian_kl(what_loc, what_scale, 0.0, 1.0))
            steps["log_q_pres"].append(prev_pres * log_q)
            steps["log_ratio"].append(prev_pres * (log_p - log_q) + pres * (where_ratio + what_ratio))
            steps["z_where"].append(z_where)
            steps["z_what"].append(z_what)
            prev_where, prev_what, prev_pres = z_where, z_what, pres
        out = {k: ops.stack(v, axis=1) for k, v in steps.items()}
        out["canvas"] = canvas
        out["ll"] = self.log_likelihood(x, canvas)
        out["ll_background"] = self.log_likelihood(x, ops.zeros_like(canvas))
        return out

    def objective(self, out, baseline=None):
        """(ELBO estimate (B,), surrogate (B,), baseline squared error (B,)) from `run`'s output.

        The surrogate's value is the ELBO estimate; its gradient adds the score-function term of each
        step's z_pres, stop_gradient(l_t - b_t) grad log q(z_pres_t) (see the module docstring), with
        b_t = log p(x | empty canvas) + (the leave-one-out batch mean of l_t - log p(x | empty canvas))
        + `baseline` (B, N), the MLP's residual; `baseline` None: b = 0 (plain REINFORCE).
        """
        kl_steps = out["kl_pres"] + out["kl_where"] + out["kl_what"]  # (B, N)
        elbo = out["ll"] - ops.sum(kl_steps, axis=1)
        # l_t = ll - (KLs of step t's where/what and of all later steps): the terms z_pres_t affects
        tail = ops.flip(ops.cumsum(ops.flip(kl_steps, axis=1), axis=1), axis=1)
        signal = ops.expand_dims(out["ll"], 1) - tail + out["kl_pres"]
        mask = out["prev_pres"]  # a step after a stop samples nothing
        error = ops.zeros_like(elbo)
        if baseline is not None:
            # the signal with no object at all, log p(x | empty canvas), is a baseline known per example;
            # the batch's leave-one-out mean of the rest centres it, the MLP fits what remains
            empty = ops.expand_dims(out["ll_background"], 1)
            baseline = ops.stop_gradient(empty + leave_one_out_mean(signal - empty, mask)) + baseline
            error = ops.sum(mask * ops.square(ops.stop_gradient(signal) - baseline), axis=1)
        surrogate = elbo + ops.sum(score_function_surrogate(signal, out["log_q_pres"], baseline), axis=1)
        return elbo, surrogate, error

    # === Training ===

    def _noise(self, batch):
        n = self.max_objects
        u = keras.random.uniform((batch, n), seed=self.seed_generator)
        eps_where = backend.random_normal((batch, n, 3), self.seed_generator)
        eps_what = backend.random_normal((batch, n, self.what_dim), self.seed_generator)
        return u, eps_where, eps_what

    def call(self, inputs, training=False):
        x, _ = self.split_inputs(inputs)
        out = self.run(x, *self._noise(ops.shape(x)[0]))
        b = self.baseline(x) if self.estimator == "nvil" else None
        elbo, surrogate, error = self.objective(out, b)
        kl = out["ll"] - elbo
        return {"recon": -out["ll"], "kl": kl, "surrogate": surrogate, "baseline_error": error,
                "count": ops.sum(out["z_pres"], axis=1)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.recon_tracker.update_state(y_pred["recon"])
        self.kl_tracker.update_state(y_pred["kl"])
        self.count_tracker.update_state(y_pred["count"])
        self.baseline_tracker.update_state(y_pred["baseline_error"])
        error = y_pred["baseline_error"]
        # The loss's value is the negative ELBO; the baseline's squared error adds only its gradient.
        loss = ops.mean(-y_pred["surrogate"] + self.baseline_weight * (error - ops.stop_gradient(error)))
        return backend.scale_loss_for_replicas(self.plus_layer_losses(loss))

    def check_data(self, data):
        super().check_data(data)
        if data.kind != "image" or data.num_levels != 2:
            raise DataError(
                f"{data.name}: AIR's Bernoulli likelihood needs binary images, found "
                f"{data.num_levels or 'continuous'} levels; set data.binarize = \"static\" or \"dynamic\"."
            )

    # === Inference and bounds ===

    def infer(self, x, batch_size=256):
        """The posterior's mode-like reading of canvases `x` (NumPy dict).

        z_pres_t = 1 while q(z_pres_t = 1 | ...) > 1/2; z_where and z_what at their posterior means.
        Returns `count` (n,), `q_pres` (n, N), `z_pres` (n, N), `z_where` (n, N, 3), `boxes` (n, N, 4)
        (top, left, height, width in pixels of each window's region) and `canvas` (the reconstruction).
        """
        x = np.asarray(x, "float32")
        fn = self.compiled_fn("infer", self._infer)
        out = self.batched(fn, [x], batch_size)
        out["count"] = out["z_pres"].sum(axis=1).astype("int32")
        out["boxes"] = where_to_boxes(out["z_where"], *self.data_shape[:2])
        return out

    def _infer(self, x):
        batch = ops.shape(x)[0]
        n = self.max_objects
        out = self.run(x, ops.full((batch, n), 0.5), ops.zeros((batch, n, 3)), ops.zeros((batch, n, self.what_dim)))
        return {k: out[k] for k in ("q_pres", "z_pres", "z_where", "canvas")}

    def _elbo_terms(self, x, u, eps_where, eps_what):
        out = self.run(x, u, eps_where, eps_what)
        kl = ops.sum(out["kl_pres"] + out["kl_where"] + out["kl_what"], axis=1)
        return {"elbo": out["ll"] - kl, "recon": -out["ll"], "kl": kl}

    def _log_weight(self, x, u, eps_where, eps_what):
        out = self.run(x, u, eps_where, eps_what)
        return out["ll"] + ops.sum(out["log_ratio"], axis=1)

    def _draw(self, rng, shape_prefix):
        n = self.max_objects
        return (rng.uniform(size=shape_prefix + (n,)).astype("float32"),
                rng.standard_normal(shape_prefix + (n, 3)).astype("float32"),
                rng.standard_normal(shape_prefix + (n, self.what_dim)).astype("float32"))

    def elbo_terms(self, x, batch_size=256, seed=None):
        """Per-example ELBO, reconstruction NLL and KL (nats): one sample each, analytic KLs."""
        x = np.asarray(x, "float32")
        noise = self._draw(np.random.default_rng(seed), (len(x),))
        return self.batched(self.compiled_fn("elbo", self._elbo_terms), [x, *noise], batch_size)

    def log_prob(self, x, labels=None, batch_size=256, seed=None):
        """The ELBO of each example (a lower bound on log p(x)), nats."""
        return self.elbo_terms(x, batch_size, seed)["elbo"]

    def iw_log_prob(self, x, k=100, batch_size=64, seed=None, progress=None):
        """Importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x), every latent sampled (nats)."""
        x = np.asarray(x, "float32")
        rng = np.random.default_rng(seed)
        fn = self.compiled_fn("log_weight", self._log_weight)
        out = np.empty(len(x), "float64")
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            reps = np.repeat(xb, k, axis=0)
            logw = np.asarray(backend.to_numpy(fn(reps, *self._draw(rng, (len(reps),)))), "float64")
            logw = logw.reshape(len(xb), k)
            m = logw.max(axis=1)
            out[i:i + len(xb)] = m + np.log(np.exp(logw - m[:, None]).mean(axis=1))
            if progress:
                progress(i + len(xb))
        return out

    def score(self, x, labels=None, batch_size=256, seed=None, iw_samples=0, progress=None):
        """Evaluation terms per example: elbo, recon, kl and (k > 0) iw_bound."""
        out = self.elbo_terms(x, batch_size, seed)
        if iw_samples:
            out["iw_bound"] = self.iw_log_prob(x, iw_samples, max(1, min(batch_size, 4096 // iw_samples)),
                                               seed=seed, progress=progress)
        return out

    def evaluate_extra(self, prepared, batch_size=256):
        """Count accuracy on data labelled by count (`multi_digits`, `multi_mnist`), else the counts inferred.

        Returns `{"count": {"accuracy", "examples", "confusion" (true x inferred), "inferred_mean",
        "true_mean"}}`; without count labels only `inferred` (the share of each count) and `examples`.
        """
        counts = self.infer(prepared.x, batch_size)["count"]
        result = {"examples": int(len(counts)),
                  "inferred": (np.bincount(counts, minlength=self.max_objects + 1) / len(counts)).tolist()}
        source = getattr(prepared, "source", None)
        if prepared.y is None or getattr(source, "name", None) not in COUNT_DATASETS:
            return {"count": result}
        y = np.asarray(prepared.y, "int64").reshape(-1)
        size = max(self.max_objects, int(y.max())) + 1
        confusion = np.zeros((size, size), "int64")
        np.add.at(confusion, (y, counts), 1)
        result.update({"accuracy": float(np.mean(counts == y)), "confusion": confusion.tolist(),
                       "inferred_mean": float(counts.mean()), "true_mean": float(y.mean())})
        return {"count": result}

    # === Sampling ===

    def noise_spec(self, n):
        m = self.max_objects
        return [("uniform", (n, m)), ("normal", (n, m, 3)), ("normal", (n, m, self.what_dim)),
                ("uniform", (n,) + self.data_shape)]

    def prior_latents(self, u, eps_where, eps_what):
        """z_pres (B, N), z_where (B, N, 3), z_what (B, N, what_dim) drawn from the prior by its noise."""
        u, eps_where, eps_what = (ops.convert_to_tensor(a, "float32") for a in (u, eps_where, eps_what))
        present = ops.cast(u < self.z_pres_prior, "float32")
        z_pres = ops.cumprod(present, axis=1)  # 0 from the first absent object on
        z_where = (ops.convert_to_tensor(self.where_prior_loc)
                   + ops.convert_to_tensor(self.where_prior_scale) * eps_where)
        return z_pres, z_where, eps_what

    def _sample(self, u, eps_where, eps_what, u_pixels):
        canvas = self.render(*self.prior_latents(u, eps_where, eps_what))
        return ops.cast(u_pixels < self.pixel_probs(canvas), "float32")

    def sample_from_noise(self, u, eps_where, eps_what, u_pixels, labels=None):
        """Binary canvases from the prior: object uniforms, z_where / z_what normals, pixel uniforms."""
        return self.compiled_fn("sample", self._sample)(u, eps_where, eps_what, u_pixels)

    # === Export ===

    def export_endpoints(self):
        """sample(u, eps_where, eps_what, u_pixels) -> canvases; infer(x) -> {count, q_pres, z_where, canvas}."""
        m = self.max_objects
        x_spec = ((None,) + self.data_shape, "float32")

        def sample(u, eps_where, eps_what, u_pixels):
            return self._sample(u, eps_where, eps_what, u_pixels)

        def infer(x):
            out = self._infer(x)
            return {"count": ops.sum(out["z_pres"], axis=1), "q_pres": out["q_pres"], "z_where": out["z_where"],
                    "canvas": out["canvas"]}

        return {
            "sample": (sample, [((None, m), "float32"), ((None, m, 3), "float32"),
                                ((None, m, self.what_dim), "float32"), x_spec]),
            "infer": (infer, [x_spec]),
        }
