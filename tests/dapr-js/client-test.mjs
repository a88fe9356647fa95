#!/usr/bin/env node
// Conformance smoke test: the official Dapr JS SDK (@dapr/dapr), unchanged, in HTTP
// mode against a Dapr-compatible state API (v1.0) on loopback.
//
// Env:
//   DAPR_HTTP_PORT    (required) port of the server under test
//   DAPR_HOST         (optional) default 127.0.0.1
//   DAPR_API_TOKEN    (optional) sent as `dapr-api-token` on every request
//   DAPR_STATE_STORE  (optional) state store name, default "statestore"
//   CHECK_BAD_TOKEN=1 (optional, only with DAPR_API_TOKEN) also check that a client with a
//                     wrong token is refused. Costs ~30 s: the SDK polls GET /v1.0/metadata
//                     every 500 ms (61 tries) before giving up with DAPR_SIDECAR_COULD_NOT_BE_STARTED.
//
// Prints one line per check; exits 1 on the first mismatch, 0 if all pass.
// Uses only the SDK's public API (DaprClient, client.state.*, client.start/stop).
//
// SDK behaviour this relies on (3.18.0, HTTP mode):
//   * state.save / state.delete never throw on HTTP errors: they resolve to {error: Error}.
//   * state.get / getBulk / transaction / query throw Error(message = JSON string
//     {"error": statusText, "error_msg": <raw body>, "status": <code>}).
//   * state.get returns the JSON-parsed body, or "" for an empty body (204 = missing key).
//     It does not return the etag; getBulk and query do ({key, data, etag}).

import { isDeepStrictEqual, inspect } from "node:util";
import { DaprClient, CommunicationProtocolEnum, LogLevel } from "@dapr/dapr";

const port = process.env.DAPR_HTTP_PORT;
if (!port || !/^[0-9]+$/.test(port)) {
  console.error("DAPR_HTTP_PORT must be set to a numeric port");
  process.exit(2);
}
const host = process.env.DAPR_HOST || "127.0.0.1";
const token = process.env.DAPR_API_TOKEN || undefined;
const STORE = process.env.DAPR_STATE_STORE || "statestore";

// Keys only use [A-Za-z0-9-]: the SDK puts keys into the URL path without encoding.
const P = `jst-${Date.now().toString(36)}-${process.pid}-`;
const k = (name) => `${P}${name}`;

// Quiet logger: the SDK logs an ERROR line for every failed save/delete, including the
// ones this test provokes on purpose. Set DAPR_SDK_LOG=1 to see them.
const sdkLog = process.env.DAPR_SDK_LOG
  ? undefined
  : { level: LogLevel.Error, service: { error() {}, warn() {}, info() {}, verbose() {}, debug() {} } };

const makeClient = (apiToken) =>
  new DaprClient({
    daprHost: host,
    daprPort: port,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    daprApiToken: apiToken,
    logger: sdkLog,
  });

const client = makeClient(token);

let passed = 0;
function ok(name) {
  passed++;
  console.log(`ok   ${name}`);
}
async function fail(name, detail) {
  console.log(`FAIL ${name}: ${detail}`);
  try {
    await client.stop();
  } catch {}
  process.exit(1);
}
const show = (v) => inspect(v, { depth: 6, breakLength: Infinity });

async function expectEqual(name, actual, expected) {
  if (isDeepStrictEqual(actual, expected)) ok(name);
  else await fail(name, `got ${show(actual)}, want ${show(expected)}`);
}
async function expectTrue(name, cond, detail) {
  if (cond) ok(name);
  else await fail(name, detail);
}
// save/delete resolve to {} on success, {error} on failure.
async function expectNoError(name, res) {
  if (res && res.error === undefined) ok(name);
  else await fail(name, `unexpected error: ${res?.error?.message ?? show(res)}`);
}
// Parse the SDK's error message: JSON {"error","error_msg","status"}.
function sdkErr(e) {
  try {
    const o = JSON.parse(e?.message);
    let body;
    try {
      body = JSON.parse(o.error_msg);
    } catch {
      body = o.error_msg;
    }
    return { status: o.status, statusText: o.error, body };
  } catch {
    return { status: undefined, raw: String(e?.message ?? e) };
  }
}
async function expectSdkError(name, res, statuses) {
  if (!res?.error) return fail(name, `expected an error, got ${show(res)}`);
  const info = sdkErr(res.error);
  if (!statuses.includes(info.status)) return fail(name, `want status in ${show(statuses)}, got ${show(info)}`);
  if (!info.body || typeof info.body.errorCode !== "string")
    return fail(name, `error body lacks errorCode: ${show(info)}`);
  ok(`${name} (${info.status} ${info.body.errorCode})`);
}
async function expectThrows(name, fn, statuses, errorCode) {
  let threw = false;
  let info;
  try {
    await fn();
  } catch (e) {
    threw = true;
    info = sdkErr(e);
  }
  if (!threw) return fail(name, "expected the call to throw");
  if (!statuses.includes(info.status)) return fail(name, `want status in ${show(statuses)}, got ${show(info)}`);
  if (errorCode && info.body?.errorCode !== errorCode)
    return fail(name, `want errorCode ${errorCode}, got ${show(info)}`);
  ok(`${name} (${info.status} ${info.body?.errorCode ?? ""})`);
}
const byKey = (items) => Object.fromEntries((items ?? []).map((it) => [it.key, it]));
async function etagOf(key) {
  const [item] = await client.state.getBulk(STORE, [key]);
  return item?.etag;
}

