/**
 * @module gateway/peers
 * Connections to other gateways' provider sides: one pool per gateway, our certificate, the
 * central CA only, and the peer must present exactly the certificate the global configuration
 * lists for that gateway (not just any member's), so a request never reaches another
 * organisation's gateway. Used by the client side's exchange and by witnessing.
 */
import { Agent } from 'undici';
import type { ConfClient } from './confclient.ts';

export class PeerPool {
  readonly #conf: ConfClient;
  readonly #tls: { key: string; cert: string };
  readonly #maxResponseSize: number;
  readonly #connectTimeoutMs: number;
  readonly #agents = new Map<string, Agent>();

  constructor(o: { conf: ConfClient; tls: { key: string; cert: string }; maxResponseSize: number; connectTimeoutMs?: number | undefined }) {
    this.#conf = o.conf;
    this.#tls = o.tls;
    this.#maxResponseSize = o.maxResponseSize;
    this.#connectTimeoutMs = o.connectTimeoutMs ?? 5000;
  }

  /** The pool for connections to gateway `gatewayId`. */
  agent(gatewayId: string): Agent {
    let agent = this.#agents.get(gatewayId);
    if (!agent) {
      const conf = this.#conf;
      agent = new Agent({
        keepAliveTimeout: 30_000,
        connections: 64,
        maxResponseSize: this.#maxResponseSize,
        connect: {
          key: this.#tls.key,
          cert: this.#tls.cert,
          ca: conf.held()?.caCertificate ?? '',
          rejectUnauthorized: true,
          timeout: this.#connectTimeoutMs,
          checkServerIdentity: (_host, cert) => {
            const fp = cert.fingerprint256.replaceAll(':', '').toLowerCase();
            const g = conf.held()?.gateways.find((x) => x.id === gatewayId);
            if (!g || g.status !== 'active' || g.tlsFingerprint.toLowerCase() !== fp) {
              return Object.assign(new Error(`the peer's certificate is not the one the global configuration lists for ${gatewayId}`), { code: 'ONCEONLY_PEER_MISMATCH' });
            }
            return undefined;
          },
        },
      });
      this.#agents.set(gatewayId, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#agents.values()].map((a) => a.close()));
  }
}
