# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded, open-loop HTTP load (fixed rate, fixed duration) with httpx.

Open loop: request i leaves at start + i / rate whether or not the earlier ones have
answered, as real clients do; a slow or dead target shows up as failures and latency,
not as a lower rate.
"""

from __future__ import annotations

import asyncio
import time
import traceback

try:
    import httpx

    HAS_HTTPX = True
    HTTPX_IMPORT_ERROR = None
except ImportError:
    HAS_HTTPX = False
    HTTPX_IMPORT_ERROR = traceback.format_exc()

# Hard caps: a game day is a test, not a denial of service.
MAX_RATE = 200.0
MAX_DURATION = 600
MAX_IN_FLIGHT = 1000


def check_load(rate, duration, request_timeout):
    """Errors name the field, the value and what is allowed; returns nothing when fine."""
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate: {rate} requests/s is outside 0 < rate <= {MAX_RATE:g}")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration: {duration} s is outside 0 < duration <= {MAX_DURATION}")
    if not 0 < request_timeout <= 60:
        raise ValueError(f"request_timeout: {request_timeout} s is outside 0 < request_timeout <= 60")


async def _one(client, url, record):
    started = time.monotonic()
    try:
        response = await client.get(url)
        record["status"] = response.status_code
        record["ok"] = 200 <= response.status_code < 400
    except httpx.HTTPError as error:
        record["error"] = type(error).__name__
    record["latency"] = round(time.monotonic() - started, 6)


async def run_load(client, url, rate, duration, requests, stop=None):
    """Send rate x duration GETs to url; appends one record per request to requests.

    A record is {"t": epoch sent, "ok", "status", "latency", "error"}; stop is an
    asyncio.Event that ends the load early.
    """
    total = int(rate * duration)
    start = time.monotonic()
    wall_start = time.time()
    in_flight = set()
    for index in range(total):
        if stop is not None and stop.is_set():
            break
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        record = {
            "t": round(wall_start + (time.monotonic() - start), 6),
            "ok": False,
            "status": None,
            "latency": None,
            "error": None,
        }
        requests.append(record)
        if len(in_flight) >= MAX_IN_FLIGHT:
            record["error"] = "client at its in-flight limit"
            continue
        task = asyncio.ensure_future(_one(client, url, record))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight, return_exceptions=True)


def make_client(request_timeout):
    return httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout),
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=100),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment must not see the game day's traffic
    )
