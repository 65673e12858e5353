// Helpers shared by the compatibility tests: the environment compat/with-server.sh
// sets, small REST calls, and ways to wait for events. Everything here talks only to
// the gateway on 127.0.0.1 that with-server.sh started.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import * as signalR from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the tests through compat/run.sh or compat/with-server.sh`);
  }
  return value;
}

export const BASE = required('CONDUIT_URL');
export const KEY = required('CONDUIT_KEY');
export const WEBHOOK_SECRET = required('CONDUIT_WEBHOOK_SECRET');
export const MASTER_KEY = required('CONDUIT_MASTER_KEY');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A JSON request to the gateway; returns {status, headers, body}. */
export async function api(method, path, { key = KEY, body, headers = {} } = {}) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** Submits an async task and returns the 202 body; fails the test on any other answer. */
export async function submit(kind, fields = {}, { key = KEY } = {}) {
  const routes = {
    image: ['/v1/images/generations', { prompt: 'a lighthouse at dusk', model: 'dall-e-3', async: true }],
    video: ['/v1/videos/generations', { prompt: 'waves on a beach', duration: 2 }],
    speech: ['/v1/audio/speech', { model: 'tts-1', input: 'Hello from the compatibility tests.', voice: 'alloy', async: true }],
  };
  const [path, defaults] = routes[kind];
  const response = await api('POST', path, { key, body: { ...defaults, ...fields } });
  if (response.status !== 202 || !response.body?.task_id) {
    throw new Error(`submitting a ${kind} task answered ${response.status}: ${JSON.stringify(response.body)}`);
  }
  return response.body;
}

/** Waits (long polling) until the task is in a final state and returns it. */
export async function waitForTask(taskId, { key = KEY, timeoutMs = 30000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { status, body } = await api('GET', `/v1/tasks/${taskId}?wait=5`, { key });
    if (status !== 200) throw new Error(`GET /v1/tasks/${taskId} answered ${status}`);
    if (['completed', 'failed', 'cancelled', 'timedout'].includes(body.status)) return body;
  }
  throw new Error(`task ${taskId} did not finish within ${timeoutMs} ms`);
}

/** The task's events from the event log, in order. */
export async function taskEvents(taskId, { key = KEY } = {}) {
  const { status, body } = await api('GET', `/v1/tasks/${taskId}/events`, { key });
  if (status !== 200) throw new Error(`GET /v1/tasks/${taskId}/events answered ${status}`);
  return body.data;
}

/** Creates a second virtual key with the master key; returns the 201 body (with `key`). */
export async function createKey(name) {
  const response = await api('POST', '/admin/v1/keys', { key: MASTER_KEY, body: { name } });
  if (response.status !== 201 || !response.body?.key) {
    throw new Error(`POST /admin/v1/keys answered ${response.status}: ${JSON.stringify(response.body)}`);
  }
  return response.body;
}

/**
 * Resolves with the first value for which `check()` returns something other than
 * undefined/false, polling every 20 ms; rejects after `timeoutMs` with `what`.
 */
export async function until(check, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Records every call of the given hub methods as {method, arg} in arrival order.
 * Returns the list (it keeps filling).
 */
export function record(connection, methods) {
  const seen = [];
  for (const method of methods) {
    connection.on(method, (arg) => seen.push({ method, arg }));
  }
  return seen;
}

export const forTask = (seen, taskId) => seen.filter((e) => e.arg?.taskId === taskId);

/** A hub connection the ordinary way, with options for transport, protocol, key. */
export function hubConnection(hub, {
  key = KEY,
  transport,
  msgpack = false,
  skipNegotiation,
  base = BASE,
  stateful = false,
  reconnect,
} = {}) {
  const options = { accessTokenFactory: () => key };
  if (transport !== undefined) options.transport = transport;
  if (skipNegotiation !== undefined) options.skipNegotiation = skipNegotiation;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/hubs/${hub}`, options)
    .configureLogging(process.env.CONDUIT_COMPAT_VERBOSE ? signalR.LogLevel.Debug : signalR.LogLevel.None);
  if (msgpack) builder = builder.withHubProtocol(new MessagePackHubProtocol());
  if (stateful) builder = builder.withStatefulReconnect();
  if (reconnect) builder = builder.withAutomaticReconnect(reconnect);
  return builder.build();
}

/** Stops connections, ignoring errors (for `finally` blocks). */
export async function stopAll(...connections) {
  await Promise.all(connections.map((c) => c?.stop().catch(() => {})));
}

// ---- Restarting the gateway (reconnect tests) ----

function readPid() {
  return Number(fs.readFileSync(required('CONDUIT_PID_FILE'), 'utf8').trim());
}

// The first gateway is with-server.sh's child, which reaps it only at the end: once
// it has exited it is a zombie, which counts as gone.
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Stops the running gateway (SIGTERM, then SIGKILL after 10 s) and waits until it is gone. */
export async function stopGateway() {
  const pid = readPid();
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10000;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(50);
}

/**
 * Starts the gateway again on the same port, data directory and settings, records
 * its process id where with-server.sh stops it at the end, and waits for /health.
 * Returns the child process.
 */
export async function startGateway() {
  const log = fs.openSync(required('CONDUIT_GATEWAY_LOG'), 'a');
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    // Only the gateway's own settings; not the test's CONDUIT_URL/KEY/... variables.
    if (!name.startsWith('CONDUIT_')) env[name] = value;
  }
  for (const name of [
    'CONDUIT_DATA_DIR', 'CONDUIT_LISTEN', 'CONDUIT_MASTER_KEY', 'CONDUIT_WEBHOOK_ALLOW_CIDRS',
    'CONDUIT_LOCAL_WORK_MS', 'CONDUIT_LOG', 'CONDUIT_USAGE_METRICS_INTERVAL_MS',
    'CONDUIT_WEBHOOK_RETRY_SCHEDULE',
  ]) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  const child = spawn(required('CONDUIT_BIN'), ['serve'], { env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  child.unref(); // with-server.sh stops it (through CONDUIT_PID_FILE) after the tests
  fs.writeFileSync(required('CONDUIT_PID_FILE'), `${child.pid}\n`);
  await until(async () => {
    try {
      return (await fetch(`${BASE}/health`)).ok;
    } catch {
      return false;
    }
  }, 'the restarted gateway to answer /health', 20000);
  return child;
}

export { signalR };
