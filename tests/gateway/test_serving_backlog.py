"""The listening socket's backlog is ``server.backlog``: aiohttp's own default, 128, overflows
when thousands of streams reconnect at once (each dropped SYN costs a client seconds of backoff).
The backlog of a listening socket is read back from the kernel over sock_diag netlink, what
``ss -ltn`` shows as Send-Q, in pure Python and without privileges."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from tests.processes import free_port, gateway_process, write_config

_NETLINK_SOCK_DIAG = 4  # linux/netlink.h; the socket module does not name it
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_REQUEST = struct.Struct("=BBBxI48x")  # struct inet_diag_req_v2, its sockid left zero
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")  # struct inet_diag_msg


def listen_backlogs(port: int) -> list[int]:
    """The backlog of each IPv4 TCP socket listening on ``port`` (idiag_wqueue of a LISTEN
    socket, as the kernel's inet_diag reports it)."""
    request = _REQUEST.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
    header = _HEADER.pack(
        _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
    )
    found: list[int] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as nl:
        nl.sendall(header + request)
        while True:
            data = nl.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    raise OSError("sock_diag answered an error")
                fields = _MESSAGE.unpack_from(data, offset + _HEADER.size)
                sport, wqueue = struct.unpack("!H", fields[4])[0], fields[12]
                if sport == port:
                    found.append(wqueue)
                offset += (length + 3) & ~3


@pytest.fixture(autouse=True)
def sock_diag() -> None:
    """Skip, saying why, where no sock_diag socket can be opened (Linux without it, a sandbox
    that forbids netlink): nothing else reads a listening socket's backlog back."""
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG).close()
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no sock_diag netlink socket here ({exc}), so no backlog to read back")


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def test_sock_diag_reads_the_backlog_listen_was_given():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(77)
        assert listen_backlogs(sock.getsockname()[1]) == [77]


@pytest.mark.parametrize("backlog", [None, 1000])
async def test_the_gateway_listens_with_the_configured_backlog(tmp_path, backlog):
    server = {} if backlog is None else {"server": {"backlog": backlog}}
    port = free_port()
    async with gateway_process(write_config(tmp_path, server), port):
        # The kernel caps a backlog at net.core.somaxconn (4096 on current Linux).
        assert listen_backlogs(port) == [min(backlog or 4096, somaxconn())]
