"""The TLA paper (tactile peg-in-hole with a language model): labels of equations (1)-(3), the instruction
format, the dataset generator, the tasks and tables of the paper, its policies, demo and commands.

Importing this package registers the paper's policies (``oracle``, ``tla``)."""

from taclab.papers.tla import policies, policy  # noqa: F401 - registers oracle and tla
