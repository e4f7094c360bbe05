"""VITAL (visuotactile local policies): the scripted demonstrator of the simulated tasks, its demonstration
dataset, the semantic augmentation's use and the figures of a task.

Importing this package registers the demonstrator policy ``vital_demo``."""

from taclab.papers.vital import demonstrator  # noqa: F401 - registrations
