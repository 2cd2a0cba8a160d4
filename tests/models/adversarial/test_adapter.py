"""The per-backend adapter (kgen.backend.adversarial): gradients, input gradients, double backprop."""

import keras
import numpy as np

from kgen.backend import adversarial


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def test_value_and_grad_with_aux_and_unused_variables():
    w = keras.Variable(np.array([1.0, -2.0], "float32"), name="w")
    unused = keras.Variable(np.ones((3,), "float32"), name="unused")

    def loss_fn():
        loss = keras.ops.sum(keras.ops.square(w - 3.0))
        return loss, {"twice": 2.0 * loss}

    (loss, aux), grads = adversarial.value_and_grad(loss_fn, [w, unused], has_aux=True)
    np.testing.assert_allclose(to_np(loss), 4.0 + 25.0)
    np.testing.assert_allclose(to_np(aux["twice"]), 58.0)
    np.testing.assert_allclose(to_np(grads[0]), [-4.0, -10.0])
    np.testing.assert_allclose(to_np(grads[1]), np.zeros(3))  # no gradient: zeros, never None
    loss_only, grads_only = adversarial.value_and_grad(lambda: keras.ops.sum(w * w), [w])
    np.testing.assert_allclose(to_np(grads_only[0]), [2.0, -4.0])


def test_input_gradient_per_example():
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], "float32")
    grad = adversarial.input_gradient(lambda v: keras.ops.sum(v ** 3, axis=-1), x)
    np.testing.assert_allclose(to_np(grad), 3.0 * x ** 2, rtol=1e-6)


def test_input_gradient_is_differentiable_again():
    """d/dw sum_x d(w x^2)/dx = d/dw 2 w sum(x) = 2 sum(x): double backprop, as WGAN-GP needs."""
    w = keras.Variable(np.array(1.5, "float32"), name="w")
    x = np.array([[0.5], [2.0], [-1.0]], "float32")

    def loss_fn():
        grad = adversarial.input_gradient(lambda v: keras.ops.sum(w * v ** 2, axis=-1), x)
        return keras.ops.sum(grad)

    loss, grads = adversarial.value_and_grad(loss_fn, [w])
    np.testing.assert_allclose(to_np(loss), 2 * 1.5 * x.sum(), rtol=1e-6)
    np.testing.assert_allclose(to_np(grads[0]), 2 * x.sum(), rtol=1e-6)


def test_apply_gradients_and_no_grad():
    w = keras.Variable(np.array([1.0, 2.0], "float32"), name="w")
    opt = keras.optimizers.SGD(0.5)
    opt.build([w])
    with adversarial.no_grad():
        y = w * 2.0
    assert to_np(y).tolist() == [2.0, 4.0]
    adversarial.apply_gradients(opt, [keras.ops.ones((2,))], [w])
    np.testing.assert_allclose(to_np(w.value), [0.5, 1.5])
    assert int(to_np(opt.iterations.value)) == 1
