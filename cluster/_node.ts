// Copyright 2026 the aesm authors. MIT license.
/**
 * One server's membership of a cluster: sealing, presence, heartbeats and
 * routing over a {@linkcode ClusterAdapter}, the same for every adapter.
 * Private.
 *
 * A message on the bus is `header length (4, big endian) | header JSON |
 * body`, sealed by `cluster/_seal.ts` with the additional data naming the
 * channel (`*` for every node, else the target node's id), so that the bus
 * can neither read nor alter a message, nor turn a message for one node into
 * one for another or for all. Each sender numbers its messages per channel,
 * from its start time in microseconds (so that a node restarted under the
 * same id numbers above its former self); a receiver drops a number it has
 * seen or passed (a replay, or a duplicate), and messages older than
 * MAX_AGE_MS, and remembers the numbers of a node it forgot for that long.
 *
 * @module
 */

import { ClusterSealer, SEAL_OVERHEAD } from "./_seal.ts";
import { describe, positive } from "../_connection/config.ts";
import type { ActivityWriter } from "../_queue/activity_log.ts";
import type { ActivityRecord } from "../_queue/activity_log.ts";
import type {
  ClusterAdapter,
  ClusterClient,
  ClusterHandlers,
  ClusterOptions,
  ClusterPresence,
} from "../cluster.ts";

// A message older than this (by the receiver's clock) is a replay or hopelessly late.
const MAX_AGE_MS = 60_000;
// The records shareActivity shares: a client's, not the cluster's own.
const SHARED_EVENTS: ReadonlySet<string> = new Set(["connected", "refused", "disconnected"]);
// Presence goes in batches, so that a snapshot of many clients fits the bus's payload.
const BATCH = 256;

/** A client held by some node. */
interface Client {
  key: string;
  address: string;
}

/** What the header of a cluster message says. */
interface Header {
  from: string;
  seq: number;
  time: number;
  kind: "reset" | "join" | "leave" | "alive" | "bye" | "all" | "to" | "activity";
  /** For reset: the sender (re)joins and asks every node for its presence. */
  hello?: boolean;
  /** For join and reset: [connection id, public key hex, address]. */
  clients?: [number, string, string][];
  /** For leave. */
  ids?: number[];
  /** For all and to: whether the body is text. */
  text?: boolean;
  /** For to: the client, by public key hex or address. */
  key?: string;
  address?: string;
  /** For activity: the record, its public key in hex. */
  record?: Omit<ActivityRecord, "publicKey"> & { publicKey?: string };
}

/** The last numbers taken from a node, on each channel. */
interface Numbers {
  all: number;
  direct: number;
  /** When a message from it was last taken. */
  time: number;
}

/** Another node, as this node knows it. */
interface Peer {
  seen: number;
  clients: Map<number, Client>;
  keys: Map<string, number>;
  addresses: Map<string, number>;
}

/** What a node does for the server it belongs to. */
export interface NodeHooks {
  /** A broadcast from another node, for this node's clients. */
  deliverAll(body: Uint8Array<ArrayBuffer>, text: boolean): void;
  /** A message from another node for one client here. */
  deliverTo(client: { key?: string; address?: string }, body: Uint8Array, text: boolean): void;
  /** A record another node shared, for the activity log. */
  record(record: ActivityRecord): void;
  /** A cluster event for the activity log. */
  log(
    event: "node-joined" | "node-left" | "cluster-down" | "cluster-up",
    node: string,
    message: string,
  ): void;
}

/** The lowercase hex of bytes: how public keys travel and are indexed. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(text.match(/../g) ?? [], (byte) => parseInt(byte, 16));
}

/** Checks the `cluster` option. */
export function checkCluster(options: ClusterOptions): ClusterOptions {
  if (typeof options !== "object" || options === null || typeof options.adapter !== "object") {
    throw new TypeError(
      `Cannot use option cluster: expected { adapter, key }, got ${describe(options)}`,
    );
  }
  if (!(options.key instanceof Uint8Array) || options.key.length !== 32) {
    const got = options.key instanceof Uint8Array
      ? `${options.key.length} bytes`
      : describe(options.key);
    throw new RangeError(
      `Cannot use option cluster.key: expected 32 bytes (generateClusterKey()), got ${got}`,
    );
  }
  if (options.nodeId !== undefined && (typeof options.nodeId !== "string" || !options.nodeId)) {
    throw new TypeError(
      `Cannot use option cluster.nodeId: expected a non-empty string, got ${
        describe(options.nodeId)
      }`,
    );
  }
  positive(options.heartbeatInterval, "cluster.heartbeatInterval", 1000);
  return options;
}

