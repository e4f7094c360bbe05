"""The TLA paper (tactile peg-in-hole with a language model): labels of equations (1)-(3), the instruction
format, the dataset generator, the tasks and tables of the paper, its policies, demo and commands.

Importing this package registers the paper's dataset generator (``tla``), policies (``oracle``, ``tla``), the
learning spec of its datasets,
its task list ``paper`` and its report ``tla``."""

from taclab.papers.tla import dataset, learning, policies, policy, report  # noqa: F401 - registrations
from taclab.papers.tla.model import TLAConfig, TLAModel  # noqa: E402
from taclab.papers.tla.tiny import build_tokenizer, init_tiny  # noqa: E402

__all__ = ["TLAConfig", "TLAModel", "build_tokenizer", "init_tiny"]
