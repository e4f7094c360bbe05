"""Closed-loop rollouts, metrics, tables and plots."""