/** A server's membership of its cluster. */
export class ClusterNode implements ClusterPresence {
  readonly nodeId: string;
  #adapter: ClusterAdapter;
  #rawKey: Uint8Array<ArrayBuffer>;
  #sealer: ClusterSealer | undefined;
  #hooks: NodeHooks;
  #interval: number;
  // This node's own clients, kept like a peer's.
  #here: Peer = newPeer();
  #peers = new Map<string, Peer>();
  #numbers = new Map<string, Numbers>();
  #seqAll = Date.now() * 1000;
  #seqDirect = this.#seqAll;
  #outbox: Promise<void> = Promise.resolve();
  #inbox: Promise<void> = Promise.resolve();
  #linked = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #waiters = new Set<() => void>();

  constructor(options: ClusterOptions, hooks: NodeHooks) {
    this.nodeId = options.nodeId ?? crypto.randomUUID();
    this.#adapter = options.adapter;
    this.#rawKey = new Uint8Array(options.key);
    this.#hooks = hooks;
    this.#interval = options.heartbeatInterval ?? 1000;
  }

  get linked(): boolean {
    return this.#linked;
  }

  /** Imports the key, joins the bus, says hello and starts the heartbeat. */
  async join(): Promise<void> {
    this.#sealer = await ClusterSealer.create(this.#rawKey);
    const handlers: ClusterHandlers = {
      receive: (bytes, direct) => this.#receive(bytes, direct),
      link: (up, detail) => this.#link(up, detail),
    };
    await this.#adapter.join(this.nodeId, handlers);
    this.#linked = true;
    this.#announce(true);
    this.#timer = setInterval(() => this.#beat(), this.#interval);
  }

