#!/usr/bin/env node
// A NervesHub device built on the official Phoenix JS client (npm `phoenix`, with `ws` for
// TLS and headers). It connects to a nerveshub-server device endpoint as nerves_hub_link does,
// joins `device` with nerves_hub_link's params, heartbeats, and prints every message it gets
// as one JSON line on stdout. With --download it also takes an `update` the way a device does:
// reports `received`/`started`, downloads the firmware, checks its size and SHA-256, reports
// progress and `completed`.
//
//   npm ci --prefix nerveshub-server/tests/phoenix-js
//
//   # client certificate (path /socket/websocket)
//   node device.mjs --url wss://localhost:4001 --ca data/tls/ca.pem \
//        --cert device.pem --key device-key.pem
//
//   # NH1 shared secret (path /device-socket/websocket)
//   node device.mjs --url wss://localhost:4001 --ca data/tls/ca.pem \
//        --shared-key nhp_… --shared-secret … --identifier my-device
//
// Options:
//   --url URL               device endpoint base (wss://host:port)
//   --ca FILE               CA certificate(s) the server's certificate chains to
//   --cert FILE --key FILE  client certificate and key (certificate auth)
//   --shared-key K --shared-secret S --identifier ID   NH1 shared secret (nhp_… or nhd_…)
//   --fw-uuid U --fw-version V --fw-product P --fw-platform P --fw-architecture A
//                           the firmware the device reports it runs
//   --request-keys          ask for the org's public keys after the join (on_connect)
//   --heartbeat-ms N        heartbeat interval (default 30000, as nerves_hub_link)
//   --download FILE         take updates: download to FILE and report progress
//   --exit-after EVENT      exit 0 once EVENT was received (e.g. update, or "downloaded")
//   --timeout-s N           exit 1 after N seconds (default: run until stopped)
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import { Socket } from "phoenix";
import WebSocket from "ws";

function usage() {
  // The comment block at the top of this file is the manual.
  const text = fs.readFileSync(new URL(import.meta.url), "utf8");
  const lines = text.split("\n").slice(1).filter((l) => l.startsWith("//"));
  process.stdout.write(lines.map((l) => l.replace(/^\/\/ ?/, "")).join("\n") + "\n");
}

function parseArgs(argv) {
  if (argv.includes("--help") || argv.includes("-h")) {
    usage();
    process.exit(0);
  }
  const flags = new Set(["request-keys"]);
  const valued = new Set(["url", "ca", "cert", "key", "shared-key", "shared-secret", "identifier",
    "fw-uuid", "fw-version", "fw-product", "fw-platform", "fw-architecture", "heartbeat-ms",
    "download", "exit-after", "timeout-s"]);
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const name = arg.slice(2);
    if (!flags.has(name) && !valued.has(name)) throw new Error(`unknown option ${arg} (see --help)`);
    if (flags.has(name)) {
      opts[name] = true;
    } else {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      opts[name] = argv[++i];
    }
  }
  return opts;
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// ---- NH1 shared-secret headers (nerves_hub_link's algorithm) ------------------------------

const NH1_ALG = "NH1-HMAC-sha256-1000-32";

// Erlang external term format of {identifier, signedAtMs, 86400}.
function etfToken(identifier, signedAtMs) {
  const id = Buffer.from(identifier, "utf8");
  const parts = [Buffer.from([131, 104, 3, 109]), u32(id.length), id, etfInteger(signedAtMs), etfInteger(86400n)];
  return Buffer.concat(parts);
}

function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function etfInteger(value) {
  const v = BigInt(value);
  if (v >= 0n && v < 256n) return Buffer.from([97, Number(v)]);
  if (v >= -(2n ** 31n) && v < 2n ** 31n) {
    const b = Buffer.alloc(5);
    b[0] = 98;
    b.writeInt32BE(Number(v), 1);
    return b;
  }
  let mag = v < 0n ? -v : v;
  const bytes = [];
  while (mag > 0n) {
    bytes.push(Number(mag & 0xffn));
    mag >>= 8n;
  }
  return Buffer.from([110, bytes.length, v < 0n ? 1 : 0, ...bytes]);
}

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

function nh1Headers(key, secret, identifier) {
  const time = Math.floor(Date.now() / 1000).toString();
  const salt = `NH1:device-socket:shared-secret:connect\n\nx-nh-alg=${NH1_ALG}\nx-nh-key=${key}\nx-nh-time=${time}\n`;
  const derived = crypto.pbkdf2Sync(secret, salt, 1000, 32, "sha256");
  const signed = `SFMyNTY.${b64url(etfToken(identifier, BigInt(time) * 1000n))}`;
  const mac = crypto.createHmac("sha256", derived).update(signed).digest();
  return {
    "x-nh-alg": NH1_ALG,
    "x-nh-key": key,
    "x-nh-time": time,
    "x-nh-signature": `${signed}.${b64url(mac)}`,
  };
}

