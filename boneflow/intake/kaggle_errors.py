"""Which Kaggle download failures a retry can fix (README, "Run it locally (no server)"), read
from the exception kagglehub raised. Offline is not retried: backoff only kept a user waiting 90 s
for the same message. requests/urllib3 wrap the cause (ConnectionError <- MaxRetryError <-
NameResolutionError <- socket.gaierror, by __cause__/__context__), so the whole chain is read.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

# 4xx statuses that can pass (request timeout, rate limited); every 5xx is retried too
TRANSIENT_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class DownloadFailure:
    retryable: bool
    reason: str  # short, for the retry line and the final message
    unreachable: bool  # the network or host is not there (vs. Kaggle said no)


def classify_download_error(error: BaseException) -> DownloadFailure:
    """Whether retrying the download that raised `error` can succeed, and why."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and not any(link is seen for seen in chain):  # a chain may loop
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        status = getattr(getattr(link, "response", None), "status_code", None)
        if isinstance(status, int):
            retryable = status in TRANSIENT_STATUS or status >= 500
            return DownloadFailure(retryable, f"HTTP {status}", unreachable=False)
    for link in chain:
        if isinstance(link, socket.gaierror):
            return DownloadFailure(False, f"name resolution failed ({link.strerror or link})", unreachable=True)
        if isinstance(link, ConnectionRefusedError):
            return DownloadFailure(False, "connection refused", unreachable=True)
    # socket.timeout is TimeoutError; requests' and urllib3's own timeouts sit above one in the
    # chain, or are named so (ReadTimeout, ConnectTimeoutError)
    if any(isinstance(link, TimeoutError) or "Timeout" in type(link).__name__ for link in chain):
        return DownloadFailure(True, "timed out", unreachable=True)
    if isinstance(error, OSError):  # requests' errors are OSErrors: a reset or dropped connection
        return DownloadFailure(True, f"{type(error).__name__}: {error}"[:200], unreachable=True)
    # kagglehub's own: bad handle, missing credentials, not found
    return DownloadFailure(False, f"{type(error).__name__}: {error}"[:200], unreachable=False)
