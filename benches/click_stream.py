#!/usr/bin/env python3
"""An open-loop stream of one-click unsubscribes, as recipients click: request k is due at
k / RATE seconds from the start whether or not earlier ones have been answered, each on a
connection of its own (as a mail provider's one-click POST comes), and its latency runs from
when it was due, so a server that stalls is charged for every click that waits, not only for
the few a closed-loop client would have in flight (coordinated omission).

usage: click_stream.py HOST:PORT TOKENS RATE STOP OUT
TOKENS: lines "PUBLIC_ID TOKEN". The stream ends once the file STOP exists or the tokens run
out. OUT gets a line "PUBLIC_ID STATUS MILLISECONDS" per click (status 0: no answer within 30 s,
or none that parsed); stdout a summary line:
"clicks N failed F p50 MS p99 MS max MS".
"""
import asyncio
import os
import sys
import time

# A click unanswered for this long counts as failed (status 0), at that latency.
TIMEOUT = 30


async def click(host, port, token):
    reader, writer = await asyncio.open_connection(host, port)
    body = b"List-Unsubscribe=One-Click"
    writer.write(
        b"POST /u/" + token.encode() + b" HTTP/1.1\r\nHost: " + host.encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 else 0


async def main():
    address, tokens_path, rate, stop, out = sys.argv[1:6]
    host, port = address.rsplit(":", 1)
    rate = float(rate)
    tokens = [line.split() for line in open(tokens_path)]
    results = []

    async def one(public_id, token, due):
        try:
            status = await asyncio.wait_for(click(host, int(port), token), TIMEOUT)
        except (OSError, ValueError, IndexError, asyncio.TimeoutError):
            status = 0
        results.append((public_id, status, (time.monotonic() - due) * 1000))

    start = time.monotonic()
    tasks = []
    for k, (public_id, token) in enumerate(tokens):
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if k % int(max(rate / 10, 1)) == 0 and os.path.exists(stop):
            break
        tasks.append(asyncio.create_task(one(public_id, token, due)))
    await asyncio.gather(*tasks)

    with open(out, "w") as f:
        for public_id, status, ms in results:
            f.write(f"{public_id} {status} {ms:.1f}\n")
    latencies = sorted(ms for _, _, ms in results)
    failed = sum(1 for _, status, _ in results if status != 200)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

    print(f"clicks {len(results)} failed {failed} p50 {pct(0.5):.1f} p99 {pct(0.99):.1f} "
          f"max {latencies[-1] if latencies else 0:.1f}")


asyncio.run(main())
