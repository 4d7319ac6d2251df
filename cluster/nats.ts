// Copyright 2026 the aesm authors. MIT license.
/**
 * A cluster bus on NATS, through the official client
 * (`npm:@nats-io/transport-node`). It is its own entry point so that the
 * core keeps zero dependencies: only code that imports
 * `@aesm/aesm/cluster/nats` loads the NATS client.
 *
 * Each node subscribes to `<subject>.all` (messages for every node) and
 * `<subject>.node.<id>` (messages for it). What crosses NATS is sealed by
 * the server with the cluster key before it reaches this adapter; NATS sees
 * only node ids in subjects, sizes and timing. The client reconnects
 * forever; the server logs `cluster-down` and `cluster-up` as the link goes
 * and comes back.
 *
 * @example Servers on one NATS server act as one (needs `nats-server` on port 4222)
 * ```ts ignore
 * import { generateClusterKey, ServerNetwork } from "@aesm/aesm";
 * import { NatsCluster } from "@aesm/aesm/cluster/nats";
 *
 * const key = generateClusterKey(); // Give the same key to every node.
 * const adapter = await NatsCluster.connect({ servers: "127.0.0.1:4222" });
 * await using server = await ServerNetwork.listen({ port: 7000, cluster: { adapter, key } });
 * await server.sendAll("to every client of every node");
 * ```
 *
 * @module
 */

import { connect, type NatsConnection, type Subscription } from "npm:@nats-io/transport-node@3.4.0";
import type { ClusterAdapter, ClusterHandlers } from "../cluster.ts";

/** Options of {@linkcode NatsCluster.connect}. */
export interface NatsClusterOptions {
  /** The NATS server(s), `host:port` or `nats://host:port`. */
  servers: string | string[];
  /**
   * The subject prefix: clusters on one NATS with different prefixes do not meet.
   *
   * @default {"aesm"}
   */
  subject?: string;
  /**
   * Milliseconds between reconnect attempts while NATS is down.
   *
   * @default {250}
   */
  reconnectTimeWait?: number;
  /**
   * Milliseconds between the client's pings to NATS: a dead link is noticed
   * after two unanswered pings.
   *
   * @default {2000}
   */
  pingInterval?: number;
  /**
   * The connection's name, as NATS monitoring shows it.
   *
   * @default {"aesm"}
   */
  name?: string;
  /**
   * A user name and password for NATS.
   *
   * @default {undefined (no user)}
   */
  user?: { name: string; password: string };
  /**
   * A token for NATS.
   *
   * @default {undefined (no token)}
   */
  token?: string;
  /**
   * TLS to NATS, as the NATS client takes it: PEM text (`ca`, `cert`, `key`)
   * or files (`caFile`, `certFile`, `keyFile`).
   *
   * @default {undefined (plain TCP; what crosses it is sealed all the same)}
   */
  tls?: NatsTlsOptions;
}

/** TLS to NATS: a CA to trust, and a client certificate if NATS asks for one. */
export interface NatsTlsOptions {
  /** The CA's certificate (PEM). */
  ca?: string;
  /** A file holding the CA's certificate (PEM). */
  caFile?: string;
  /** This client's certificate (PEM). */
  cert?: string;
  /** A file holding this client's certificate (PEM). */
  certFile?: string;
  /** This client's private key (PEM). */
  key?: string;
  /** A file holding this client's private key (PEM). */
  keyFile?: string;
}

const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * A {@linkcode ClusterAdapter} on a NATS connection. Make one per server
 * with {@linkcode NatsCluster.connect} and pass it as `cluster.adapter`; the
 * server closes it when it stops.
 *
 * Delivery is NATS core's: at most once, in order from one node to another
 * while the link is up; messages published while the link is down are
 * buffered by the client and sent on reconnect, and messages for a node
 * that is down are lost.
 */
export class NatsCluster implements ClusterAdapter {
  #nc: NatsConnection;
  #prefix: string;
  #subscriptions: Subscription[] = [];
  #statusLoop: Promise<void> | undefined;

