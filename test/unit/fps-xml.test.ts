import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FPS_ACTIONS, FPS_API_VERSIONS, type FpsAction } from '../../fps/actions';
import { FPS_ERROR_CODES, FpsError, httpStatusFor } from '../../fps/errors';
import { buildErrorXml, buildResponseXml, parseErrorXml, parseResponseXml } from '../../fps/xml';
import { SAMPLE_RESULTS } from './fps-samples';

const RETRYABLE = [
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ConcurrentModification',
  'OriginalTransactionIncomplete',
];

/** The call must throw an FpsError with this code, and nothing else. */
function throwsFpsError(call: () => unknown, code = 'MalformedResponse'): FpsError {
  try {
    call();
  } catch (e) {
    assert.ok(
      e instanceof FpsError,
      `expected FpsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail('expected an FpsError');
}

describe('fps/xml', () => {
  describe('build -> parse round trip of every result', () => {
    for (const version of FPS_API_VERSIONS) {
      for (const action of FPS_ACTIONS) {
        it(`${action} (${version})`, () => {
          const xml = buildResponseXml(action, SAMPLE_RESULTS[action], `rid-${action}`, version);
          assert.ok(xml.includes(`xmlns="http://fps.amazonaws.com/doc/${version}/"`));
          assert.deepEqual(parseResponseXml(action, xml), { ...SAMPLE_RESULTS[action], requestId: `rid-${action}` });
        });
      }
    }
    it('escapes markup in text and keeps it on the way back', () => {
      const result = {
        ...SAMPLE_RESULTS.GetTransactionStatus,
        callerReference: 'a&b<c>"d\'',
        statusMessage: ']]> <![CDATA[ x',
      };
      const xml = buildResponseXml('GetTransactionStatus', result, 'r');
      assert.ok(!xml.includes('a&b<c>'));
      assert.deepEqual(parseResponseXml('GetTransactionStatus', xml), { ...result, requestId: 'r' });
    });
  });

  describe('every error code', () => {
    for (const code of FPS_ERROR_CODES) {
      it(code, () => {
        const status = httpStatusFor(code);
        const xml = buildErrorXml(code, `message for ${code} & <co>`, `rid-${code}`);
        for (const error of [
          parseErrorXml(xml, status),
          throwsFpsError(() => parseResponseXml('Pay', xml, status), code),
        ]) {
          assert.ok(error instanceof FpsError);
          assert.equal(error.code, code);
          assert.equal(error.message, `${code}: message for ${code} & <co>`);
          assert.equal(error.requestId, `rid-${code}`);
          assert.equal(error.httpStatus, status);
          assert.equal(error.retryable, RETRYABLE.includes(code), `retryable of ${code}`);
        }
      });
    }
    it('HTTP statuses: 5xx only for service trouble, 403 for authentication', () => {
      assert.equal(httpStatusFor('InternalError'), 500);
      assert.equal(httpStatusFor('ServiceUnavailable'), 503);
      assert.equal(httpStatusFor('Throttling'), 503);
      assert.equal(httpStatusFor('SignatureDoesNotMatch'), 403);
      assert.equal(httpStatusFor('InsufficientBalance'), 400);
    });
  });

  describe('hand-written FPS documents', () => {
    it('Pay response with namespace, declaration and indentation', () => {
      const xml = `<?xml version="1.0" encoding="UTF-8"?>
<PayResponse xmlns="http://fps.amazonaws.com/doc/2008-09-17/">
  <PayResult>
    <TransactionId>14GN1B3C2EXAMPLE</TransactionId>
    <TransactionStatus>Pending</TransactionStatus>
  </PayResult>
  <ResponseMetadata>
    <RequestId>b7a4f5c1-3b0e-4e37-8d1e-2d6b1ab8b5e1:0</RequestId>
  </ResponseMetadata>
</PayResponse>
`;
      assert.deepEqual(parseResponseXml('Pay', xml), {
        transactionId: '14GN1B3C2EXAMPLE',
        transactionStatus: 'Pending',
        requestId: 'b7a4f5c1-3b0e-4e37-8d1e-2d6b1ab8b5e1:0',
      });
    });

    it('prefixed namespace, CRLF, tabs and a comment', () => {
      const xml =
        '<?xml version="1.0"?>\r\n<!-- FPS -->\r\n<fps:GetPrepaidBalanceResponse xmlns:fps="http://fps.amazonaws.com/doc/2010-08-28/">\r\n' +
        '\t<fps:GetPrepaidBalanceResult>\r\n\t\t<fps:PrepaidBalance>\r\n' +
        '\t\t\t<fps:AvailableBalance><fps:CurrencyCode>USD</fps:CurrencyCode><fps:Value>37.5</fps:Value></fps:AvailableBalance>\r\n' +
        '\t\t\t<fps:PrepaidFundingBalance>\r\n\t\t\t\t<fps:CurrencyCode>USD</fps:CurrencyCode>\r\n\t\t\t\t<fps:Value> 50.00 </fps:Value>\r\n\t\t\t</fps:PrepaidFundingBalance>\r\n' +
        '\t\t</fps:PrepaidBalance>\r\n\t</fps:GetPrepaidBalanceResult>\r\n' +
        '\t<fps:ResponseMetadata><fps:RequestId>rq-1</fps:RequestId></fps:ResponseMetadata>\r\n</fps:GetPrepaidBalanceResponse>';
      assert.deepEqual(parseResponseXml('GetPrepaidBalance', xml), {
        availableBalance: { amount: 3750, currency: 'USD' },
        prepaidFundingBalance: { amount: 5000, currency: 'USD' },
        requestId: 'rq-1',
      });
    });

    it('GetTransactionStatus with an empty StatusMessage, GetTokenByCaller with fields we do not model', () => {
      const status = `<GetTransactionStatusResponse xmlns="http://fps.amazonaws.com/doc/2008-09-17/">
  <GetTransactionStatusResult>
    <TransactionId>14GN1B3C2EXAMPLE</TransactionId>
    <TransactionStatus>Failure</TransactionStatus>
    <CallerReference>inst-42:pay:order-1001</CallerReference>
    <StatusCode>PaymentMethodNotUsable</StatusCode>
    <StatusMessage/>
  </GetTransactionStatusResult>
  <ResponseMetadata><RequestId>rq-2</RequestId></ResponseMetadata>
</GetTransactionStatusResponse>`;
      assert.deepEqual(parseResponseXml('GetTransactionStatus', status), {
        transactionId: '14GN1B3C2EXAMPLE',
        transactionStatus: 'Failure',
        callerReference: 'inst-42:pay:order-1001',
        statusCode: 'PaymentMethodNotUsable',
        statusMessage: '',
        requestId: 'rq-2',
      });
      const token = `<GetTokenByCallerResponse xmlns="http://fps.amazonaws.com/doc/2008-09-17/"><GetTokenByCallerResult><Token>
  <TokenId>P7GC7HLKBG</TokenId><FriendlyName>Ebook</FriendlyName><TokenStatus>Inactive</TokenStatus>
  <DateInstalled>2009-10-07T10:48:29.984-07:00</DateInstalled><CallerReference>inst-42:authorize</CallerReference>
  <TokenType>SingleUse</TokenType><OldTokenId>P7GC7HLKBG</OldTokenId><PaymentReason>Ebook &amp; more</PaymentReason>
</Token></GetTokenByCallerResult><ResponseMetadata><RequestId>rq-3</RequestId></ResponseMetadata></GetTokenByCallerResponse>`;
      const parsed = parseResponseXml('GetTokenByCaller', token);
      assert.equal(parsed.tokenStatus, 'Inactive');
      assert.equal(parsed.dateInstalled, '2009-10-07T10:48:29.984-07:00');
      assert.equal((parsed as unknown as Record<string, string>).paymentReason, 'Ebook & more');
    });

    it('FPS error document, and the AWS ErrorResponse form', () => {
      const fps = `<?xml version="1.0"?>
<Response>
  <Errors>
    <Error>
      <Code>InsufficientBalance</Code>
      <Message>The sender does not have sufficient balance to complete this transaction.</Message>
    </Error>
  </Errors>
  <RequestID>e1a1c6d0-1f2b-4f1c-9f54-0a5b9d0c2b11</RequestID>
</Response>`;
      const e = parseErrorXml(fps, 400);
      assert.equal(e.code, 'InsufficientBalance');
      assert.equal(e.requestId, 'e1a1c6d0-1f2b-4f1c-9f54-0a5b9d0c2b11');
      assert.match(e.message, /sufficient balance/);
      assert.equal(e.retryable, false);
      const aws = `<ErrorResponse xmlns="http://fps.amazonaws.com/doc/2008-09-17/">
  <Error><Type>Receiver</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
  <RequestId>rq-aws</RequestId>
</ErrorResponse>`;
      const t = parseErrorXml(aws, 503);
      assert.deepEqual([t.code, t.requestId, t.retryable], ['Throttling', 'rq-aws', true]);
    });

    it('the first of several errors wins', () => {
      const xml =
        '<Response><Errors><Error><Code>InvalidParams</Code><Message>a</Message></Error>' +
        '<Error><Code>AmountOutOfRange</Code></Error></Errors><RequestID>r</RequestID></Response>';
      assert.equal(parseErrorXml(xml, 400).code, 'InvalidParams');
    });
  });

  describe('malformed input -> MalformedResponse, never another exception', () => {
    const pay = (inner: string) => `<PayResponse><PayResult>${inner}</PayResult></PayResponse>`;
    const bad: Array<[string, FpsAction, string]> = [
      ['empty body', 'Pay', ''],
      ['plain text', 'Pay', 'Service Unavailable'],
      ['HTML', 'Pay', '<html><body><h1>502 Bad Gateway</h1></body></html>'],
      ['JSON', 'Pay', '{"TransactionId":"x"}'],
      ['unclosed tag', 'Pay', '<PayResponse><PayResult>'],
      ['mismatched tags', 'Pay', '<PayResponse></PayResult>'],
      ['another action', 'Pay', buildResponseXml('Refund', SAMPLE_RESULTS.Refund, 'r')],
      [
        'no result element',
        'Pay',
        '<PayResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PayResponse>',
      ],
      ['text instead of result', 'Pay', '<PayResponse><PayResult>oops</PayResult></PayResponse>'],
      ['missing TransactionId', 'Pay', pay('<TransactionStatus>Success</TransactionStatus>')],
      ['missing TransactionStatus', 'Pay', pay('<TransactionId>T</TransactionId>')],
      ['unknown status', 'Pay', pay('<TransactionId>T</TransactionId><TransactionStatus>Done</TransactionStatus>')],
      [
        'upper-case status (IPN spelling)',
        'Pay',
        pay('<TransactionId>T</TransactionId><TransactionStatus>SUCCESS</TransactionStatus>'),
      ],
      [
        'repeated TransactionId',
        'Pay',
        pay(
          '<TransactionId>T</TransactionId><TransactionId>U</TransactionId><TransactionStatus>Success</TransactionStatus>',
        ),
      ],
      [
        'nested TransactionId',
        'Pay',
        pay('<TransactionId><X>T</X></TransactionId><TransactionStatus>Success</TransactionStatus>'),
      ],
      ['prototype-polluting element', 'Pay', pay('<__proto__><polluted>1</polluted></__proto__>')],
      [
        'entity bomb',
        'Pay',
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' +
          pay('<TransactionId>&b;&b;&b;</TransactionId><TransactionStatus>Bad</TransactionStatus>'),
      ],
      [
        'balance without container',
        'GetPrepaidBalance',
        '<GetPrepaidBalanceResponse><GetPrepaidBalanceResult><AvailableBalance/></GetPrepaidBalanceResult></GetPrepaidBalanceResponse>',
      ],
      [
        'float amount',
        'GetDebtBalance',
        '<GetDebtBalanceResponse><GetDebtBalanceResult><DebtBalance><AvailableBalance><CurrencyCode>USD</CurrencyCode><Value>1e3</Value></AvailableBalance><PendingOutBalance><CurrencyCode>USD</CurrencyCode><Value>0</Value></PendingOutBalance></DebtBalance></GetDebtBalanceResult></GetDebtBalanceResponse>',
      ],
      [
        'amount without currency',
        'GetDebtBalance',
        '<GetDebtBalanceResponse><GetDebtBalanceResult><DebtBalance><AvailableBalance><Value>1.00</Value></AvailableBalance><PendingOutBalance><CurrencyCode>USD</CurrencyCode><Value>0</Value></PendingOutBalance></DebtBalance></GetDebtBalanceResult></GetDebtBalanceResponse>',
      ],
      [
        'amount as text',
        'GetOutstandingDebtBalance',
        '<GetOutstandingDebtBalanceResponse><GetOutstandingDebtBalanceResult><OutstandingDebt><OutstandingBalance>USD 1.00</OutstandingBalance><PendingOutBalance>0</PendingOutBalance></OutstandingDebt></GetOutstandingDebtBalanceResult></GetOutstandingDebtBalanceResponse>',
      ],
      [
        'unknown verification status',
        'VerifySignature',
        '<VerifySignatureResponse><VerifySignatureResult><VerificationStatus>Maybe</VerificationStatus></VerifySignatureResult></VerifySignatureResponse>',
      ],
      ['deep nesting', 'Pay', '<a>'.repeat(20000) + '</a>'.repeat(20000)],
      [
        'error document without code',
        'Pay',
        '<Response><Errors><Error><Message>m</Message></Error></Errors></Response>',
      ],
    ];
    for (const [name, action, xml] of bad) {
      it(name, () => {
        const error = throwsFpsError(() => parseResponseXml(action, xml));
        assert.equal(error.httpStatus, 200);
        assert.equal(error.retryable, false);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
      });
    }

    it('non-string bodies', () => {
      for (const body of [undefined, null, 42, {}, Buffer.from('<PayResponse/>')]) {
        throwsFpsError(() => parseResponseXml('Pay', body as unknown as string));
        assert.equal(parseErrorXml(body as unknown as string, 500).code, 'MalformedResponse');
      }
    });

    it('unreadable error bodies keep their HTTP status and its retryability', () => {
      const e503 = parseErrorXml('<html>Service Unavailable</html>', 503);
      assert.deepEqual([e503.code, e503.httpStatus, e503.retryable], ['MalformedResponse', 503, true]);
      const e400 = parseErrorXml('', 400);
      assert.deepEqual([e400.code, e400.httpStatus, e400.retryable], ['MalformedResponse', 400, false]);
      const nested = parseErrorXml('<Response><Errors><Error><Code><a>1</a></Code></Error></Errors></Response>', 400);
      assert.equal(nested.code, 'MalformedResponse');
    });

    it('every truncation of a valid response is MalformedResponse', () => {
      const xml = buildResponseXml('GetTransactionStatus', SAMPLE_RESULTS.GetTransactionStatus, 'rid');
      for (let end = 0; end < xml.length - 1; end++) {
        const cut = xml.slice(0, end);
        throwsFpsError(() => parseResponseXml('GetTransactionStatus', cut));
      }
    });

    it('fuzz: arbitrary text and mutated documents only ever give FpsError', () => {
      const valid = buildResponseXml('GetPrepaidBalance', SAMPLE_RESULTS.GetPrepaidBalance, 'rid');
      const mutated = fc
        .tuple(fc.nat({ max: valid.length }), fc.nat({ max: 20 }), fc.string({ maxLength: 20 }))
        .map(([at, drop, insert]) => valid.slice(0, at) + insert + valid.slice(at + drop));
      fc.assert(
        fc.property(
          fc.oneof(fc.string(), fc.string({ unit: 'binary' }), mutated),
          fc.constantFrom(200, 400, 503),
          (body, status) => {
            try {
              const result = parseResponseXml('GetPrepaidBalance', body, status);
              assert.equal(status, 200);
              assert.equal(typeof result.availableBalance.amount, 'number');
            } catch (e) {
              if (!(e instanceof FpsError)) throw e;
            }
            assert.ok(parseErrorXml(body, status) instanceof FpsError);
          },
        ),
        { numRuns: 500, seed: 42 },
      );
    });
  });
});
