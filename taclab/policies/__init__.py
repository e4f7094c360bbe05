"""Policies: one contract (``base``), chunk execution (``chunking``) and one module per policy family.

Paper packages register their own policies (e.g. the TLA paper's oracle and TLA model) when ``taclab.papers``
is imported."""

from taclab.policies import bc, dp, pointcloud_dp, scripted, visk  # noqa: F401 - registers the built-in policies
from taclab.policies.base import POLICIES, Policy, load_policy, make_policy, register, resolve

__all__ = ["POLICIES", "Policy", "load_policy", "make_policy", "register", "resolve"]