async function main() {
  // 0. Startup: the SDK's first call (or start()) polls GET /v1.0/metadata until it gets a
  //    2xx/3xx with a non-empty body.
  const t0 = Date.now();
  await client.start();
  ok(`start (GET /v1.0/metadata) in ${Date.now() - t0} ms`);

  // 1. Save several JSON types in one request, read each back.
  const values = {
    obj: { name: "alice", n: 1, nested: { list: [1, 2, 3], flag: false } },
    str: "hello world",
    numstr: "123", // must come back as the string "123", not the number
    num: 42,
    float: 3.5,
    arr: [1, "two", { three: 3 }, null],
    bool: true,
    unicode: "héllo ✓ 日本",
  };
  await expectNoError(
    "save mixed JSON types",
    await client.state.save(
      STORE,
      Object.entries(values).map(([name, value]) => ({ key: k(name), value })),
    ),
  );
  for (const [name, value] of Object.entries(values)) {
    await expectEqual(`get ${name}`, await client.state.get(STORE, k(name)), value);
  }

  // 2. Missing key: server answers 204 with empty body; the SDK returns "".
  await expectEqual("get missing key -> \"\"", await client.state.get(STORE, k("nope")), "");

  // 3. Overwrite (last-write-wins, no etag).
  await expectNoError("save overwrite", await client.state.save(STORE, [{ key: k("num"), value: 43 }]));
  await expectEqual("get overwritten", await client.state.get(STORE, k("num")), 43);

  // 4. getBulk: [{key, data, etag}], missing keys present without data.
  const bulk = await client.state.getBulk(STORE, [k("obj"), k("str"), k("nope")]);
  await expectTrue("getBulk returns an array of 3", Array.isArray(bulk) && bulk.length === 3, show(bulk));
  const bk = byKey(bulk);
  await expectEqual("getBulk obj data", bk[k("obj")]?.data, values.obj);
  await expectEqual("getBulk str data", bk[k("str")]?.data, values.str);
  await expectTrue(
    "getBulk existing items carry string etags",
    typeof bk[k("obj")]?.etag === "string" && typeof bk[k("str")]?.etag === "string",
    show(bulk),
  );
  await expectTrue(
    "getBulk missing key present without data",
    k("nope") in bk && (bk[k("nope")].data === undefined || bk[k("nope")].data === null),
    show(bk[k("nope")]),
  );
  const bulkP = await client.state.getBulk(STORE, [k("num"), k("bool")], { parallelism: 2 });
  await expectEqual(
    "getBulk with parallelism",
    Object.fromEntries(bulkP.map((it) => [it.key, it.data])),
    { [k("num")]: 43, [k("bool")]: true },
  );

  // 5. Delete.
  await expectNoError("delete", await client.state.delete(STORE, k("str")));
  await expectEqual("get after delete -> \"\"", await client.state.get(STORE, k("str")), "");
  await expectNoError("delete missing key is not an error", await client.state.delete(STORE, k("nope")));

  // 6. Etags (optimistic concurrency).
  const ek = k("etag");
  await expectNoError("save etag seed", await client.state.save(STORE, [{ key: ek, value: { v: 1 } }]));
  const etag1 = await etagOf(ek);
  await expectTrue("etag from getBulk", typeof etag1 === "string" && etag1.length > 0, show(etag1));
  await expectNoError(
    "save with right etag",
    await client.state.save(STORE, [{ key: ek, value: { v: 2 }, etag: etag1 }]),
  );
  const etag2 = await etagOf(ek);
  await expectTrue("etag changes after write", typeof etag2 === "string" && etag2 !== etag1, `${etag1} -> ${etag2}`);
  await expectSdkError(
    "save with stale etag rejected",
    await client.state.save(STORE, [{ key: ek, value: { v: 3 }, etag: etag1 }]),
    [409],
  );
  await expectEqual("value unchanged after stale-etag save", await client.state.get(STORE, ek), { v: 2 });
  await expectSdkError(
    "save with malformed etag rejected",
    await client.state.save(STORE, [{ key: ek, value: { v: 4 }, etag: "not-an-etag" }]),
    [400],
  );
  await expectSdkError("delete with stale etag rejected (If-Match)", await client.state.delete(STORE, ek, { etag: etag1 }), [409]);
  await expectEqual("value still there", await client.state.get(STORE, ek), { v: 2 });
  await expectNoError("delete with right etag (If-Match)", await client.state.delete(STORE, ek, { etag: etag2 }));
  await expectEqual("gone after etag delete", await client.state.get(STORE, ek), "");

  // 7. Transaction: upsert + delete, atomically.
  await expectNoError("save tx seed", await client.state.save(STORE, [{ key: k("tx-del"), value: "bye" }]));
  await client.state.transaction(STORE, [
    { operation: "upsert", request: { key: k("tx-up"), value: { t: 1 } } },
    { operation: "delete", request: { key: k("tx-del") } },
  ]);
  ok("transaction upsert+delete accepted");
  await expectEqual("tx upserted", await client.state.get(STORE, k("tx-up")), { t: 1 });
  await expectEqual("tx deleted", await client.state.get(STORE, k("tx-del")), "");
  // A transaction whose etag is stale must fail as a whole (transaction() throws).
  const txEtag = await etagOf(k("tx-up"));
  await client.state.save(STORE, [{ key: k("tx-up"), value: { t: 2 } }]); // bumps the etag
  await expectThrows(
    "tx with stale etag throws",
    () =>
      client.state.transaction(STORE, [
        { operation: "upsert", request: { key: k("tx-new"), value: 1 } },
        { operation: "upsert", request: { key: k("tx-up"), value: { t: 3 }, etag: txEtag } },
      ]),
    [409],
    "ERR_STATE_TRANSACTION",
  );
  await expectEqual("tx rolled back: tx-up", await client.state.get(STORE, k("tx-up")), { t: 2 });
  await expectEqual("tx rolled back: tx-new absent", await client.state.get(STORE, k("tx-new")), "");

  // 8. Query (POST /v1.0-alpha1/state/{store}/query): filter + sort + paging.
  const kind = `${P}q`; // unique per run, so other data in the store does not match
  const docs = [
    { rank: 1, city: "oslo" },
    { rank: 5, city: "rome" },
    { rank: 3, city: "oslo" },
    { rank: 2, city: "lima" },
    { rank: 4, city: "oslo" },
  ];
  await expectNoError(
    "save query docs",
    await client.state.save(STORE, docs.map((d) => ({ key: k(`q${d.rank}`), value: { kind, ...d } }))),
  );
  const q = { filter: { EQ: { kind } }, sort: [{ key: "rank", order: "DESC" }], page: { limit: 2 } };
  const page1 = await client.state.query(STORE, q);
  await expectEqual("query page 1 keys (rank DESC, limit 2)", page1.results?.map((r) => r.key), [k("q5"), k("q4")]);
  await expectEqual("query page 1 data", page1.results?.[0]?.data, { kind, rank: 5, city: "rome" });
  await expectTrue("query page 1 has a token", typeof page1.token === "string" && page1.token !== "", show(page1.token));
  const page2 = await client.state.query(STORE, { ...q, page: { limit: 2, token: page1.token } });
  await expectEqual("query page 2 keys", page2.results?.map((r) => r.key), [k("q3"), k("q2")]);
  const page3 = await client.state.query(STORE, { ...q, page: { limit: 2, token: page2.token } });
  await expectEqual("query page 3 keys", page3.results?.map((r) => r.key), [k("q1")]);
  const qAnd = await client.state.query(STORE, {
    filter: { AND: [{ EQ: { kind } }, { IN: { city: ["oslo", "lima"] } }] },
    sort: [{ key: "rank", order: "ASC" }],
    page: { limit: 10 },
  });
  await expectEqual("query AND/IN keys (rank ASC)", qAnd.results?.map((r) => r.key), [k("q1"), k("q2"), k("q3"), k("q4")]);
  const qNone = await client.state.query(STORE, { filter: { EQ: { kind: `${kind}-none` } }, sort: [], page: { limit: 10 } });
  await expectEqual("query with no match -> results []", qNone.results, []);

  // 9. Error shape for an unknown store: SDK throws, body is {"errorCode","message"}.
  await expectThrows("get from unknown store throws", () => client.state.get(`${STORE}-does-not-exist`, k("obj")), [400], "ERR_STATE_STORE_NOT_FOUND");

  // 10. Optional: wrong API token is refused (slow, see header).
  if (token && process.env.CHECK_BAD_TOKEN === "1") {
    const bad = makeClient(`${token}-wrong`);
    let msg = "";
    try {
      await bad.state.get(STORE, k("obj"));
    } catch (e) {
      msg = String(e?.message ?? e);
    }
    await expectTrue("wrong token refused", msg === "DAPR_SIDECAR_COULD_NOT_BE_STARTED" || /"status":401/.test(msg), msg);
  }

  // Cleanup (best effort).
  const cleanup = [...Object.keys(values), "tx-up", ...docs.map((d) => `q${d.rank}`)].map((n) => ({
    operation: "delete",
    request: { key: k(n) },
  }));
  await client.state.transaction(STORE, cleanup).catch(() => {});

  console.log(`all ${passed} checks passed`);
  await client.stop();
  process.exit(0);
}

main().catch(async (e) => {
  await fail("unexpected exception", e?.stack ?? String(e));
});
