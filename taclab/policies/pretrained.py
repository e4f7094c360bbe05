"""Pretrained models named by a local folder or a hub id (as ``transformers``' ``from_pretrained`` takes them):
:func:`require_pretrained` checks the name before anything is loaded, so that a missing model is one clear
message, not a network error from deep inside the hub client."""

from __future__ import annotations

import os
from pathlib import Path


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def require_pretrained(
    name: str | os.PathLike, what: str = "model", hint: str = "", marker: str | None = "config.json"
) -> str:
    """``name`` as a string if it is a folder with a ``marker`` file (``config.json``; ``None``: any folder), or a
    hub id that can be loaded.

    A hub id counts as loadable when its ``config.json`` is in the local hub cache, or when the hub may be
    reached (``HF_HUB_OFFLINE`` unset); otherwise ``ValueError`` names the value and what is allowed, followed
    by ``hint`` (e.g. how to build a tiny model offline).
    """
    text = str(name)
    tail = f"; {hint}" if hint else ""
    path = Path(text).expanduser()
    if path.is_dir():
        if marker is not None and not (path / marker).is_file():
            raise ValueError(f"{what} folder {text} has no {marker}: not a saved model{tail}")
        return text
    if path.exists():
        raise ValueError(f"{what} {text} is a file; give a model folder or a hub id{tail}")
    # a hub id is "name" or "owner/name"; anything else, or a name whose parent folder exists here, is a path
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or ("/" in text and path.parent.is_dir())
    if looks_like_path:
        raise ValueError(f"{what} folder {text} not found{tail}")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(text, marker or "config.json")
    if isinstance(cached, str):
        return text
    if _offline():
        raise ValueError(
            f"{what} {text!r} is neither a folder here nor a hub id in the local cache, and the hub is off "
            f"(HF_HUB_OFFLINE=1){tail}"
        )
    endpoint = _hub_endpoint()
    if not _reachable(endpoint):
        raise ValueError(
            f"{what} {text!r} is neither a folder here nor a hub id in the local cache, and the hub ({endpoint}) "
            f"cannot be reached{tail}"
        )
    return text


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(getattr(constants, "ENDPOINT", "https://huggingface.co"))


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (no request is sent)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False
