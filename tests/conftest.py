"""Shared pytest setup: make the collection importable as ansible_collections.berth.converge."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collections_path():
    """A directory holding ansible_collections/berth/converge that resolves to this checkout."""
    if ROOT.parent.name == "berth" and ROOT.parent.parent.name == "ansible_collections":
        return ROOT.parents[2]
    base = Path(os.environ.get("BERTH_LOCALENV_DIR", ROOT / ".localenv")) / "collections"
    link = base / "ansible_collections" / "berth" / "converge"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
    return base


COLLECTIONS_PATH = _collections_path()
sys.path.insert(0, str(COLLECTIONS_PATH))
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS_PATH)
