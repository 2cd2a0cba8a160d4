"""A linear probe: multinomial logistic regression on fixed features, in NumPy.

How linearly decodable the labels are from a model's codes (Alain & Bengio 2016's
linear classifier probes; the standard check of an autoencoder's features). The
same probe on raw pixels is the baseline to read it against.

Features are standardised with the fitting set's mean and standard deviation;
the weights minimise the mean cross-entropy plus `l2` / 2 * |W|^2 by full-batch
Adam from zero (a convex problem: the result does not depend on a seed).
"""

import numpy as np


def fit_logistic_regression(x, y, num_classes, l2=1e-3, steps=500, learning_rate=0.05):
    """(W, b, mean, std) of a softmax regression fitted to features `x` (n, d) and labels `y` (n,)."""
    x = np.asarray(x, "float64").reshape(len(x), -1)
    y = np.asarray(y, "int64").reshape(-1)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    xs = (x - mean) / std
    n, d = xs.shape
    onehot = np.eye(num_classes)[y]
    params = [np.zeros((d, num_classes)), np.zeros(num_classes)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, int(steps) + 1):
        w, b = params
        p = _softmax(xs @ w + b)
        g = (p - onehot) / n
        grads = [xs.T @ g + l2 * w, g.sum(axis=0)]
        for param, grad, m in zip(params, grads, moments):
            m[0] = b1 * m[0] + (1 - b1) * grad
            m[1] = b2 * m[1] + (1 - b2) * grad ** 2
            param -= learning_rate * (m[0] / (1 - b1 ** t)) / (np.sqrt(m[1] / (1 - b2 ** t)) + eps)
    return params[0], params[1], mean, std


def predict(model, x):
    """Class predictions of a fitted `fit_logistic_regression` result for features `x`."""
    w, b, mean, std = model
    x = np.asarray(x, "float64").reshape(len(x), -1)
    return np.argmax(((x - mean) / std) @ w + b, axis=1)


def probe_accuracy(fit_x, fit_y, test_x, test_y, num_classes=None, **kwargs):
    """Test accuracy of a logistic-regression probe fitted on (`fit_x`, `fit_y`)."""
    num_classes = int(num_classes or max(np.max(fit_y), np.max(test_y)) + 1)
    model = fit_logistic_regression(fit_x, fit_y, num_classes, **kwargs)
    return float(np.mean(predict(model, test_x) == np.asarray(test_y).reshape(-1)))


def _softmax(a):
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)
