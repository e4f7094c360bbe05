"""VITAL (visuotactile local policies): the scripted demonstrator of the simulated tasks, its demonstration
dataset and the figures of a task.

Importing this package registers the demonstrator policy ``vital_demo`` and the dataset generator ``vital``."""

from taclab.papers.vital import dataset, demonstrator, learning  # noqa: F401 - registrations
