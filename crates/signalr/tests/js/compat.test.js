// Compatibility tests: the official JavaScript client against the crate's echo_server example.
// Run through run.sh, which builds the server and sets SIGNALR_ECHO_SERVER.
"use strict";

const { spawn } = require("node:child_process");
const assert = require("node:assert/strict");
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const SERVER = process.env.SIGNALR_ECHO_SERVER;
if (!SERVER) {
  console.error("SIGNALR_ECHO_SERVER is not set (use run.sh)");
  process.exit(2);
}

const servers = new Set();

function startServer(port = 0) {
  return new Promise((resolve, reject) => {
    const proc = spawn(SERVER, ["--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    servers.add(proc);
    let out = "";
    const timer = setTimeout(() => reject(new Error("server did not start")), 15000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /PORT=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    });
    proc.on("exit", () => servers.delete(proc));
    proc.on("error", reject);
  });
}

function stopServer(server, signal = "SIGTERM") {
  return new Promise((resolve) => {
    if (server.proc.exitCode !== null) return resolve();
    server.proc.once("exit", () => resolve());
    server.proc.kill(signal);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, pred, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function build(port, { transport, msgpack, options = {}, configure } = {}) {
  let b = new signalR.HubConnectionBuilder()
    .withUrl(`http://127.0.0.1:${port}/hubs/echo`, { transport, ...options })
    .configureLogging(signalR.LogLevel.None);
  if (msgpack) b = b.withHubProtocol(new MessagePackHubProtocol());
  if (configure) b = configure(b);
  return b.build();
}

const T = signalR.HttpTransportType;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

let shared;

for (const [transport, msgpack, expected] of [
  [T.WebSockets, false, "WebSockets"],
  [T.ServerSentEvents, false, "ServerSentEvents"],
  [T.LongPolling, false, "LongPolling"],
  [T.WebSockets, true, "WebSockets"],
  [T.LongPolling, true, "LongPolling"],
]) {
  const proto = msgpack ? "messagepack" : "json";
  test(`${expected} + ${proto}: invoke, errors, server-to-client, groups`, async () => {
    const conn = build(shared.port, { transport, msgpack });
    const received = [];
    conn.on("hello", (x) => received.push(["hello", x]));
    conn.on("grp", (x) => received.push(["grp", x]));
    await conn.start();
    try {
      const who = await conn.invoke("WhoAmI");
      assert.equal(who.transport, expected);
      assert.equal(who.protocol, proto);
      assert.equal(who.connectionId, conn.connectionId);
      const payload = { a: 1, b: "x\ny", c: [1, 2, { d: null }], e: true };
      assert.deepEqual(await conn.invoke("Echo", payload), payload);
      assert.equal(await conn.invoke("add", 2, 3), 5);
      await assert.rejects(conn.invoke("Throw", "bad thing"), (e) => e.message.includes("bad thing"));
      await assert.rejects(conn.invoke("Crash"), (e) =>
        e.message.includes("An unexpected error occurred invoking 'Crash' on the server."));
      await assert.rejects(conn.invoke("NoSuchMethod"), (e) =>
        e.message.includes("Unknown hub method 'NoSuchMethod'"));
      await conn.send("Echo", "fire and forget");
      assert.equal(await conn.invoke("SendToMe", "hello", 42), true);
      await conn.invoke("JoinGroup", "g");
      assert.equal(await conn.invoke("SendToGroup", "g", "grp", "group message"), 1);
      await until("server messages", () => received.length === 2);
      assert.deepEqual(received, [["hello", 42], ["grp", "group message"]]);
    } finally {
      await conn.stop();
    }
  });
}

test("skipNegotiation over WebSockets", async () => {
  const conn = build(shared.port, { transport: T.WebSockets, options: { skipNegotiation: true } });
  await conn.start();
  try {
    assert.equal(await conn.invoke("Echo", "direct"), "direct");
    const who = await conn.invoke("WhoAmI");
    assert.equal(who.transport, "WebSockets");
  } finally {
    await conn.stop();
  }
});

test("authentication failure rejects start", async () => {
  const conn = build(shared.port, { transport: T.WebSockets, options: { accessTokenFactory: () => "deny" } });
  await assert.rejects(conn.start(), (e) => e.statusCode === 401 || /401/.test(e.message));
});

test("withStatefulReconnect: forcibly dropped socket, no lost message", async () => {
  const conn = build(shared.port, {
    transport: T.WebSockets,
    configure: (b) => b.withStatefulReconnect(),
  });
  const seq = [];
  let reconnecting = 0;
  let closed = 0;
  conn.on("seq", (n) => seq.push(n));
  conn.onreconnecting(() => reconnecting++);
  conn.onclose(() => closed++);
  await conn.start();
  try {
    const id = conn.connectionId;
    await conn.invoke("StartSequence", 80, 10);
    await until("first items", () => seq.length >= 10);
    await conn.invoke("AbortTransport");
    // Client-to-server traffic right after the drop must survive too.
    const echoes = await Promise.all([1, 2, 3].map((i) => conn.invoke("Echo", i)));
    assert.deepEqual(echoes, [1, 2, 3]);
    await until("all sequence items", () => seq.length >= 80, 15000);
    await sleep(200);
    assert.deepEqual(seq, Array.from({ length: 80 }, (_, i) => i));
    assert.equal(conn.connectionId, id);
    assert.equal(conn.state, signalR.HubConnectionState.Connected);
    assert.equal(reconnecting, 0);
    assert.equal(closed, 0);
    // A second drop works as well.
    await conn.invoke("AbortTransport");
    assert.equal(await conn.invoke("Echo", "again"), "again");
  } finally {
    await conn.stop();
  }
});

test("withAutomaticReconnect across a server restart", async () => {
  const server = await startServer();
  const conn = build(server.port, {
    transport: T.WebSockets,
    configure: (b) => b.withAutomaticReconnect([0, 200, 500, 1000, 1000, 1000, 2000, 2000, 2000]),
  });
  let reconnecting = 0;
  let reconnected = 0;
  conn.onreconnecting(() => reconnecting++);
  conn.onreconnected(() => reconnected++);
  await conn.start();
  let restarted;
  try {
    assert.equal(await conn.invoke("Echo", 1), 1);
    await stopServer(server, "SIGTERM");
    await until("reconnecting", () => reconnecting === 1, 10000);
    restarted = await startServer(server.port);
    await until("reconnected", () => reconnected === 1, 20000);
    assert.equal(await conn.invoke("Echo", 2), 2);
  } finally {
    await conn.stop();
    if (restarted) await stopServer(restarted);
  }
});

async function main() {
  let passed = 0;
  let failed = 0;
  shared = await startServer();
  for (const t of tests) {
    const started = Date.now();
    try {
      await Promise.race([
        t.fn(),
        sleep(60000).then(() => { throw new Error("test timed out"); }),
      ]);
      passed++;
      console.log(`ok   ${t.name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${t.name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  await stopServer(shared);
  for (const p of servers) p.kill("SIGKILL");
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  for (const p of servers) p.kill("SIGKILL");
  console.log("0 passed, 1 failed");
  process.exit(1);
});
