// Request and response shapes of the merchant API, in zod: the one source for validating requests
// (api/validate.ts) and for the OpenAPI document (api/openapi.ts). Amounts travel as decimal
// strings ("12.50") with a currency; api/money.ts turns them into minor units once, at the edge.
import { z } from 'zod';
import { CURRENCY_EXPONENTS } from '../fps/money';
import { INSTRUMENT_TYPES } from '../workflows/messages';

/** Named schemas, emitted as OpenAPI components. */
export const apiSchemas = z.registry<{ id: string; description?: string }>();
function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  apiSchemas.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

// ---- building blocks -------------------------------------------------------------------------

/** Ids that travel in URLs, CallerReferences and visibility queries: no ':', quotes or spaces. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export const CustomerId = z
  .string()
  .min(1)
  .max(64)
  .regex(SAFE_ID, 'letters, digits, "_", "." and "-", starting with a letter or digit')
  .meta({ description: "The merchant's id for the customer", example: 'cust-1001' });

export const InstrumentId = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-"')
  .meta({
    description: 'Instrument id, as returned when the instrument was created',
    example: 'ins_k3m9q2x7b4t6w8z5c2d4',
  });

/** Idempotency keys double as operation ids inside CallerReferences (`<instrument>:pay:<id>`). */
export const OperationId = z
  .string()
  .min(1)
  .max(64)
  .regex(SAFE_ID, 'printable: letters, digits, "_", "." and "-", starting with a letter or digit');

export const Currency = z
  .enum(Object.keys(CURRENCY_EXPONENTS) as [string, ...string[]])
  .meta({ description: 'ISO 4217 code; FPS itself settles USD', example: 'USD' });

export const DecimalAmount = z.string().max(24).meta({
  description:
    'A positive decimal string with at most the currency’s decimals, e.g. "12.50". Numbers are refused: money is never a float.',
  example: '12.50',
});

const Description = z.string().max(200);

export const Money = named(
  'Money',
  z.object({
    amount: z.string().meta({ example: '12.50' }),
    minorUnits: z.number().int().meta({ example: 1250 }),
    currency: z.string().meta({ example: 'USD' }),
  }),
  'An amount as a decimal string and as integer minor units (cents)',
);

export const ProblemSchema = named(
  'Problem',
  z.looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string().optional(),
    field: z.string().optional(),
  }),
  'RFC 9457 problem details (application/problem+json)',
);

// ---- instruments -----------------------------------------------------------------------------

/** A path on this site ("/shop/done") or an absolute URL on an allowed origin (checked in routes). */
const ReturnTo = z.string().max(512).meta({
  description: 'Where the buyer lands after authorization: a path on this site, or a URL on an allowed origin',
});

const instrumentCommon = {
  currency: Currency,
  returnTo: ReturnTo.optional(),
  description: Description.optional(),
};

export const AutoTopUpRule = named(
  'AutoTopUpRule',
  z.strictObject({
    below: DecimalAmount.meta({ description: 'Top up when the balance falls below this', example: '5.00' }),
    amount: DecimalAmount.meta({
      description: 'Fund this much, cut to what the SetupPrepaid funding limit leaves room for (skipped when none)',
      example: '20.00',
    }),
  }),
  'Prepaid auto top-up: one FundPrepaid per crossing below `below`',
);

const LowBalanceThreshold = DecimalAmount.meta({
  description: 'One balance.low event each time the balance falls from at least this to below it',
  example: '10.00',
});

export const CreateInstrumentRequest = named(
  'CreateInstrumentRequest',
  z.discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('prepaid'),
      fundingAmount: DecimalAmount,
      lowBalanceThreshold: LowBalanceThreshold.optional(),
      autoTopUp: AutoTopUpRule.optional(),
      ...instrumentCommon,
    }),
    z.strictObject({
      type: z.literal('postpaid'),
      creditLimit: DecimalAmount,
      globalAmountLimit: DecimalAmount,
      ...instrumentCommon,
    }),
    z.strictObject({
      type: z.literal('single-use'),
      amount: DecimalAmount,
      singleUseMode: z.enum(['pay', 'reserve']).optional(),
      ...instrumentCommon,
    }),
  ]),
);
export type CreateInstrumentRequest = z.infer<typeof CreateInstrumentRequest>;

