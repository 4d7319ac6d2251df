// Copyright 2026 the aesm authors. MIT license.
/**
 * The cluster seam: servers in several processes (or machines) that act as
 * one. A server given a `cluster` option joins its peers through a
 * {@linkcode ClusterAdapter}, a message bus between nodes; then `sendAll()`
 * reaches the clients of every node, `sendTo()` reaches a client (by public
 * key or address) on whichever node holds it, and each node knows which node
 * holds which client. Everything a node puts on the bus is sealed with the
 * cluster key (AES-256-GCM), so the bus never sees message contents.
 *
 * This module holds the seam and {@linkcode InProcessCluster}, a bus inside
 * one process (for tests and single-process use); the NATS adapter is
 * `@aesm/aesm/cluster/nats`, a separate entry point with its own dependency.
 *
 * @example Two servers in one process act as one
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, generateClusterKey, InProcessCluster, ServerNetwork } from "@aesm/aesm";
 *
 * const bus = new InProcessCluster();
 * const key = generateClusterKey();
 * const hostname = "127.0.0.1";
 * await using a = await ServerNetwork.listen({ hostname, cluster: { adapter: bus.adapter(), key } });
 * await using b = await ServerNetwork.listen({ hostname, cluster: { adapter: bus.adapter(), key } });
 * await using client = await ClientNetwork.connect({ hostname, port: b.port });
 * await b.accept();
 * await a.cluster!.ready(client.publicKey); // a has heard that b holds the client
 * await a.sendTo("hello from a", client.publicKey);
 * assert.equal((await client.receive())?.text(), "hello from a");
 * ```
 *
 * @module
 */

/** What a node's adapter tells it about its link to the bus. */
export interface ClusterHandlers {
  /**
   * Takes a sealed message from the bus.
   *
   * @param bytes The sealed message.
   * @param direct Whether it was sent to this node only (else to every node).
   */
  receive(bytes: Uint8Array<ArrayBuffer>, direct: boolean): void;
  /**
   * Says the link to the bus went down (`false`) or came back (`true`).
   *
   * @param up Whether the link is up.
   * @param detail A sentence for people.
   */
  link(up: boolean, detail: string): void;
}

/**
 * A message bus between the nodes of a cluster: what a real adapter (such as
 * NATS) implements. It carries opaque sealed bytes; presence, routing and
 * sealing live above it, in the server, the same for every adapter. A node
 * publishes to every node (its own messages may come back; the node drops
 * them) or to one node by id.
 */
export interface ClusterAdapter {
  /** The largest message the bus carries, in bytes. */
  readonly maxPayload: number;
  /**
   * Starts delivering messages for every node and for `nodeId`.
   *
   * @param nodeId This node's id.
   * @param handlers Where messages and link changes go.
   * @returns Once messages are delivered.
   */
  join(nodeId: string, handlers: ClusterHandlers): Promise<void>;
  /**
   * Publishes a sealed message without waiting.
   *
   * @param bytes The sealed message (at most `maxPayload` bytes).
   * @param to A node's id, or `undefined` for every node.
   */
  publish(bytes: Uint8Array<ArrayBuffer>, to?: string): void;
  /**
   * Leaves the bus after flushing what was published, and releases what the adapter holds.
   *
   * @returns Once left.
   */
  close(): Promise<void>;
}

/** The `cluster` option of a server. */
export interface ClusterOptions {
  /** The bus to the other nodes. The server closes it when it stops. */
  adapter: ClusterAdapter;
  /**
   * The cluster key: 32 random bytes shared by every node (see
   * {@linkcode generateClusterKey}). It seals every message between nodes.
   */
  key: Uint8Array;
  /**
   * This node's id, unique in the cluster.
   *
   * @default {a random id}
   */
  nodeId?: string;
  /**
   * Milliseconds between a node's heartbeats; a node not heard from for
   * three intervals (while this node's own link is up) is taken as gone.
   *
   * @default {1000}
   */
  heartbeatInterval?: number;
  /**
   * Share client activity: each node's `connected`, `refused` and
   * `disconnected` records also go to every other node's activity log, with
   * `node` naming where they happened, so that any node's log shows the
   * whole cluster's, delivered like any cluster message (at most once).
   *
   * @default {false}
   */
  shareActivity?: boolean;
}

