// Polling as the guide's users do it: its TaskPoller and LegacyIntegration classes
// (base URL from the environment), the media URLs they get back, long polling with
// `?wait=`, and catching up from the event log with `GET /v1/events?after=`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { BASE, KEY, api, submit, waitForTask, createKey, until } from './lib/conduit.mjs';

// The guide's classes log as they go; keep the test output readable.
const console = { log: () => {}, error: () => {} };

// The guide's "Polling (Simple Integration)" class, as written.
class TaskPoller {
  constructor(apiKey, baseUrl) {
    this.apiKey = apiKey;
    this.baseUrl = baseUrl;
    this.activeTasks = new Set();
  }

  async startImageGeneration(prompt, options = {}) {
    const response = await fetch(`${this.baseUrl}/v1/images/generations`, {
      method: 'POST',
      headers: {
        'Authorization': `Bearer ${this.apiKey}`,
        'Content-Type': 'application/json'
      },
      body: JSON.stringify({
        prompt,
        async: true,
        ...options
      })
    });

    const task = await response.json();
    this.activeTasks.add(task.task_id);
    this.pollTask(task.task_id);
    
    return task.task_id;
  }

  async pollTask(taskId) {
    const pollInterval = 2000; // 2 seconds
    
    const poll = async () => {
      try {
        const response = await fetch(`${this.baseUrl}/v1/tasks/${taskId}`, {
          headers: {
            'Authorization': `Bearer ${this.apiKey}`
          }
        });

        const task = await response.json();
        
        switch (task.status) {
          case 'completed':
            this.onTaskCompleted(task);
            this.activeTasks.delete(taskId);
            return;
          case 'failed':
            this.onTaskFailed(task);
            this.activeTasks.delete(taskId);
            return;
          case 'processing':
            this.onTaskProgress(task);
            break;
        }
        
        // Continue polling
        setTimeout(poll, pollInterval);
      } catch (error) {
        console.error('Polling error:', error);
        setTimeout(poll, pollInterval * 2); // Backoff on error
      }
    };

    poll();
  }

  onTaskCompleted(task) {
    console.log('Task completed:', task.result);
  }

  onTaskFailed(task) {
    console.log('Task failed:', task.error);
  }

  onTaskProgress(task) {
    console.log('Task progress:', task.progress);
  }
}

// The guide's "Legacy System Integration" class, as written (base URL from the environment).
class LegacyIntegration {
  constructor(apiKey) {
    this.apiKey = apiKey;
    this.checkInterval = 5000; // 5 seconds
  }

  async generateAndWait(prompt) {
    // Start generation
    const response = await this.makeRequest('/v1/images/generations', {
      prompt,
      async: true
    });

    const taskId = response.task_id;
    
    // Poll until complete
    return new Promise((resolve, reject) => {
      const check = async () => {
        try {
          const status = await this.makeRequest(`/v1/tasks/${taskId}`);
          
          if (status.status === 'completed') {
            resolve(status.result);
          } else if (status.status === 'failed') {
            reject(new Error(status.error));
          } else {
            setTimeout(check, this.checkInterval);
          }
        } catch (error) {
          reject(error);
        }
      };
      
      check();
    });
  }

  async makeRequest(path, body = null) {
    const options = {
      headers: {
        'Authorization': `Bearer ${this.apiKey}`,
        'Content-Type': 'application/json'
      }
    };

    if (body) {
      options.method = 'POST';
      options.body = JSON.stringify(body);
    }

    const response = await fetch(`${BASE}${path}`, options);
    return await response.json();
  }
}

// What the guide leaves to the application: record the callbacks.
class RecordingPoller extends TaskPoller {
  completed = [];
  failed = [];
  progress = [];
  onTaskCompleted(task) { this.completed.push(task); }
  onTaskFailed(task) { this.failed.push(task); }
  onTaskProgress(task) { this.progress.push(task); }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The URL is absolute and serves a PNG to a client that presents no credentials. */
async function assertPublicPng(url) {
  assert.ok(/^https?:\/\//.test(url), `the image URL is absolute: ${url}`);
  const response = await fetch(url); // no Authorization header, as an <img> tag
  assert.equal(response.status, 200, `GET ${url} without credentials`);
  assert.match(response.headers.get('content-type') ?? '', /^image\/png/);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), 'the body is a PNG');
  assert.equal(Number(response.headers.get('content-length')), bytes.length, 'Content-Length is right');
}

test("the guide's TaskPoller completes an image task as in its usage example", async () => {
  const poller = new RecordingPoller(KEY, BASE);
  const taskId = await poller.startImageGeneration('A beautiful sunset over mountains');
  assert.match(taskId, /^task_/);
  assert.ok(poller.activeTasks.has(taskId));
  const task = await until(() => poller.completed.find((t) => t.task_id === taskId), 'onTaskCompleted', 20000);
  assert.deepEqual(poller.failed, []);
  assert.equal(poller.activeTasks.size, 0, 'the task left activeTasks');
  assert.equal(task.status, 'completed');
  assert.equal(task.progress, 100);
  assert.equal(task.result.image_url, task.result.images[0].url);
  await assertPublicPng(task.result.image_url);
});

