"""One-time notices about weights: a non-permissive licence, a head that differs from what was asked.

Logged once per message per process on the "keras_regnet" logger (and printed to stderr when no
logging is configured, Python's last-resort handler), so a loop that builds many models says it once.
"""

from __future__ import annotations

import logging

from keras_regnet.presets import Preset

LOGGER = logging.getLogger("keras_regnet")
_SAID: set[str] = set()


def notice_once(message: str) -> bool:
    """Log `message` as a warning the first time it is seen; True when it was logged now."""
    if message in _SAID:
        return False
    _SAID.add(message)
    LOGGER.warning(message)
    return True


def licence_notice(preset: Preset) -> str | None:
    """The line a non-permissive weight's load logs (licence and source), None for MIT/Apache/BSD."""
    if preset.permissive:
        return None
    source = preset.origin_url or f"https://huggingface.co/{preset.hf_repo}"
    return (f"{preset.name} weights are licensed {preset.licence} (not a permissive licence; see "
            f"https://huggingface.co/{preset.hf_repo} and {source}): check the terms before use")


def notice_licence(preset: Preset) -> bool:
    """Log the licence of a non-permissive weight once per process; True when it was logged now."""
    line = licence_notice(preset)
    return notice_once(line) if line else False
