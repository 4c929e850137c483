// Secrets never leave their process: after a stack run with distinctive credentials that exercises
// purchases, returns, IPNs, declines, FPS errors and rejected requests, neither the FPS secret key
// nor an API key (nor the storefront session secret) appears in any workflow history of the run
// (every workflow on the server, every run) or in any log file under test-artifacts/. Runs after
// the api and e2e suites (scripts/test.ts order), so their histories and logs are searched too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { config, DEV_SECRET_KEY } from '../../config';
import { configureSandboxIpn, createInstruments, injectFaults } from '../support/chaos';
import { startProcessStack, type ProcessStack } from '../support/process-stack';
import { testClient } from '../support/temporal';
import { activeInstrument, call, until } from '../api/stack';

const distinct = (label: string) => `${label}-${randomBytes(18).toString('base64url')}`;

/** The secret as it could show up: raw, URL-encoded, JSON-escaped, base64. */
function spellings(secret: string): string[] {
  return [
    ...new Set([
      secret,
      encodeURIComponent(secret),
      JSON.stringify(secret).slice(1, -1),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('base64url'),
    ]),
  ];
}

function logFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...logFiles(full));
    else if (/\.(log|txt|json|jsonl)$/.test(entry.name) && statSync(full).size < 200 * 1024 * 1024) out.push(full);
  }
  return out;
}

