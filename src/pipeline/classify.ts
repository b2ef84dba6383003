// Stage 1: which network a query belongs to — the listener's pinned network, else the client's
// source address looked up by longest prefix. No network means REFUSED: never an open resolver.
// A DoH client ID in the path (`/dns-query/ID`) picks another configured network, but only for a
// client that is in one already: it narrows or re-labels access, it never grants it.
import type { NetworkTable } from '../match/network-table.js';
import type { Network } from '../policy/policy-engine.js';
import type { ClientInfo } from './context.js';

export function classify(client: ClientInfo, byName: ReadonlyMap<string, Network>, table: NetworkTable<Network>): Network | undefined {
  const network = client.listenerNetwork !== undefined ? byName.get(client.listenerNetwork) : table.lookup(client.address);
  if (network === undefined || client.pathNetwork === undefined) return network;
  return byName.get(client.pathNetwork) ?? network;
}