test("the guide's TaskPoller with options (model, n)", async () => {
  const poller = new RecordingPoller(KEY, BASE);
  const taskId = await poller.startImageGeneration('Two foxes in the snow', { model: 'dall-e-2', n: 2, size: '256x256' });
  const task = await until(() => poller.completed.find((t) => t.task_id === taskId), 'onTaskCompleted', 20000);
  assert.equal(task.model, 'dall-e-2');
  assert.equal(task.result.images.length, 2);
  const urls = task.result.images.map((i) => i.url);
  assert.equal(new Set(urls).size, 2, 'two distinct images');
  for (const url of urls) await assertPublicPng(url);
});

test("the guide's LegacyIntegration.generateAndWait resolves with the result", async () => {
  const legacy = new LegacyIntegration(KEY);
  const result = await legacy.generateAndWait('A lighthouse in a storm');
  assert.ok(Array.isArray(result.images) && result.images.length === 1, JSON.stringify(result));
  await assertPublicPng(result.image_url ?? result.images[0].url);
});

test('media URLs are unguessable capability URLs', async () => {
  const task = await waitForTask((await submit('image')).task_id);
  const name = new URL(task.result.image_url).pathname.split('/').pop().replace(/\.[a-z0-9]+$/, '');
  assert.ok(name.length >= 22, `at least 128 random bits in the name: ${name}`);
  const guessed = await fetch(task.result.image_url.replace(name, name.slice(0, -1) + (name.endsWith('A') ? 'B' : 'A')));
  assert.equal(guessed.status, 404, 'a neighbouring name is not served');
});

test('long polling: ?wait= returns as soon as the task changes, and 304 after the wait if it does not', async () => {
  const task = await submit('image', { model: 'dall-e-2', n: 4 });
  const first = await fetch(`${BASE}/v1/tasks/${task.task_id}`, { headers: { Authorization: `Bearer ${KEY}` } });
  const etag = first.headers.get('etag');
  assert.ok(etag, 'the task answer has an ETag');
  const before = await first.json();

  let started = Date.now();
  const changed = await fetch(`${BASE}/v1/tasks/${task.task_id}?wait=20`, {
    headers: { Authorization: `Bearer ${KEY}`, 'If-None-Match': etag },
  });
  let elapsed = Date.now() - started;
  assert.equal(changed.status, 200, 'a change answers 200');
  const after = await changed.json();
  assert.ok(elapsed < 5000, `returned on the change, not at the end of the wait (${elapsed} ms)`);
  assert.notEqual(changed.headers.get('etag'), etag, 'the ETag moved with the change');
  assert.ok(after.status !== before.status || after.progress !== before.progress || after.updated_at !== before.updated_at,
    'the answer shows the change');

  const done = await waitForTask(task.task_id);
  const current = await fetch(`${BASE}/v1/tasks/${task.task_id}`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(done.status, 'completed');
  const doneTag = current.headers.get('etag');
  started = Date.now();
  const unchanged = await fetch(`${BASE}/v1/tasks/${task.task_id}?wait=2`, {
    headers: { Authorization: `Bearer ${KEY}`, 'If-None-Match': doneTag },
  });
  elapsed = Date.now() - started;
  assert.equal(unchanged.status, 304, 'an unchanged task answers 304');
  assert.ok(elapsed >= 1500 && elapsed < 6000, `304 after waiting about 2 s (${elapsed} ms)`);
});

test('GET /v1/events?after= catches up with no gap and no repeat', async () => {
  const tasks = await Promise.all([
    submit('image', { model: 'dall-e-2', n: 2 }),
    submit('image'),
    submit('video', { duration: 2 }),
  ]);
  await Promise.all(tasks.map((t) => waitForTask(t.task_id)));

  const all = await api('GET', '/v1/events?limit=1000');
  assert.equal(all.status, 200);
  assert.equal(all.body.object, 'list');
  const full = all.body.data;
  assert.equal(new Set(full.map((e) => e.id)).size, full.length, 'event ids are unique');

  // Paging with a small limit, each page after the last id seen, gives the same list.
  const paged = [];
  let after = null;
  for (let pages = 0; pages < 500; pages++) {
    const query = after ? `after=${after}&limit=3` : 'limit=3';
    const page = await api('GET', `/v1/events?${query}`);
    assert.equal(page.status, 200);
    paged.push(...page.body.data);
    if (!page.body.has_more) break;
    after = page.body.data.at(-1).id;
  }
  assert.deepEqual(paged.map((e) => e.id), full.map((e) => e.id), 'pages of 3 add up to the whole log, in order');

  // Catching up from any event gives exactly what follows it.
  const middle = Math.floor(full.length / 2);
  const rest = await api('GET', `/v1/events?after=${full[middle].id}&limit=1000`);
  assert.deepEqual(rest.body.data.map((e) => e.id), full.slice(middle + 1).map((e) => e.id));

  for (const task of tasks) {
    const events = full.filter((e) => e.data?.taskId === task.task_id);
    assert.deepEqual(events.map((e) => e.sequence), events.map((_, i) => i + 1),
      `task ${task.task_id}: sequences 1..n with no gap`);
    assert.match(events.at(-1).type, /\.completed$/);
    for (const e of events) {
      assert.match(e.id, /^evt_/);
      assert.ok(!Number.isNaN(Date.parse(e.timestamp)), 'a timestamp');
    }
  }

  // The type filter keeps the order and the gaps of what it drops.
  const completed = await api('GET', '/v1/events?types=image.completed&limit=1000');
  assert.deepEqual(completed.body.data.map((e) => e.id),
    full.filter((e) => e.type === 'image.completed').map((e) => e.id));
});

test("another key's task answers 404 exactly as an unknown id, and its events stay out of the feed", async () => {
  const other = await createKey(`compat-polling-${Date.now()}`);
  const task = await waitForTask((await submit('image')).task_id);
  const unknown = `task_${crypto.randomBytes(16).toString('hex')}`;
  const foreign = await api('GET', `/v1/tasks/${task.task_id}`, { key: other.key });
  const missing = await api('GET', `/v1/tasks/${unknown}`, { key: other.key });
  assert.equal(foreign.status, 404);
  assert.equal(missing.status, 404);
  assert.deepEqual(
    JSON.parse(JSON.stringify(foreign.body).replaceAll(task.task_id, '<id>')),
    JSON.parse(JSON.stringify(missing.body).replaceAll(unknown, '<id>')),
  );
  const feed = await api('GET', '/v1/events?limit=1000', { key: other.key });
  assert.equal(feed.status, 200);
  assert.ok(!feed.body.data.some((e) => e.data?.taskId === task.task_id), "no event of key A in key B's feed");
});

/** Reads Server-Sent Events from a fetch response until `done(events)` or the timeout. */
async function readEventStream(response, done, timeoutMs = 15000) {
  const events = [];
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = {};
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const name = line.slice(0, colon);
          fields[name] = (fields[name] ? `${fields[name]}\n` : '') + line.slice(colon + 1).replace(/^ /, '');
        }
        if (fields.data !== undefined) events.push(fields);
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return events;
}