export const InstrumentLinks = z.object({
  self: z.string(),
  purchases: z.string(),
  temporalUi: z.string(),
});

export const CreatedInstrument = named(
  'CreatedInstrument',
  z.object({
    instrumentId: z.string(),
    workflowId: z.string(),
    customerId: z.string(),
    type: z.enum(INSTRUMENT_TYPES as [string, ...string[]]),
    state: z.string(),
    authorizationUrl: z
      .string()
      .meta({ description: 'Send the buyer here (the FPS Co-Branded UI) to authorize the instrument' }),
    links: InstrumentLinks,
  }),
);

export const TransactionSchema = named(
  'Transaction',
  z.object({
    id: z.string(),
    operation: z.string(),
    amount: Money,
    callerReference: z.string(),
    transactionId: z.string().optional(),
    status: z.string().meta({ description: 'Success, Pending, Failure, Reserved, Cancelled, Declined or Unknown' }),
    reason: z.object({ code: z.string(), message: z.string() }).optional(),
    at: z.string().meta({ description: 'ISO 8601 time (workflow time)' }),
    refunded: Money.optional(),
  }),
);

export const UpdateInstrumentRequest = named(
  'UpdateInstrumentRequest',
  z
    .strictObject({
      lowBalanceThreshold: LowBalanceThreshold.nullable().optional(),
      autoTopUp: AutoTopUpRule.nullable().optional(),
    })
    .refine((body) => body.lowBalanceThreshold !== undefined || body.autoTopUp !== undefined, {
      message: 'send lowBalanceThreshold or autoTopUp (null removes a rule)',
    }),
  'Prepaid balance rules to change: a field sent replaces the rule, null removes it, a field left out keeps it',
);
export type UpdateInstrumentRequest = z.infer<typeof UpdateInstrumentRequest>;

export const BalanceRulesSchema = named(
  'BalanceRules',
  z.object({
    lowBalanceThreshold: Money.optional(),
    autoTopUp: z.object({ below: Money, amount: Money }).optional(),
    lowBalanceCrossings: z.number().int().meta({ description: 'Times the balance fell below lowBalanceThreshold' }),
    autoTopUpCrossings: z.number().int().meta({ description: 'Times the balance fell below autoTopUp.below' }),
  }),
  'Prepaid balance rules in force',
);

export const InstrumentSchema = named(
  'Instrument',
  z.object({
    instrumentId: z.string(),
    workflowId: z.string(),
    customerId: z.string(),
    type: z.string(),
    state: z.string(),
    currency: z.string(),
    balance: Money.optional(),
    debt: Money.optional(),
    creditLimit: Money.optional(),
    globalAmountLimit: Money.optional(),
    totalCharged: Money.optional(),
    amount: Money.optional(),
    pending: z.array(TransactionSchema),
    transactions: z.array(TransactionSchema),
    purchasesApproved: z.number().int(),
    continueAsNewCount: z.number().int(),
    balanceRules: BalanceRulesSchema.optional(),
    temporalUiUrl: z.string(),
    links: InstrumentLinks,
  }),
);

export const InstrumentSummary = named(
  'InstrumentSummary',
  z.object({
    instrumentId: z.string(),
    workflowId: z.string(),
    type: z.string().optional(),
    state: z.string().optional(),
    status: z.string().meta({ description: 'Temporal execution status: RUNNING, COMPLETED, ...' }),
    createdAt: z.string(),
    links: z.object({ self: z.string() }),
  }),
);

export const InstrumentList = named(
  'InstrumentList',
  z.object({ customerId: z.string(), instruments: z.array(InstrumentSummary) }),
);

// ---- operations ------------------------------------------------------------------------------

const optionalAmount = { amount: DecimalAmount.optional(), currency: Currency.optional() };

