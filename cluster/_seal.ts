// Copyright 2026 the aesm authors. MIT license.
/**
 * Sealing of the messages between cluster nodes. Private.
 *
 * Every node holds the cluster key K. A node seals with its own key,
 * HKDF-SHA256(K, salt, "aesm-cluster/1 key") for a random 16-byte salt of
 * its own, and numbers its nonces from 0; a sealed message is
 * `salt (16) || nonce (12) || AES-256-GCM ciphertext and tag`. So no two
 * messages under one AES key share a nonce, however many nodes and
 * messages there are (random nonces under K itself would be safe for only
 * about 2^32 messages in the cluster's life). All of it is WebCrypto.
 *
 * @module
 */

const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const INFO = new TextEncoder().encode("aesm-cluster/1 key");
const AAD_PREFIX = "aesm-cluster/1 ";
// Keys of other senders kept at once; a sender's key is derived again if it was let go.
const MAX_KEYS = 256;

/** What sealing adds to a plaintext, in bytes. */
export const SEAL_OVERHEAD: number = SALT_BYTES + NONCE_BYTES + TAG_BYTES;

/** Seals this node's messages and opens everyone's. */
export class ClusterSealer {
  #master: CryptoKey;
  #salt: Uint8Array<ArrayBuffer>;
  #own: CryptoKey;
  #counter = 0;
  #keys = new Map<string, Promise<CryptoKey>>();

  private constructor(master: CryptoKey, salt: Uint8Array<ArrayBuffer>, own: CryptoKey) {
    this.#master = master;
    this.#salt = salt;
    this.#own = own;
  }

  /**
   * Imports the cluster key and derives this node's sealing key.
   *
   * @param clusterKey The 32-byte cluster key.
   * @returns The sealer.
   */
  static async create(clusterKey: Uint8Array<ArrayBuffer>): Promise<ClusterSealer> {
    const master = await crypto.subtle.importKey("raw", clusterKey, "HKDF", false, ["deriveKey"]);
    const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
    return new ClusterSealer(master, salt, await derive(master, salt));
  }

  /**
   * Seals a plaintext for a channel.
   *
   * @param plaintext The message.
   * @param channel `*` for every node, else the target node's id.
   * @returns The sealed message.
   */
  async seal(plaintext: Uint8Array, channel: string): Promise<Uint8Array<ArrayBuffer>> {
    // The number is taken before the await: each call has its own.
    const nonce = new Uint8Array(NONCE_BYTES);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(this.#counter++));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad(channel) },
      this.#own,
      plaintext as Uint8Array<ArrayBuffer>,
    );
    const out = new Uint8Array(SALT_BYTES + NONCE_BYTES + sealed.byteLength);
    out.set(this.#salt);
    out.set(nonce, SALT_BYTES);
    out.set(new Uint8Array(sealed), SALT_BYTES + NONCE_BYTES);
    return out;
  }

  /**
   * Opens a sealed message that came on a channel.
   *
   * @param bytes The sealed message.
   * @param channel `*` if it came for every node, else this node's id.
   * @returns The plaintext, or `undefined` if it does not open (another key,
   * tampered, sealed for another channel).
   */
  async open(bytes: Uint8Array, channel: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    if (bytes.length < SEAL_OVERHEAD) return undefined;
    const salt = bytes.slice(0, SALT_BYTES);
    try {
      const key = await this.#keyOf(salt);
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: bytes.slice(SALT_BYTES, SALT_BYTES + NONCE_BYTES),
            additionalData: aad(channel),
          },
          key,
          bytes.slice(SALT_BYTES + NONCE_BYTES),
        ),
      );
    } catch {
      return undefined;
    }
  }

  #keyOf(salt: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
    const id = Array.from(salt, (byte) => byte.toString(16).padStart(2, "0")).join("");
    let key = this.#keys.get(id);
    if (key === undefined) {
      if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value!);
      key = derive(this.#master, salt);
      this.#keys.set(id, key);
    }
    return key;
  }
}

function derive(master: CryptoKey, salt: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info: INFO },
    master,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function aad(channel: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(AAD_PREFIX + channel);
}
