// The reconciliation finds what it is there to find. On the shared API stack (after the api suites
// ran their instruments through it): first it must be clean; then money is moved at FPS behind the
// workflows' backs — a payment no workflow asked for, a payment under an instrument that does not
// exist, a refund nobody recorded — and each must be reported with its ids, by the library and by
// `npm run reconcile` (exit code 1).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { authorizationUrl } from '../../api/authorization';
import { newId } from '../../api/ids';
import { config } from '../../config';
import { FpsClient } from '../../fps/client';
import { openLedgerDb } from '../../store/db';
import { LedgerStore } from '../../store/ledger';
import {
  formatReport,
  reconcile,
  reconcileUntilSettled,
  SandboxLedger,
  UNCOUNTED_GRACE_MS,
} from '../../scripts/lib/reconcile';
import {
  INSTRUMENT_WORKFLOW_TYPE,
  instrumentSearchAttributes,
  workflowIdFor,
  type InstrumentInput,
} from '../../workflows/messages';
import { activeInstrument, call, cbuiDecision, getStack, sandboxAdmin, until, type Stack } from '../api/stack';

describe('reconciliation (scripts/lib/reconcile.ts, npm run reconcile)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let ledger: SandboxLedger;
  let fps: FpsClient;
  let x: { instrumentId: string };
  let z: { instrumentId: string };
  let store: LedgerStore;

  before(async function () {
    this.timeout(90_000);
    stack = await getStack();
    ledger = new SandboxLedger(stack.sandboxUrl);
    // The record the stack's API and worker write (SQLite, shared by the processes).
    store = new LedgerStore(await openLedgerDb(stack.env.LEDGER_DATABASE_URL));
    const { accessKeyId, secretKey } = config().fps;
    fps = new FpsClient({ endpoint: `${stack.sandboxUrl}/`, accessKeyId, secretKey });
    const prepaid = { type: 'prepaid', fundingAmount: '30.00', currency: 'USD' };
    [x, z] = await Promise.all([
      activeInstrument(stack, 'reconcile-x', prepaid),
      activeInstrument(stack, 'reconcile-z', prepaid),
    ]);
    const bought = await call(stack, 'POST', `/instruments/${z.instrumentId}/purchases`, {
      body: { amount: '2.00', currency: 'USD' },
      headers: { 'idempotency-key': 'z-1' },
    });
    assert.equal(bought.status, 201, bought.text);
    await until(
      'a quiet sandbox',
      async () => (await sandboxAdmin(stack, '/admin/summary')).pendingTransactions === 0,
      30_000,
      200,
    );
  });

  after(async () => {
    await store?.close();
  });

  it('every instrument of the run so far reconciles three ways: workflows, the record and the FPS ledger', async () => {
    const report = await reconcileUntilSettled({
      client: stack.client,
      ledger,
      store,
      taskQueue: stack.taskQueue,
      orphans: 'all',
      waitMs: 20_000,
    });
    console.log(formatReport(report).replace(/^/gm, '      '));
    assert.ok(report.byType.prepaid.instruments >= 2);
    assert.deepEqual(report.discrepancies, []);
    assert.ok(report.notes.some((n) => n.startsWith('three-way')));
  });

  it('reports a row removed from or altered in the record, with instrument, CallerReference and kind', async () => {
    const zRef = `${z.instrumentId}:pay:z-1`;
    const xRef = `${x.instrumentId}:fund:wf:initial`;
    const zRow = (await store.operationByCallerReference(zRef))!;
    const xRow = (await store.operationByCallerReference(xRef))!;
    assert.equal(zRow.status, 'Success');
    await store.db.deleteFrom('operations').where('caller_reference', '=', zRef).execute();
    await store.db
      .updateTable('operations')
      .set({ amount: xRow.amount + 1 })
      .where('caller_reference', '=', xRef)
      .execute();
    try {
      const report = await reconcile({
        client: stack.client,
        ledger,
        store,
        taskQueue: stack.taskQueue,
        orphans: 'all',
      });
      const text = formatReport(report);
      assert.ok(
        report.discrepancies.some(
          (d) => d.kind === 'unrecorded_in_store' && d.instrumentId === z.instrumentId && d.callerReference === zRef,
        ),
        text,
      );
      assert.ok(
        report.discrepancies.some(
          (d) =>
            d.kind === 'store_totals_mismatch' &&
            d.instrumentId === z.instrumentId &&
            /approved purchases/.test(d.detail),
        ),
        text,
      );
      assert.ok(
        report.discrepancies.some(
          (d) => d.kind === 'store_mismatch' && d.instrumentId === x.instrumentId && d.callerReference === xRef,
        ),
        text,
      );
      assert.ok(
        report.discrepancies.some(
          (d) => d.kind === 'store_totals_mismatch' && d.instrumentId === x.instrumentId && /balance/.test(d.detail),
        ),
        text,
      );
      // Nothing else: the workflows and FPS still agree with each other.
      assert.deepEqual(
        [...new Set(report.discrepancies.map((d) => d.kind))].sort(),
        ['store_mismatch', 'store_totals_mismatch', 'unrecorded_in_store'],
        text,
      );
    } finally {
      await store.db.insertInto('operations').values(zRow).execute();
      await store.db
        .updateTable('operations')
        .set({ amount: xRow.amount })
        .where('caller_reference', '=', xRef)
        .execute();
    }
    const again = await reconcile({ client: stack.client, ledger, store, taskQueue: stack.taskQueue, orphans: 'all' });
    assert.deepEqual(again.discrepancies, [], 'restored, it reconciles again');
  });

  it('reports a completed instrument’s row its workflow never counted (uncounted_record), with its CallerReference', async () => {
    // A completed workflow, fast: started as the API starts one, but with a short closed retention
    // (the API takes no settings; its default keeps a closed instrument's workflow for 7 days).
    const input: InstrumentInput = {
      instrumentId: newId('ins'),
      customerId: `reconcile-uncounted-${Date.now().toString(36)}`,
      type: 'prepaid',
      currency: 'USD',
      fundingAmount: 1_000,
      settings: { closedRetentionMs: 500 },
    };
    const { instrumentId } = input;
    const handle = await stack.client.workflow.start(INSTRUMENT_WORKFLOW_TYPE, {
      workflowId: workflowIdFor(instrumentId),
      taskQueue: stack.taskQueue,
      args: [input],
      typedSearchAttributes: instrumentSearchAttributes(input),
      memo: { requestFingerprint: 'reconcile-test' },
    });
    const base = config();
    const cbui = authorizationUrl(
      {
        ...base,
        fps: { ...base.fps, cbuiEndpoint: `${stack.sandboxUrl}/cobranded-ui/actions/start` },
        api: { ...base.api, publicUrl: stack.apiUrl },
      },
      input,
    );
    const returned = await fetch(await cbuiDecision(cbui, 'approve'), { redirect: 'manual' });
    assert.equal(returned.status, 303, await returned.text());
    await until(`instrument ${instrumentId} active`, async () => {
      const got = await call(stack, 'GET', `/instruments/${instrumentId}`);
      return got.status === 200 && got.body.state === 'active' && got.body.pending.length === 0;
    });
    for (const key of ['u-1', 'u-2']) {
      const bought = await call(stack, 'POST', `/instruments/${instrumentId}/purchases`, {
        body: { amount: '1.00', currency: 'USD' },
        headers: { 'idempotency-key': key },
      });
      assert.equal(bought.status, 201, bought.text);
    }
    const closed = await call(stack, 'POST', `/instruments/${instrumentId}/close`, { body: {} });
    assert.equal(closed.status, 200, closed.text);
    await until(
      `workflow of ${instrumentId} completed`,
      async () => (await handle.describe()).status.name === 'COMPLETED',
      30_000,
      200,
    );
    const uncountedRef = `${instrumentId}:pay:u-1`;
    const countedRef = `${instrumentId}:pay:u-2`;
    const rows = await store.operationsBetween({ instrumentId });
    assert.ok(rows.length >= 3, JSON.stringify(rows));
    assert.deepEqual(
      rows.filter((r) => r.counted_at === null).map((r) => r.caller_reference),
      [],
      'the workflow counted every row before it completed',
    );
    const row = (await store.operationByCallerReference(uncountedRef))!;
    assert.equal(row.status, 'Success');
    // What a lost workflow task leaves: the row written by the activity, never acknowledged.
    const old = Date.now() - UNCOUNTED_GRACE_MS - 60_000;
    await store.db
      .updateTable('operations')
      .set({ counted_at: null, updated_at: old })
      .where('caller_reference', '=', uncountedRef)
      .execute();
    const mine = async () =>
      (
        await reconcile({
          client: stack.client,
          ledger,
          store,
          taskQueue: stack.taskQueue,
          customerId: input.customerId,
        })
      ).discrepancies.filter((d) => d.instrumentId === instrumentId);
    try {
      const found = await mine();
      const text = JSON.stringify(found, null, 2);
      assert.ok(
        found.some(
          (d) =>
            d.kind === 'uncounted_record' &&
            d.callerReference === uncountedRef &&
            d.transactionId === row.transaction_id &&
            /purchase u-1 recorded Success/.test(d.detail),
        ),
        text,
      );
      assert.ok(!found.some((d) => d.callerReference === countedRef), `its counted sibling is not reported: ${text}`);
      assert.deepEqual(
        found.map((d) => d.kind),
        ['uncounted_record'],
        text,
      );
    } finally {
      await store.db
        .updateTable('operations')
        .set({ counted_at: row.counted_at, updated_at: row.updated_at })
        .where('caller_reference', '=', uncountedRef)
        .execute();
    }
    assert.deepEqual(await mine(), [], 'counted again, it reconciles');
  });

  it('reports money moved behind the workflows’ backs, with instrument, CallerReference and transaction id', async () => {
    const fund = (await ledger.byCallerReference(`${x.instrumentId}:fund:wf:initial`))[0];
    const prepaidX = await sandboxAdmin(stack, `/admin/prepaid/${fund.fpsInstrumentId}`);
    const rogue = await fps.call('Pay', {
      senderTokenId: prepaidX.senderTokenId,
      transactionAmount: { amount: 123, currency: 'USD' },
      callerReference: `${x.instrumentId}:pay:rogue-1`,
    });
    const orphan = await fps.call('Pay', {
      senderTokenId: prepaidX.senderTokenId,
      transactionAmount: { amount: 45, currency: 'USD' },
      callerReference: 'ins_ghost00000000000000:pay:1',
    });
    const zPurchase = (await ledger.byCallerReference(`${z.instrumentId}:pay:z-1`))[0];
    const refund = await fps.call('Refund', {
      transactionId: zPurchase.id,
      callerReference: `${z.instrumentId}:refund:rogue`,
      refundAmount: { amount: 50, currency: 'USD' },
    });

    const report = await reconcile({ client: stack.client, ledger, taskQueue: stack.taskQueue, orphans: 'all' });
    const found = (
      kind: string,
      where: Partial<Record<'instrumentId' | 'callerReference' | 'transactionId', string>>,
    ) =>
      report.discrepancies.some(
        (d) =>
          d.kind === kind && Object.entries(where).every(([k, v]) => (d as unknown as Record<string, string>)[k] === v),
      );
    const text = formatReport(report);
    assert.ok(
      found('unrecorded_fps_transaction', {
        instrumentId: x.instrumentId,
        callerReference: `${x.instrumentId}:pay:rogue-1`,
        transactionId: rogue.transactionId,
      }),
      text,
    );
    assert.ok(found('purchase_count_mismatch', { instrumentId: x.instrumentId }), text);
    assert.ok(found('balance_mismatch', { instrumentId: x.instrumentId }), text);
    assert.ok(
      found('orphan_fps_transaction', {
        callerReference: 'ins_ghost00000000000000:pay:1',
        transactionId: orphan.transactionId,
      }),
      text,
    );
    assert.ok(
      found('unrecorded_fps_transaction', {
        instrumentId: z.instrumentId,
        callerReference: `${z.instrumentId}:refund:rogue`,
        transactionId: refund.transactionId,
      }),
      text,
    );
    assert.ok(found('balance_mismatch', { instrumentId: z.instrumentId }), text);
    assert.equal(report.ok, false);

    // The command line: the same findings, exit code 1; --json for machines.
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [
          require.resolve('tsx/cli'),
          path.join(config().root, 'scripts', 'reconcile.ts'),
          '--sandbox-url',
          stack.sandboxUrl,
          '--task-queue',
          stack.taskQueue,
          '--orphans',
          'all',
          ...args,
        ],
        {
          env: {
            ...process.env,
            TEMPORAL_ADDRESS: stack.env.TEMPORAL_ADDRESS,
            TEMPORAL_NAMESPACE: stack.env.TEMPORAL_NAMESPACE,
            LEDGER_DATABASE_URL: stack.env.LEDGER_DATABASE_URL,
          },
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
    const run = cli();
    assert.equal(run.status, 1, run.stderr || run.stdout);
    assert.match(
      run.stdout,
      /\[unrecorded_fps_transaction\] instrument ins_\w+, CallerReference ins_\w+:pay:rogue-1, FPS \w+/,
    );
    assert.match(run.stdout, /\[orphan_fps_transaction\]/);
    assert.match(run.stdout, /prepaid\s+\d+/);
    const json = cli('--json');
    assert.equal(json.status, 1);
    assert.ok(JSON.parse(json.stdout).discrepancies.length >= 6);
  });
});
