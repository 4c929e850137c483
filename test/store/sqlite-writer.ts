// A second process writing the ledger (test/store/ledger.test.ts starts two): the API and the
// worker write one SQLite file the same way. Opens the ledger, prints "ready", and on a line on
// stdin records `count` purchases that every writer shares (Pending, then resolved to Success) and
// one refund of each per writer; prints {"errors": [...]} and exits 1 if any write failed.
import { openLedgerDb } from '../../store/db';
import { LedgerStore, type OperationWrite } from '../../store/ledger';
import { eventsFor } from '../../store/operation-events';

const [url, writer, countArg] = process.argv.slice(2);
const count = Number(countArg);

function row(operation: string, operationId: string, fields: Partial<OperationWrite> = {}): OperationWrite {
  return {
    caller_reference: `inst-two-writers:${operation}:${operationId}`,
    instrument_id: 'inst-two-writers',
    customer_id: 'cust-two-writers',
    instrument_type: 'prepaid',
    operation,
    operation_id: operationId,
    amount: 100,
    currency: 'USD',
    status: 'Pending',
    transaction_id: null,
    decline_code: null,
    decline_reason: null,
    parent_operation_id: null,
    description: null,
    opened_by: null,
    ...fields,
  };
}

async function main(): Promise<void> {
  const store = new LedgerStore(await openLedgerDb(url));
  const errors: string[] = [];
  const attempt = async (what: string, write: () => Promise<unknown>) => {
    try {
      await write();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const events = (w: OperationWrite) => eventsFor({ ...w, refunded_amount: 0, created_at: 0, updated_at: 0 });
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();
  for (let i = 0; i < count; i++) {
    const purchase = row('purchase', `p${i}`);
    await attempt(`purchase ${i}`, () => store.recordOperation(purchase, events(purchase)));
    await attempt(`resolve ${i}`, () =>
      store.resolveOperation(purchase.caller_reference, 'Success', (r) => eventsFor(r)),
    );
    const refund = row('refund', `${writer}-r${i}`, { amount: 10, parent_operation_id: `p${i}` });
    await attempt(`refund ${i}`, () => store.recordOperation(refund, events(refund)));
    await attempt(`refund success ${i}`, () =>
      store.recordOperation({ ...refund, status: 'Success' }, events({ ...refund, status: 'Success' })),
    );
  }
  await store.close();
  process.stdout.write(`${JSON.stringify({ errors })}\n`);
  process.exitCode = errors.length === 0 ? 0 : 1;
}

void main();
