"""Small shared helpers: system information and atomic file writes."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(p)
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def read_json_record(
    path: str | Path, keys: tuple[str, ...], missing: str, error: type[Exception] = ValueError
) -> dict:
    """Read a JSON object and check it has ``keys``.

    A missing file raises ``FileNotFoundError`` (or ``error`` when it is a subclass of ``ValueError``) with
    ``missing`` appended; invalid JSON or a missing key raises ``error`` naming the file and the key.
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise (error if issubclass(error, FileNotFoundError) else FileNotFoundError)(f"{p} not found: {missing}")
    try:
        record = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{p} is not valid JSON: {e}") from None
    if not isinstance(record, dict):
        raise error(f"{p} does not hold a JSON object")
    for key in keys:
        if key not in record:
            raise error(f"{p} lacks the key {key!r}")
    return record


def parse_sets(items: list[str] | None) -> dict:
    """``key=value`` pairs of the command line's ``--set``; values are read as YAML scalars (numbers, booleans,
    lists)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def save_png(path: str | Path, image) -> Path:
    """Save an (H, W, 3) uint8 array or a matplotlib figure as PNG, atomically."""
    import io

    buf = io.BytesIO()
    if hasattr(image, "savefig"):
        image.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    else:
        from PIL import Image

        Image.fromarray(image).save(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def rendering_backend() -> str:
    """The MuJoCo OpenGL backend and whether an offscreen context can be made."""
    backend = os.environ.get("MUJOCO_GL", "(default)")
    try:
        import mujoco

        m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
        with mujoco.Renderer(m, 16, 16) as r:
            r.update_scene(mujoco.MjData(m))
            r.render()
        return f"{backend} (offscreen rendering works)"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"{backend} (offscreen rendering FAILED: {type(e).__name__}: {e})"


def system_info() -> dict[str, str]:
    import gymnasium
    import mujoco
    import numpy

    import taclab

    out = {
        "taclab": taclab.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "mujoco": mujoco.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import torch

        out["torch"] = f"{torch.__version__} (cuda available: {torch.cuda.is_available()})"
    except ImportError:
        out["torch"] = "not installed"
    out["cpus"] = str(os.cpu_count())
    out["render backend"] = rendering_backend()
    return out