test('GET /v1/events as Server-Sent Events streams live and resumes with Last-Event-ID', async () => {
  const controller = new AbortController();
  const live = await fetch(`${BASE}/v1/events`, {
    headers: { Authorization: `Bearer ${KEY}`, Accept: 'text/event-stream' },
    signal: controller.signal,
  });
  assert.equal(live.status, 200);
  assert.match(live.headers.get('content-type') ?? '', /^text\/event-stream/);
  const task = await submit('image', { model: 'dall-e-2', n: 2 });
  const streamed = await readEventStream(live,
    (events) => events.some((e) => JSON.parse(e.data).type === 'image.completed' && JSON.parse(e.data).data.taskId === task.task_id));
  controller.abort();
  const mine = streamed.filter((e) => JSON.parse(e.data).data?.taskId === task.task_id);
  const log = await (await api('GET', `/v1/tasks/${task.task_id}/events`)).body.data;
  assert.deepEqual(mine.map((e) => e.id), log.map((e) => e.id), 'the stream carried every event of the task, `id:` = event id');
  assert.deepEqual(mine.map((e) => e.event), log.map((e) => e.type), '`event:` = event type');
  assert.deepEqual(mine.map((e) => JSON.parse(e.data)), log, '`data:` = the envelope');

  // A client that lost the stream after the first event resumes with no gap.
  const resumeController = new AbortController();
  const resumed = await fetch(`${BASE}/v1/events`, {
    headers: { Authorization: `Bearer ${KEY}`, Accept: 'text/event-stream', 'Last-Event-ID': log[0].id },
    signal: resumeController.signal,
  });
  assert.equal(resumed.status, 200);
  const rest = await readEventStream(resumed, (events) => events.some((e) => e.id === log.at(-1).id));
  resumeController.abort();
  const expected = (await api('GET', `/v1/events?after=${log[0].id}&limit=1000`)).body.data.map((e) => e.id);
  assert.ok(expected.includes(log.at(-1).id));
  assert.deepEqual(rest.map((e) => e.id).slice(0, expected.length), expected,
    'resumed right after Last-Event-ID, as ?after= lists it: nothing missed, nothing repeated');
});
