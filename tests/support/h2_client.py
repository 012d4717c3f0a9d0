"""An HTTP/2 (prior knowledge, cleartext) client that misbehaves on purpose, built on the
`h2` library, for tests of what such clients can do to Usher.

    h2_client.py PORT stall PATH              POST declaring a 10-byte body that never comes
    h2_client.py PORT post PATH N [H:V ...]   POST of N bytes, without content-length, with the
                                              headers given; prints the status, the
                                              idempotent-replayed header and the JSON body
    h2_client.py PORT case METHOD PATH        a request with METHOD exactly as given
    h2_client.py PORT zero-window N PATH SECS N GETs on one connection whose receive window
                                              stays at zero, held open for SECS
    h2_client.py PORT cancel N PATH MS        N GETs, each cancelled (RST_STREAM) after MS
    h2_client.py PORT silent SECS             the preface and SETTINGS, then nothing
    h2_client.py PORT partial-headers SECS    then a HEADERS frame without END_HEADERS

Prints one JSON object: the status of every stream that got a response head, whether the
server closed the connection, and after how many seconds (`silent`, `partial-headers`).
Every mode ends by itself within its time bound.
"""

import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def connect(port, window=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    sock.sendall(conn.data_to_send())
    return sock, conn


def headers(method, path, extra=()):
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")] + list(extra)


def pump(sock, conn, until, statuses, stop=lambda: False):
    """Reads events until `until` (a monotonic time) or `stop()`; returns whether the server
    closed the connection."""
    while time.monotonic() < until and not stop():
        sock.settimeout(max(0.01, min(0.2, until - time.monotonic())))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True
        if not data:
            return True
        try:
            events = conn.receive_data(data)
        except Exception:
            return True
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                statuses[event.stream_id] = int(dict(event.headers)[":status"])
            if isinstance(event, h2.events.ConnectionTerminated):
                return True
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return False


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    statuses = {}
    closed = False
    if mode == "stall":
        sock, conn = connect(port)
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers("POST", sys.argv[3], [("content-length", "10")]))
        sock.sendall(conn.data_to_send())
        closed = pump(sock, conn, time.monotonic() + 5, statuses, lambda: stream in statuses)
    elif mode == "post":
        path, size = sys.argv[3], int(sys.argv[4])
        extra = [tuple(arg.split(":", 1)) for arg in sys.argv[5:]]
        sock, conn = connect(port)
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers("POST", path, extra))
        conn.send_data(stream, bytes(n % 251 for n in range(size)), end_stream=True)
        sock.sendall(conn.data_to_send())
        body, done, replayed = bytearray(), [], None
        until = time.monotonic() + 5
        while time.monotonic() < until and not done:
            sock.settimeout(0.2)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[stream] = int(dict(event.headers)[":status"])
                    replayed = dict(event.headers).get("idempotent-replayed")
                elif isinstance(event, h2.events.DataReceived):
                    body.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done.append(True)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = body.decode(errors="replace")
        print(json.dumps({"status": statuses.get(stream), "replayed": replayed, "body": answer}))
        return
    elif mode == "case":
        sock, conn = connect(port)
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers(sys.argv[3], sys.argv[4]), end_stream=True)
        sock.sendall(conn.data_to_send())
        closed = pump(sock, conn, time.monotonic() + 5, statuses, lambda: stream in statuses)
    elif mode == "zero-window":
        count, path, seconds = int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
        sock, conn = connect(port, window=0)
        for _ in range(count):
            conn.send_headers(conn.get_next_available_stream_id(), headers("GET", path), end_stream=True)
        sock.sendall(conn.data_to_send())
        closed = pump(sock, conn, time.monotonic() + seconds, statuses)
    elif mode == "cancel":
        count, path, delay = int(sys.argv[3]), sys.argv[4], float(sys.argv[5]) / 1000
        sock, conn = connect(port)
        for _ in range(count):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers("GET", path), end_stream=True)
            sock.sendall(conn.data_to_send())
            closed = pump(sock, conn, time.monotonic() + delay, statuses)
            if closed:
                break
            try:
                conn.reset_stream(stream)
            except h2.exceptions.StreamClosedError:
                continue  # answered (say, 503 busy) before it could be cancelled
            sock.sendall(conn.data_to_send())
    elif mode in ("silent", "partial-headers"):
        seconds = float(sys.argv[3])
        sock, conn = connect(port)
        if mode == "partial-headers":
            # HEADERS on stream 1 with ":method: GET" (HPACK index 2) and no END_HEADERS.
            sock.sendall(b"\x00\x00\x01\x01\x00\x00\x00\x00\x01\x82")
        # Raw reads: the frames are not this client's state machine's to judge.
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() < started + seconds:
            sock.settimeout(0.1)
            try:
                closed = not sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                closed = True
        print(json.dumps({"statuses": [], "closed": closed, "after": time.monotonic() - started}))
        return
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps({"statuses": list(statuses.values()), "closed": closed}))


main()
