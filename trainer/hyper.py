"""The SVC's hyper-parameters: what the CLI offers and the run logs (no scikit-learn import)."""

from __future__ import annotations

from dataclasses import dataclass

KERNELS = ("linear", "poly", "rbf", "sigmoid")


@dataclass(frozen=True)
class HyperParams:
    """SVC hyper-parameters; gamma is "scale", "auto" or a positive float."""

    C: float = 1.0
    kernel: str = "rbf"
    gamma: str | float = "scale"

    def as_params(self) -> dict[str, str | float]:
        return {"C": self.C, "kernel": self.kernel, "gamma": self.gamma}