  /** Says goodbye, flushes and leaves the bus. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    this.#send({ kind: "bye" });
    this.#closed = true; // Nothing is sent after the goodbye.
    await this.#outbox;
    await this.#adapter.close();
    await this.#inbox;
    for (const wake of this.#waiters) wake();
  }

  nodes(): string[] {
    return [...this.#peers.keys()];
  }

  clients(): ClusterClient[] {
    const all: ClusterClient[] = [];
    for (const [node, peer] of [[this.nodeId, this.#here] as const, ...this.#peers]) {
      for (const { key, address } of peer.clients.values()) {
        all.push({ node, publicKey: fromHex(key), address });
      }
    }
    return all;
  }

  locate(client: Uint8Array | string): string | undefined {
    const byKey = client instanceof Uint8Array;
    const id = byKey ? hex(client) : client;
    if ((byKey ? this.#here.keys : this.#here.addresses).has(id)) return this.nodeId;
    for (const [node, peer] of this.#peers) {
      if ((byKey ? peer.keys : peer.addresses).has(id)) return node;
    }
    return undefined;
  }

  async ready(client: Uint8Array | string, options?: { signal?: AbortSignal }): Promise<string> {
    const signal = options?.signal;
    while (true) {
      signal?.throwIfAborted();
      const node = this.locate(client);
      if (node !== undefined) return node;
      if (this.#closed) throw new TypeError("Cannot wait for a client: the server has stopped");
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        this.#waiters.add(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /**
   * Wraps this server's activity writer so that its client records go to
   * every other node too (`shareActivity`).
   */
  share(writer: ActivityWriter): ActivityWriter {
    return {
      add: (record) => {
        writer.add(record);
        if (record.node !== undefined || !SHARED_EVENTS.has(record.event)) return;
        const { publicKey, ...rest } = record;
        this.#send({
          kind: "activity",
          record: { ...rest, publicKey: publicKey && hex(publicKey) },
        });
      },
      close: () => writer.close(),
    };
  }

  /** A client connected here. */
  joined(id: number, publicKey: Uint8Array, address: string): void {
    const clients: [number, string, string][] = [[id, hex(publicKey), address]];
    addClients(this.#here, clients);
    this.#send({ kind: "join", clients });
    this.#wake();
  }

  /** A client here disconnected. */
  left(id: number): void {
    if (removeClient(this.#here, id)) this.#send({ kind: "leave", ids: [id] });
  }

  /**
   * Checks that a message fits the bus, before anything is sent.
   *
   * @throws {RangeError} If it is too large.
   */
  checkSize(size: number): void {
    const room = this.#adapter.maxPayload - SEAL_OVERHEAD - 512;
    if (size > room) {
      throw new RangeError(
        `Cannot send message to the cluster: ${size} bytes is more than the bus carries ` +
          `(${room}); send it in smaller messages`,
      );
    }
  }

  /** Publishes a broadcast to every other node. */
  broadcast(body: Uint8Array, text: boolean): void {
    this.#send({ kind: "all", text }, body);
  }

  /**
   * Sends a message to a client on another node.
   *
   * @throws {RangeError} If no other node is known to hold it.
   */
  sendTo(client: Uint8Array | string, body: Uint8Array, text: boolean): void {
    const node = this.locate(client);
    if (node === undefined || node === this.nodeId) {
      const name = client instanceof Uint8Array ? `public key ${hex(client)}` : client;
      throw new RangeError(`Cannot send message: no node of the cluster holds ${name}`);
    }
    const target = client instanceof Uint8Array ? { key: hex(client) } : { address: client };
    this.#send({ kind: "to", text, ...target }, body, node);
  }

  // Everything this node publishes, in order; the numbers are taken now, in call order.
  #send(fields: Omit<Header, "from" | "seq" | "time">, body?: Uint8Array, to?: string): void {
    if (this.#sealer === undefined || this.#closed) return;
    const seq = to === undefined ? ++this.#seqAll : ++this.#seqDirect;
    const header: Header = { from: this.nodeId, seq, time: Date.now(), ...fields };
    const sealer = this.#sealer;
    const plain = encode(header, body); // A copy: the caller may reuse its buffer at once.
    this.#outbox = this.#outbox.then(async () => {
      const sealed = await sealer.seal(plain, to ?? "*");
      try {
        this.#adapter.publish(sealed, to);
      } catch {
        // The link is down or closing: the heartbeat and the reset after it heal presence.
      }
    });
  }

  #announce(hello: boolean): void {
    const clients = [...this.#here.clients].map(([id, c]): [number, string, string] => [
      id,
      c.key,
      c.address,
    ]);
    this.#send({ kind: "reset", hello, clients: clients.slice(0, BATCH) });
    for (let i = BATCH; i < clients.length; i += BATCH) {
      this.#send({ kind: "join", clients: clients.slice(i, i + BATCH) });
    }
  }

  #beat(): void {
    if (!this.#linked) return;
    this.#send({ kind: "alive" });
    const forgotten = Date.now() - MAX_AGE_MS;
    for (const [node, numbers] of this.#numbers) {
      if (numbers.time < forgotten && !this.#peers.has(node)) this.#numbers.delete(node);
    }
    const deadline = Date.now() - 3 * this.#interval;
    for (const [node, peer] of this.#peers) {
      if (peer.seen < deadline) {
        this.#peers.delete(node);
        this.#hooks.log("node-left", node, `Node ${node} went silent; its clients are forgotten`);
      }
    }
  }

  #link(up: boolean, detail: string): void {
    if (this.#closed || up === this.#linked) return;
    this.#linked = up;
    if (!up) return this.#hooks.log("cluster-down", this.nodeId, `Cluster link down: ${detail}`);
    const now = Date.now();
    for (const peer of this.#peers.values()) peer.seen = now;
    this.#announce(true);
    this.#hooks.log("cluster-up", this.nodeId, `Cluster link up again: ${detail}`);
  }

  #receive(bytes: Uint8Array<ArrayBuffer>, direct: boolean): void {
    const sealer = this.#sealer;
    if (sealer === undefined || this.#closed) return;
    const opening = open(sealer, bytes, direct ? this.nodeId : "*");
    this.#inbox = this.#inbox.then(async () => {
      const message = await opening;
      if (message !== undefined && !this.#closed) this.#take(message.header, message.body, direct);
    });
  }

  #take(header: Header, body: Uint8Array<ArrayBuffer>, direct: boolean): void {
    if (header.from === this.nodeId || Date.now() - header.time > MAX_AGE_MS) return;
    const numbers = this.#numbers.get(header.from) ?? { all: 0, direct: 0, time: 0 };
    if (header.seq <= (direct ? numbers.direct : numbers.all)) return;
    if (direct) numbers.direct = header.seq;
    else numbers.all = header.seq;
    numbers.time = Date.now();
    this.#numbers.set(header.from, numbers);
    let peer = this.#peers.get(header.from);
    if (peer === undefined) {
      if (header.kind === "bye") return;
      peer = this.#meet(header.from);
    }
    peer.seen = Date.now();
    this.#apply(header, body, peer);
  }

  #meet(node: string): Peer {
    const peer = newPeer();
    this.#peers.set(node, peer);
    this.#hooks.log("node-joined", node, `Node ${node} joined the cluster`);
    // The newcomer has not heard this node's presence: say it again, to all.
    this.#announce(false);
    return peer;
  }

  #apply(header: Header, body: Uint8Array<ArrayBuffer>, peer: Peer): void {
    switch (header.kind) {
      case "reset":
        for (const id of [...peer.clients.keys()]) removeClient(peer, id);
        addClients(peer, header.clients);
        if (header.hello) this.#announce(false);
        return this.#wake();
      case "join":
        addClients(peer, header.clients);
        return this.#wake();
      case "leave":
        for (const id of header.ids ?? []) removeClient(peer, id);
        return;
      case "bye":
        this.#peers.delete(header.from);
        return this.#hooks.log("node-left", header.from, `Node ${header.from} left the cluster`);
      case "all":
        return this.#hooks.deliverAll(body, header.text === true);
      case "to":
        return this.#hooks.deliverTo(
          { key: header.key, address: header.address },
          body,
          header.text === true,
        );
      case "activity": {
        const record = header.record;
        if (
          typeof record?.address !== "string" || typeof record.message !== "string" ||
          !SHARED_EVENTS.has(record.event)
        ) return;
        const { publicKey, ...rest } = record;
        return this.#hooks.record({
          ...rest,
          node: header.from,
          ...(publicKey !== undefined && { publicKey: fromHex(publicKey) }),
        });
      }
      case "alive":
        return;
    }
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

