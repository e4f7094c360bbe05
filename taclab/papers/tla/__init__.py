"""The TLA paper (tactile peg-in-hole with a language model): labels of equations (1)-(3), the instruction
format, the dataset generator, the tasks and tables of the paper, its demo and commands."""
