/**
 * @module gateway/upstream
 * Calls a service behind the provider gateway. Redirects are never followed (PR-REST §4.4: a 3xx
 * goes back to the client as it is), the answer is bounded in size and time, and transport
 * failures become typed errors that name no internal host or port.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { OnceOnlyError } from '../core/errors.ts';
import type { ServiceRegistration } from './gateway.ts';

/** What came back from a service. */
export interface UpstreamAnswer {
  status: number;
  /** Response headers, lower-case names, multi-valued ones as several pairs. */
  headers: [string, string][];
  contentType: string;
  body: Buffer;
}

/** The connection pool to the organisation's own services. */
export class Upstream {
  readonly #agent: Agent;
  readonly #maxBody: number;

  constructor(maxBody: number) {
    this.#maxBody = maxBody;
    this.#agent = new Agent({ keepAliveTimeout: 30_000, connections: 64, maxResponseSize: maxBody });
  }

  /**
   * Calls `service` at `pathAndQuery` (appended to its URL). `headers` are sent as given, then the
   * registration's own (its credential) replace any of the same name: a client can never set them.
   */
  async call(service: ServiceRegistration, o: { method: string; pathAndQuery: string; headers: [string, string][]; body: Buffer | null }): Promise<UpstreamAnswer> {
    const url = `${service.url.replace(/\/$/, '')}${o.pathAndQuery}`;
    const own = new Set(Object.keys(service.headers ?? {}).map((k) => k.toLowerCase()));
    const headers: string[] = [];
    for (const [k, v] of o.headers) if (!own.has(k.toLowerCase())) headers.push(k, v);
    for (const [k, v] of Object.entries(service.headers ?? {})) headers.push(k, v);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: o.method, headers, body: o.body && o.body.length ? o.body : null, dispatcher: this.#agent, headersTimeout: service.timeoutMs, bodyTimeout: service.timeoutMs });
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (code.includes('TIMEOUT')) throw new OnceOnlyError('service_timeout', 'the service did not answer in time', { timeoutMs: service.timeoutMs });
      throw new OnceOnlyError('service_unreachable', 'the service could not be reached', code ? { code } : {});
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.body.arrayBuffer());
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (code.includes('TIMEOUT')) throw new OnceOnlyError('service_timeout', 'the service did not finish answering in time', { timeoutMs: service.timeoutMs });
      throw new OnceOnlyError('service_failed', 'the service\'s answer was cut off or too large', { expected: `at most ${this.#maxBody} bytes` });
    }
    const pairs: [string, string][] = [];
    for (const [k, v] of Object.entries(res.headers)) {
      if (typeof v === 'string') pairs.push([k, v]);
      else if (Array.isArray(v)) for (const x of v) pairs.push([k, x]);
    }
    const ct = res.headers['content-type'];
    return { status: res.statusCode, headers: pairs, contentType: typeof ct === 'string' ? ct : '', body };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