  private constructor(nc: NatsConnection, prefix: string) {
    this.#nc = nc;
    this.#prefix = prefix;
  }

  /**
   * Connects to NATS.
   *
   * @param options Where NATS is, and how to reconnect.
   * @returns The adapter, connected.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {Error} If NATS cannot be reached (the client's error).
   */
  static async connect(options: NatsClusterOptions): Promise<NatsCluster> {
    const prefix = options?.subject ?? "aesm";
    if (typeof prefix !== "string" || !SUBJECT.test(prefix)) {
      throw new TypeError(
        `Cannot use option subject: expected NATS subject tokens such as "aesm.chat", got ${
          JSON.stringify(prefix)
        }`,
      );
    }
    const servers = options?.servers;
    if (typeof servers !== "string" && !Array.isArray(servers)) {
      throw new TypeError(
        `Cannot connect to NATS: expected servers as "host:port" or a list, got ${typeof servers}`,
      );
    }
    const nc = await connect({
      servers,
      ...(options.user && { user: options.user.name, pass: options.user.password }),
      ...(options.token !== undefined && { token: options.token }),
      ...(options.tls && { tls: { ...options.tls } }),
      name: options.name ?? "aesm",
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWait ?? 250,
      pingInterval: options.pingInterval ?? 2000,
      maxPingOut: 2,
      noEcho: true,
    });
    return new NatsCluster(nc, prefix);
  }

  /** The largest message this NATS server takes (its `max_payload`). */
  get maxPayload(): number {
    return this.#nc.info?.max_payload ?? 1024 * 1024;
  }

  /**
   * Subscribes to the messages for every node and for this one.
   *
   * @param nodeId This node's id (letters, digits, `-` and `_`).
   * @param handlers Where messages and link changes go.
   * @returns Once NATS has the subscriptions.
   * @throws {TypeError} If the id cannot be a NATS subject token.
   */
  async join(nodeId: string, handlers: ClusterHandlers): Promise<void> {
    if (!/^[A-Za-z0-9_-]+$/.test(nodeId)) {
      throw new TypeError(
        `Cannot join cluster on NATS: node id ${
          JSON.stringify(nodeId)
        } must be letters, digits, - and _`,
      );
    }
    const subscribe = (subject: string, direct: boolean) =>
      this.#nc.subscribe(subject, {
        callback: (error, message) => {
          if (error === null) handlers.receive(new Uint8Array(message.data), direct);
        },
      });
    this.#subscriptions.push(
      subscribe(`${this.#prefix}.all`, false),
      subscribe(`${this.#prefix}.node.${nodeId}`, true),
    );
    this.#statusLoop = this.#watch(handlers);
    await this.#nc.flush();
  }

  /**
   * Publishes a sealed message (buffered by the client while NATS is down).
   *
   * @param bytes The sealed message.
   * @param to A node's id, or `undefined` for every node.
   */
  publish(bytes: Uint8Array<ArrayBuffer>, to?: string): void {
    const subject = to === undefined ? `${this.#prefix}.all` : `${this.#prefix}.node.${to}`;
    this.#nc.publish(subject, bytes);
  }

  /**
   * Flushes what was published (if NATS is up) and closes the connection.
   *
   * @returns Once closed.
   */
  async close(): Promise<void> {
    if (!this.#nc.isClosed()) {
      await withTimeout(this.#nc.flush(), 1000).catch(() => {});
      await this.#nc.close();
    }
    await this.#statusLoop;
  }

  async #watch(handlers: ClusterHandlers): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type === "disconnect") {
        handlers.link(false, `lost NATS at ${status.server}`);
      } else if (status.type === "reconnect") {
        handlers.link(true, `reconnected to NATS at ${status.server}`);
      } else if (status.type === "close") {
        return;
      }
    }
  }
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((_, reject) => timer = setTimeout(() => reject(new Error("timeout")), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
