// Stage 1: which network a query belongs to — the listener's pinned network, else the client's
// source address looked up by longest prefix. No network means REFUSED: never an open resolver.
import type { NetworkTable } from '../match/network-table.js';
import type { Network } from '../policy/policy-engine.js';
import type { ClientInfo } from './context.js';

export function classify(client: ClientInfo, byName: ReadonlyMap<string, Network>, table: NetworkTable<Network>): Network | undefined {
  if (client.listenerNetwork !== undefined) return byName.get(client.listenerNetwork);
  return table.lookup(client.address);
}
