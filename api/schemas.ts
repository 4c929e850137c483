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

export const CreateInstrumentRequest = named(
  'CreateInstrumentRequest',
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('prepaid'), fundingAmount: DecimalAmount, ...instrumentCommon }),
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
