// Ask rh for a cluster with nothing but a NATS client: publish a
// dev.rh.cluster.request.v1 event and print its outcomes until done.
//
//   npm install nats@2
//   RH_NATS_CREDS=ci.creds node publish.mjs create train cluster.json
//   RH_NATS_CREDS=ci.creds node publish.mjs teardown train
//
// See docs/intake.md. RH_NATS_URL defaults to nats://127.0.0.1:4222.
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { connect, headers, nkeyAuthenticator, StringCodec } from "nats";
import { fromSeed } from "nkeys.js";

const [op, cluster, specFile] = process.argv.slice(2);
// rh's users are nkey users: the credentials file holds the seed, which
// signs the connection and gives our public key, which names our subjects.
const creds = readFileSync(process.env.RH_NATS_CREDS, "utf8");
const seed = new TextEncoder().encode(creds.match(/^\s*(SU[A-Z2-7]+)\s*$/m)[1]);
const key = fromSeed(seed).getPublicKey();

const nc = await connect({
  servers: process.env.RH_NATS_URL ?? "nats://127.0.0.1:4222",
  authenticator: nkeyAuthenticator(seed),
  inboxPrefix: `_INBOX.${key}`, // rh lets each user read only its own inbox
});
const sc = StringCodec();
const outcomes = nc.subscribe(`rh.outcome.${key}.${cluster}`); // before publishing

const id = randomUUID(); // the idempotency key: publish again with it, nothing changes
const data = { op, cluster };
if (specFile) data.spec = JSON.parse(readFileSync(specFile, "utf8"));
const event = {
  specversion: "1.0", id, source: "example/publish.mjs", type: "dev.rh.cluster.request.v1",
  subject: cluster, time: new Date().toISOString(), datacontenttype: "application/json", data,
};
const h = headers();
h.set("Nats-Msg-Id", id);
// A request (not a bare publish) returns the stream's acknowledgement: the
// request is stored, even if no registry runs right now.
const ack = await nc.request(`rh.intake.${key}`, sc.encode(JSON.stringify(event)), { headers: h, timeout: 10000 });
console.log("stored:", sc.decode(ack.data));

for await (const m of outcomes) {
  const o = JSON.parse(sc.decode(m.data)).data;
  if (o.request_id !== id) continue;
  console.log(o.result, o.phase ?? "", o.code ?? "", o.reason ?? o.message ?? "");
  if (o.done) break;
}
await nc.close();