export const PurchaseRequest = named(
  'PurchaseRequest',
  z.strictObject({
    purchaseId: OperationId.optional().meta({
      description: 'Defaults to the Idempotency-Key header; one of them is required for safe retries',
    }),
    amount: DecimalAmount,
    currency: Currency,
    description: Description.optional(),
  }),
);
export const FundRequest = named('FundRequest', z.strictObject({ amount: DecimalAmount, currency: Currency }));
export const SettleRequest = named(
  'SettleRequest',
  z.strictObject({ ...optionalAmount }),
  'Without an amount, the whole debt',
);
export const WriteOffRequest = named(
  'WriteOffRequest',
  z.strictObject({ ...optionalAmount }),
  'Without an amount, the whole debt',
);
export const RefundRequest = named(
  'RefundRequest',
  z.strictObject({ purchaseId: OperationId, ...optionalAmount }),
  'Without an amount, everything still refundable',
);
export const CaptureRequest = named(
  'CaptureRequest',
  z.strictObject({ ...optionalAmount }),
  'Without an amount, the whole reserved amount',
);
export const VoidRequest = named('VoidRequest', z.strictObject({}));
export const CloseRequest = named('CloseRequest', z.strictObject({ reason: Description.optional() }));

export const OperationResultSchema = named(
  'OperationResult',
  z.object({
    instrumentId: z.string(),
    id: z.string(),
    operation: z.string(),
    outcome: z.enum(['approved', 'declined', 'pending']),
    amount: Money,
    callerReference: z.string().optional(),
    transactionId: z.string().optional(),
    transactionStatus: z.string().optional(),
    reason: z.object({ code: z.string(), message: z.string() }).optional(),
    state: z.string(),
    links: z.object({
      instrument: z.string(),
      self: z.string().optional().meta({ description: 'purchases: this purchase, to follow a Pending one' }),
    }),
  }),
);

// ---- the record (ledger) ---------------------------------------------------------------------

/** The record's money: a decimal string and its currency (a running figure may be negative). */
export const RecordedMoney = named(
  'RecordedMoney',
  z.object({ amount: z.string().meta({ example: '12.50' }), currency: z.string().meta({ example: 'USD' }) }),
  'An amount from the record as a decimal string with its currency',
);

export const OperationKind = z
  .enum(['purchase', 'refund', 'fund', 'settle', 'writeOff', 'reserve', 'capture', 'void'])
  .meta({ description: 'The money operation' });

export const RecordedStatus = z
  .enum(['Pending', 'Reserved', 'Success', 'Failure', 'Cancelled', 'Declined'])
  .meta({ description: 'FPS TransactionStatus; Declined when FPS refused the call' });

export const RecordedOperationSchema = named(
  'RecordedOperation',
  z.object({
    id: z.string().meta({ description: 'The operation id (purchase id, Idempotency-Key, or the workflow’s wf:… id)' }),
    operation: OperationKind,
    amount: RecordedMoney,
    status: RecordedStatus,
    transactionId: z.string().optional(),
    callerReference: z.string(),
    declineCode: z.string().optional(),
    declineReason: z.string().optional(),
    parentOperationId: z.string().optional().meta({ description: 'Refunds: the purchase refunded' }),
    description: z.string().optional(),
    instrumentId: z.string(),
    customerId: z.string(),
    instrumentType: z.string(),
    refundedAmount: RecordedMoney.optional().meta({ description: 'Purchases and captures: refunded so far' }),
    createdAt: z.string().meta({ description: 'ISO 8601: when the operation was first recorded' }),
    updatedAt: z.string().meta({ description: 'ISO 8601: its last change (e.g. Pending → Success)' }),
  }),
  'One operation as the record holds it',
);

export const TransactionPage = named(
  'TransactionPage',
  z.object({
    data: z.array(RecordedOperationSchema),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'Pass as `cursor` for the next (older) page; null on the last page' }),
  }),
);

export const PurchaseRecord = named(
  'PurchaseRecord',
  OperationResultSchema.extend({
    description: z.string().optional(),
    refundedAmount: Money,
    refunds: z.array(RecordedOperationSchema),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
  }),
  'A purchase with what has been refunded of it',
);

