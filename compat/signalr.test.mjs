// The official JavaScript SignalR client (@microsoft/signalr, with the MessagePack
// protocol package) driving Conduit's hubs, starting from the code of the real-time
// guide (shared/seed/realtime-overview.md), which must work unchanged apart from the
// base URL and the key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { HubConnectionBuilder, HttpTransportType, HubConnectionState } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import {
  BASE, KEY, MASTER_KEY, api, submit, waitForTask, taskEvents, createKey, until, sleep,
  record, forTask, hubConnection, stopAll,
} from './lib/conduit.mjs';

const IMAGE_METHODS = ['ImageGenerationStarted', 'ImageGenerationProgress', 'ImageGenerationCompleted',
  'ImageGenerationFailed', 'ImageGenerationCancelled'];
const VIDEO_METHODS = IMAGE_METHODS.map((m) => m.replace('Image', 'Video'));
const TASK_METHODS = ['TaskStarted', 'TaskProgress', 'TaskCompleted', 'TaskFailed', 'TaskCancelled'];

/** Every hub argument of a task event carries the event's id and its sequence. */
function assertEventFields(seen) {
  for (const { method, arg } of seen) {
    assert.match(String(arg.eventId), /^evt_/, `${method} argument has no eventId: ${JSON.stringify(arg)}`);
    assert.ok(Number.isInteger(arg.sequence) && arg.sequence >= 1,
      `${method} argument has no sequence: ${JSON.stringify(arg)}`);
  }
}

/** What arrived for one task over a hub agrees with the task's event log, one for one. */
async function assertMatchesLog(received, taskId, types) {
  const log = (await taskEvents(taskId)).filter((e) => types.includes(e.type));
  assert.deepEqual(
    received.map(({ arg }) => [arg.eventId, arg.sequence]),
    log.map((e) => [e.id, e.sequence]),
    'the hub delivered exactly the events of the log, in order',
  );
}

function assertAbsoluteUrl(value, what) {
  assert.equal(typeof value, 'string', `${what} is a string`);
  const url = new URL(value); // throws on a relative URL
  assert.ok(['http:', 'https:'].includes(url.protocol), `${what} is an absolute http(s) URL: ${value}`);
}

/**
 * The guide's "SignalR (Recommended for Web UIs)" example, as written, with the
 * base URL and the key from the environment. `variant` adds transport options or
 * the MessagePack protocol to the builder. Returns what the example's UI functions
 * were called with, every hub argument, and the submitted task's id.
 */
async function runGuideSignalRExample(variant = {}) {
  const ui = [];
  const showProgressIndicator = (taskId) => ui.push({ call: 'showProgressIndicator', taskId });
  const displayImage = (imageUrl) => ui.push({ call: 'displayImage', imageUrl });
  const hideProgressIndicator = (taskId) => ui.push({ call: 'hideProgressIndicator', taskId });
  const showError = (error) => ui.push({ call: 'showError', error });
  const console = { log: () => {} }; // the example logs; keep the test output quiet

  // ---- from the guide (URL, key and the variant's builder options substituted) ----
  let builder = new HubConnectionBuilder()
    .withUrl(`${BASE}/hubs/image-generation`, {
      accessTokenFactory: () => KEY,
      ...variant.options,
    });
  if (variant.msgpack) builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();

  // Listen for image generation events
  connection.on('ImageGenerationStarted', (data) => {
    console.log('Generation started:', data.taskId);
    showProgressIndicator(data.taskId);
  });

  connection.on('ImageGenerationCompleted', (data) => {
    console.log('Image completed:', data.imageUrl);
    displayImage(data.imageUrl);
    hideProgressIndicator(data.taskId);
  });

  connection.on('ImageGenerationFailed', (data) => {
    console.log('Generation failed:', data.error);
    showError(data.error);
    hideProgressIndicator(data.taskId);
  });

  const seen = record(connection, IMAGE_METHODS);

  // Start connection
  await connection.start();

  try {
    // Start async image generation (automatically sends updates via SignalR)
    const response = await fetch(`${BASE}/v1/images/generations`, {
      method: 'POST',
      headers: {
        'Authorization': `Bearer ${KEY}`,
        'Content-Type': 'application/json'
      },
      body: JSON.stringify({
        prompt: 'A beautiful sunset over mountains',
        model: 'dall-e-3',
        async: true
      })
    });
    // ---- end of the guide's code ----

    assert.equal(response.status, 202, 'the async submit answers 202');
    const { task_id: taskId } = await response.json();
    await until(() => ui.some((u) => u.call === 'hideProgressIndicator' && u.taskId === taskId),
      `ImageGenerationCompleted/Failed of ${taskId}`);
    const transport = connection.connection?.transport?.constructor?.name;
    return { ui, seen, taskId, transport };
  } finally {
    await connection.stop();
  }
}

