"""Glow's invertible 1x1 convolution, LU-decomposed."""

import keras
import numpy as np
from keras import ops

from kgen.models.flows import substrate
from kgen.models.flows.steps.base import FlowStep
from kgen.registry import register_layer


def _lu_pivot(a):
    """LU with partial pivoting: a[perm] = L @ U (NumPy, for initialization)."""
    a = np.array(a, "float64")
    n = a.shape[0]
    perm = np.arange(n)
    lower = np.eye(n)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if p != k:
            a[[k, p]] = a[[p, k]]
            perm[[k, p]] = perm[[p, k]]
            lower[[k, p], :k] = lower[[p, k], :k]
        for i in range(k + 1, n):
            lower[i, k] = a[i, k] / a[k, k]
            a[i, k:] -= lower[i, k] * a[k, k:]
    return perm, lower, np.triu(a)


@register_layer
class InvertibleConv1x1(FlowStep):
    """Glow's invertible 1x1 convolution, LU-parameterized.

    W = P L (U + diag(sign(s) exp(log|s|))) applied to the channels of every
    pixel, initialized from a random rotation: the permutation P and
    sign(s) are frozen; the strictly lower L (unit diagonal), strictly upper
    U and log|s| train, and log|det W| = sum log|s| per pixel (O(C)).

    The bijector is `Chain([Permute(P), ScaleMatvecTriL(L),
    ScaleMatvecTriL(U^T, adjoint=True)])`: the same map as TFP's
    `ScaleMatvecLU`, which fails under `jax.jit` on TFP's JAX substrate
    (see `kgen.models.flows.substrate`).

    Args:
        event_shape: `(H, W, C)`.
        seed: seed of the initial rotation.
    """

    def __init__(self, event_shape, seed=0, context_dim=0, **kwargs):
        super().__init__(event_shape, context_dim, **kwargs)
        self.seed = int(seed)
        c = self.event_shape[-1]
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((c, c)))
        rows, lower, upper = _lu_pivot(q)  # q[rows] = lower @ upper
        diag = np.diag(upper)
        const = keras.initializers.Constant
        self.lower = self.add_weight(shape=(c, c), initializer=const(np.tril(lower, -1)), name="lower")
        self.upper = self.add_weight(shape=(c, c), initializer=const(np.triu(upper, 1)), name="upper")
        self.log_abs_diag = self.add_weight(shape=(c,), initializer=const(np.log(np.abs(diag))), name="log_abs_diag")
        self.sign_diag = self.add_weight(shape=(c,), initializer=const(np.sign(diag)), trainable=False,
                                         name="sign_diag")
        # Permute(p) gives y = (L U z)[p]; p = argsort(rows) makes W = q at initialization.
        self.permutation = self.add_weight(shape=(c,), dtype="int32", initializer=const(np.argsort(rows)),
                                           trainable=False, name="permutation")

    def factors(self):
        """(P as an index vector, unit-lower L, upper U with diagonal s)."""
        c = self.event_shape[-1]
        strict = np.tril(np.ones((c, c), "float32"), -1)
        eye = np.eye(c, dtype="float32")
        lower = ops.convert_to_tensor(self.lower) * strict + eye
        diag = ops.convert_to_tensor(self.sign_diag) * ops.exp(ops.convert_to_tensor(self.log_abs_diag))
        upper = ops.convert_to_tensor(self.upper) * strict.T + diag * eye
        return ops.convert_to_tensor(self.permutation), lower, upper

    def weight_matrix(self):
        """W, so that the step maps z to h = W z at every pixel."""
        perm, lower, upper = self.factors()
        return ops.take(ops.matmul(lower, upper), perm, axis=0)

    def bijector(self, context=None):
        tfb = substrate.tfb()
        perm, lower, upper = self.factors()
        return tfb.Chain([
            tfb.Permute(perm, axis=-1),
            tfb.ScaleMatvecTriL(scale_tril=lower),
            tfb.ScaleMatvecTriL(scale_tril=ops.transpose(upper), adjoint=True),
        ])

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
