// The API's shapes as TypeScript types, inferred from the server's zod schemas with type-only
// imports: nothing of api/ is loaded at run time, and the two sides cannot drift.
import type { z } from 'zod';
import type * as s from '../api/schemas';
import type * as w from '../api/webhook-schemas';

/** Requests are what the schemas accept (z.input), answers what the API sends (z.output). */
export type CreateInstrumentRequest = z.input<typeof s.CreateInstrumentRequest>;
export type PurchaseRequest = Omit<z.input<typeof s.PurchaseRequest>, 'purchaseId'>;
export type FundRequest = z.input<typeof s.FundRequest>;
export type SettleRequest = z.input<typeof s.SettleRequest>;
export type WriteOffRequest = z.input<typeof s.WriteOffRequest>;
export type RefundRequest = z.input<typeof s.RefundRequest>;
export type CaptureRequest = z.input<typeof s.CaptureRequest>;
export type CloseRequest = z.input<typeof s.CloseRequest>;
export type UpdateInstrumentRequest = z.input<typeof s.UpdateInstrumentRequest>;

export type Money = z.output<typeof s.Money>;
export type RecordedMoney = z.output<typeof s.RecordedMoney>;
export type Problem = z.output<typeof s.ProblemSchema>;
export type CreatedInstrument = z.output<typeof s.CreatedInstrument>;
export type Instrument = z.output<typeof s.InstrumentSchema>;
export type InstrumentList = z.output<typeof s.InstrumentList>;
export type OperationResult = z.output<typeof s.OperationResultSchema> & { statusUrl?: string };
export type PurchaseRecord = z.output<typeof s.PurchaseRecord>;
export type RecordedOperation = z.output<typeof s.RecordedOperationSchema>;
export type TransactionPage = z.output<typeof s.TransactionPage>;
export type Statement = z.output<typeof s.StatementSchema>;
export type CustomerStatement = z.output<typeof s.CustomerStatementSchema>;
export type OperationKind = z.output<typeof s.OperationKind>;
export type RecordedStatus = z.output<typeof s.RecordedStatus>;

export type EventType = z.output<typeof w.EventType>;
export type CreateWebhookEndpointRequest = z.input<typeof w.CreateWebhookEndpointRequest>;
export type WebhookEndpoint = z.output<typeof w.WebhookEndpoint>;
export type CreatedWebhookEndpoint = z.output<typeof w.CreatedWebhookEndpoint>;
export type WebhookEndpointList = z.output<typeof w.WebhookEndpointList>;
export type WebhookEvent = z.output<typeof w.Event>;
export type EventList = z.output<typeof w.EventList>;
export type EventWithDeliveries = z.output<typeof w.EventWithDeliveries>;