async function checkGuideExample(variant, expectedTransport) {
  const { ui, seen, taskId, transport } = await runGuideSignalRExample(variant);
  assert.equal(transport, expectedTransport, 'the connection used the expected transport');
  const mine = ui.filter((u) => u.taskId === taskId || u.call === 'displayImage');
  assert.ok(!ui.some((u) => u.call === 'showError'), `no failure: ${JSON.stringify(ui)}`);
  const started = mine.findIndex((u) => u.call === 'showProgressIndicator' && u.taskId === taskId);
  const hidden = mine.findIndex((u) => u.call === 'hideProgressIndicator' && u.taskId === taskId);
  assert.ok(started >= 0, 'ImageGenerationStarted reached the handler');
  assert.ok(started < hidden, 'Started arrived before Completed');
  const events = forTask(seen, taskId);
  assert.equal(events[0].method, 'ImageGenerationStarted');
  assert.equal(events.at(-1).method, 'ImageGenerationCompleted');
  assertAbsoluteUrl(events.at(-1).arg.imageUrl, 'data.imageUrl');
  assert.ok(mine.some((u) => u.call === 'displayImage' && u.imageUrl === events.at(-1).arg.imageUrl),
    'displayImage got the completed image URL');
  assertEventFields(events);
  await assertMatchesLog(events, taskId, ['image.started', 'image.progress', 'image.completed']);
}

test('guide example as written: WebSockets, JSON', async () => {
  await checkGuideExample({}, 'WebSocketTransport');
});

test('guide example: WebSockets, MessagePack', async () => {
  await checkGuideExample({ options: { transport: HttpTransportType.WebSockets }, msgpack: true }, 'WebSocketTransport');
});

test('guide example: WebSockets with skipNegotiation', async () => {
  await checkGuideExample({ options: { transport: HttpTransportType.WebSockets, skipNegotiation: true } }, 'WebSocketTransport');
});

test('guide example: Server-Sent Events, JSON', async () => {
  await checkGuideExample({ options: { transport: HttpTransportType.ServerSentEvents } }, 'ServerSentEventsTransport');
});

test('guide example: Long Polling, JSON', async () => {
  await checkGuideExample({ options: { transport: HttpTransportType.LongPolling } }, 'LongPollingTransport');
});

test('guide example: Long Polling, MessagePack', async () => {
  await checkGuideExample({ options: { transport: HttpTransportType.LongPolling }, msgpack: true }, 'LongPollingTransport');
});

test('video hub: Started, Progress in order, Completed', async () => {
  const connection = hubConnection('video-generation');
  const seen = record(connection, VIDEO_METHODS);
  await connection.start();
  try {
    const task = await submit('video', { duration: 3 });
    await until(() => forTask(seen, task.task_id).some((e) => e.method === 'VideoGenerationCompleted'),
      'VideoGenerationCompleted');
    const events = forTask(seen, task.task_id);
    assertEventFields(events);
    assert.equal(events[0].method, 'VideoGenerationStarted');
    assert.equal(events.at(-1).method, 'VideoGenerationCompleted');
    const progress = events.filter((e) => e.method === 'VideoGenerationProgress');
    assert.ok(progress.length >= 2, `several VideoGenerationProgress events (got ${progress.length})`);
    for (let i = 1; i < events.length; i++) {
      assert.equal(events[i].arg.sequence, events[i - 1].arg.sequence + 1, 'sequences follow each other');
    }
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].arg.progress >= progress[i - 1].arg.progress, 'progress never goes back');
    }
    for (const p of progress) {
      assert.ok(p.arg.progress >= 0 && p.arg.progress <= 100, 'progress is a percentage');
    }
    assertAbsoluteUrl(events.at(-1).arg.videoUrl, 'data.videoUrl');
    await assertMatchesLog(events, task.task_id, ['video.started', 'video.progress', 'video.completed']);
  } finally {
    await stopAll(connection);
  }
});