describe('secrets: the FPS secret key and API keys appear in no workflow history and no log', function () {
  this.timeout(180_000);
  const fpsSecretKey = distinct('fps-secret');
  const apiKey = distinct('api-key');
  const wrongKey = `${apiKey}-but-wrong`;
  const storeSecret = distinct('store-session-secret');
  let stack: ProcessStack;

  before(async function () {
    this.timeout(120_000);
    stack = await startProcessStack({
      name: 'secrets',
      fpsAccessKeyId: 'AKIASECRETSTEST00001',
      fpsSecretKey,
      apiKey,
      apiEnv: { STORE_SESSION_SECRET: storeSecret, LOG_LEVEL: 'debug' },
      workerEnv: { LOG_LEVEL: 'debug' },
      sandboxEnv: { LOG_LEVEL: 'debug' },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  it('a run that touches every path: purchases, returns, IPNs, declines, FPS errors, refused requests', async () => {
    const instruments = await createInstruments(stack, 'secrets', { prepaid: 1, postpaid: 1, 'single-use': 1 });
    const [prepaid, postpaid, single] = instruments;
    await configureSandboxIpn(stack, { duplicate: 1 });
    const buy = (id: string, amount: string, key: string) =>
      call(stack, 'POST', `/instruments/${id}/purchases`, {
        body: { amount, currency: 'USD' },
        headers: { 'idempotency-key': key },
      });
    assert.equal((await buy(prepaid.instrumentId, '1.00', 's-1')).status, 201);
    assert.equal((await buy(prepaid.instrumentId, '1.13', 's-2')).status, 202); // Pending, then an IPN
    assert.equal((await buy(prepaid.instrumentId, '1.51', 's-3')).status, 402); // TransactionDenied
    assert.equal((await buy(postpaid.instrumentId, '2.52', 's-4')).status, 402); // Failure
    assert.equal((await buy(single.instrumentId, '3.14', 's-5')).status, 202); // Pending, then Failure
    // FPS errors on the way: retried, logged by the activities and the sandbox.
    const faults: Record<string, number> = {};
    await injectFaults(
      stack,
      [
        { kind: 'error', code: 'InternalError', count: 1 },
        { kind: 'error', code: 'Throttling', count: 1 },
        { kind: 'drop', count: 1, actions: ['Pay'] },
      ],
      faults,
    );
    assert.equal((await buy(postpaid.instrumentId, '4.00', 's-6')).status, 201);
    assert.equal(
      (
        await call(stack, 'POST', `/instruments/${prepaid.instrumentId}/refunds`, {
          body: { purchaseId: 's-1' },
          headers: { 'idempotency-key': 'r-1' },
        })
      ).status,
      201,
    );
    assert.equal(
      (
        await call(stack, 'POST', `/instruments/${postpaid.instrumentId}/settle`, {
          body: {},
          headers: { 'idempotency-key': 'st-1' },
        })
      ).status,
      200,
    );
    // Refused requests: a wrong key (X-Api-Key and Bearer), an unverified IPN and return, a bad body.
    assert.equal((await call(stack, 'GET', `/instruments/${prepaid.instrumentId}`, { key: wrongKey })).status, 401);
    assert.equal(
      (
        await fetch(`${stack.apiUrl}/instruments/${prepaid.instrumentId}`, {
          headers: { authorization: `Bearer ${wrongKey}` },
        })
      ).status,
      401,
    );
    assert.equal(
      (
        await fetch(`${stack.apiUrl}/fps/ipn`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `callerReference=${prepaid.instrumentId}:pay:s-1&signature=forged`,
        })
      ).status,
      403,
    );
    assert.equal((await fetch(`${stack.apiUrl}/fps/return?status=SA&signature=x`, { redirect: 'manual' })).status, 400);
    assert.equal((await buy(prepaid.instrumentId, '-1', 's-7')).status, 422);
    // The storefront: a session (signed with the session secret) and a purchase.
    const session = await fetch(`${stack.apiUrl}/store/api/session`);
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0];
    const created = await fetch(`${stack.apiUrl}/store/api/instruments`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'prepaid', fundingAmount: '10.00' }),
    });
    assert.equal(created.status, 201);
    // A second instrument through the API's create with a key, approved through the return URL.
    await activeInstrument(stack, 'secrets-extra', {
      type: 'postpaid',
      creditLimit: '10.00',
      globalAmountLimit: '20.00',
      currency: 'USD',
    });
    await until(
      'the Pending purchases settled',
      async () => {
        for (const i of instruments)
          if ((await call(stack, 'GET', `/instruments/${i.instrumentId}`)).body.pending.length > 0) return false;
        return true;
      },
      30_000,
      200,
    );
    // Flush: the processes write their last lines on the way out.
    await stack.stop();
  });

  it('no workflow history of the run holds a secret', async () => {
    const secrets = [fpsSecretKey, apiKey, wrongKey, storeSecret, DEV_SECRET_KEY].flatMap(spellings);
    const runs: Array<{ workflowId: string; runId: string }> = [];
    const client = await testClient();
    for await (const info of client.workflow.list({ pageSize: 1000 }))
      runs.push({ workflowId: info.workflowId, runId: info.runId });
    assert.ok(runs.length >= 5, `the run's workflows are listed (${runs.length})`);
    assert.equal(runs.length, (await client.workflow.count()).count, 'every execution of the run is listed');
    const found: string[] = [];
    let bytes = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < runs.length) {
          const { workflowId, runId } = runs[next++];
          const text = JSON.stringify(await client.workflow.getHandle(workflowId, runId).fetchHistory());
          bytes += text.length;
          for (const s of secrets)
            if (text.includes(s)) found.push(`${workflowId} (${runId}) contains ${s.slice(0, 12)}…`);
        }
      }),
    );
    console.log(
      `      searched ${runs.length} workflow histories (${Math.round(bytes / 1024)} kB) for ${secrets.length} spellings of 5 secrets`,
    );
    assert.deepEqual(found, []);
  });

  it('no log file under test-artifacts/ holds a secret', async () => {
    const secrets = [fpsSecretKey, apiKey, wrongKey, storeSecret, DEV_SECRET_KEY].flatMap(spellings);
    const files = logFiles(path.join(config().root, 'test-artifacts'));
    assert.ok(
      files.some((f) => f.includes('secrets-worker')) &&
        files.some((f) => f.includes('secrets-api')) &&
        files.some((f) => f.includes('secrets-sandbox')),
      'the stack logged',
    );
    const found: string[] = [];
    let bytes = 0;
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      bytes += text.length;
      for (const s of secrets)
        if (text.includes(s)) found.push(`${path.relative(config().root, file)} contains ${s.slice(0, 12)}…`);
    }
    console.log(`      searched ${files.length} log files (${Math.round(bytes / 1024)} kB)`);
    assert.deepEqual(found, []);
  });
});
