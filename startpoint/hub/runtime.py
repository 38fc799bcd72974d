"""How the catalog reaches the Hub at run time: live, or replaying a recording (`STARTPOINT_HUB_RECORDING`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def hub_offline(recording: str | None = None) -> bool:
    """True when the Hub cannot be reached and no recording stands in for it."""
    from huggingface_hub import constants

    return not (recording or os.environ.get("STARTPOINT_HUB_RECORDING")) and bool(constants.is_offline_mode())


@contextlib.contextmanager
def hub_access(recording: str | None = None) -> Iterator[str]:
    """Yields 'live' or 'recording:<dir>'; offline without a recording is an error that says what to do."""
    from startpoint.hub.replay import replay_hub

    recording = recording or os.environ.get("STARTPOINT_HUB_RECORDING") or None
    if recording:
        with replay_hub(recording):
            yield f"recording:{recording}"
        return
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise RuntimeError(
            "the Hub catalog needs the Hub, but HF_HUB_OFFLINE is set: unset it, or set STARTPOINT_HUB_RECORDING "
            "to a recorded catalog folder (e.g. tests/fixtures/hub) to replay it"
        )
    yield "live"
