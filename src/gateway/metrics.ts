/**
 * @module gateway/metrics
 * Prometheus metrics of one gateway (prom-client, text exposition format 0.0.4): requests by side
 * and status class, errors by type, latency. Labels never carry ids of people or clients.
 */
import { Counter, Histogram, Registry } from 'prom-client';

/** The gateway's metrics and their registry. */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'side' | 'status'>;
  private readonly errors: Counter<'side' | 'type'>;
  private readonly latency: Histogram<'side'>;

  constructor() {
    this.requests = new Counter({ name: 'onceonly_gateway_requests_total', help: 'Requests handled, by side (client, provider) and HTTP status class', labelNames: ['side', 'status'], registers: [this.registry] });
    this.errors = new Counter({ name: 'onceonly_gateway_errors_total', help: 'Refusals and failures, by side and error type', labelNames: ['side', 'type'], registers: [this.registry] });
    this.latency = new Histogram({ name: 'onceonly_gateway_request_duration_seconds', help: 'Time to handle a request, by side', labelNames: ['side'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry] });
  }

  observe(side: 'client' | 'provider', status: number, seconds: number): void {
    this.requests.inc({ side, status: `${Math.floor(status / 100)}xx` });
    this.latency.observe({ side }, seconds);
  }

  error(side: 'client' | 'provider', type: string): void {
    this.errors.inc({ side, type });
  }

  /** The exposition text for `/metrics`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
