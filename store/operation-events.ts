// Which merchant event each recorded money outcome emits, and the event's data: decided once here,
// used by the money activities (in the operation's transaction) and by the API's IPN handler.
import { formatDecimal } from '../fps/money';
import type { EventWrite } from './ledger';
import type { OperationRow } from './schema';

/** The event a money operation's outcome emits, if any. */
export function moneyEventType(operation: string, status: string): string | undefined {
  const ok = status === 'Success' || status === 'Reserved';
  const failed = status === 'Failure' || status === 'Declined' || status === 'Cancelled';
  switch (operation) {
    case 'purchase':
    case 'reserve':
      return status === 'Pending'
        ? 'purchase.pending'
        : ok
          ? 'purchase.approved'
          : failed
            ? 'purchase.declined'
            : undefined;
    case 'refund':
      return ok ? 'refund.succeeded' : failed ? 'refund.failed' : undefined;
    case 'fund':
      return ok ? 'funding.succeeded' : failed ? 'funding.failed' : undefined;
    case 'settle':
      return ok ? 'settlement.succeeded' : failed ? 'settlement.failed' : undefined;
    case 'writeOff':
      return ok ? 'debt.written_off' : undefined;
    case 'capture':
      return ok ? 'capture.succeeded' : undefined;
    case 'void':
      return status === 'Cancelled' || ok ? 'void.succeeded' : undefined;
    default:
      return undefined;
  }
}

/** The API's rendering of a recorded operation (decimal strings at the wire). */
export function operationData(row: Omit<OperationRow, 'counted_at'>): Record<string, unknown> {
  return {
    id: row.operation_id,
    operation: row.operation,
    amount: { amount: formatDecimal(row.amount, row.currency), currency: row.currency },
    status: row.status,
    transactionId: row.transaction_id ?? undefined,
    callerReference: row.caller_reference,
    declineCode: row.decline_code ?? undefined,
    declineReason: row.decline_reason ?? undefined,
    parentOperationId: row.parent_operation_id ?? undefined,
    description: row.description ?? undefined,
  };
}

export function eventsFor(row: Omit<OperationRow, 'counted_at'>): EventWrite[] {
  const type = moneyEventType(row.operation, row.status);
  if (!type) return [];
  return [
    {
      type,
      instrumentId: row.instrument_id,
      customerId: row.customer_id,
      eventKey: `${row.operation}:${row.operation_id}:${type}`,
      data: operationData(row),
    },
  ];
}
