// The workflow's messages: queries, signals and Updates, each Update with its validator (shape
// checks first, then whether the machine would take it; a maybe-recorded retry is left to the handler).
import { log, setHandler } from '@temporalio/workflow';
import { isFinal, operationRef } from '../../machines';
import {
  authorizationReturnedSignal,
  captureUpdate,
  closeUpdate,
  fundUpdate,
  purchaseUpdate,
  refundUpdate,
  setBalanceRulesUpdate,
  settleUpdate,
  snapshotQuery,
  operationResultQuery,
  transactionStatusChangedSignal,
  UpdateRejection,
  voidUpdate,
  writeOffUpdate,
  type PurchaseResult,
} from '../messages';
import { rejection, requireId, requireAmount, requireRequest, balanceRulesProblem } from './validation';

import type { Instrument } from './main-loop';

export function listen(instrument: Instrument): void {
  setHandler(snapshotQuery, () => instrument.describe());
  setHandler(operationResultQuery, ({ operation, id }) => {
    if (operation === 'close') return null; // close answers with the instrument's state, not a record
    const entry = instrument.processed.get(operationRef(operation, id));
    return entry ? instrument.resultOf(entry) : null;
  });

  setHandler(authorizationReturnedSignal, async (ret) => {
    if (instrument.authorizationReceived || instrument.state !== 'awaitingAuthorization') {
      log.info('authorization return ignored: already received', {
        instrumentId: instrument.id,
        state: instrument.state,
      });
      return;
    }
    instrument.authorizationReceived = true;
    await instrument.lock.run(() => instrument.authorize(ret));
  });

  setHandler(transactionStatusChangedSignal, (notification) => instrument.onNotification(notification));

  setHandler(
    purchaseUpdate,
    (req) =>
      instrument.operation(
        operationRef('purchase', req.purchaseId),
        req.amount,
        (askRecord) => instrument.purchase(req, askRecord),
        () => instrument.purchaseAsksRecordItself(req),
      ) as Promise<PurchaseResult>,
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.purchaseId, 'purchaseId');
        const ref = operationRef('purchase', req.purchaseId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        requireAmount(req.amount);
        instrument.requireCurrency(req.currency);
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed({ type: 'PURCHASE', ref, amount: req.amount }, 'purchase'),
        );
      },
    },
  );

  setHandler(
    fundUpdate,
    (req) => instrument.operation(operationRef('fund', req.fundingId), req.amount, () => instrument.fund(req)),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.fundingId, 'fundingId');
        const ref = operationRef('fund', req.fundingId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        requireAmount(req.amount);
        instrument.requireCurrency(req.currency);
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed({ type: 'FUND', ref, amount: req.amount }, 'fund'),
        );
      },
    },
  );

  setHandler(
    settleUpdate,
    (req) =>
      instrument.operation(operationRef('settle', req.settlementId), req.amount, () =>
        instrument.settle(req.settlementId, req.amount),
      ),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.settlementId, 'settlementId');
        const ref = operationRef('settle', req.settlementId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        if (req.amount !== undefined) requireAmount(req.amount);
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed(instrument.settleEvent(ref, req.amount), 'settle'),
        );
      },
    },
  );

  setHandler(
    writeOffUpdate,
    (req) =>
      instrument.operation(operationRef('writeOff', req.writeOffId), req.amount, () =>
        instrument.writeOff(req.writeOffId, req.amount),
      ),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.writeOffId, 'writeOffId');
        const ref = operationRef('writeOff', req.writeOffId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        if (req.amount !== undefined) requireAmount(req.amount);
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed(instrument.writeOffEvent(ref, req.amount), 'write off'),
        );
      },
    },
  );

  setHandler(
    refundUpdate,
    (req) => instrument.operation(operationRef('refund', req.refundId), req.amount, () => instrument.refund(req)),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.refundId, 'refundId');
        requireId(req.purchaseId, 'purchaseId');
        const ref = operationRef('refund', req.refundId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        if (req.amount !== undefined) requireAmount(req.amount);
        // A purchase beyond the window is looked up in the record by the handler.
        if (instrument.mayBeRecorded(operationRef('purchase', req.purchaseId))) return;
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed(instrument.refundEvent(ref, req.purchaseId, req.amount).event, 'refund'),
        );
      },
    },
  );

  setHandler(
    captureUpdate,
    (req) => instrument.operation(operationRef('capture', req.captureId), req.amount, () => instrument.capture(req)),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.captureId, 'captureId');
        const ref = operationRef('capture', req.captureId);
        if (instrument.isDuplicate(ref, req.amount)) return;
        if (req.amount !== undefined) requireAmount(req.amount);
        instrument.checkUnlessMaybeRecorded(ref, () =>
          instrument.requireAllowed(instrument.captureEvent(ref, req.amount), 'capture'),
        );
      },
    },
  );

  setHandler(
    voidUpdate,
    (req) => instrument.operation(operationRef('void', req.voidId), undefined, () => instrument.void(req)),
    {
      validator: (req) => {
        requireRequest(req);
        requireId(req.voidId, 'voidId');
        const ref = operationRef('void', req.voidId);
        if (instrument.isDuplicate(ref)) return;
        instrument.checkUnlessMaybeRecorded(ref, () => instrument.requireAllowed({ type: 'VOID', ref }, 'void'));
      },
    },
  );

  // Not under the lock: rules change at once, between operations' steps; the machine counts crossings from here on.
  setHandler(setBalanceRulesUpdate, (change) => instrument.setBalanceRules(change), {
    validator: (change) => {
      const problem = balanceRulesProblem(change);
      if (problem) throw rejection(UpdateRejection.InvalidRequest, problem);
      if (instrument.kind !== 'prepaid')
        throw rejection(UpdateRejection.InvalidRequest, 'balance rules apply to prepaid instruments only');
      if (isFinal(instrument.snapshot))
        throw rejection(
          UpdateRejection.InvalidState,
          `cannot change balance rules: the instrument is ${instrument.state}`,
        );
      if (!instrument.snapshot.can({ type: 'SET_BALANCE_RULES', ...change }))
        throw rejection(UpdateRejection.InvalidRequest, 'invalid balance rules');
    },
  });

  setHandler(closeUpdate, (req) => instrument.lock.run(async () => instrument.close(req)), {
    validator: (req) => {
      requireRequest(req);
      if (req.reason !== undefined && typeof req.reason !== 'string')
        throw rejection(UpdateRejection.InvalidRequest, 'reason must be a string');
      if (isFinal(instrument.snapshot)) return; // closing a finished instrument answers its final state
      instrument.requireAllowed({ type: 'CLOSE', reason: req.reason }, 'close');
    },
  });
}
