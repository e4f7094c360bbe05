"""taclab: learning contact-rich robot manipulation from touch."""

import os

# MuJoCo picks its OpenGL backend at import time; EGL renders offscreen on a CPU with nothing else installed.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

from taclab import envs  # noqa: E402,F401 - registers the Gymnasium environments
