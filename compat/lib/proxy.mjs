// A TCP proxy on 127.0.0.1 between a client and the gateway, which a test can cut
// (every open connection is destroyed, as when a network path dies) and hold (new
// connections wait, unanswered, until it is restored).

import net from 'node:net';

export async function startProxy(targetPort) {
  const pairs = new Set();
  const waiting = [];
  let held = false;
  let accepted = 0;

  function connect(client) {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  const server = net.createServer((client) => {
    accepted += 1;
    client.pause();
    if (held) {
      client.on('error', () => client.destroy());
      waiting.push(client);
    } else {
      connect(client);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get accepted() { return accepted; },
    get waiting() { return waiting.length; },
    /** Destroys every proxied connection and holds new ones until `restore()`. */
    cut() {
      held = true;
      for (const { client, upstream } of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    /** Lets held and new connections through again. */
    restore() {
      held = false;
      for (const client of waiting.splice(0)) {
        if (!client.destroyed) connect(client);
      }
    },
    async close() {
      this.cut();
      for (const client of waiting.splice(0)) client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