function newPeer(): Peer {
  return { seen: Date.now(), clients: new Map(), keys: new Map(), addresses: new Map() };
}

function addClients(peer: Peer, clients: Header["clients"]): void {
  for (const [id, key, address] of clients ?? []) {
    removeClient(peer, id);
    peer.clients.set(id, { key, address });
    peer.keys.set(key, (peer.keys.get(key) ?? 0) + 1);
    peer.addresses.set(address, (peer.addresses.get(address) ?? 0) + 1);
  }
}

function removeClient(peer: Peer, id: number): boolean {
  const client = peer.clients.get(id);
  if (client === undefined) return false;
  peer.clients.delete(id);
  decrement(peer.keys, client.key);
  decrement(peer.addresses, client.address);
  return true;
}

function decrement(counts: Map<string, number>, name: string): void {
  const count = (counts.get(name) ?? 1) - 1;
  if (count === 0) counts.delete(name);
  else counts.set(name, count);
}

function encode(header: Header, body: Uint8Array | undefined): Uint8Array<ArrayBuffer> {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const plain = new Uint8Array(4 + head.length + (body?.length ?? 0));
  new DataView(plain.buffer).setUint32(0, head.length);
  plain.set(head, 4);
  if (body !== undefined) plain.set(body, 4 + head.length);
  return plain;
}

// A message that does not open (another key, tampered, meant for another
// channel) or does not parse is dropped: the bus is not trusted.
async function open(
  sealer: ClusterSealer,
  bytes: Uint8Array<ArrayBuffer>,
  channel: string,
): Promise<{ header: Header; body: Uint8Array<ArrayBuffer> } | undefined> {
  const plain = await sealer.open(bytes, channel);
  if (plain === undefined || plain.length < 4) return undefined;
  const length = new DataView(plain.buffer).getUint32(0);
  if (4 + length > plain.length) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(plain.subarray(4, 4 + length))) as Header;
    if (typeof header?.from !== "string" || typeof header.seq !== "number") return undefined;
    return { header, body: plain.subarray(4 + length) };
  } catch {
    return undefined;
  }
}
