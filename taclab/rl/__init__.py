"""Reinforcement learning: one readable file per algorithm (CleanRL style: a documented config dataclass, then the
algorithm top to bottom). Import an algorithm's module directly (``taclab.rl.residual``); this package imports
none of them."""
