// What FPS sends back: the buyer's return from the Co-Branded UI (GET /fps/return) and Instant
// Payment Notifications (POST /fps/ipn). Nothing reaches a workflow unless its RSA-SHA1 signature
// verifies against an allow-listed certificate; the workflow then gets a signal, which it
// deduplicates, so redelivery is harmless.
import express from 'express';
import { z } from 'zod';
import { CbuiReturnError, parseCbuiReturn } from '../../fps/cbui';
import { IpnError, parseIpn } from '../../fps/ipn';
import {
  authorizationReturnedSignal,
  transactionStatusChangedSignal,
  type AuthorizationReturn,
  type TransactionStatusNotification,
} from '../../workflows/messages';
import { instrumentIdOfCallerReference, ipnUrlFor, PIPELINE_BY_TYPE, returnUrlFor } from '../authorization';
import { flatParams, type ApiContext } from '../context';
import { ProblemError } from '../problem';
import { route, type RouteSpec } from '../route';
import { eventsFor } from '../../store/operation-events';

/** Parameters of a return or IPN are free-form strings; the signature and parsers decide. */
const CallbackParams = z.record(z.string(), z.string());

export function fpsCallbackRoutes(ctx: ApiContext): RouteSpec[] {
  const { cfg, logger, verifier, instruments, ledger } = ctx;

  return [
    route({
      method: 'get',
      path: '/fps/return',
      operationId: 'fpsReturn',
      summary: 'Return URL of the Co-Branded UI (the buyer’s browser comes back here)',
      description:
        'Verifies the RSA-SHA1 signature (certificate from an allow-listed URL), finds the instrument from the CallerReference prefix, ' +
        'signals authorizationReturned and redirects the buyer to the storefront (or the returnTo given at creation) with ' +
        '`?instrument=<id>&authorization=<authorized|aborted|failed>`.',
      tag: 'fps callbacks',
      security: 'fpsSignature',
      query: {
        status: {
          schema: z.string(),
          required: true,
          description: 'SA/SB/SC success, A aborted, CE/NP/NM/PE/SE failure',
        },
        callerReference: { schema: z.string(), description: 'SingleUse (and aborts)' },
        callerReferenceSender: { schema: z.string(), description: 'SetupPrepaid / SetupPostpaid' },
        signature: { schema: z.string(), required: true },
        signatureVersion: { schema: z.string(), required: true },
        signatureMethod: { schema: z.string(), required: true },
        certificateUrl: { schema: z.string(), required: true },
      },
      responses: {
        303: {
          description: 'Signalled; redirect to the storefront',
          headers: { Location: 'returnTo?instrument=…&authorization=…' },
        },
        400: 'Signature not verified (callback_unverified), or verified but unusable parameters (callback_invalid); nothing signalled',
        404: 'Verified, but no such instrument',
        409: 'The instrument is closed',
      },
      handler: async (req, res) => {
        const params = flatParams(req.query);
        const verification = await verifier.verify({ httpMethod: 'GET', urlEndPoint: returnUrlFor(cfg), params });
        const callerReference = params.callerReferenceSender || params.callerReference;
        if (!verification.ok) {
          logger.warn(
            { callback: 'return', reason: verification.reason, callerReference },
            'unverified CBUI return rejected',
          );
          throw new ProblemError(
            400,
            'callback_unverified',
            'the return parameters do not carry a valid FPS signature',
          );
        }
        const instrumentId = instrumentIdOfCallerReference(callerReference);
        if (!instrumentId)
          throw new ProblemError(400, 'callback_invalid', 'the return names no instrument CallerReference', {
            field: 'callerReference',
          });
        res.locals.instrumentId = instrumentId;

        const instrument = await instruments.describe(instrumentId);
        if (instrument.status !== 'RUNNING')
          throw new ProblemError(409, 'instrument_closed', `instrument ${instrumentId} is closed`);
        const pipeline = instrument.type && PIPELINE_BY_TYPE[instrument.type];
        if (!pipeline) throw new Error(`instrument ${instrumentId} has no InstrumentType search attribute`);
        let authorization: AuthorizationReturn;
        try {
          authorization = parseCbuiReturn(pipeline, params);
        } catch (e) {
          if (e instanceof CbuiReturnError)
            throw new ProblemError(400, 'callback_invalid', e.message, { field: e.parameter });
          throw e;
        }
        await ledger?.recordCallback({
          kind: 'return',
          instrumentId,
          callerReference,
          status: authorization.status,
          parameters: params,
        });
        await instruments.signal(instrumentId, authorizationReturnedSignal, authorization);
        logger.info(
          { instrumentId, callerReference, outcome: authorization.outcome, status: authorization.status },
          'authorization returned',
        );

        const returnTo = instrument.memo.returnTo ?? '/';
        const target = new URL(returnTo, cfg.api.publicUrl);
        target.searchParams.set('instrument', instrumentId);
        target.searchParams.set('authorization', authorization.outcome);
        // A path stays relative: the buyer stays on the host FPS returned them to.
        res.redirect(303, returnTo.startsWith('/') ? `${target.pathname}${target.search}` : target.href);
      },
    }),
    route({
      method: 'post',
      path: '/fps/ipn',
      operationId: 'fpsIpn',
      summary: 'Instant Payment Notification endpoint (FPS POSTs transaction status changes)',
      description:
        'Verifies the signature, parses the notification and signals transactionStatusChanged to the instrument named by the CallerReference prefix. ' +
        'Answers 200 for an IPN about an instrument this merchant does not have (logged; FPS would otherwise retry it forever), ' +
        '503 when Temporal cannot be reached (FPS retries later).',
      tag: 'fps callbacks',
      security: 'fpsSignature',
      before: [express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 100 })],
      body: { schema: CallbackParams, contentType: 'application/x-www-form-urlencoded', required: true },
      responses: {
        200: { description: 'Accepted (signalled, or acknowledged and logged when no instrument matches)' },
        400: 'Verified but unparsable (callback_invalid)',
        403: 'Signature not verified (callback_unverified); nothing signalled',
        415: 'Not application/x-www-form-urlencoded',
        503: 'Temporal unreachable; FPS retries',
      },
      handler: async (req, res) => {
        if (!req.is('application/x-www-form-urlencoded')) {
          throw new ProblemError(415, 'unsupported_media_type', 'IPNs are application/x-www-form-urlencoded');
        }
        const params = flatParams(req.body);
        const verification = await verifier.verify({ httpMethod: 'POST', urlEndPoint: ipnUrlFor(cfg), params });
        if (!verification.ok) {
          logger.warn(
            {
              callback: 'ipn',
              reason: verification.reason,
              callerReference: params.callerReference,
              transactionId: params.transactionId,
            },
            'unverified IPN rejected',
          );
          throw new ProblemError(403, 'callback_unverified', 'the notification does not carry a valid FPS signature');
        }
        let notification: TransactionStatusNotification;
        try {
          const ipn = parseIpn(params);
          notification =
            ipn.notificationType === 'TransactionStatus'
              ? ipn
              : // No transaction: the workflow's contract still wants the fields; a cancelled token reads as Cancelled.
                {
                  ...ipn,
                  transactionId: '',
                  transactionStatus: 'Cancelled',
                  callerReference: ipn.callerReference ?? '',
                };
        } catch (e) {
          if (e instanceof IpnError) throw new ProblemError(400, 'callback_invalid', e.message, { field: e.parameter });
          throw e;
        }
        const { callerReference, transactionId, transactionStatus } = notification;
        const instrumentId = instrumentIdOfCallerReference(callerReference);
        res.locals.instrumentId = instrumentId;
        const fields = {
          instrumentId,
          callerReference,
          transactionId,
          transactionStatus,
          notificationType: notification.notificationType,
        };
        await ledger?.recordCallback({
          kind: 'ipn',
          instrumentId,
          callerReference,
          transactionId,
          status: transactionStatus,
          parameters: params,
        });
        // The record learns a Pending operation's outcome here; the workflow learns it from the signal.
        if (ledger && notification.notificationType === 'TransactionStatus' && transactionStatus !== 'Pending') {
          await ledger.resolveOperation(callerReference, transactionStatus, eventsFor);
          ctx.onEventQueued?.();
        }
        if (!instrumentId) {
          logger.warn(fields, 'IPN names no instrument; acknowledged');
          res.json({ received: true, signalled: false });
          return;
        }
        try {
          await instruments.signal(instrumentId, transactionStatusChangedSignal, notification);
        } catch (e) {
          if (e instanceof ProblemError && (e.code === 'instrument_not_found' || e.code === 'instrument_closed')) {
            logger.warn(fields, 'IPN for an unknown or closed instrument; acknowledged');
            res.json({ received: true, signalled: false });
            return;
          }
          throw e;
        }
        logger.info(fields, 'IPN signalled');
        res.json({ received: true, signalled: true });
      },
    }),
  ];
}
