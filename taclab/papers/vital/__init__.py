"""VITAL (visuotactile local policies): the scripted demonstrator of the simulated tasks, its demonstration
dataset, its learning spec and the figures of a task.

Importing this package registers the demonstrator policy ``vital_demo``, the dataset generator ``vital`` with its
learning spec, and the RL policies ``vital_residual`` and ``vital_rlpd`` (:mod:`taclab.rl.residual`,
:mod:`taclab.rl.rlpd`)."""

from taclab.papers.vital import dataset, demonstrator, learning  # noqa: F401 - registrations
from taclab.rl import residual, rlpd  # noqa: F401 - registers vital_residual, vital_rlpd
