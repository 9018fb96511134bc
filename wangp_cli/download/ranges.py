"""Which bytes of a file are fetched over which HTTP Range connection, and what a partial file records.

No network here: the connection table, the split into pieces, the thread-safe piece map (handing pieces out in
offset order, splitting the largest one in flight when none is left), the per-piece metadata of a partial file,
and ``Retry-After``. :mod:`wangp_cli.download.transfer` moves the bytes.
"""

from __future__ import annotations

import email.utils
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20  # bytes read, written and recorded at a time: the most a SIGKILL loses per connection

# (smallest file size, connections): the first row the file reaches. Small files gain nothing from more
# connections (one request's latency is worth several MiB on a fast line); big ones are where a mirror's
# per-connection limit costs the most.
CONNECTIONS_BY_SIZE = ((1 << 30, 8), (256 << 20, 4), (64 << 20, 2), (0, 1))
MAX_CONNECTIONS = 32

# Pieces: about PIECES_PER_CONNECTION per connection, so that a slow connection holds back at most a quarter of
# its share, clamped to MIN_PIECE..MAX_PIECE: each piece costs one request (a redirect and a new TCP/TLS
# connection on the Hub, ~0.1-0.3 s), so below 8 MiB the requests cost more than they save; above 256 MiB a
# piece outlives what a connection's tail should be. Every connection gets at least one piece (so an explicit
# --connections works on small files too; the smallest piece is then one CHUNK). Once nothing is left to hand
# out, the piece in flight with the most left is split in two, only when each half keeps SPLIT_MIN bytes: the
# connection cut short has already been sent what its TCP window holds beyond the cut (a few MiB on a fast
# line), which a split wastes, so it pays only on large pieces, where a slow connection would hold the end back.
# bench/download_speed.py --parts resume at 1 GiB: with 8 MiB halves the unthrottled resume run split near its
# end and the server sent 7.9-8.4 MB it never needed in 2 runs of 3 (13.1 MB wasted over both runs, above the
# 10.4 MB bound); with 32 MiB halves 3 runs of 3 fetched exactly the missing bytes (2.8-4.3 MB wasted in all).
PIECES_PER_CONNECTION = 4
MIN_PIECE, MAX_PIECE = 8 << 20, 256 << 20
SPLIT_MIN = 32 << 20


def _env_int(name: str, default: int | None) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def default_connections(size: int | None) -> int:
    """Connections for a file of ``size`` bytes: WANGP_DOWNLOAD_CONNECTIONS when set, else the size table
    (1 when the size is unknown)."""
    forced = _env_int("WANGP_DOWNLOAD_CONNECTIONS", None)
    if forced is not None:
        return max(1, min(forced, MAX_CONNECTIONS))
    if size is None:
        return 1
    return next(count for smallest, count in CONNECTIONS_BY_SIZE if size >= smallest)


def max_wait() -> float:
    """The longest ``Retry-After`` honoured, in seconds (WANGP_DOWNLOAD_MAX_WAIT, default 60): a longer one is
    cut to this, then the request is tried again."""
    try:
        return max(0.0, float(os.environ.get("WANGP_DOWNLOAD_MAX_WAIT", "60")))
    except ValueError:
        return 60.0


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay in seconds, or an HTTP date), capped by
    :func:`max_wait`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), max_wait())


@dataclass
class Piece:
    """Bytes ``start``..``end`` (exclusive) of the file; ``done`` of them, from ``start``, are on disk and
    recorded. ``busy``: a connection is on it; ``reserved``: the offset that connection reads up to now (a split
    never cuts below it)."""

    start: int
    end: int
    done: int = 0
    busy: bool = False
    reserved: int = 0

    @property
    def pos(self) -> int:
        return self.start + self.done

    @property
    def complete(self) -> bool:
        return self.pos >= self.end


