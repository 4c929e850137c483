// Every Query API action of the sandbox against a real sandbox process: the happy path and each
// error code the action can answer, through fps/client.ts as a merchant would call it.
import assert from 'node:assert/strict';
import type { FpsClient } from '../../fps/client';
import {
  approvePostpaid,
  approvePrepaid,
  approveSingleUse,
  expectFpsError,
  fundedPrepaid,
  OTHER_ACCESS_KEY_ID,
  OTHER_SECRET_KEY,
  ref,
  startSandbox,
  usd,
  type TestSandbox,
} from './support';

describe('sandbox actions (real process)', function () {
  this.timeout(30_000);
  let sb: TestSandbox;
  let other: FpsClient;

  before(async () => {
    sb = await startSandbox({ name: 'actions' });
    other = sb.client({ accessKeyId: OTHER_ACCESS_KEY_ID, secretKey: OTHER_SECRET_KEY });
  });
  after(async () => sb?.stop());

  const balance = async (prepaidInstrumentId: string) =>
    (await sb.call('GetPrepaidBalance', { prepaidInstrumentId })).availableBalance.amount;
  const debt = async (creditInstrumentId: string) =>
    (await sb.call('GetDebtBalance', { creditInstrumentId })).availableBalance.amount;

  describe('Pay', () => {
    it('charges a single-use token once, up to the authorized amount', async () => {
      const { tokenId } = await approveSingleUse(sb, usd('10.00'));
      await expectFpsError(
        sb.call('Pay', { senderTokenId: tokenId, transactionAmount: usd('10.01'), callerReference: ref('pay') }),
        'TokenUsageError',
      );
      const paid = await sb.call('Pay', {
        senderTokenId: tokenId,
        transactionAmount: usd('9.50'),
        callerReference: ref('pay'),
      });
      assert.equal(paid.transactionStatus, 'Success');
      assert.match(paid.transactionId, /^[0-9A-Z]{35}$/);
      assert.ok(paid.requestId);
      await expectFpsError(
        sb.call('Pay', { senderTokenId: tokenId, transactionAmount: usd('0.50'), callerReference: ref('pay') }),
        'SameTokenIdUsedMultipleTimes',
      );
    });

    it('pays from a prepaid balance and refuses what it does not cover', async () => {
      const prepaid = await fundedPrepaid(sb, usd('50.00'));
      const paid = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('20.00'),
        callerReference: ref('pay'),
      });
      assert.equal(paid.transactionStatus, 'Success');
      assert.equal(await balance(prepaid.instrumentId), 3000);
      await expectFpsError(
        sb.call('Pay', {
          senderTokenId: prepaid.senderTokenId,
          transactionAmount: usd('30.01'),
          callerReference: ref('pay'),
        }),
        'InsufficientBalance',
      );
      assert.equal(await balance(prepaid.instrumentId), 3000);
    });

    it('adds debt on a credit instrument within creditLimit and globalAmountLimit', async () => {
      const credit = await approvePostpaid(sb, usd('100.00'), usd('150.00'));
      const pay = (amount: string) =>
        sb.call('Pay', {
          senderTokenId: credit.senderTokenId,
          transactionAmount: usd(amount),
          callerReference: ref('pay'),
        });
      assert.equal((await pay('60.00')).transactionStatus, 'Success');
      assert.equal(await debt(credit.instrumentId), 6000);
      await expectFpsError(pay('40.01'), 'AccountLimitsExceeded');
      await sb.call('SettleDebt', {
        creditInstrumentId: credit.instrumentId,
        senderTokenId: credit.settlementTokenId,
        settlementAmount: usd('60.00'),
        callerReference: ref('settle'),
      });
      assert.equal((await pay('50.00')).transactionStatus, 'Success');
      // Debt 50 + 41 is within the credit limit, but 110 + 41 charged exceeds the global limit.
      await expectFpsError(pay('41.00'), 'TokenUsageError');
      assert.equal((await pay('40.00')).transactionStatus, 'Success');
    });

    it('refuses unknown, foreign, cancelled and non-sender tokens', async () => {
      const prepaid = await fundedPrepaid(sb, usd('10.00'));
      const pay = (client: FpsClient, senderTokenId: string) =>
        client.call('Pay', { senderTokenId, transactionAmount: usd('1.00'), callerReference: ref('pay') });
      await expectFpsError(pay(sb.fps, 'NO-SUCH-TOKEN'), 'InvalidTokenId_Sender');
      await expectFpsError(pay(other, prepaid.senderTokenId), 'InvalidTokenId_Sender');
      await expectFpsError(pay(sb.fps, prepaid.fundingTokenId), 'InvalidTokenId_Sender');
      await sb.call('CancelToken', { tokenId: prepaid.senderTokenId, reasonText: 'buyer closed the account' });
      await expectFpsError(pay(sb.fps, prepaid.senderTokenId), 'TokenNotActive_Sender');
      // The instrument without its sender token takes no more money, but its balance stays readable.
      await expectFpsError(
        sb.call('FundPrepaid', {
          prepaidInstrumentId: prepaid.instrumentId,
          senderTokenId: prepaid.fundingTokenId,
          fundingAmount: usd('1.00'),
          callerReference: ref('fund'),
        }),
        'InactiveInstrument',
      );
      assert.deepEqual(
        (await sb.call('GetPrepaidBalance', { prepaidInstrumentId: prepaid.instrumentId })).availableBalance,
        usd('10.00'),
      );
      assert.equal((await sb.admin(`/admin/prepaid/${prepaid.instrumentId}`)).status, 'Inactive');
    });

    it('rejects zero amounts and other currencies', async () => {
      const prepaid = await fundedPrepaid(sb, usd('10.00'));
      await expectFpsError(
        sb.call('Pay', {
          senderTokenId: prepaid.senderTokenId,
          transactionAmount: { amount: 0, currency: 'USD' },
          callerReference: ref('pay'),
        }),
        'AmountOutOfRange',
      );
      await expectFpsError(
        sb.call('Pay', {
          senderTokenId: prepaid.senderTokenId,
          transactionAmount: { amount: 100, currency: 'EUR' },
          callerReference: ref('pay'),
        }),
        'InvalidParams',
      );
    });

    it('magic amounts: .51 is TransactionDenied, .52 a Failure that moves nothing', async () => {
      const prepaid = await fundedPrepaid(sb, usd('20.00'));
      await expectFpsError(
        sb.call('Pay', {
          senderTokenId: prepaid.senderTokenId,
          transactionAmount: usd('1.51'),
          callerReference: ref('pay'),
        }),
        'TransactionDenied',
      );
      const failed = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('1.52'),
        callerReference: ref('pay'),
      });
      assert.equal(failed.transactionStatus, 'Failure');
      const status = await sb.call('GetTransactionStatus', { transactionId: failed.transactionId });
      assert.equal(status.statusCode, 'PaymentMethodDeclined');
      assert.equal(await balance(prepaid.instrumentId), 2000);
      // A declined single-use payment does not use the token up.
      const { tokenId } = await approveSingleUse(sb, usd('5.00'));
      assert.equal(
        (await sb.call('Pay', { senderTokenId: tokenId, transactionAmount: usd('4.52'), callerReference: ref('pay') }))
          .transactionStatus,
        'Failure',
      );
      assert.equal(
        (await sb.call('Pay', { senderTokenId: tokenId, transactionAmount: usd('4.00'), callerReference: ref('pay') }))
          .transactionStatus,
        'Success',
      );
    });
  });

  describe('Reserve, Settle, Cancel', () => {
    it('reserves on a single-use token and settles part of it under the same TransactionId', async () => {
      const { tokenId } = await approveSingleUse(sb, usd('25.00'));
      const reserved = await sb.call('Reserve', {
        senderTokenId: tokenId,
        transactionAmount: usd('25.00'),
        callerReference: ref('reserve'),
      });
      assert.equal(reserved.transactionStatus, 'Reserved');
      await expectFpsError(
        sb.call('Settle', { reserveTransactionId: reserved.transactionId, transactionAmount: usd('25.01') }),
        'SettleAmountGreaterThanReserveAmount',
      );
      const settled = await sb.call('Settle', {
        reserveTransactionId: reserved.transactionId,
        transactionAmount: usd('20.00'),
      });
      assert.deepEqual([settled.transactionId, settled.transactionStatus], [reserved.transactionId, 'Success']);
      await expectFpsError(
        sb.call('Settle', { reserveTransactionId: reserved.transactionId }),
        'InvalidTransactionState',
      );
      // What can be refunded is what was captured.
      await expectFpsError(
        sb.call('Refund', {
          transactionId: reserved.transactionId,
          refundAmount: usd('20.01'),
          callerReference: ref('refund'),
        }),
        'RefundAmountExceeded',
      );
      const view = await sb.admin(`/admin/transactions/${reserved.transactionId}`);
      assert.deepEqual([view.reservedAmount.amount, view.settledAmount.amount], [2500, 2000]);
    });

    it('settles the whole reserve when no amount is given', async () => {
      const { tokenId } = await approveSingleUse(sb, usd('12.00'));
      const reserved = await sb.call('Reserve', {
        senderTokenId: tokenId,
        transactionAmount: usd('12.00'),
        callerReference: ref('reserve'),
      });
      await sb.call('Settle', { reserveTransactionId: reserved.transactionId });
      assert.equal((await sb.admin(`/admin/transactions/${reserved.transactionId}`)).settledAmount.value, '12.00');
    });

    it('refuses Settle of anything but a Reserved reserve, and Reserve on non-single-use tokens', async () => {
      const prepaid = await fundedPrepaid(sb, usd('10.00'));
      const paid = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('1.00'),
        callerReference: ref('pay'),
      });
      await expectFpsError(sb.call('Settle', { reserveTransactionId: paid.transactionId }), 'InvalidTransactionState');
      await expectFpsError(sb.call('Settle', { reserveTransactionId: 'NOSUCHTRANSACTION' }), 'InvalidTransactionId');
      await expectFpsError(
        sb.call('Reserve', {
          senderTokenId: prepaid.senderTokenId,
          transactionAmount: usd('1.00'),
          callerReference: ref('reserve'),
        }),
        'InvalidTokenId_Sender',
      );
    });

    it('cancels a Reserved transaction once; completed ones cannot be cancelled', async () => {
      const { tokenId } = await approveSingleUse(sb, usd('8.00'));
      const reserved = await sb.call('Reserve', {
        senderTokenId: tokenId,
        transactionAmount: usd('8.00'),
        callerReference: ref('reserve'),
      });
      await expectFpsError(other.call('Cancel', { transactionId: reserved.transactionId }), 'InvalidTransactionId');
      const cancelled = await sb.call('Cancel', { transactionId: reserved.transactionId, description: 'out of stock' });
      assert.deepEqual([cancelled.transactionId, cancelled.transactionStatus], [reserved.transactionId, 'Cancelled']);
      await expectFpsError(sb.call('Cancel', { transactionId: reserved.transactionId }), 'InvalidTransactionState');
      await expectFpsError(
        sb.call('Settle', { reserveTransactionId: reserved.transactionId }),
        'InvalidTransactionState',
      );
      await expectFpsError(
        sb.call('Pay', { senderTokenId: tokenId, transactionAmount: usd('8.00'), callerReference: ref('pay') }),
        'SameTokenIdUsedMultipleTimes',
      );
      const prepaid = await fundedPrepaid(sb, usd('5.00'));
      const paid = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('1.00'),
        callerReference: ref('pay'),
      });
      await expectFpsError(sb.call('Cancel', { transactionId: paid.transactionId }), 'InvalidTransactionState');
    });
  });

  describe('Refund', () => {
    it('refunds in parts back to the prepaid balance, then refuses more', async () => {
      const prepaid = await fundedPrepaid(sb, usd('50.00'));
      const paid = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('30.00'),
        callerReference: ref('pay'),
      });
      const first = await sb.call('Refund', {
        transactionId: paid.transactionId,
        refundAmount: usd('10.00'),
        callerReference: ref('refund'),
      });
      assert.equal(first.transactionStatus, 'Success');
      assert.notEqual(first.transactionId, paid.transactionId);
      assert.equal(await balance(prepaid.instrumentId), 3000);
      await expectFpsError(
        sb.call('Refund', {
          transactionId: paid.transactionId,
          refundAmount: usd('20.01'),
          callerReference: ref('refund'),
        }),
        'RefundAmountExceeded',
      );
      const rest = await sb.call('Refund', { transactionId: paid.transactionId, callerReference: ref('refund') });
      assert.equal(rest.transactionStatus, 'Success');
      assert.equal(await balance(prepaid.instrumentId), 5000);
      await expectFpsError(
        sb.call('Refund', { transactionId: paid.transactionId, callerReference: ref('refund') }),
        'TransactionFullyRefundedAlready',
      );
      await expectFpsError(
        sb.call('Refund', { transactionId: first.transactionId, callerReference: ref('refund') }),
        'TransactionTypeNotRefundable',
      );
      const view = await sb.admin(`/admin/transactions/${paid.transactionId}`);
      assert.equal(view.refundedAmount.amount, 3000);
      assert.equal(view.refunds.length, 2);
    });

    it('refuses refunds of Pending, failed and unknown transactions', async () => {
      const prepaid = await fundedPrepaid(sb, usd('50.00'));
      const pending = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('1.13'),
        callerReference: ref('pay'),
      });
      assert.equal(pending.transactionStatus, 'Pending');
      await expectFpsError(
        sb.call('Refund', { transactionId: pending.transactionId, callerReference: ref('refund') }),
        'OriginalTransactionIncomplete',
      );
      const failed = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('1.52'),
        callerReference: ref('pay'),
      });
      await expectFpsError(
        sb.call('Refund', { transactionId: failed.transactionId, callerReference: ref('refund') }),
        'OriginalTransactionFailed',
      );
      await expectFpsError(
        sb.call('Refund', { transactionId: 'NOSUCHTRANSACTION', callerReference: ref('refund') }),
        'InvalidTransactionId',
      );
    });

    it('a refund on credit reduces the debt', async () => {
      const credit = await approvePostpaid(sb, usd('100.00'), usd('1000.00'));
      const paid = await sb.call('Pay', {
        senderTokenId: credit.senderTokenId,
        transactionAmount: usd('40.00'),
        callerReference: ref('pay'),
      });
      await sb.call('Refund', {
        transactionId: paid.transactionId,
        refundAmount: usd('15.00'),
        callerReference: ref('refund'),
      });
      assert.equal(await debt(credit.instrumentId), 2500);
    });
  });

  describe('FundPrepaid and GetPrepaidBalance', () => {
    it('funds up to the SetupPrepaid fundingAmount (a cap on the balance), again after spending', async () => {
      const prepaid = await approvePrepaid(sb, usd('100.00'));
      const fund = (amount: string, senderTokenId = prepaid.fundingTokenId) =>
        sb.call('FundPrepaid', {
          prepaidInstrumentId: prepaid.instrumentId,
          senderTokenId,
          fundingAmount: usd(amount),
          callerReference: ref('fund'),
        });
      assert.equal((await fund('60.00')).transactionStatus, 'Success');
      await expectFpsError(fund('40.01'), 'PrepaidFundingLimitExceeded');
      assert.equal((await fund('40.00')).transactionStatus, 'Success');
      await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('25.00'),
        callerReference: ref('pay'),
      });
      assert.equal((await fund('25.00')).transactionStatus, 'Success');
      const result = await sb.call('GetPrepaidBalance', { prepaidInstrumentId: prepaid.instrumentId });
      assert.deepEqual(result.availableBalance, usd('100.00'));
      assert.deepEqual(result.prepaidFundingBalance, usd('0'));
      const view = await sb.admin(`/admin/prepaid/${prepaid.instrumentId}`);
      assert.deepEqual(
        [view.fundedTotal.value, view.spentTotal.value, view.fundingLimit.value],
        ['125.00', '25.00', '100.00'],
      );
      await expectFpsError(fund('1.00', prepaid.senderTokenId), 'InvalidTokenId_Sender');
    });

    it('refuses unknown and foreign instruments, and a funding token of another instrument', async () => {
      const a = await approvePrepaid(sb, usd('10.00'));
      const b = await approvePrepaid(sb, usd('10.00'));
      await expectFpsError(
        sb.call('FundPrepaid', {
          prepaidInstrumentId: a.instrumentId,
          senderTokenId: b.fundingTokenId,
          fundingAmount: usd('1.00'),
          callerReference: ref('fund'),
        }),
        'InvalidTokenId_Sender',
      );
      await expectFpsError(
        sb.call('GetPrepaidBalance', { prepaidInstrumentId: 'NO-SUCH-INSTRUMENT' }),
        'InvalidParams',
      );
      await expectFpsError(
        other.call('GetPrepaidBalance', { prepaidInstrumentId: a.instrumentId }),
        'InstrumentAccessDenied',
      );
      await expectFpsError(
        sb.call('FundPrepaid', {
          prepaidInstrumentId: 'NO-SUCH-INSTRUMENT',
          senderTokenId: a.fundingTokenId,
          fundingAmount: usd('1.00'),
          callerReference: ref('fund'),
        }),
        'InvalidParams',
      );
    });
  });

  describe('SettleDebt, WriteOffDebt, GetDebtBalance, GetOutstandingDebtBalance', () => {
    it('settles and writes off debt, never more than is owed', async () => {
      const credit = await approvePostpaid(sb, usd('100.00'), usd('500.00'));
      await sb.call('Pay', {
        senderTokenId: credit.senderTokenId,
        transactionAmount: usd('40.00'),
        callerReference: ref('pay'),
      });
      const settle = (amount: string, senderTokenId = credit.settlementTokenId) =>
        sb.call('SettleDebt', {
          creditInstrumentId: credit.instrumentId,
          senderTokenId,
          settlementAmount: usd(amount),
          callerReference: ref('settle'),
        });
      await expectFpsError(settle('40.01'), 'SettleAmountGreaterThanDebt');
      await expectFpsError(settle('1.00', credit.senderTokenId), 'InvalidTokenId_Sender');
      assert.equal((await settle('15.00')).transactionStatus, 'Success');
      assert.equal(await debt(credit.instrumentId), 2500);
      const writeOff = (amount: string) =>
        sb.call('WriteOffDebt', {
          creditInstrumentId: credit.instrumentId,
          adjustmentAmount: usd(amount),
          callerReference: ref('writeoff'),
        });
      await expectFpsError(writeOff('25.01'), 'SettleAmountGreaterThanDebt');
      assert.equal((await writeOff('25.00')).transactionStatus, 'Success');
      const balance = await sb.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId });
      assert.deepEqual(balance.availableBalance, usd('0'));
      assert.deepEqual(balance.pendingOutBalance, usd('0'));
      const view = await sb.admin(`/admin/credit/${credit.instrumentId}`);
      assert.deepEqual(
        [view.chargedTotal.value, view.settledTotal.value, view.writtenOffTotal.value],
        ['40.00', '15.00', '25.00'],
      );
      await expectFpsError(
        other.call('GetDebtBalance', { creditInstrumentId: credit.instrumentId }),
        'InstrumentAccessDenied',
      );
      await expectFpsError(sb.call('GetDebtBalance', { creditInstrumentId: 'NO-SUCH-INSTRUMENT' }), 'InvalidParams');
    });

    it('sums the debt of all the caller’s credit instruments', async () => {
      const before = (await sb.call('GetOutstandingDebtBalance', {})).outstandingBalance.amount;
      const one = await approvePostpaid(sb, usd('100.00'), usd('100.00'));
      const two = await approvePostpaid(sb, usd('100.00'), usd('100.00'));
      await sb.call('Pay', {
        senderTokenId: one.senderTokenId,
        transactionAmount: usd('10.00'),
        callerReference: ref('pay'),
      });
      await sb.call('Pay', {
        senderTokenId: two.senderTokenId,
        transactionAmount: usd('20.00'),
        callerReference: ref('pay'),
      });
      const after = await sb.call('GetOutstandingDebtBalance', {});
      assert.equal(after.outstandingBalance.amount - before, 3000);
      assert.equal(after.outstandingBalance.currency, 'USD');
      assert.deepEqual((await other.call('GetOutstandingDebtBalance', {})).outstandingBalance, usd('0'));
    });
  });

  describe('GetTransactionStatus, GetTokenByCaller, CancelToken', () => {
    it('reports a transaction with its CallerReference, StatusCode and StatusMessage', async () => {
      const prepaid = await fundedPrepaid(sb, usd('10.00'));
      const callerReference = ref('pay');
      const paid = await sb.call('Pay', {
        senderTokenId: prepaid.senderTokenId,
        transactionAmount: usd('2.00'),
        callerReference,
      });
      const status = await sb.call('GetTransactionStatus', { transactionId: paid.transactionId });
      assert.deepEqual(
        { ...status, requestId: undefined },
        {
          transactionId: paid.transactionId,
          transactionStatus: 'Success',
          callerReference,
          statusCode: 'Success',
          statusMessage: 'The transaction was successful and the payment instrument was charged.',
          requestId: undefined,
        },
      );
      await expectFpsError(
        sb.call('GetTransactionStatus', { transactionId: 'NOSUCHTRANSACTION' }),
        'InvalidTransactionId',
      );
      await expectFpsError(
        other.call('GetTransactionStatus', { transactionId: paid.transactionId }),
        'InvalidTransactionId',
      );
    });

    it('finds tokens by CallerReference or TokenId; CancelToken makes them Inactive', async () => {
      const { tokenId, callerReference } = await approveSingleUse(sb, usd('3.00'));
      const byRef = await sb.call('GetTokenByCaller', { callerReference });
      assert.equal(byRef.tokenId, tokenId);
      assert.equal(byRef.tokenStatus, 'Active');
      assert.equal(byRef.tokenType, 'SingleUse');
      assert.equal(byRef.callerReference, callerReference);
      assert.ok(Math.abs(Date.parse(byRef.dateInstalled) - Date.now()) < 60_000);
      const prepaid = await approvePrepaid(sb, usd('5.00'));
      const funding = await sb.call('GetTokenByCaller', { tokenId: prepaid.fundingTokenId });
      assert.deepEqual(
        [funding.tokenType, funding.callerReference],
        ['PrepaidFunding', `${prepaid.callerReferenceSender}:funding`],
      );
      assert.equal(
        (await sb.call('GetTokenByCaller', { callerReference: prepaid.callerReferenceSender })).tokenType,
        'PrepaidSender',
      );
      await expectFpsError(sb.call('GetTokenByCaller', { callerReference: ref('nobody') }), 'InvalidTokenId');
      await expectFpsError(other.call('GetTokenByCaller', { tokenId }), 'InvalidTokenId');

      await expectFpsError(other.call('CancelToken', { tokenId }), 'InvalidTokenId');
      await expectFpsError(sb.call('CancelToken', { tokenId: 'NO-SUCH-TOKEN' }), 'InvalidTokenId');
      const cancelled = await sb.call('CancelToken', { tokenId, reasonText: 'customer request' });
      assert.ok(cancelled.requestId);
      assert.equal((await sb.call('GetTokenByCaller', { tokenId })).tokenStatus, 'Inactive');
      // Cancelling again changes nothing and is not an error.
      await sb.call('CancelToken', { tokenId });
      const view = await sb.admin(`/admin/tokens/${tokenId}`);
      assert.deepEqual(
        [view.status, view.cancelReason, view.amountLimit.value],
        ['Inactive', 'customer request', '3.00'],
      );
    });
  });
});
