"""A linear probe: closed-form ridge regression onto one-hot labels, scored by (balanced) accuracy.

Why closed form: the probe must be cheap enough for every test phase and give the same answer on
every run; a ridge solve in float64 on a few thousand standardised tokens takes milliseconds and
has no learning rate, epochs or seed to tune. Balanced accuracy (the mean of per-class recalls)
is reported beside plain accuracy because the classes are unequal: a probe that always answers
the commonest kind scores that kind's share in accuracy but only 1 / classes in balanced accuracy.
"""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE = 1.0  # on standardised features: a few thousand rows make it a light touch


def fit_ridge(x: Tensor, y: Tensor, num_classes: int, ridge: float = RIDGE) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, std, weights) of a ridge classifier of ``x`` (n, d) onto labels ``y`` (n,) in
    ``[0, num_classes)``: features standardised by their fit-set statistics, a bias column."""
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    targets = torch.nn.functional.one_hot(y.long(), num_classes).double()
    gram = z.T @ z + ridge * torch.eye(z.shape[1], dtype=x.dtype)
    return mean, std, torch.linalg.solve(gram, z.T @ targets)


def predict(params: tuple[Tensor, Tensor, Tensor], x: Tensor) -> Tensor:
    mean, std, weights = params
    z = torch.cat([(x.double() - mean) / std, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    return (z @ weights).argmax(1)


def balanced_accuracy(pred: Tensor, y: Tensor) -> float:
    """Mean over the classes present in ``y`` of the fraction of that class predicted right."""
    classes = y.unique()
    return float(torch.stack([(pred[y == c] == c).double().mean() for c in classes]).mean())


def probe(
    fit_x: Tensor, fit_y: Tensor, score_x: Tensor, score_y: Tensor, num_classes: int
) -> dict[str, float | int | None]:
    """Fit on one set, score on another: accuracy, balanced accuracy, and the chance level of the
    latter (1 / the classes present in the score set); None for each where either set is empty."""
    if not (len(fit_y) and len(score_y)):
        empty = dict.fromkeys(("accuracy", "balanced_accuracy", "chance"))
        return {**empty, "fit_patches": len(fit_y), "score_patches": len(score_y)}
    pred = predict(fit_ridge(fit_x, fit_y, num_classes), score_x)
    return {
        "accuracy": float((pred == score_y).double().mean()),
        "balanced_accuracy": balanced_accuracy(pred, score_y),
        "chance": 1.0 / len(score_y.unique()),
        "fit_patches": len(fit_y),
        "score_patches": len(score_y),
    }