// ---- the device ---------------------------------------------------------------------------

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!opts.url) throw new Error("--url is required");
  const tls = {};
  if (opts.ca) tls.ca = fs.readFileSync(opts.ca);
  let path;
  let headers = {};
  if (opts.cert || opts.key) {
    if (!opts.cert || !opts.key) throw new Error("--cert and --key go together");
    tls.cert = fs.readFileSync(opts.cert);
    tls.key = fs.readFileSync(opts.key);
    path = "/socket";
  } else if (opts["shared-key"]) {
    if (!opts["shared-secret"] || !opts.identifier) {
      throw new Error("--shared-key needs --shared-secret and --identifier");
    }
    path = "/device-socket";
  } else {
    throw new Error("give --cert/--key or --shared-key/--shared-secret/--identifier");
  }
  // nerves_hub_link speaks TLS 1.2 to the device endpoint.
  tls.maxVersion = "TLSv1.2";

  // Phoenix creates the transport with (url, protocols); the subclass adds TLS options and
  // freshly signed NH1 headers on every (re)connection.
  class DeviceWebSocket extends WebSocket {
    constructor(url, protocols) {
      if (opts["shared-key"]) {
        headers = nh1Headers(opts["shared-key"], opts["shared-secret"], opts.identifier);
      }
      super(url, protocols, { ...tls, headers, perMessageDeflate: true });
      this.on("unexpected-response", (_req, res) => {
        out({ refused: res.statusCode, reason: res.headers["nh-connection-error-reason"] || null, date: res.headers.date || null });
        if (opts["exit-after"] === "refused") process.exit(0);
      });
    }
  }

  const base = opts.url.replace(/\/+$/, "");
  const socket = new Socket(base + path, {
    transport: DeviceWebSocket,
    heartbeatIntervalMs: Number(opts["heartbeat-ms"] || 30000),
    reconnectAfterMs: () => 2000,
  });
  socket.onOpen(() => out({ connected: socket.endPointURL() }));
  socket.onClose((e) => out({ closed: e && e.code !== undefined ? e.code : null }));
  socket.onMessage((msg) => {
    if (msg.topic === "phoenix" && msg.event === "phx_reply") {
      out({ heartbeat: msg.payload.status });
      if (opts["exit-after"] === "heartbeat") process.exit(0);
    }
  });

  const params = {
    nerves_fw_uuid: opts["fw-uuid"] || "00000000-0000-0000-0000-000000000000",
    nerves_fw_version: opts["fw-version"] || "0.1.0",
    nerves_fw_product: opts["fw-product"] || "phoenix-js-device",
    nerves_fw_platform: opts["fw-platform"] || "host",
    nerves_fw_architecture: opts["fw-architecture"] || "x86_64",
    nerves_fw_author: "",
    nerves_fw_description: "",
    nerves_fw_vcs_identifier: "",
    nerves_fw_misc: "",
    fwup_version: "1.16.0",
    device_api_version: "2.3.0",
    console_version: "2.0.0",
    currently_downloading_uuid: null,
    meta: { firmware_auto_revert_detected: false, firmware_validated: true },
  };
  if (opts["request-keys"]) {
    params.fwup_public_keys = "on_connect";
    params.archive_public_keys = "on_connect";
  }
  const channel = socket.channel("device", params);
  for (const event of ["fwup_public_keys", "archive_public_keys", "reboot", "identify", "archive", "scripts/run", "extensions:get"]) {
    channel.on(event, (payload) => {
      out({ event, payload });
      if (event === "reboot") channel.push("rebooting", {});
      if (opts["exit-after"] === event) process.exit(0);
    });
  }
  channel.on("update", (payload) => {
    out({ event: "update", payload });
    if (opts["exit-after"] === "update") process.exit(0);
    if (opts.download) takeUpdate(channel, payload, opts, tls);
  });
  channel
    .join()
    .receive("ok", (response) => {
      out({ joined: "device", response });
      // nerves_hub_link reports its network interface right after the join.
      channel.push("report_network_interface", { interface: "eth0" });
      if (opts["exit-after"] === "joined") process.exit(0);
    })
    .receive("error", (response) => out({ join_error: response }));
  socket.connect();

  if (opts["timeout-s"]) {
    setTimeout(() => {
      out({ timeout: Number(opts["timeout-s"]) });
      process.exit(1);
    }, Number(opts["timeout-s"]) * 1000).unref();
  }
}

// Takes an update as nerves_hub_link does, minus fwup: statuses, download, progress.
function takeUpdate(channel, update, opts, tls) {
  channel.push("status_update", { status: "received" });
  channel.push("fwup_progress", { stage: "updating", value: 0 });
  channel.push("status_update", { status: "started", downloader_network_interface: "eth0" });
  const hash = crypto.createHash("sha256");
  let size = 0;
  const file = fs.createWriteStream(opts.download);
  const fail = (reason) => {
    channel.push("status_update", { status: "failed", reason: `Download failed : ${reason}` });
    out({ download_failed: reason });
  };
  https
    .get(update.firmware_url, { ca: tls.ca }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return fail(`HTTP ${res.statusCode}`);
      }
      let reported = 0;
      res.on("data", (chunk) => {
        hash.update(chunk);
        size += chunk.length;
        file.write(chunk);
        const pct = update.size ? Math.floor((size * 100) / update.size) : 0;
        if (pct >= reported + 10 && pct < 100) {
          reported = pct;
          channel.push("fwup_progress", { stage: "updating", value: pct });
        }
      });
      res.on("end", () => {
        file.end();
        const checksum = hash.digest("hex").toUpperCase();
        out({ downloaded: { size, checksum } });
        if ((update.size && update.size !== size) || (update.checksum && update.checksum !== checksum)) {
          return fail("size or checksum mismatch");
        }
        channel.push("fwup_progress", { stage: "updating", value: 100 });
        channel.push("status_update", { status: "completed" });
        if (opts["exit-after"] === "downloaded") setTimeout(() => process.exit(0), 300);
      });
    })
    .on("error", (e) => fail(e.message));
}

try {
  main();
} catch (e) {
  process.stderr.write(`device.mjs: ${e.message}\n`);
  process.exit(2);
}
