"""Optical random features for handwritten digits: binarise, project, linear classifier.

    python examples/sklearn_digits.py

scikit-learn's ``load_digits`` (1797 images of 8 x 8 pixels, 16 grey levels), split 70/30
(stratified, seed 0). The pipeline encodes each pixel with 3 thresholds (a thermometer code
of 192 bits), projects the bits through an emulated OPU in physical fidelity (camera noise
included) to 2000 random features ``|R x|^2``, standardises them and fits a ridge
classifier. The baseline is a logistic regression on the raw pixels.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from opu_hal.encoding import MultiThresholdEncoder
from opu_hal.sklearn import OPUMap


def opu_pipeline(device: str = "emu://", n_components: int = 2000, seed: int = 0) -> Pipeline:
    """Thermometer code (thresholds 4, 8, 12 of the 0-16 grey levels) -> OPU -> ridge classifier."""
    encoder = MultiThresholdEncoder(thresholds=[4.0, 8.0, 12.0], clip=True)
    return make_pipeline(
        OPUMap(n_components, device=device, seed=seed, encoder=encoder),
        StandardScaler(),
        RidgeClassifierCV(alphas=np.logspace(-1, 4, 11)),
    )


def evaluate(device: str = "emu://", seed: int = 0) -> dict[str, float]:
    """Test accuracies of the raw-pixel logistic regression and of the OPU pipeline."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    baseline = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    model = opu_pipeline(device, seed=seed).fit(X_train, y_train)
    accuracy = {
        "logistic regression, raw pixels": baseline.score(X_test, y_test),
        "OPU random features + ridge": model.score(X_test, y_test),
    }
    model[0].close()
    return accuracy


def main() -> None:
    for name, value in evaluate().items():
        print(f"{name:<34} {value:.1%} test accuracy")


if __name__ == "__main__":
    main()
