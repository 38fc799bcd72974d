"""Model folders for the tests: a working copy of a packaged encoder to edit."""

from __future__ import annotations

import shutil


def copy_model(base, dest):
    """A working copy of the packaged MiniLM: small files copied, the 90 MB weights linked."""
    dest.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file():
            if f.name == "model.safetensors":
                (dest / f.name).symlink_to(f)
            else:
                shutil.copy(f, dest / f.name)
    return dest
