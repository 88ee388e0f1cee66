/**
 * @module demo/ports
 * Finding free loopback ports, for a demo started with `--port 0` and for tests.
 */
import { createServer } from 'node:net';
import { randomInt } from 'node:crypto';

// Below Linux's ephemeral range (32768-60999 by default): a port handed out here is chosen now but
// listened on later, and in between the process's own outgoing connections take ephemeral ports,
// one of which could be the very port chosen (seen as EADDRINUSE when the demo started).
const LOW = 20_000;
const HIGH = 32_000;

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : undefined));
    });
  });
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned), outside the ephemeral range when possible. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await tryListen(randomInt(LOW, HIGH));
    if (port !== undefined) return port;
  }
  const any = await tryListen(0);
  if (any === undefined) throw new Error('no free port on 127.0.0.1');
  return any;
}
