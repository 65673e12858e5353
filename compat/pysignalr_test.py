"""pysignalr (the Python SignalR client from PyPI) against Conduit's image hub.

Each check connects with the virtual key, submits an image task with urllib and
expects ImageGenerationStarted then ImageGenerationCompleted for it, each argument
carrying taskId, eventId and sequence. Prints one line per check and ends with
"N passed, N failed"; exits non-zero if anything failed.

Run by compat/run.sh inside compat/.venv, against the gateway of compat/with-server.sh
(CONDUIT_URL, CONDUIT_KEY in the environment).
"""

import asyncio
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from pysignalr.client import SignalRClient
from pysignalr.exceptions import AuthorizationError
from pysignalr.protocol.messagepack import MessagepackProtocol

BASE = os.environ["CONDUIT_URL"]
KEY = os.environ["CONDUIT_KEY"]
HUB = f"{BASE}/hubs/image-generation"
METHODS = ["ImageGenerationStarted", "ImageGenerationProgress", "ImageGenerationCompleted",
           "ImageGenerationFailed", "ImageGenerationCancelled"]


def http(method, path, body=None, key=KEY):
    """A JSON request with urllib; returns (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{BASE}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def submit_image():
    status, body = http("POST", "/v1/images/generations",
                        {"prompt": "a paper boat on a pond", "model": "dall-e-3", "async": True})
    assert status == 202, f"submit answered {status}: {body}"
    return body["task_id"]


async def wait_for(condition, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def receive_task_events(client):
    """Runs the client, submits a task once connected, returns the task's events."""
    seen = []
    opened = asyncio.Event()

    def recorder(method):
        async def handler(args):
            seen.append((method, args[0] if args else None))
        return handler

    for method in METHODS:
        client.on(method, recorder(method))

    async def on_open():
        opened.set()

    client.on_open(on_open)
    runner = asyncio.create_task(client.run())
    try:
        done, _ = await asyncio.wait({runner, asyncio.ensure_future(opened.wait())},
                                     timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # raises what stopped the client
        assert opened.is_set(), "the connection did not open within 10 s"
        task_id = await asyncio.to_thread(submit_image)
        mine = lambda: [(m, a) for m, a in seen if a and a.get("taskId") == task_id]
        await wait_for(lambda: any(m == "ImageGenerationCompleted" for m, _ in mine()),
                       f"ImageGenerationCompleted of {task_id}")
        return task_id, mine()
    finally:
        runner.cancel()
        try:
            await runner
        except (asyncio.CancelledError, Exception):
            pass


def check_events(task_id, events):
    methods = [m for m, _ in events]
    assert methods[0] == "ImageGenerationStarted", f"Started first: {methods}"
    assert methods[-1] == "ImageGenerationCompleted", f"Completed last: {methods}"
    for method, arg in events:
        assert str(arg.get("eventId", "")).startswith("evt_"), f"{method} has an eventId: {arg}"
        assert isinstance(arg.get("sequence"), int) and arg["sequence"] >= 1, f"{method} has a sequence: {arg}"
    image_url = events[-1][1]["imageUrl"]
    parsed = urllib.parse.urlsplit(image_url)
    assert parsed.scheme in ("http", "https") and parsed.netloc, f"imageUrl is absolute: {image_url}"
    status, log = http("GET", f"/v1/tasks/{task_id}/events")
    assert status == 200
    assert [a["eventId"] for _, a in events] == [e["id"] for e in log["data"]], \
        "the hub delivered every event of the task's log, in order"


async def access_token_query():
    """The key as the access_token query parameter (what browsers send)."""
    url = f"{HUB}?{urllib.parse.urlencode({'access_token': KEY})}"
    task_id, events = await receive_task_events(SignalRClient(url))
    check_events(task_id, events)


async def bearer_header():
    """The key as a bearer token: in the negotiate headers and from access_token_factory."""
    client = SignalRClient(HUB, headers={"Authorization": f"Bearer {KEY}"},
                           access_token_factory=lambda: KEY)
    task_id, events = await receive_task_events(client)
    check_events(task_id, events)


async def messagepack():
    """The MessagePack hub protocol."""
    url = f"{HUB}?{urllib.parse.urlencode({'access_token': KEY})}"
    task_id, events = await receive_task_events(SignalRClient(url, protocol=MessagepackProtocol()))
    check_events(task_id, events)


async def wrong_key():
    """A wrong key is refused at negotiate with 401."""
    url = f"{HUB}?{urllib.parse.urlencode({'access_token': 'condt_' + 'x' * 43})}"
    client = SignalRClient(url, retry_count=1)
    try:
        await asyncio.wait_for(client.run(), timeout=10)
    except AuthorizationError:
        return
    raise AssertionError("the client was not refused with 401")


CHECKS = [
    ("pysignalr: access_token query parameter, JSON: Started then Completed", access_token_query),
    ("pysignalr: Authorization header, JSON: Started then Completed", bearer_header),
    ("pysignalr: MessagePack: Started then Completed", messagepack),
    ("pysignalr: a wrong key gets 401", wrong_key),
]


async def main():
    passed = failed = 0
    for name, check in CHECKS:
        started = time.monotonic()
        try:
            await asyncio.wait_for(check(), timeout=30)
        except BaseException as error:  # noqa: BLE001 - every failure is reported
            if isinstance(error, KeyboardInterrupt):
                raise
            failed += 1
            print(f"✖ {name} ({(time.monotonic() - started) * 1000:.0f}ms)")
            detail = traceback.format_exception(error)
            print("  " + "".join(detail).replace("\n", "\n  ").rstrip())
        else:
            passed += 1
            print(f"✔ {name} ({(time.monotonic() - started) * 1000:.0f}ms)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
