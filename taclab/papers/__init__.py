"""Paper packages: what is specific to one paper (tasks, labels, formats, tables, the paper's numbers, its demo
and commands). Importing ``taclab.papers`` registers what each paper adds to the generic registries."""

from taclab.papers import tla  # noqa: F401
