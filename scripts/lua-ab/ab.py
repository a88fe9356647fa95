"""Two versions of the Redis engine's Lua library side by side on one
redis-server: both loaded (FUNCTION LOAD, under their own names), the same
captured write call sent to each in turn, call by call, the order swapped
every round, each call with a marker of its own (so each runs; none finds a
kept answer). Prints each version's p10 / p50 / p90 per call.

    ab.py CALLFILE CALLS NAME=LUADIR NAME=LUADIR   (MODE=always|none)

CALLFILE: one `redis-cli monitor` line of an FCALL of a commit (what
scripts/lua-ab.sh captures). LUADIR: a directory of the library's .lua
files. The modules and their order are read from store/redis/script.rs, as
the host assembles them."""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT_RS = os.path.join(HERE, "..", "..", "host", "src", "store", "redis", "script.rs")
MODULES = re.findall(r'\("(\w+)", include_str!\("lua/\w+\.lua"\)\)', open(SCRIPT_RS).read())


def library(name, d):
    """The library as script.rs builds it, under function name `name`."""
    body = "".join(f"local {m}\n" for m in MODULES) + "local dispatch\nlocal function init()\n"
    for m in MODULES:
        body += f"{m} = (function()\n{open(os.path.join(d, m + '.lua')).read()}\nend)()\n"
    body += "dispatch = (function()\n" + open(os.path.join(d, "main.lua")).read() + "\nend)()\nend\n"
    body += "local function entry(keys, args)\n  if not dispatch then init() end\n  return dispatch(keys, args, false)\nend\n"
    return f"#!lua name={name}\n{body}redis.register_function('{name}', entry)\n"


ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\x07", "b": b"\x08", '"': b'"', "\\": b"\\"}


def words(line):
    """The quoted words of a monitor line, unescaped."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', line.split("] ", 1)[1]):
        s, b, i = m.group(1), bytearray(), 0
        while i < len(s):
            if s[i] == "\\":
                if s[i + 1] == "x":
                    b.append(int(s[i + 2:i + 4], 16))
                    i += 4
                else:
                    b += ESCAPES[s[i + 1]]
                    i += 2
            else:
                b += s[i].encode()
                i += 1
        out.append(bytes(b))
    return out


class Conn:
    """A plain RESP connection (the same client cost for both versions)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def cmd(self, *args):
        args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(out)
        return self.read()

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(max(int(rest), 0))]
        raise RuntimeError(f"unexpected reply {line!r}")


def main():
    callfile, calls = sys.argv[1], int(sys.argv[2])
    versions = [a.split("=", 1) for a in sys.argv[3:]]
    w = words(open(callfile).read())
    assert w[0].upper() == b"FCALL", "the call file holds no FCALL"
    nkeys = int(w[2])
    keys, args = w[3:3 + nkeys], w[3 + nkeys:]
    assert nkeys == 3 and args[1] == b"commit", "the call is no write (commit) with a marker"
    work = tempfile.mkdtemp()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    mode = os.environ.get("MODE", "always")
    persist = ["--appendonly", "yes", "--appendfsync", "always"] if mode == "always" else ["--appendonly", "no"]
    subprocess.check_call(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
                           "--save", "", "--daemonize", "yes", "--logfile", work + "/log"] + persist)
    try:
        for _ in range(50):
            try:
                conn = Conn(port)
                conn.cmd("PING")
                break
            except OSError:
                time.sleep(0.1)
        for name, d in versions:
            conn.cmd("FUNCTION", "LOAD", library(name, d))
        times = {name: [] for name, _ in versions}
        serial = 0
        for i in range(calls):
            for name, _ in (versions if i % 2 == 0 else versions[::-1]):
                serial += 1
                k = list(keys)
                k[2] = k[2] + b":%d" % serial
                t = time.perf_counter()
                answer = conn.cmd("FCALL", name, nkeys, *k, *args)
                times[name].append(time.perf_counter() - t)
                if i == 0:
                    assert answer and b"internal" not in answer, f"{name}: {answer!r}"
        print(f"redis-server, {mode}, {calls} calls per version, alternating")
        for name, _ in versions:
            ts = sorted(times[name])
            print(f"{name}: p10 {ts[len(ts) // 10] * 1e6:.1f} µs, p50 {statistics.median(ts) * 1e6:.1f} µs, "
                  f"p90 {ts[len(ts) * 9 // 10] * 1e6:.1f} µs")
    finally:
        subprocess.call(["redis-cli", "-p", str(port), "shutdown", "nosave"], stdout=subprocess.DEVNULL)
        subprocess.call(["rm", "-rf", work])


main()
