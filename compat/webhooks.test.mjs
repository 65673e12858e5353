// Webhooks as the guide's users receive them: its express handler (which verifies
// X-Conduit-Signature over JSON.stringify(req.body)) and the standardwebhooks
// library (`new Webhook(secret).verify(rawBody, headers)`), on an express server on
// 127.0.0.1 that the gateway may reach (with-server.sh allows 127.0.0.0/8).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import express from 'express';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_SECRET, api, submit, waitForTask, taskEvents, until, sleep } from './lib/conduit.mjs';

// The guide's handler reads the key's signing secret from here.
process.env.WEBHOOK_SECRET = WEBHOOK_SECRET;

// Everything the receiver saw, one entry per request, in arrival order.
const requests = [];
// The guide's handler calls these; the application decides what they do.
const processed = new Set();
const failures = new Map(); // event id → how many more times processEvent throws
const handled = [];
async function isDuplicateEvent(id) { return processed.has(id); }
async function markEventProcessed(id) { processed.add(id); }
async function processEvent(event) {
  const left = failures.get(event.id) ?? 0;
  if (left > 0) {
    failures.set(event.id, left - 1);
    throw new Error(`the application fails on ${event.id} (${left} more)`);
  }
  handled.push(event);
}
// Tasks whose first event the application fails to process twice.
const failFirstEventOf = new Set();
// The guide's handler logs; keep the test output readable.
const console = { log: () => {}, error: () => {} };

const app = express();
app.use(express.json({
  verify: (req, _res, buf) => { req.rawBody = buf.toString('utf8'); },
}));

// Records each request and checks it with the standardwebhooks library on the raw
// bytes, with the secret its route is signed with, before the guide's handler runs.
function recorder(route, secretOf) {
  return (req, res, next) => {
    const entry = {
      route,
      at: Date.now(),
      headers: { ...req.headers },
      raw: req.rawBody,
      body: req.body,
      standardWebhooks: null,
    };
    try {
      new Webhook(secretOf()).verify(req.rawBody, req.headers);
      entry.standardWebhooks = 'ok';
    } catch (error) {
      entry.standardWebhooks = String(error.message ?? error);
    }
    if (req.body?.sequence === 1 && failFirstEventOf.has(req.body.data?.taskId) && !failures.has(req.body.id)) {
      failures.set(req.body.id, 2);
    }
    res.on('finish', () => { entry.status = res.statusCode; });
    requests.push(entry);
    next();
  };
}

let endpointSecret = null;

app.post('/webhooks/conduit', recorder('task', () => WEBHOOK_SECRET));

// ---- the guide's "Webhook Reliability" handler, as written ----
// Webhook endpoint with reliability features
app.post('/webhooks/conduit', async (req, res) => {
  const event = req.body;
  const signature = req.headers['x-conduit-signature'];
  
  try {
    // Verify webhook signature
    if (!verifyWebhookSignature(event, signature)) {
      return res.status(401).send('Invalid signature');
    }

    // Idempotency check
    if (await isDuplicateEvent(event.id)) {
      return res.status(200).send('Already processed');
    }

    // Process event
    await processEvent(event);
    
    // Mark as processed
    await markEventProcessed(event.id);
    
    res.status(200).send('OK');
  } catch (error) {
    console.error('Webhook processing error:', error);
    
    // Return 500 to trigger retry
    res.status(500).send('Processing failed');
  }
});

function verifyWebhookSignature(payload, signature) {
  const expectedSignature = crypto
    .createHmac('sha256', process.env.WEBHOOK_SECRET)
    .update(JSON.stringify(payload))
    .digest('hex');
  
  return signature === `sha256=${expectedSignature}`;
}
// ---- end of the guide's handler ----

// A registered endpoint, verified with its own secret only.
app.post('/webhooks/endpoint', recorder('endpoint', () => endpointSecret), (req, res) => {
  const expected = crypto.createHmac('sha256', endpointSecret).update(req.rawBody).digest('hex');
  res.status(req.headers['x-conduit-signature'] === `sha256=${expected}` ? 200 : 401).send('');
});

let server;
let receiver;
before(async () => {
  await new Promise((resolve) => { server = app.listen(0, '127.0.0.1', resolve); });
  receiver = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  server.closeAllConnections?.();
  await new Promise((resolve) => server.close(resolve));
});

