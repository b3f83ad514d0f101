"""Where a Ray cluster is: an address checked before Ray sees it (Ray answers a malformed one with a traceback from
deep inside), and a TCP probe that fails at once on a refused connection or a host that does not resolve."""

from __future__ import annotations

import socket
import time

from ticketpack.core.errors import FieldError, TicketpackError

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
RAY_ADDRESS_FORMS = "HOST:PORT, ray://HOST:PORT or auto"


def parse_ray_address(address: str) -> tuple[str, int] | None:
    """``host:port``, ``[v6]:port`` or ``ray://host:port`` → (host, port); None for ``auto`` (Ray finds the cluster
    this machine runs). Anything else raises :class:`TicketpackError` naming what is wrong with it, before Ray sees
    it (Ray answers a malformed address with a traceback from deep inside)."""
    def bad(why: str) -> TicketpackError:
        return FieldError(f"`ray_address` {address!r}: {why} (expected {RAY_ADDRESS_FORMS})", fields=["ray_address"])

    text = address.strip()
    if text == "auto":
        return None
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme != "ray":
        raise bad(f"unknown scheme '{scheme}://'; a Ray cluster address starts with ray:// or has none")
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [v6]:port
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise bad("an IPv6 address needs the form [ADDRESS]:PORT")
        port = tail[1:]
        import ipaddress

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"'{host}' is not an IPv6 address") from None
    else:
        host, colon, port = rest.rpartition(":")
        if not colon:
            raise bad("no port")
        if not host:
            raise bad("no host before the port")
        if not set(host) <= _HOST_CHARS or host.startswith(("-", ".")):
            raise bad(f"'{host}' is not a host name or IP address")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad(f"the port '{port}' is not a number from 1 to 65535")
    return host, int(port)


def unreachable(address: str, timeout_s: float, why: str) -> TicketpackError:
    return FieldError(f"cannot reach the Ray cluster at {address} within {timeout_s:g}s ({why}); check "
                      "`ray_address`, or raise `ray_timeout_s`", fields=["ray_address", "ray_timeout_s"])


def wait_for_port(address: str, deadline: float, timeout_s: float) -> None:
    """Wait until ``address`` accepts a TCP connection, until ``deadline`` (time.monotonic). A refused connection
    (nothing listens there) or a host name that does not resolve fails at once: waiting would not change it."""
    hp = parse_ray_address(address)
    if hp is None:
        return
    why = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise unreachable(address, timeout_s, why)
        try:
            with socket.create_connection(hp, timeout=min(left, 2.0)):
                return
        except ConnectionRefusedError:
            raise FieldError(f"cannot reach the Ray cluster at {address}: connection refused (nothing listens "
                             f"on port {hp[1]} of {hp[0]}); check `ray_address` and that the cluster is "
                             "running (`ray status`)", fields=["ray_address"]) from None
        except socket.gaierror as exc:
            raise FieldError(f"cannot reach the Ray cluster at {address}: the host name {hp[0]!r} does not "
                             f"resolve ({exc.strerror or exc}); check `ray_address`", fields=["ray_address"]) from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
