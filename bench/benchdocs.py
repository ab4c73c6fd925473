"""Writing a benchmark's section of docs/benchmarks.md, shared by the bench scripts."""
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(heading, text):
    """Replace the section that starts with ``heading`` (e.g. ``## release_apply``) by ``text``, or append it."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = text.rstrip("\n") + "\n\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _match: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    # A blank line above the heading too, whoever wrote the section before it.
    updated = re.sub(rf"\n+(?=^{re.escape(heading)}\n)", "\n\n", updated, flags=re.M)
    DOCS.write_text(updated.rstrip("\n") + "\n")
