"""What the service refuses and when: body and pixel limits, the pixel-bounded work queue, the bearer token.

Every refusal is a ``Refusal``: an HTTP status, one line naming what was received and what is accepted, and
headers (``Retry-After`` on 503). The work queue is measured in pixels the network will compute (input pixels
× frames, × 8 with self-ensemble), because that, not the request count, is what holds memory and engine time:
each admitted request holds its decoded input and its whole output until it is answered.
"""
from __future__ import annotations

import hmac
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

from srgan_fast.options import format_bytes

DEFAULT_MAX_PIXELS = 4096 * 4096  # input pixels of one request, all frames together
DEFAULT_MAX_BODY = 64 << 20
# Two of the largest requests: at most ~1.6 GB of 8-bit RGB outputs held at once.
DEFAULT_MAX_QUEUE_PIXELS = 2 * DEFAULT_MAX_PIXELS


class Refusal(Exception):
    """A request the service answers with ``status`` and a one-line JSON error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, " ".join(message.split()), headers or {}


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_body: int = DEFAULT_MAX_BODY
    max_queue_pixels: int = DEFAULT_MAX_QUEUE_PIXELS

    def __post_init__(self):
        for name in ("max_pixels", "max_body", "max_queue_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def check_declared_body(self, content_length: str | None) -> None:
        """Refuse a body whose declared length is over the limit before reading any of it."""
        if content_length is not None and content_length.isdigit() and int(content_length) > self.max_body:
            raise self.body_too_large(f"{int(content_length)} bytes")

    def body_too_large(self, received: str) -> Refusal:
        return Refusal(413, f"request body of {received} exceeds the limit of {self.max_body} bytes "
                            f"({format_bytes(self.max_body)}; the server's --max-body)")

    def check_output(self, output_hw: tuple[int, int], frames: int) -> None:
        """An output size asked for (width=, outscale=) may not exceed the model's own ×4 of the largest input."""
        pixels = output_hw[0] * output_hw[1] * frames
        most = 16 * self.max_pixels
        if pixels > most:
            raise Refusal(413, f"output of {output_hw[1]}x{output_hw[0]}" + (f" x {frames} frames" if frames > 1
                               else "") + f" = {pixels} pixels exceeds the limit of {most} (16 x --max-pixels)")


@dataclass
class WorkQueue:
    """Admitted work in pixels, bounded; ``admit`` refuses with 503 and a ``Retry-After`` from the measured rate."""

    max_pixels: int
    queued: int = 0
    # Pixels per second the engines have been computing (a moving average of batches), for Retry-After.
    rate: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, cost: int) -> None:
        with self._lock:
            if cost > self.max_pixels:
                raise Refusal(413, f"the request needs {cost} pixels of work, more than the queue holds "
                                   f"({self.max_pixels}, the server's --max-queue-pixels)")
            if self.queued + cost > self.max_pixels:
                retry = self._retry_after_locked(cost)
                raise Refusal(503, f"server busy: {self.queued} pixels of work queued, this request needs {cost} "
                                   f"and the queue holds {self.max_pixels}; retry after {retry} s",
                              {"Retry-After": str(retry)})
            self.queued += cost

    def release(self, cost: int) -> None:
        with self._lock:
            self.queued -= cost

    def record(self, pixels: int, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            observed = pixels / seconds
            self.rate = observed if self.rate == 0 else 0.8 * self.rate + 0.2 * observed

    def _retry_after_locked(self, cost: int) -> int:
        """Seconds until enough of the queue has drained for ``cost`` at the measured rate (1..60)."""
        if self.rate <= 0:
            return 1
        excess = self.queued + cost - self.max_pixels
        return max(1, min(60, math.ceil(excess / self.rate)))


def read_api_key(path: str | Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace ignored); an empty file is refused."""
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"--api-key-file {path}: cannot read it ({exc.strerror or exc})") from None
    if not key or any(ch.isspace() for ch in key):
        raise ValueError(f"--api-key-file {path}: expected one token without spaces, got "
                         + ("an empty file" if not key else "text with spaces"))
    return key


def check_bearer(authorization: str | None, api_key: str | None) -> None:
    """Refuse (401) a request without ``Authorization: Bearer <key>`` when the server has a key."""
    if api_key is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        received = "no Authorization header" if not authorization else f"an Authorization header of scheme {scheme!r}"
        raise Refusal(401, f"this server requires 'Authorization: Bearer <token>', got {received}",
                      {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise Refusal(401, "the bearer token does not match the server's --api-key-file",
                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})