export const StatementLineSchema = named(
  'StatementLine',
  z.object({
    date: z.string().meta({ description: 'ISO 8601 time the operation was recorded' }),
    operation: OperationKind,
    id: z.string(),
    amount: RecordedMoney,
    status: RecordedStatus,
    transactionId: z.string().optional(),
    description: z.string().optional(),
    balance: RecordedMoney.optional().meta({ description: 'Prepaid: the balance after this line' }),
    debt: RecordedMoney.optional().meta({ description: 'Postpaid: the debt after this line' }),
  }),
);

export const StatementSchema = named(
  'Statement',
  z.object({
    instrumentId: z.string(),
    customerId: z.string().optional(),
    type: z.string(),
    currency: z.string(),
    from: z.string().nullable().meta({ description: 'First day (UTC), or null: since the first record' }),
    to: z.string().nullable().meta({ description: 'Last day (UTC, inclusive), or null: up to now' }),
    openingBalance: RecordedMoney.optional(),
    closingBalance: RecordedMoney.optional(),
    openingDebt: RecordedMoney.optional(),
    closingDebt: RecordedMoney.optional(),
    lines: z.array(StatementLineSchema),
    totals: z.record(z.string(), RecordedMoney).meta({ description: 'Successful amounts in the period by operation' }),
  }),
  'Prepaid instruments carry openingBalance/closingBalance, postpaid ones openingDebt/closingDebt',
);

export const CustomerStatementSchema = named(
  'CustomerStatement',
  z.object({
    customerId: z.string(),
    month: z.string(),
    from: z.string(),
    to: z.string(),
    instruments: z.array(StatementSchema),
  }),
  "A month across the customer's instruments, one statement per instrument",
);

export const StatementCsv = z.string().meta({
  description:
    'CSV: a header row (instrument_id,instrument_type,date,operation,id,status,amount,currency,running,transaction_id,description), ' +
    'an opening row, one row per line, a closing row',
});

/** Query parameters of the record's reads (each parsed from its string; a failure is 400 naming it). */
export const PageLimit = z.coerce.number().int().min(1).max(500).meta({ description: '1–500, default 50' });
export const PageCursor = z.string().min(1).max(512).meta({ description: 'The previous page’s nextCursor' });
export const TimeBound = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })])
  .meta({ description: 'A UTC date (YYYY-MM-DD) or an ISO 8601 date-time with Z or an offset', example: '2026-01-31' });
export const StatementDay = z.iso.date().meta({ description: 'A UTC date, YYYY-MM-DD', example: '2026-01-31' });
export const StatementMonth = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'a month, YYYY-MM')
  .meta({ description: 'A UTC month, YYYY-MM', example: '2026-01' });
export const StatementFormat = z
  .enum(['json', 'csv'])
  .meta({ description: 'Overrides the Accept header (handy for download links)' });

// ---- storefront backend ----------------------------------------------------------------------

export const StoreCreateInstrumentRequest = named(
  'StoreCreateInstrumentRequest',
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('prepaid'), fundingAmount: DecimalAmount }),
    z.strictObject({ type: z.literal('postpaid'), creditLimit: DecimalAmount }),
  ]),
);
export const StorePurchaseRequest = named('StorePurchaseRequest', z.strictObject({ itemId: z.string().max(40) }));
export const CatalogueItem = named(
  'CatalogueItem',
  z.object({ id: z.string(), name: z.string(), price: Money, note: z.string().optional() }),
);
export const StoreSession = named(
  'StoreSession',
  z.object({
    customerId: z.string(),
    catalogue: z.array(CatalogueItem),
    instruments: z.array(InstrumentSummary),
    temporalUiUrl: z.string(),
  }),
);

// ---- service ---------------------------------------------------------------------------------

export const Health = named(
  'Health',
  z.object({ status: z.enum(['ok', 'unavailable']), temporal: z.string().optional() }),
);

/** Optional Idempotency-Key header; becomes the operation id. */
export const IdempotencyKeyHeader = OperationId.meta({
  description:
    'Makes the POST safe to retry: the same key returns the same result and moves money once. Printable, at most 64 characters of [A-Za-z0-9_.-].',
  example: 'order-1001',
});
