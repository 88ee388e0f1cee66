/**
 * The rooms and their doors (issue 11): each table is read and written only by the module that
 * owns it, through its repository; the arrows between folders point one way (the CLI and the demo
 * on capabilities, capabilities on core and store, never back). Checked on the source text, so a
 * new query in the wrong room fails here before review.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('test-helpers.ts') ? [p] : [];
  });
}

/** Which folder of src/ owns each table (the migrations create them all). */
const OWNER: Record<string, string> = {
  subject: 'registry', fact: 'registry', change: 'registry',
  central_member: 'central', central_subsystem: 'central', central_gateway: 'central', central_gateway_subsystem: 'central', central_agreements: 'central',
  central_conf: 'central', central_counter: 'central', central_token: 'central', central_audit: 'central',
  gateway_conf: 'gateway', replay_guard: 'gateway', message_log: 'gateway', message_log_head: 'gateway', message_log_checkpoint: 'gateway',
  transparency_tree: 'transparency', transparency_entry: 'transparency', transparency_node: 'transparency', transparency_head: 'transparency', access_record: 'transparency',
  transparency_cosignature: 'transparency', transparency_witness: 'transparency',
  consent_record: 'consent', consent_history: 'consent', preview: 'preview',
  event_counter: 'registry', event_outbox: 'registry',
  event_subscription: 'events', event_interest: 'events', event_queue: 'events', event_relay: 'events', event_lease: 'events',
  portal_session: 'portal', portal_match: 'portal',
};

const QUERY = /\b(?:selectFrom|insertInto|updateTable|deleteFrom|replaceInto|mergeInto)\(\s*'([a-z_]+)'/g;
const RAW_SQL = /\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_]+)\b/g;

test('every table is queried only in the folder that owns it', () => {
  const wrong: string[] = [];
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    const room = rel.split('/')[0]!;
    if (room === 'store') continue; // the migrations create every table
    const text = readFileSync(file, 'utf8');
    for (const re of [QUERY, RAW_SQL]) {
      for (const m of text.matchAll(re)) {
        const table = m[1]!;
        const owner = OWNER[table];
        if (owner !== undefined && owner !== room) wrong.push(`${rel}: ${table} (owned by ${owner})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('the arrows point one way: capabilities never import the CLI or the demo; core imports no capability', () => {
  const wrong: string[] = [];
  const capabilities = new Set(['audit', 'catalogue', 'central', 'consent', 'events', 'gateway', 'identity', 'linkage', 'portal', 'preview', 'registry', 'transparency']);
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    const room = rel.split('/')[0]!;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^import [^;]*? from '\.\.\/([a-z]+)\//gm)) {
      const to = m[1]!;
      if (capabilities.has(room) && (to === 'cli' || to === 'demo')) wrong.push(`${rel} -> ${to}`);
      if ((room === 'core' || room === 'store') && (capabilities.has(to) || to === 'cli' || to === 'demo')) wrong.push(`${rel} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});
