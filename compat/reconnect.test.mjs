// Reconnection with the official JavaScript client: the guide's ResilientConnection
// (withAutomaticReconnect and its backoff) across a gateway restart, and
// withStatefulReconnect across a dropped socket (a TCP proxy in the test is cut).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HubConnectionBuilder, HubConnectionState, HttpTransportType } from '@microsoft/signalr';
import {
  BASE, KEY, submit, waitForTask, taskEvents, until, sleep, record, forTask, hubConnection,
  stopAll, stopGateway, startGateway,
} from './lib/conduit.mjs';
import { startProxy } from './lib/proxy.mjs';

const IMAGE_METHODS = ['ImageGenerationStarted', 'ImageGenerationProgress', 'ImageGenerationCompleted',
  'ImageGenerationFailed', 'ImageGenerationCancelled'];

// The guide's classes log as they go; keep the test output readable.
const console = { log: () => {}, error: () => {} };

// The guide's "Connection Recovery" class, as written.
class ResilientConnection {
  constructor(hubUrl, accessToken) {
    this.hubUrl = hubUrl;
    this.accessToken = accessToken;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 10;
    this.setupConnection();
  }

  setupConnection() {
    this.connection = new HubConnectionBuilder()
      .withUrl(this.hubUrl, {
        accessTokenFactory: () => this.accessToken
      })
      .withAutomaticReconnect({
        nextRetryDelayInMilliseconds: (retryContext) => {
          // Exponential backoff: 2s, 4s, 8s, 16s, 30s max
          return Math.min(30000, Math.pow(2, retryContext.previousRetryCount) * 1000);
        }
      })
      .build();

    this.connection.onreconnecting((error) => {
      console.log('Connection lost, reconnecting...', error);
      this.onConnectionLost();
    });

    this.connection.onreconnected((connectionId) => {
      console.log('Reconnected:', connectionId);
      this.reconnectAttempts = 0;
      this.onConnectionRestored();
    });

    this.connection.onclose((error) => {
      console.log('Connection closed:', error);
      this.onConnectionClosed();
    });
  }

  onConnectionLost() {
    // Switch to polling as backup
    this.startPollingBackup();
  }

  onConnectionRestored() {
    // Stop polling backup
    this.stopPollingBackup();
  }

  startPollingBackup() {
    if (this.pollingInterval) return;
    
    this.pollingInterval = setInterval(() => {
      this.pollForUpdates();
    }, 5000);
  }

  stopPollingBackup() {
    if (this.pollingInterval) {
      clearInterval(this.pollingInterval);
      this.pollingInterval = null;
    }
  }
}

// What the guide leaves to the application: record the lifecycle.
class RecordingConnection extends ResilientConnection {
  lifecycle = [];
  polls = 0;
  onConnectionLost() {
    this.lifecycle.push('reconnecting');
    super.onConnectionLost();
  }
  onConnectionRestored() {
    this.lifecycle.push('reconnected');
    super.onConnectionRestored();
  }
  onConnectionClosed() { this.lifecycle.push('closed'); }
  pollForUpdates() { this.polls += 1; }
}

test("the guide's ResilientConnection reconnects after a gateway restart and hears new tasks", async () => {
  const resilient = new RecordingConnection(`${BASE}/hubs/image-generation`, KEY);
  const seen = record(resilient.connection, IMAGE_METHODS);
  await resilient.connection.start();
  const firstId = resilient.connection.connectionId;
  try {
    const before = await submit('image');
    await until(() => forTask(seen, before.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'a task before the restart');

    await stopGateway();
    await until(() => resilient.lifecycle.includes('reconnecting'), 'onreconnecting after the gateway stopped', 10000);
    assert.equal(resilient.connection.state, HubConnectionState.Reconnecting);
    assert.ok(resilient.pollingInterval, 'the guide switched to its polling backup while reconnecting');
    await sleep(1500); // let at least one reconnect attempt fail against the stopped gateway

    await startGateway();
    await until(() => resilient.lifecycle.includes('reconnected'), 'onreconnected after the gateway came back', 40000);
    assert.equal(resilient.connection.state, HubConnectionState.Connected);
    assert.deepEqual(resilient.lifecycle, ['reconnecting', 'reconnected'], 'reconnecting, then reconnected, never closed');
    assert.equal(resilient.reconnectAttempts, 0);
    assert.equal(resilient.pollingInterval, null, 'the polling backup was stopped again');
    assert.notEqual(resilient.connection.connectionId, firstId, 'a new connection on the new process');

    const after = await submit('image');
    await until(() => forTask(seen, after.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'the events of a task submitted after the restart');
    const events = forTask(seen, after.task_id);
    assert.equal(events[0].method, 'ImageGenerationStarted');
    assert.deepEqual(events.map((e) => e.arg.eventId),
      (await taskEvents(after.task_id)).map((e) => e.id), 'every event of the new task arrived, in order');
  } finally {
    resilient.stopPollingBackup();
    await stopAll(resilient.connection);
  }
});

test('withStatefulReconnect: a dropped socket loses no message and duplicates none', async () => {
  const proxy = await startProxy(Number(process.env.CONDUIT_PORT));
  const connection = hubConnection('image-generation', {
    base: proxy.url, stateful: true, transport: HttpTransportType.WebSockets,
  });
  const seen = record(connection, IMAGE_METHODS);
  const lifecycle = [];
  connection.onreconnecting(() => lifecycle.push('reconnecting'));
  connection.onclose(() => lifecycle.push('closed'));
  try {
    await connection.start();
    const warmup = await submit('image');
    await until(() => forTask(seen, warmup.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'a task before the drop');
    const acceptedBefore = proxy.accepted;

    // One task is running when the socket dies; more are submitted while it is down.
    const straddling = await submit('image', { model: 'dall-e-2', n: 3 });
    await until(() => forTask(seen, straddling.task_id).length > 0, 'the running task to start');
    proxy.cut();
    const whileDown = [];
    for (let i = 0; i < 3; i++) whileDown.push(await submit('image', { model: 'dall-e-2', n: 2 }));
    await Promise.all([straddling, ...whileDown].map((t) => waitForTask(t.task_id)));
    await until(() => proxy.waiting > 0, 'the client to try to reconnect through the proxy', 5000);
    assert.ok(!whileDown.some((t) => forTask(seen, t.task_id).length > 0), 'nothing arrived while the socket was down');
    proxy.restore();

    const tasks = [warmup, straddling, ...whileDown];
    for (const task of tasks) {
      await until(() => forTask(seen, task.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
        `ImageGenerationCompleted of ${task.task_id} after the reconnect`);
    }
    await sleep(300); // a duplicate would arrive right behind
    for (const task of tasks) {
      const got = forTask(seen, task.task_id).map((e) => [e.arg.eventId, e.arg.sequence]);
      const log = (await taskEvents(task.task_id)).map((e) => [e.id, e.sequence]);
      assert.deepEqual(got, log, `task ${task.task_id}: every event exactly once, in order`);
    }
    assert.ok(proxy.accepted > acceptedBefore, 'the client did reconnect through the proxy');
    assert.deepEqual(lifecycle, [], 'the drop was invisible: no onreconnecting, no onclose');
    assert.equal(connection.state, HubConnectionState.Connected);
  } finally {
    await stopAll(connection);
    await proxy.close();
  }
});
