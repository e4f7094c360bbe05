"""The shared training loop (:func:`train`) and its configuration (:func:`load_run_config`)."""

from taclab.train.config import RunConfig, TrainConfig, load_run_config
from taclab.train.loop import EMA, TrainingError, learning_curve, lr_lambda, train

__all__ = [
    "EMA",
    "RunConfig",
    "TrainConfig",
    "TrainingError",
    "learning_curve",
    "load_run_config",
    "lr_lambda",
    "train",
]
