// Copyright 2026 the aesm authors. MIT license.
/**
 * The CLI's help texts. Private to the CLI.
 *
 * @module
 */

/** Exit codes, as `aesm --help` and the README list them. */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** Failed: a dropped connection, an I/O error, a file whose check failed. */
  failure: 1,
  /** A wrong command line. */
  usage: 2,
  /** Refused: authentication failed, or the peer refused this side. */
  refused: 3,
  /** Nothing listens there, or it did not answer in time. */
  unreachable: 4,
  /** Interrupted (Ctrl-C) before it could finish, or a second Ctrl-C. */
  interrupted: 130,
} as const;

const EXIT_CODES = `Exit codes:
  0  done
  1  failed: the connection dropped, an I/O error, a file transfer's check failed
  2  a wrong command line
  3  refused: wrong psk, another server key (--pin, --tofu), not allowed (--allow),
     another application (--app)
  4  unreachable: nothing listens there, or no answer within 10 s
  130  interrupted: Ctrl-C while connecting or sending a file, or a second Ctrl-C
       (elsewhere the first closes cleanly and exits 0)`;

const SECURITY = `
Security:
  --psk-file FILE   a pre-shared key: a file of 32 bytes, or of 64 hex digits
                    (make one: head -c 32 /dev/urandom > app.psk); both sides need it
  --app NAME        the application name, bound into the handshake; both sides need
                    the same (default: aesm; send and receive: aesm-file)
  --key FILE        this side's key file, made (mode 0600) if missing: a public key
                    that stays the same across runs`;

const CLIENT_TRUST =
  `  --pin KEY         accept only the server with this public key (64 hex digits)
  --tofu            trust on first use: remember each server's key in the known-hosts
                    file ($AESM_KNOWN_HOSTS, else $XDG_CONFIG_HOME/aesm/known_hosts,
                    else ~/.config/aesm/known_hosts) and refuse a server whose
                    key changed`;

/** Help for each command, and for the tool as a whole under `""`. */
export const HELP: Readonly<Record<string, string>> = {
  "": `aesm: encrypted, message-oriented sockets from the command line.

Usage: aesm <command> [options]     (aesm <command> --help for its options)

Commands:
  keygen [--out FILE]               make a key file and print its public key
  pubkey FILE                       print a key file's public key
  listen [HOST:]PORT                a server: messages to stdout, stdin lines to all
  connect HOST:PORT                 a client: stdin lines to messages, messages to stdout
  send FILE HOST:PORT               send a file to aesm receive
  receive --out DIR                 receive files into DIR

Run it with: deno run -A jsr:@aesm/aesm/cli <command>

${EXIT_CODES}`,

  keygen: `Usage: aesm keygen [--out FILE]

Makes a new key pair, writes it to FILE (default: aesm.key) with mode 0600, and
prints its public key (64 hex digits) on stdout. An existing file is never
overwritten. The format is the key-file module's: JSON with format
"aesm-key-file", version 1, hex publicKey and privateKey.

Example: KEY=$(aesm keygen --out server.key)

${EXIT_CODES}`,

  pubkey: `Usage: aesm pubkey FILE

Prints the public key (64 hex digits) of a key file made by aesm keygen or by a
server's keyFile option. A key file that others may read is refused: chmod 600 it.

${EXIT_CODES}`,

  listen: `Usage: aesm listen [HOST:]PORT [options]

Listens on HOST:PORT (HOST defaults to 127.0.0.1; 0.0.0.0 listens everywhere,
PORT 0 picks a free one). Prints its address and public key, then one line per
connection event, on stderr. Each message received goes to stdout. Each stdin
line goes to every connected client (a line read while none is connected waits
for the first). Runs until Ctrl-C.

Output (stdout):
  (default)         one line per message: its text
  --raw             the bytes of each message, nothing added; stdin is sent in
                    chunks as binary messages
  --json            one JSON object per message: {"time", "address", "text"} or,
                    for binary messages, {"time", "address", "base64"}

Options:
  --echo            send each message back to its sender (stdin is not read)
  --once            exit when the first client has left
  --allow KEY       accept only clients with this public key (repeat for more)
${SECURITY}

Example:
  aesm listen 7000 --key server.key --echo

${EXIT_CODES}`,

  connect: `Usage: aesm connect HOST:PORT [options]

Connects to an aesm server. Each stdin line becomes a message; each message
received goes to stdout. When stdin ends, it keeps printing until the server
closes (or Ctrl-C), unless --quit-after says otherwise. Connection events go to
stderr.

Options:
${CLIENT_TRUST}
  --raw, --json     output modes, as in aesm listen --help
  --quit-after S    close S seconds after stdin ends (0: at once, after sending)
  --count N         exit after N messages were received
${SECURITY}

Without --pin, --tofu or --psk-file the channel is encrypted but the server is
not authenticated.

Example:
  echo hello | aesm connect 127.0.0.1:7000 --pin 3b6a...e1 --count 1

${EXIT_CODES}`,

  send: `Usage: aesm send FILE HOST:PORT [options]

Sends FILE to aesm receive at HOST:PORT, in 1 MiB messages, with a progress bar
on stderr when it is a terminal. The receiver checks the file's SHA-256 at the
end. A transfer cut short resumes where it stopped: the receiver keeps the
partial file, and the next send of the same file (this command retrying, or
run again) continues after the bytes whose hash matches.

Options:
${CLIENT_TRUST}
  --retries N       reconnect and resume up to N times after a drop (default 3)
${SECURITY}

Example:
  aesm send backup.tar 192.0.2.7:7001 --pin 3b6a...e1

${EXIT_CODES}`,

  receive: `Usage: aesm receive --out DIR [options]

Listens for aesm send and writes each file into DIR: first as NAME.part, renamed
to NAME once its SHA-256 matches. An existing NAME is never overwritten. Prints
its address and public key on stderr, then a line per file. Runs until Ctrl-C.
Anyone who reaches the port may send files unless --psk-file or --allow says who.

Options:
  --out DIR         where files go (required; must exist)
  --port PORT       the port to listen on (default 0: a free one, printed)
  --host HOST       the address to listen on (default 127.0.0.1)
  --once            exit after the first complete file (1 if its check failed)
  --allow KEY       accept only senders with this public key (repeat for more)
${SECURITY}

Example:
  aesm receive --out ./incoming --port 7001 --key receiver.key

${EXIT_CODES}`,
};

/**
 * Prints a command's help on stdout.
 *
 * @returns Exit code 0.
 */
export function help(command: string): number {
  console.log(HELP[command]);
  return EXIT.ok;
}