def plan_pieces(size: int, connections: int) -> list[Piece]:
    """Split ``size`` bytes for ``connections`` connections (see PIECES_PER_CONNECTION)."""
    if size <= 0:
        return [Piece(0, 0)]
    connections = max(1, connections)
    piece = -(-size // (connections * PIECES_PER_CONNECTION))
    piece = min(max(piece, MIN_PIECE), MAX_PIECE)
    piece = min(piece, max(CHUNK, -(-size // connections)))  # every connection gets work
    return [Piece(start, min(start + piece, size)) for start in range(0, size, piece)]


class PieceMap:
    """The pieces of one file and their progress, shared by the connections (every method takes the lock)."""

    def __init__(self, size: int, pieces: list[Piece]):
        self.size = size
        self.pieces = sorted(pieces, key=lambda p: p.start)
        self.lock = threading.Condition()

    @classmethod
    def fresh(cls, size: int, connections: int, prefix: int = 0) -> "PieceMap":
        """New pieces; the first ``prefix`` bytes (an old contiguous partial file) count as done."""
        pieces = plan_pieces(size, connections)
        for piece in pieces:
            piece.done = max(0, min(prefix, piece.end) - piece.start)
        return cls(size, pieces)

    @property
    def done(self) -> int:
        with self.lock:
            return sum(p.done for p in self.pieces)

    @property
    def complete(self) -> bool:
        with self.lock:
            return all(p.complete for p in self.pieces)

    def prefix(self) -> int:
        """Bytes from 0 that are all done (what a hasher may read)."""
        with self.lock:
            offset = 0
            for piece in self.pieces:
                if piece.start != offset:
                    break
                offset = piece.pos
                if not piece.complete:
                    break
            return offset

    def take(self) -> Piece | None:
        """The lowest pending piece, else a split of the busiest one; None when nothing is left to fetch."""
        with self.lock:
            for piece in self.pieces:
                if not piece.busy and not piece.complete:
                    piece.busy, piece.reserved = True, piece.pos
                    return piece
            return self._split()

    def _split(self) -> Piece | None:
        best, best_left = None, 0
        for piece in self.pieces:
            left = piece.end - max(piece.pos, piece.reserved)
            if piece.busy and left > best_left:
                best, best_left = piece, left
        if best is None or best_left < 2 * SPLIT_MIN:
            return None
        middle = best.end - best_left // 2
        tail = Piece(middle, best.end, busy=True, reserved=middle)
        best.end = middle
        self.pieces.insert(self.pieces.index(best) + 1, tail)
        return tail

    def reserve(self, piece: Piece, want: int) -> int:
        """Up to which offset the connection on ``piece`` reads next (at most ``want`` bytes, never past its end,
        which a split may have moved)."""
        with self.lock:
            piece.reserved = min(piece.end, piece.pos + want)
            return piece.reserved

    def record(self, piece: Piece, count: int) -> None:
        """``count`` more bytes of ``piece`` are on disk."""
        with self.lock:
            piece.done += count
            self.lock.notify_all()

    def release(self, piece: Piece) -> None:
        """The connection left ``piece``: what is not done goes back to be handed out again."""
        with self.lock:
            piece.busy, piece.reserved = False, piece.pos
            self.lock.notify_all()

    def pending(self) -> bool:
        """Whether a piece waits that no connection holds."""
        with self.lock:
            return any(not p.busy and not p.complete for p in self.pieces)

    def to_json(self) -> list[list[int]]:
        with self.lock:
            return [[p.start, p.end, p.done] for p in self.pieces]


def pieces_from_json(size: int, rows) -> PieceMap | None:
    """The piece map a partial file's metadata records; None unless the pieces cover 0..size exactly."""
    try:
        pieces = [Piece(int(start), int(end), int(done)) for start, end, done in rows]
    except (TypeError, ValueError):
        return None
    pieces.sort(key=lambda p: p.start)
    offset = 0
    for piece in pieces:
        if piece.start != offset or piece.end < piece.start or not 0 <= piece.done <= piece.end - piece.start:
            return None
        offset = piece.end
    return PieceMap(size, pieces) if offset == size and pieces else None


def read_partial(part: Path, meta: Path, identity: dict) -> tuple[int, PieceMap | None] | None:
    """What a partial file of ``identity`` holds: ``(contiguous bytes, None)`` for a part written in order,
    ``(done bytes, piece map)`` for one written by ranges; None when it cannot be resumed (no part, other
    metadata, another version, a part of the wrong size)."""
    size = identity.get("size")
    if size is None or not identity.get("version") or not part.is_file():
        return None
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    rows = recorded.pop("pieces", None)
    if recorded != identity:
        return None
    on_disk = part.stat().st_size
    if rows is None:
        return (on_disk, None) if on_disk <= size else None
    pieces = pieces_from_json(size, rows)
    if pieces is None or on_disk != size:
        return None
    return pieces.done, pieces
