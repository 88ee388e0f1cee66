/**
 * @module core/batch
 * Group commit: work submitted while a batch is being written is written together by the next
 * one, so N concurrent requests cost one transaction (or one signature) instead of N. Used by the
 * message log, the transparency log, batch signatures and the replay guard: each gives a `flush`
 * that handles an array of items and returns one result per item, in order.
 *
 * Batches run one at a time, in submission order, at most `max` items each; the first item of an
 * idle batcher waits for the rest of the current event-loop turn (setImmediate), so items that
 * arrive together are batched even when nothing is in flight. If a flush throws, every item of that
 * batch is rejected with the error and the next batch runs as usual.
 */

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, O> {
  readonly #flush: (items: I[]) => Promise<O[]> | O[];
  readonly #max: number;
  #queue: Waiting<I, O>[] = [];
  #running = false;
  /** Resolves when the batcher is idle (for callers that must wait for everything submitted). */
  #idle: Promise<void> = Promise.resolve();
  #markIdle: (() => void) | undefined;

  constructor(flush: (items: I[]) => Promise<O[]> | O[], opts: { max?: number } = {}) {
    this.#flush = flush;
    this.#max = opts.max ?? 256;
  }

  /** Submits one item; resolves with its result once its batch is flushed. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        this.#idle = new Promise((r) => (this.#markIdle = r));
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Resolves once everything submitted so far has been flushed. */
  drained(): Promise<void> {
    return this.#idle;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#queue.splice(0, this.#max);
      if (batch.length === 0) {
        // Cleared in the same synchronous step as the emptiness check, so an item submitted
        // afterwards always starts a new drain.
        this.#running = false;
        this.#markIdle?.();
        return;
      }
      let results: O[];
      try {
        results = await this.#flush(batch.map((w) => w.item));
      } catch (e) {
        for (const w of batch) w.reject(e);
        continue;
      }
      batch.forEach((w, i) => {
        if (i < results.length) w.resolve(results[i] as O);
        else w.reject(new Error('a batch returned fewer results than items'));
      });
    }
  }
}