test('tasks hub: TaskStarted/TaskCompleted with taskType for image, video and speech', async () => {
  const connection = hubConnection('tasks');
  const seen = record(connection, TASK_METHODS);
  await connection.start();
  try {
    const tasks = {
      image: await submit('image'),
      video: await submit('video', { duration: 1 }),
      speech: await submit('speech'),
    };
    for (const [type, task] of Object.entries(tasks)) {
      await until(() => forTask(seen, task.task_id).some((e) => e.method === 'TaskCompleted'),
        `TaskCompleted of the ${type} task`);
      const events = forTask(seen, task.task_id);
      assertEventFields(events);
      assert.equal(events[0].method, 'TaskStarted', `${type}: TaskStarted first`);
      assert.equal(events.at(-1).method, 'TaskCompleted', `${type}: TaskCompleted last`);
      for (const e of events) assert.equal(e.arg.taskType, type, `${e.method} says taskType ${type}`);
    }
    assertAbsoluteUrl(forTask(seen, tasks.speech.task_id).at(-1).arg.audioUrl, 'speech data.audioUrl');
  } finally {
    await stopAll(connection);
  }
});

test('SubscribeToTask narrows to that task; UnsubscribeFromTask widens back', async () => {
  const narrowed = hubConnection('image-generation');
  const witness = hubConnection('image-generation');
  const seen = record(narrowed, IMAGE_METHODS);
  const all = record(witness, IMAGE_METHODS);
  await Promise.all([narrowed.start(), witness.start()]);
  try {
    const a = await submit('image', { model: 'dall-e-2', n: 4 });
    await narrowed.invoke('SubscribeToTask', a.task_id);
    const b = await submit('image');
    await until(() => forTask(all, b.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'the witness to see task B complete');
    await until(() => forTask(seen, a.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'task A to complete on the subscribed connection');
    await sleep(300);
    assert.deepEqual(forTask(seen, b.task_id), [], 'no event of task B after subscribing to task A');
    const progressA = forTask(seen, a.task_id).filter((e) => e.method === 'ImageGenerationProgress');
    assert.ok(progressA.length >= 1, 'task A progress kept arriving after subscribing');

    await narrowed.invoke('UnsubscribeFromTask', a.task_id);
    const c = await submit('image');
    await until(() => forTask(seen, c.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'a later task of the key after UnsubscribeFromTask');
    assert.equal(forTask(seen, c.task_id)[0].method, 'ImageGenerationStarted');
  } finally {
    await stopAll(narrowed, witness);
  }
});

test('SubscribeToTaskType narrows the tasks hub to one type', async () => {
  const narrowed = hubConnection('tasks');
  const witness = hubConnection('tasks');
  const seen = record(narrowed, TASK_METHODS);
  const all = record(witness, TASK_METHODS);
  await Promise.all([narrowed.start(), witness.start()]);
  try {
    await assert.rejects(narrowed.invoke('SubscribeToTaskType', 'hologram'), 'an unknown type is an error');
    await narrowed.invoke('SubscribeToTaskType', 'video');
    const image = await submit('image');
    const video = await submit('video', { duration: 1 });
    await until(() => forTask(seen, video.task_id).some((e) => e.method === 'TaskCompleted'),
      'the video task on the narrowed connection');
    await until(() => forTask(all, image.task_id).some((e) => e.method === 'TaskCompleted'),
      'the witness to see the image task complete');
    await sleep(300);
    assert.deepEqual(forTask(seen, image.task_id), [], 'no image task event after SubscribeToTaskType("video")');
  } finally {
    await stopAll(narrowed, witness);
  }
});

test("another key's task: SubscribeToTask reveals nothing and no event crosses keys", async () => {
  const other = await createKey(`compat-other-${Date.now()}`);
  const otherImage = hubConnection('image-generation', { key: other.key });
  const otherTasks = hubConnection('tasks', { key: other.key, transport: HttpTransportType.LongPolling });
  const mine = hubConnection('image-generation');
  const otherImageSeen = record(otherImage, IMAGE_METHODS);
  const otherTasksSeen = record(otherTasks, TASK_METHODS);
  const mineSeen = record(mine, IMAGE_METHODS);
  await Promise.all([otherImage.start(), otherTasks.start(), mine.start()]);
  try {
    const task = await submit('image');
    const unknown = `task_${crypto.randomBytes(16).toString('hex')}`;
    const foreign = await otherImage.invoke('SubscribeToTask', task.task_id).then(
      () => assert.fail("SubscribeToTask with another key's task id succeeded"), (e) => e);
    const missing = await otherImage.invoke('SubscribeToTask', unknown).then(
      () => assert.fail('SubscribeToTask with an unknown id succeeded'), (e) => e);
    assert.equal(
      foreign.message.replaceAll(task.task_id, '<id>'),
      missing.message.replaceAll(unknown, '<id>'),
      "another key's task id gets the same error as an unknown id",
    );
    assert.doesNotMatch(foreign.message, /key|forbidden|permission|owner|access/i,
      'the error does not hint that the task exists');

    await until(() => forTask(mineSeen, task.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      "the owner's connection to see the task complete");
    // A task of the other key reaches the other key's connections, so they are live.
    const theirs = await submit('image', {}, { key: other.key });
    await until(() => forTask(otherTasksSeen, theirs.task_id).some((e) => e.method === 'TaskCompleted'),
      "the other key's own task on its tasks hub");
    await until(() => forTask(otherImageSeen, theirs.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      "the other key's own task on its image hub");
    assert.deepEqual(forTask(otherImageSeen, task.task_id), [], "key B's image connection got none of key A's events");
    assert.deepEqual(forTask(otherTasksSeen, task.task_id), [], "key B's tasks connection got none of key A's events");
    assert.deepEqual(forTask(mineSeen, theirs.task_id), [], "key A's connection got none of key B's events");
  } finally {
    await stopAll(otherImage, otherTasks, mine);
  }
});

test('a wrong key gets 401 at negotiate and cannot connect, even with skipNegotiation', async () => {
  const wrong = `condt_${crypto.randomBytes(32).toString('base64url')}`;
  for (const hub of ['image-generation', 'video-generation', 'tasks', 'navigation-state']) {
    const response = await fetch(`${BASE}/hubs/${hub}/negotiate?negotiateVersion=1`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wrong}` },
    });
    assert.equal(response.status, 401, `negotiate on /hubs/${hub} with a wrong key`);
    const anonymous = await fetch(`${BASE}/hubs/${hub}/negotiate?negotiateVersion=1`, { method: 'POST' });
    assert.equal(anonymous.status, 401, `negotiate on /hubs/${hub} without a key`);
  }

  const negotiated = hubConnection('image-generation', { key: wrong });
  await assert.rejects(negotiated.start(), /401|Unauthorized/, 'start() with a wrong key fails with 401');
  assert.equal(negotiated.state, HubConnectionState.Disconnected);

  const direct = hubConnection('image-generation', {
    key: wrong, transport: HttpTransportType.WebSockets, skipNegotiation: true,
  });
  const got = [];
  direct.on('ImageGenerationStarted', (d) => got.push(d));
  await assert.rejects(direct.start(), 'start() with skipNegotiation and a wrong key fails');
  assert.equal(direct.state, HubConnectionState.Disconnected);

  // What the client saw underneath: the WebSocket upgrade itself is refused with 401.
  const wsBase = BASE.replace(/^http/, 'ws');
  for (const query of [`access_token=${wrong}`, '']) {
    const status = await new Promise((resolve) => {
      const socket = new WebSocket(`${wsBase}/hubs/image-generation?${query}`);
      socket.on('unexpected-response', (_req, res) => { resolve(res.statusCode); socket.terminate(); });
      socket.on('open', () => { resolve('open'); socket.terminate(); });
      socket.on('error', () => resolve('error'));
    });
    assert.equal(status, 401, `the WebSocket upgrade ${query ? 'with a wrong key' : 'without a key'} answers 401`);
  }
});

const DISABLE_VARIANTS = {
  'WebSockets everywhere': {},
  'Long Polling, Server-Sent Events and MessagePack': {
    'image-generation': { transport: HttpTransportType.ServerSentEvents },
    'video-generation': { transport: HttpTransportType.LongPolling, msgpack: true },
    'tasks': { transport: HttpTransportType.LongPolling },
    'navigation-state': { transport: HttpTransportType.WebSockets, msgpack: true },
  },
};

for (const [variant, options] of Object.entries(DISABLE_VARIANTS)) test(`disabling a key sends KeyDisabled and closes its connections on every hub (${variant})`, async () => {
  const doomed = await createKey(`compat-disable-${Date.now()}`);
  const hubs = ['image-generation', 'video-generation', 'tasks', 'navigation-state'];
  // As the guide's ResilientConnection does: automatic reconnect must not try to come back.
  const connections = hubs.map((hub) => hubConnection(hub, { key: doomed.key, reconnect: [0, 0, 1000], ...options[hub] }));
  const reconnecting = [];
  connections.forEach((c, i) => c.onreconnecting(() => reconnecting.push(hubs[i])));
  const closed = connections.map((c) => new Promise((resolve) => c.onclose((error) => resolve({ at: Date.now(), error }))));
  const tasksHub = connections[hubs.indexOf('tasks')];
  const notices = [];
  tasksHub.on('KeyDisabled', (data) => notices.push({ at: Date.now(), data }));
  await Promise.all(connections.map((c) => c.start()));
  try {
    const patched = await api('PATCH', `/admin/v1/keys/${doomed.id}`, { key: MASTER_KEY, body: { enabled: false } });
    assert.equal(patched.status, 200, `PATCH answered ${patched.status}: ${JSON.stringify(patched.body)}`);
    assert.equal(patched.body.enabled, false);

    const timeout = sleep(10000).then(() => 'timeout');
    const outcome = await Promise.race([Promise.all(closed), timeout]);
    assert.notEqual(outcome, 'timeout', `onclose fired on every hub (states: ${connections.map((c) => c.state)})`);
    assert.equal(notices.length, 1, 'KeyDisabled arrived once on /hubs/tasks');
    const notice = notices[0];
    assert.equal(notice.data.keyId, doomed.id);
    assert.equal(notice.data.reason, 'manual');
    assert.match(String(notice.data.eventId), /^evt_/);
    assert.ok(notice.at <= outcome[hubs.indexOf('tasks')].at, 'KeyDisabled came before the close');
    for (const c of connections) assert.equal(c.state, HubConnectionState.Disconnected);
    assert.deepEqual(reconnecting, [], 'closed for good: withAutomaticReconnect did not try to reconnect');
    for (const { error } of outcome) {
      assert.match(String(error), /disabled/i, 'the close carries the reason');
    }

    const again = await fetch(`${BASE}/hubs/tasks/negotiate?negotiateVersion=1`, {
      method: 'POST', headers: { Authorization: `Bearer ${doomed.key}` },
    });
    assert.equal(again.status, 401, 'the disabled key cannot negotiate again');
  } finally {
    await stopAll(...connections);
  }
});

// The guide's "Real-Time Dashboard" class, as written (base URL substituted).
class RealTimeDashboard {
  constructor() {
    this.connection = new HubConnectionBuilder()
      .withUrl(`${BASE}/hubs/navigation-state`, {
        accessTokenFactory: () => this.getAuthToken()
      })
      .build();

    this.setupEventHandlers();
  }

  setupEventHandlers() {
    // Provider health updates
    this.connection.on('ProviderHealthChanged', (data) => {
      this.updateProviderStatus(data.provider, data.status);
    });

    // Real-time usage metrics
    this.connection.on('UsageMetricsUpdated', (data) => {
      this.updateUsageCharts(data.metrics);
    });

    // Task completion notifications
    this.connection.on('TaskCompleted', (data) => {
      this.showTaskNotification(data);
    });
  }

  async start() {
    await this.connection.start();
    console.log('Dashboard connected to real-time updates');
  }
}

// The application's side of the dashboard: what the guide leaves to the page.
class RecordingDashboard extends RealTimeDashboard {
  providers = [];
  usage = [];
  notifications = [];
  getAuthToken() { return KEY; }
  updateProviderStatus(provider, status) { this.providers.push({ provider, status }); }
  updateUsageCharts(metrics) { this.usage.push(metrics); }
  showTaskNotification(data) { this.notifications.push(data); }
}

test("the guide's RealTimeDashboard gets health, maintenance, usage metrics and task completions", async (t) => {
  const dashboard = new RecordingDashboard();
  const maintenance = [];
  dashboard.connection.on('SystemMaintenance', (data) => maintenance.push(data));
  const log = t.mock.method(console, 'log', () => {});
  await dashboard.start();
  log.mock.restore();
  try {
    const health = await api('POST', '/admin/v1/providers/local/health', {
      key: MASTER_KEY, body: { status: 'degraded', reason: 'compat test' },
    });
    assert.equal(health.status, 201, JSON.stringify(health.body));
    await until(() => dashboard.providers.some((p) => p.provider === 'local' && p.status === 'degraded'),
      'ProviderHealthChanged local → degraded');
    const restored = await api('POST', '/admin/v1/providers/local/health', { key: MASTER_KEY, body: { status: 'healthy' } });
    assert.equal(restored.status, 201);
    await until(() => dashboard.providers.some((p) => p.provider === 'local' && p.status === 'healthy'),
      'ProviderHealthChanged local → healthy');

    const startsAt = new Date(Date.now() + 3600e3).toISOString();
    const notice = await api('POST', '/admin/v1/maintenance', {
      key: MASTER_KEY, body: { status: 'scheduled', message: 'compat maintenance window', starts_at: startsAt },
    });
    assert.equal(notice.status, 201, JSON.stringify(notice.body));
    const announced = await until(() => maintenance.find((m) => m.message === 'compat maintenance window'),
      'SystemMaintenance');
    assert.equal(announced.status, 'scheduled');
    assert.equal(new Date(announced.startsAt).getTime(), new Date(startsAt).getTime());

    const task = await submit('image');
    const done = await until(() => dashboard.notifications.find((n) => n.taskId === task.task_id),
      'TaskCompleted on the dashboard');
    assert.equal(done.taskType, 'image');
    assertAbsoluteUrl(done.imageUrl, 'TaskCompleted imageUrl');

    const before = dashboard.usage.length;
    const metrics = await until(() => dashboard.usage.slice(before).find((m) => m && m.tasksCompleted >= 1),
      'UsageMetricsUpdated counting the completed task', 8000);
    assert.equal(typeof metrics, 'object');
  } finally {
    await dashboard.connection.stop();
  }
});

test('catch-up: GET /v1/events?after=<eventId from the hub> returns the later events', async () => {
  const connection = hubConnection('image-generation', { msgpack: true });
  const seen = record(connection, IMAGE_METHODS);
  await connection.start();
  try {
    const task = await submit('image', { model: 'dall-e-2', n: 3 });
    await until(() => forTask(seen, task.task_id).some((e) => e.method === 'ImageGenerationCompleted'),
      'ImageGenerationCompleted');
    const events = forTask(seen, task.task_id);
    const first = events[0].arg;
    const response = await api('GET', `/v1/events?after=${first.eventId}&limit=1000`);
    assert.equal(response.status, 200);
    const later = response.body.data.filter((e) => e.data?.taskId === task.task_id);
    assert.ok(!response.body.data.some((e) => e.id === first.eventId), 'the `after` event itself is not repeated');
    assert.deepEqual(later.map((e) => e.id), events.slice(1).map((e) => e.arg.eventId),
      'the log after X holds exactly the events the hub delivered after X');
    assert.deepEqual(later.map((e) => e.sequence),
      events.slice(1).map((_, i) => first.sequence + 1 + i), 'no gap in the sequence');
  } finally {
    await stopAll(connection);
  }
});
