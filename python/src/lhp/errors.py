"""Error frames (spec/lhp-1.md section 7.2, spec/lhp-app.md section 10.8).

Every error code has one class:

- **connection** errors (the thirteen decode codes of section 7.1, plus
  ``timeout`` and ``busy``): the sender closes the connection after the
  frame, whose header is ``{"kind":"error","code":C,"message":M,"offset":N}``
  (plus ``"missing":K`` for ``unexpected_eof``), never with ``id``;
- **request** errors (a refusal of one request; the connection goes on):
  ``{"kind":"error","id":I,"code":C,"message":M}``, ``id`` present when the
  request had one, never ``offset``.

A receiver tells them apart by ``offset``.  An unknown code is handled as
``internal`` of the class ``offset`` says.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .codec import CODES, LHPError

__all__ = ["PeerError", "CONNECTION_CODES", "REQUEST_CODES",
           "connection_error_header", "request_error_header", "peer_error",
           "raise_for_error"]

#: Codes that end the connection.
CONNECTION_CODES = frozenset(CODES) | {"timeout", "busy"}

#: Codes that refuse one request (spec/lhp-app.md).
REQUEST_CODES = frozenset({
    "bad_request", "bad_name", "not_found", "exists", "in_use",
    "exec_denied", "file_digest_mismatch", "no_space", "internal"})


class PeerError(LHPError):
    """The peer sent an error frame.

    ``code`` is as sent; ``known_code`` is the code to act on (``internal``
    for a code this package does not know).  ``connection`` is True for a
    connection error (the frame carried ``offset``: expect the close), False
    for the refusal of one request.  ``offset``, ``missing`` and ``id`` are
    the frame's members, ``None`` when absent."""

    def __init__(self, header: Mapping[str, Any]) -> None:
        self.header = header
        self.code = header.get("code")
        self.message = header.get("message")
        self.offset = header.get("offset")
        self.missing = header.get("missing")
        self.id = header.get("id")
        self.connection = "offset" in header
        known = CONNECTION_CODES if self.connection else REQUEST_CODES
        self.known_code = self.code if self.code in known else "internal"
        where = ("connection error at offset %s" % (self.offset,)
                 if self.connection else "request refused")
        super().__init__("peer sent %s: %s (%s)" % (self.code, self.message,
                                                    where))


def peer_error(header: Mapping[str, Any]) -> Optional[PeerError]:
    """A PeerError for an error frame's header, else None."""
    if header.get("kind") == "error":
        return PeerError(header)
    return None


def raise_for_error(header: Dict[str, Any]) -> Dict[str, Any]:
    """Raise PeerError if ``header`` is an error frame's; return it
    otherwise (``reply = raise_for_error(recv_frame(sock).header)``)."""
    e = peer_error(header)
    if e is not None:
        raise e
    return header


def connection_error_header(code: str, message: str, offset: int,
                            missing: Optional[int] = None) -> Dict[str, Any]:
    """The header of a connection error frame (member order fixed)."""
    h: Dict[str, Any] = {"kind": "error", "code": code, "message": message,
                         "offset": offset}
    if missing is not None:
        h["missing"] = missing
    return h


def request_error_header(code: str, message: str,
                         id: Optional[int] = None) -> Dict[str, Any]:
    """The header of a request error frame; ``id`` copied from the request
    when it had one."""
    h: Dict[str, Any] = {"kind": "error"}
    if id is not None:
        h["id"] = id
    h["code"] = code
    h["message"] = message
    return h
