"""Matting metrics on alpha mattes in [0, 1] (numpy, framework-neutral).

Conventions of the matting literature (Rhemann et al., the Adobe benchmark): SAD is the sum of
absolute differences divided by 1000; MSE the mean squared error; the gradient error sums the
squared difference of gradient magnitudes (first derivatives of a Gaussian, sigma 1.4) divided by 1000.
"""
import numpy as np


def sad(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.abs(pred.astype(np.float64) - true).sum() / 1000)


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((pred.astype(np.float64) - true) ** 2))


def gaussian_derivative_kernels(sigma: float = 1.4):
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    dg = -x / sigma ** 2 * g
    dg /= np.abs(dg).sum() / 2  # unit response to a unit step
    return g, dg


def separable(image: np.ndarray, along_y: np.ndarray, along_x: np.ndarray) -> np.ndarray:
    radius = len(along_x) // 2
    padded = np.pad(image, radius, mode="edge")
    rows = sum(w * padded[:, i:i + image.shape[1]] for i, w in enumerate(along_x))
    return sum(w * rows[i:i + image.shape[0], :] for i, w in enumerate(along_y))


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    g, dg = gaussian_derivative_kernels(sigma)
    gx = separable(alpha.astype(np.float64), g, dg)
    gy = separable(alpha.astype(np.float64), dg, g)
    return np.sqrt(gx ** 2 + gy ** 2)


def gradient_error(pred: np.ndarray, true: np.ndarray, sigma: float = 1.4) -> float:
    """For a 2-D matte; for batches call per image."""
    return float(((gradient_magnitude(pred, sigma) - gradient_magnitude(true, sigma)) ** 2).sum() / 1000)


def matting_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """Mean SAD, MSE and gradient error over a batch of mattes shaped (B, 1, H, W) or (B, H, W)."""
    pred = pred.reshape(pred.shape[0], *pred.shape[-2:])
    true = true.reshape(true.shape[0], *true.shape[-2:])
    per_image = [(sad(p, t), mse(p, t), gradient_error(p, t)) for p, t in zip(pred, true)]
    means = np.mean(per_image, axis=0)
    return {"sad": float(means[0]), "mse": float(means[1]), "grad": float(means[2])}