/** A client connected to some node of the cluster. */
export interface ClusterClient {
  /** The id of the node that holds it. */
  readonly node: string;
  /** The client's static public key. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
  /** Its address `host:port`, as its node sees it. */
  readonly address: string;
}

/** What a server knows of its cluster: `server.cluster`. */
export interface ClusterPresence {
  /** This node's id. */
  readonly nodeId: string;
  /** Whether this node's link to the bus is up. */
  readonly linked: boolean;
  /**
   * The ids of the other nodes heard from and not gone.
   *
   * @returns The ids.
   */
  nodes(): string[];
  /**
   * Every client of the cluster as this node knows it: its own, and those
   * the other nodes announced.
   *
   * @returns One entry per connection, this node's first.
   */
  clients(): ClusterClient[];
  /**
   * Which node holds a client: this node's id if it is here.
   *
   * @param client The client's public key, or its address `host:port` as its node sees it.
   * @returns The node's id, or `undefined` if no known node holds it.
   */
  locate(client: Uint8Array | string): string | undefined;
  /**
   * Waits until some node is known to hold the client.
   *
   * @param client The client's public key, or its address.
   * @param options A signal to stop waiting.
   * @returns The node's id.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  ready(client: Uint8Array | string, options?: { signal?: AbortSignal }): Promise<string>;
}

/**
 * Makes a new cluster key: 32 random bytes to give every node.
 *
 * @returns The key.
 *
 * @example A key for a cluster
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateClusterKey } from "@aesm/aesm/cluster";
 *
 * assert.equal(generateClusterKey().length, 32);
 * ```
 */
export function generateClusterKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(32));
}

/**
 * A cluster bus inside one process: each `adapter()` is one node's link.
 * Delivery is asynchronous, in order, and copies the bytes, as a network
 * would. `interrupt()` and `restore()` cut and mend every link, to see the
 * cluster heal.
 *
 * @example One bus, two nodes
 * ```ts
 * import assert from "node:assert/strict";
 * import { InProcessCluster } from "@aesm/aesm/cluster";
 *
 * const bus = new InProcessCluster();
 * const got: number[] = [];
 * const a = bus.adapter();
 * const b = bus.adapter();
 * await a.join("a", { receive: () => {}, link: () => {} });
 * await b.join("b", { receive: (bytes) => got.push(bytes[0]), link: () => {} });
 * a.publish(new Uint8Array([7]), "b");
 * await a.close();
 * await b.close();
 * assert.deepEqual(got, [7]);
 * ```
 */
export class InProcessCluster {
  #members = new Map<string, ClusterHandlers>();
  #up = true;
  #inFlight = new Set<Promise<void>>();

  /**
   * Makes a link for one node.
   *
   * @returns The adapter, to pass as `cluster.adapter`.
   */
  adapter(): ClusterAdapter {
    let id: string | undefined;
    return {
      maxPayload: 1024 * 1024,
      join: (nodeId: string, handlers: ClusterHandlers): Promise<void> => {
        if (this.#members.has(nodeId)) {
          return Promise.reject(new RangeError(`Cannot join cluster: node id ${nodeId} is taken`));
        }
        id = nodeId;
        this.#members.set(nodeId, handlers);
        return Promise.resolve();
      },
      publish: (bytes: Uint8Array<ArrayBuffer>, to?: string): void => {
        if (id !== undefined) this.#deliver(bytes, to);
      },
      close: async (): Promise<void> => {
        await Promise.all(this.#inFlight);
        if (id !== undefined) this.#members.delete(id);
        id = undefined;
      },
    };
  }

  /** Cuts every link: messages published meanwhile are lost, as on a real network. */
  interrupt(): void {
    if (!this.#up) return;
    this.#up = false;
    for (const member of this.#members.values()) member.link(false, "The bus was interrupted");
  }

  /** Mends every link. */
  restore(): void {
    if (this.#up) return;
    this.#up = true;
    for (const member of this.#members.values()) member.link(true, "The bus was restored");
  }

  #deliver(bytes: Uint8Array<ArrayBuffer>, to: string | undefined): void {
    if (!this.#up) return;
    const copy = bytes.slice();
    const task = Promise.resolve().then(() => {
      if (!this.#up) return;
      if (to !== undefined) return this.#members.get(to)?.receive(copy, true);
      for (const member of this.#members.values()) member.receive(copy, false);
    });
    this.#inFlight.add(task);
    task.finally(() => this.#inFlight.delete(task));
  }
}