const forTask = (taskId, route = 'task') =>
  requests.filter((r) => r.route === route && r.body?.data?.taskId === taskId);

/** Waits until the receiver accepted (2xx) every event of the task's log. */
async function allDelivered(taskId, timeoutMs = 20000) {
  await waitForTask(taskId);
  const log = await taskEvents(taskId);
  await until(() => log.every((e) => forTask(taskId).some((r) => r.body.id === e.id && r.status === 200)),
    `every event of ${taskId} accepted by the receiver`, timeoutMs);
  return log;
}

/** The checks every delivery must pass, whatever the route. */
function assertWellFormed(r, secretName) {
  assert.equal(r.standardWebhooks, 'ok', `standardwebhooks verifies with ${secretName}: ${r.standardWebhooks}`);
  assert.equal(r.headers['webhook-id'], r.body.id, 'webhook-id is the event id');
  assert.equal(r.headers['x-conduit-event'], r.body.type, 'X-Conduit-Event is the event type');
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.match(r.headers['user-agent'] ?? '', /^Conduit\//);
  assert.ok(r.headers['x-conduit-delivery'], 'X-Conduit-Delivery is set');
  assert.equal(JSON.stringify(JSON.parse(r.raw)), r.raw, 'the body survives JSON.stringify(JSON.parse(body))');
  const age = Math.abs(Date.now() / 1000 - Number(r.headers['webhook-timestamp']));
  assert.ok(age < 60, `webhook-timestamp is the time of the attempt (${age} s off)`);
}

test("every delivery of five tasks passes the guide's handler and standardwebhooks, in order per task", async () => {
  const tasks = [];
  for (let i = 0; i < 5; i++) {
    tasks.push(await submit('image', {
      prompt: `batch image ${i}`,
      webhook_url: `${receiver}/webhooks/conduit`,
      metadata: { batch: 'compat', index: String(i) },
    }));
  }
  for (const task of tasks) {
    const log = await allDelivered(task.task_id);
    const got = forTask(task.task_id);
    for (const r of got) assertWellFormed(r, "the key's webhook secret");
    assert.ok(got.every((r) => r.status === 200), `the guide's handler accepted every delivery: ${got.map((r) => r.status)}`);
    assert.deepEqual(got.map((r) => r.body.sequence), log.map((_, i) => i + 1), 'sequences 1..n, in order, once each');
    assert.deepEqual(got.map((r) => r.body.id), log.map((e) => e.id), 'exactly the events of the log');
    assert.deepEqual(got.map((r) => r.raw), log.map((e) => JSON.stringify(e)), 'the body is the log envelope');
    const completed = got.at(-1).body;
    assert.equal(completed.type, 'image.completed');
    assert.match(completed.data.imageUrl, /^https?:\/\//);
    assert.deepEqual(completed.data.metadata, { batch: 'compat', index: String(tasks.indexOf(task)) });
    const ids = new Set(got.map((r) => r.headers['x-conduit-delivery']));
    assert.equal(ids.size, got.length, 'X-Conduit-Delivery differs per attempt');
  }
});

test("video, speech and unusual metadata: the guide's handler verifies every body it re-serialises", async () => {
  const webhook_url = `${receiver}/webhooks/conduit`;
  const tasks = [
    await submit('video', { duration: 2, webhook_url }),
    await submit('speech', { webhook_url }),
    await submit('image', {
      webhook_url,
      user: 'user-42',
      metadata: { 'clé': 'valeur ünïcödé 😀', controls: 'a\u0001b\tc\u2028d\u007f', quotes: '"\\/</script>' },
    }),
  ];
  for (const task of tasks) {
    const log = await allDelivered(task.task_id);
    const got = forTask(task.task_id);
    for (const r of got) assertWellFormed(r, "the key's webhook secret");
    assert.ok(got.every((r) => r.status === 200), `the guide's handler accepted every delivery: ${got.map((r) => r.status)}`);
    assert.deepEqual(got.map((r) => r.body.id), log.map((e) => e.id), 'every event once, in order');
  }
  const video = forTask(tasks[0].task_id).map((r) => r.body);
  assert.ok(video.some((e) => e.type === 'video.progress' && typeof e.data.progress === 'number'),
    'video.progress carries data.progress, as the guide reads it');
  assert.equal(forTask(tasks[1].task_id).at(-1).body.type, 'audio.synthesis.completed');
  const image = forTask(tasks[2].task_id).at(-1).body;
  assert.equal(image.data.userId, 'user-42', 'data.userId is the request\'s user, as the guide\'s push example reads it');
  assert.equal(image.data.metadata.controls, 'a\u0001b\tc\u2028d\u007f', 'metadata echoed unchanged');
});

test('a receiver answering 500 twice gets the same event again, and later events wait for it', async () => {
  const task = await submit('image', { model: 'dall-e-2', n: 2, webhook_url: `${receiver}/webhooks/conduit` });
  failFirstEventOf.add(task.task_id);
  const log = await allDelivered(task.task_id, 40000);
  await sleep(300);
  const got = forTask(task.task_id);
  const first = got.filter((r) => r.body.id === log[0].id);
  assert.deepEqual(first.map((r) => r.status), [500, 500, 200], 'two failed attempts, then success');
  assert.equal(new Set(first.map((r) => r.headers['webhook-id'])).size, 1, 'the same webhook-id every attempt');
  assert.equal(new Set(first.map((r) => r.raw)).size, 1, 'the same body every attempt');
  assert.equal(new Set(first.map((r) => r.headers['x-conduit-signature'])).size, 1, 'the same X-Conduit-Signature');
  assert.equal(new Set(first.map((r) => r.headers['x-conduit-delivery'])).size, 3, 'a new X-Conduit-Delivery per attempt');
  for (const r of got) assertWellFormed(r, "the key's webhook secret");

  const success = first.at(-1).at;
  const later = got.filter((r) => r.body.id !== log[0].id);
  assert.ok(later.length >= 1, 'later events were delivered');
  assert.ok(later.every((r) => r.at >= success), 'no later event was sent before the first one succeeded');
  assert.deepEqual(got.filter((r) => r.status === 200).map((r) => r.body.sequence), log.map((_, i) => i + 1),
    'accepted in sequence order');

  const deliveries = await api('GET', `/v1/webhooks/deliveries?task_id=${task.task_id}`);
  assert.equal(deliveries.status, 200);
  const record = deliveries.body.data.find((d) => d.event_id === log[0].id);
  assert.ok(record, 'the delivery log lists the retried delivery');
  assert.equal(record.status, 'succeeded');
  assert.equal(record.attempts, 3);
});

test('a registered endpoint gets only the events it asked for, signed with its own secret', async () => {
  const created = await api('POST', '/v1/webhooks', {
    body: { url: `${receiver}/webhooks/endpoint`, events: ['image.completed'], description: 'compat' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  endpointSecret = created.body.secret;
  assert.match(endpointSecret, /^whsec_/);
  assert.notEqual(endpointSecret, WEBHOOK_SECRET, 'the endpoint has a secret of its own');
  try {
    const image = await submit('image');
    const video = await submit('video', { duration: 1 });
    await Promise.all([waitForTask(image.task_id), waitForTask(video.task_id)]);
    const completed = (await taskEvents(image.task_id)).at(-1);
    await until(() => forTask(image.task_id, 'endpoint').some((r) => r.status === 200),
      'image.completed at the registered endpoint');
    await sleep(1000); // anything else it was sent would have arrived by now

    const got = requests.filter((r) => r.route === 'endpoint');
    assert.ok(got.every((r) => r.body.type === 'image.completed'),
      `only image.completed: ${got.map((r) => r.body.type)}`);
    assert.deepEqual(forTask(video.task_id, 'endpoint'), [], 'nothing of the video task');
    const mine = forTask(image.task_id, 'endpoint');
    assert.equal(mine.length, 1, 'image.completed once');
    assert.equal(mine[0].raw, JSON.stringify(completed), 'the body is the log envelope');
    assertWellFormed(mine[0], "the endpoint's secret");
    assert.equal(mine[0].status, 200, "X-Conduit-Signature verifies with the endpoint's secret");
    assert.throws(() => new Webhook(WEBHOOK_SECRET).verify(mine[0].raw, mine[0].headers),
      "the key's task secret does not verify an endpoint delivery");

    const again = await api('GET', `/v1/webhooks/${created.body.id}/secret`);
    assert.equal(again.status, 200);
    assert.equal(again.body.secret, endpointSecret, 'GET …/secret returns the same secret');
  } finally {
    await api('DELETE', `/v1/webhooks/${created.body.id}`);
  }
});
