"""Downloads happen only when the user asks for something that is not on disk, and never hang: without a
network they fail within seconds with a message saying where to put the files instead."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

from lit_mlcourse.errors import UserInputError

# Seconds to wait for a connection before declaring the machine offline.
CONNECT_TIMEOUT = 3.0
# Set to 1 to refuse every download (tests set it; so can users on air-gapped clusters).
OFFLINE_VARIABLE = "LIT_MLCOURSE_OFFLINE"


class OfflineError(UserInputError, ConnectionError):
    """A file is missing and cannot be downloaded."""


def is_online(url: str) -> bool:
    """Whether the host of ``url`` accepts a connection within :data:`CONNECT_TIMEOUT` seconds."""
    if os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0"):
        return False
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT):
                result.append(True)
        except OSError:
            result.append(False)

    # The connection timeout does not bound the name lookup, which can block for tens of seconds without a
    # DNS server: the attempt runs in a daemon thread that is abandoned at the deadline.
    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(CONNECT_TIMEOUT)
    return bool(result and result[0])


def require_online(url: str, missing: str, instead: str) -> None:
    """Raise :class:`OfflineError` unless ``url`` can be downloaded.

    Args:
        url: what would be downloaded.
        missing: what is not on disk, e.g. "CIFAR-10 is not in data/cifar-10-batches-py".
        instead: what the user can do, e.g. "extract cifar-10-python.tar.gz into data/".
    """
    if not is_online(url):
        reason = f"{OFFLINE_VARIABLE} is set" if os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0") else "offline"
        raise OfflineError(f"{missing}, and it cannot be downloaded from {url} ({reason}): {instead}.")
