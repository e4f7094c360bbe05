"""Policies: a common interface (``base``) and one module per policy family."""

from taclab.policies import bc, dp, scripted  # noqa: F401 - registers bc, dp, oracle, random, zero
from taclab.policies.base import POLICIES, Policy, load_policy, make_policy, register
from taclab.policies.tla import policy as _tla  # noqa: F401 - registers tla

__all__ = ["POLICIES", "Policy", "load_policy", "make_policy", "register"]
