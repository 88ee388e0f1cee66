/**
 * @module gateway/witnessing
 * Every gateway's transparency log is witnessed by other organisations' gateways
 * (c2sp.org/tlog-witness): each gateway serves a witness on its provider side, trusting the log
 * key of every gateway in the global configuration, and sends each checkpoint it signs to the
 * gateways its `gateway.json` names in `witnesses`. Names and keys come from the global
 * configuration, so a verifier (the tracker, `onceonly transparency verify`) derives the same
 * ones from the same document:
 *
 * - a gateway's log is `<gateway id>/transparency`, its checkpoint origin and log key name that
 *   name with `%` and `+` percent-encoded, signed with the gateway's signing key (type 0x01);
 * - its witness's key name is `<gateway id>/witness`, encoded the same way, cosigning with the
 *   same signing key as a cosignature/v1 key (type 0x04, so another key ID; see
 *   docs/transparency.md for why one key serves both).
 */
import type { KeyObject } from 'node:crypto';
import { request } from 'undici';
import type { NoteVerifier } from '../core/note.ts';
import type { GlobalConfiguration } from '../central/types.ts';
import { logOrigin, logVerifier, witnessVerifier, type SignedTreeHead, type WitnessPolicy } from '../transparency/formats.ts';
import type { TransparencyLog } from '../transparency/log.ts';
import { collectCosignatures, Witness, type CosignOutcome, type WitnessPeer } from '../transparency/witness.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { ConfClient } from './confclient.ts';
import type { PeerPool } from './peers.ts';

/** The witness submission prefix under a gateway's provider address. */
export const WITNESS_PREFIX = '/witness';
/** Cosignatures a verifier requires by default: two independent organisations besides the log's. */
export const DEFAULT_QUORUM = 2;

/** The name of a gateway's transparency log: its id, then `/transparency`. */
export function transparencyLogId(gatewayId: string): string {
  return `${gatewayId}/transparency`;
}

/** The key name a gateway cosigns under as a witness. */
export function witnessName(gatewayId: string): string {
  return logOrigin(`${gatewayId}/witness`);
}

/** The key that verifies the checkpoints of gateway `gatewayId`'s log, from the configuration; undefined if it is not listed. */
export function gatewayLogVerifier(conf: GlobalConfiguration, gatewayId: string): NoteVerifier | undefined {
  const g = conf.gateways.find((x) => x.id === gatewayId);
  return g && logVerifier(transparencyLogId(g.id), g.signingKey);
}

/**
 * The witnesses a verifier of gateway `logGateway`'s log trusts: every other active gateway in
 * the configuration, and the quorum required of them.
 */
export function witnessPolicy(conf: GlobalConfiguration, logGateway: string, quorum = DEFAULT_QUORUM): WitnessPolicy {
  return { witnesses: conf.gateways.filter((g) => g.id !== logGateway && g.status === 'active').map((g) => witnessVerifier(witnessName(g.id), g.signingKey)), quorum };
}

/** The witness a gateway serves: it witnesses the log of every other gateway in the configuration it holds. */
export function gatewayWitness(o: { db: Kysely<Database>; gatewayId: string; signingKey: KeyObject; conf: ConfClient; now?: (() => Date) | undefined }): Witness {
  return new Witness({
    db: o.db,
    name: witnessName(o.gatewayId),
    key: o.signingKey,
    logKeys: (origin) => {
      const conf = o.conf.held();
      // Suspended gateways are witnessed still: their logs are evidence of what they did.
      const g = conf?.gateways.find((x) => x.id !== o.gatewayId && logOrigin(transparencyLogId(x.id)) === origin);
      return g ? [logVerifier(transparencyLogId(g.id), g.signingKey)] : undefined;
    },
    ...(o.now ? { now: o.now } : {}),
  });
}

/**
 * The `cosign` hook of a gateway's transparency log: sends the checkpoint to the witnesses named
 * in `gateway.json` over the gateways' mutual-TLS connections, and reports each refusal.
 */
export function cosignThroughPeers(o: { gatewayId: string; witnesses: readonly string[]; conf: ConfClient; peers: () => PeerPool; log: () => TransparencyLog; onOutcome: (o: CosignOutcome) => void; timeoutMs?: number }): (head: SignedTreeHead) => Promise<void> {
  return async (head) => {
    const conf = o.conf.held();
    if (!conf || o.witnesses.length === 0) return;
    const peers: WitnessPeer[] = [];
    for (const id of o.witnesses) {
      const g = conf.gateways.find((x) => x.id === id && x.id !== o.gatewayId);
      if (!g) {
        o.onOutcome({ witness: id, ok: false, reason: 'not an active gateway in the global configuration' });
        continue;
      }
      peers.push({
        verifier: witnessVerifier(witnessName(g.id), g.signingKey),
        post: async (body) => {
          const res = await request(new URL(`${WITNESS_PREFIX}/add-checkpoint`, g.address), {
            method: 'POST',
            headers: { 'content-type': 'text/plain; charset=utf-8' },
            body,
            dispatcher: o.peers().agent(g.id),
            headersTimeout: o.timeoutMs ?? 10_000,
            bodyTimeout: o.timeoutMs ?? 10_000,
          });
          return { status: res.statusCode, body: await res.body.text() };
        },
      });
    }
    for (const outcome of await collectCosignatures(o.log(), head, peers)) o.onOutcome(outcome);
  };
}
