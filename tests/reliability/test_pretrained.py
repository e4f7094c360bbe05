"""A pretrained model named by a folder or a hub id is checked before loading: a missing one is one clear
message (item 9: `tla bench --model nosuch`, a config naming a tiny model that was never built), not a network
error from the hub client."""

import pytest

from taclab.policies import pretrained
from taclab.policies.pretrained import require_pretrained


def test_folders_are_checked(tmp_path):
    good = tmp_path / "m"
    good.mkdir()
    (good / "config.json").write_text("{}")
    assert require_pretrained(good) == str(good)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        require_pretrained(tmp_path / "empty")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        require_pretrained(tmp_path / "f")
    with pytest.raises(ValueError, match=r"folder .*missing not found; build it"):
        require_pretrained(tmp_path / "missing", hint="build it")
    with pytest.raises(ValueError, match="folder ./nowhere not found"):
        require_pretrained("./nowhere")


def test_hub_ids_need_the_cache_or_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"'owner/nosuch' is neither a folder here nor a hub id in the local cache"):
        require_pretrained("owner/nosuch")
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    assert require_pretrained("owner/cached") == "owner/cached"
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(pretrained, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(ValueError, match=r"cannot be reached"):
        require_pretrained("nosuch")
    monkeypatch.setattr(pretrained, "_reachable", lambda url, timeout=3.0: True)
    assert require_pretrained("owner/online") == "owner/online"
