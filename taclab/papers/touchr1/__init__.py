"""Touch-R1 in simulation: tactile property reasoning over four optical sensors (see docs/touch_r1.md).

Importing the package registers the dataset generator ``touchr1``."""

from taclab.papers.touchr1 import dataset  # noqa: F401 - registers the generator
