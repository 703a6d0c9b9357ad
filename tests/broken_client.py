"""A small lab client with switchable mistakes, to prove the client cases catch them.

    python tests/broken_client.py HOST PORT CLIENT_PORT PATH [--defect NAME]

Without a defect it is a correct client, written apart from reference/client.py so
that the client cases are not only tested against one implementation.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
from urllib.parse import quote

DEFECTS = {
    "bare-lf": "ends the request lines with a bare LF",
    "ignores-client-port": "lets the OS choose the local port",
    "single-recv": "takes one recv() as the whole response",
    "text-mode": "decodes the body as text and writes it back with newline translation",
    "ignores-path": "always asks for /index.html",
}


def fetch(host: str, port: int, client_port: int, path: str, defect: str | None) -> int:
    sock = socket.socket()
    sock.settimeout(5)
    if defect != "ignores-client-port":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", client_port))
    try:
        sock.connect((host, port))
    except OSError as exc:
        print(f"broken_client: cannot connect to {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    if defect == "ignores-path":
        path = "/index.html"
    eol = "\n" if defect == "bare-lf" else "\r\n"
    sock.sendall(f"GET {quote(path)} HTTP/1.0{eol}{eol}".encode("ascii"))
    data = bytearray()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if defect == "single-recv":
                break
    except OSError as exc:
        print(f"broken_client: {exc}", file=sys.stderr)
        return 1
    finally:
        sock.close()
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        print("broken_client: the response ended inside its headers", file=sys.stderr)
        return 1
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        print("broken_client: no status line", file=sys.stderr)
        return 1
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value)
    sys.stderr.write(head.decode("latin-1") + "\n")
    if defect == "text-mode":
        text = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline=None)
        text.write(body.decode("utf-8", errors="replace").replace("\r\n", "\n"))
        text.flush()
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    if length is not None and len(body) < length:
        print(f"broken_client: {len(body)} of {length} body bytes arrived", file=sys.stderr)
        return 1
    return 0 if parts[1].startswith(b"2") else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("client_port", type=int)
    parser.add_argument("path", nargs="?", default="/")
    parser.add_argument("--defect", choices=sorted(DEFECTS))
    args = parser.parse_args()
    return fetch(args.host, args.port, args.client_port, args.path, args.defect)


if __name__ == "__main__":
    sys.exit(main())
