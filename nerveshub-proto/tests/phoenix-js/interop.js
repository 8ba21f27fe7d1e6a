// Drives the official Phoenix JS client (npm `phoenix`) for tests/phoenix_js.rs.
//
// The client runs over a fake in-memory WebSocket. The Rust test writes one JSON command per
// line on stdin; after each command this script prints one JSON line:
//   {"sent": [raw frames the client wrote to the socket], "log": [what the client observed]}
//
// Commands:
//   {"cmd":"connect"}                                  open the socket (fake transport opens at once)
//   {"cmd":"join","topic":T,"params":P}                channel(T, P).join()
//   {"cmd":"push","topic":T,"event":E,"payload":P}     channel.push(E, P)
//   {"cmd":"leave","topic":T}                          channel.leave()
//   {"cmd":"heartbeat"}                                socket.sendHeartbeat()
//   {"cmd":"deliver","data":RAW}                       a frame from the server arrives
//   {"cmd":"decode","data":RAW}                        Serializer.decode(RAW)
//   {"cmd":"encode","msg":{join_ref,ref,topic,event,payload}}  Serializer.encode(msg)
//   {"cmd":"exit"}
"use strict";

const readline = require("readline");
const { Socket, Serializer } = require("phoenix");

let sent = [];
let log = [];
let current = null;

class FakeWebSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.bufferedAmount = 0;
    current = this;
    log.push({ url });
  }
  send(data) {
    sent.push(data);
  }
  close(code, reason) {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code: code || 1000, reason: reason || "", wasClean: true });
  }
  open() {
    this.readyState = 1;
    if (this.onopen) this.onopen();
  }
}

const socket = new Socket("ws://localhost/device-socket", { transport: FakeWebSocket });
socket.onMessage((msg) => log.push({ socket_message: msg }));
const channels = {};

function run(c) {
  switch (c.cmd) {
    case "connect":
      socket.connect();
      current.open();
      break;
    case "join": {
      const ch = socket.channel(c.topic, c.params);
      channels[c.topic] = ch;
      ch.onMessage = (event, payload, ref) => {
        log.push({ channel_event: { topic: c.topic, event, payload, ref: ref || null } });
        return payload;
      };
      ch.onClose(() => log.push({ closed: c.topic }));
      ch.onError((reason) => log.push({ errored: c.topic }));
      ch.join()
        .receive("ok", (response) => log.push({ joined: { topic: c.topic, response } }))
        .receive("error", (response) => log.push({ join_error: { topic: c.topic, response } }));
      break;
    }
    case "push":
      channels[c.topic]
        .push(c.event, c.payload)
        .receive("ok", (response) => log.push({ push_reply: { status: "ok", response } }))
        .receive("error", (response) => log.push({ push_reply: { status: "error", response } }));
      break;
    case "leave":
      channels[c.topic].leave().receive("ok", () => log.push({ left: c.topic }));
      break;
    case "heartbeat":
      socket.sendHeartbeat();
      break;
    case "deliver":
      current.onmessage({ data: c.data });
      break;
    case "decode":
      Serializer.decode(c.data, (msg) => log.push({ decoded: msg }));
      break;
    case "encode":
      Serializer.encode(c.msg, (out) => log.push({ encoded: out }));
      break;
    case "exit":
      process.stdout.write(JSON.stringify({ sent, log }) + "\n", () => process.exit(0));
      return false;
    default:
      log.push({ error: "unknown command " + c.cmd });
  }
  return true;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  sent = [];
  log = [];
  let more = true;
  try {
    more = run(JSON.parse(line));
  } catch (e) {
    log.push({ error: String(e && e.stack ? e.stack : e) });
  }
  if (more) process.stdout.write(JSON.stringify({ sent, log }) + "\n");
});
rl.on("close", () => process.exit(0));
