"""Small shared helpers: atomic file writes, folder locks, resource checks, one-line messages for config errors,
``--set`` parsing, JSON records and system information."""

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


class FolderLockedError(RuntimeError):
    """The folder is locked by another live process; the message names the holder (pid, host, command)."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


LOCK_FILE = ".taclab.lock"


class FolderLock:
    """An exclusive lock on a folder that a job writes (a dataset, a training run, an export).

    ``with FolderLock(folder, "dataset generation"):`` creates the folder if needed, then holds an exclusive
    ``flock`` on ``folder/.taclab.lock``, a file that records the holder (pid, host, command, purpose, start time).
    A second holder, in this process or another, gets :class:`FolderLockedError` naming the first. The kernel
    drops the lock when its process dies, however it dies, so a lock file left by a dead process is simply
    taken over (``took_over`` then holds what it recorded). On release the lock file is removed, and a folder
    the lock created is removed again when it is still empty (a failed start leaves nothing behind).
    """

    def __init__(self, folder: str | Path, purpose: str = "write"):
        self.folder = Path(folder)
        self.purpose = purpose
        self.path = self.folder / LOCK_FILE
        self.took_over: dict | None = None
        self._fd: int | None = None
        self._created: list[Path] = []

    @staticmethod
    def holder(folder: str | Path) -> dict | None:
        """What the lock file of ``folder`` records, or None when there is none (or it is unreadable)."""
        import json

        try:
            record = json.loads((Path(folder) / LOCK_FILE).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    @staticmethod
    def describe(holder: dict | None) -> str:
        if not holder:
            return "another process (its lock file records nothing)"
        return (
            f"pid {holder.get('pid')} on host {holder.get('host')} ({holder.get('purpose', 'write')}: "
            f"{holder.get('command')!s}, since {holder.get('started')})"
        )

    def acquire(self) -> FolderLock:
        import fcntl
        import json
        import socket
        import time

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FolderLock")
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder} is a file, not a folder")
        missing = []
        p = self.folder
        while not p.exists():
            missing.append(p)
            p = p.parent
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self.holder(self.folder)
                self._remove_created()
                raise FolderLockedError(
                    f"{self.folder} is locked by {self.describe(holder)}: wait for it to finish or stop it; "
                    f"two writers would corrupt each other",
                    holder,
                ) from None
            try:  # the file may have been removed (released) between open and flock: lock the current one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = self.holder(self.folder)
        if previous and previous.get("pid"):
            self.took_over = previous
        argv = sys.argv if sys.argv and sys.argv[0] else [sys.executable]
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([Path(argv[0]).name, *argv[1:]]),
            "purpose": self.purpose,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        data = json.dumps(record).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for p in self._created:  # deepest first; only folders this lock made, and only when empty
            try:
                p.rmdir()
            except OSError:
                break
        self._created = []

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def free_disk_bytes(path: str | Path) -> int:
    """Free bytes on the file system that holds ``path`` (or would hold it: its nearest existing parent)."""
    import shutil

    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def available_memory_bytes() -> int:
    """Memory available to new allocations without swapping (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return 1 << 62


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def validation_message(error, prefix: str = "", allowed: dict[str, list[str]] | None = None) -> str:
    """A pydantic ``ValidationError`` as one line: ``prefix: key = value: what is wrong; ...``.

    An unknown key is reported with the keys that are allowed there: ``allowed`` maps a dotted location (``""``
    for the top level) to those keys; the top level's come from the model when the error has ``title``.
    """
    parts = []
    for e in error.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        if e.get("type") == "extra_forbidden":
            where = loc.rsplit(".", 1)[0] if "." in loc else ""
            keys = (allowed or {}).get(where)
            parts.append(f"unknown key {loc!r}" + (f"; allowed: {', '.join(keys)}" if keys else ""))
            continue
        msg = e.get("msg", "invalid")
        if "input" in e and e.get("type") != "missing":
            value = repr(e["input"])
            value = value if len(value) <= 60 else value[:57] + "..."
            parts.append(f"{loc} = {value}: {msg}" if loc else f"{value}: {msg}")
        else:
            parts.append(f"{loc}: {msg}" if loc else msg)
    text = "; ".join(parts) or str(error)
    text = " ".join(text.split())  # one line
    return f"{prefix}: {text}" if prefix else text


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


def config_diff(a: dict, b: dict, prefix: str = "") -> str:
    """The keys (dotted for nested dicts) whose values differ between two configs, as ``key: old -> new`` joined by
    ``; `` (empty when they are equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = config_diff(va, vb, f"{prefix}{k}.")
            if d:
                out.append(d)
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return "; ".join(out)


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
    from importlib.metadata import PackageNotFoundError, version

    import gymnasium
    import mujoco
    import numpy

    try:
        own = version("taclab")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        own = "unknown (not installed)"
    out = {
        "taclab": own,
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
