# A merchant session against the FPS sandbox with boto 2.49's boto.fps, an FPS client written by
# someone else: boto's Signature V2 signer (host with port), its CBUI URL signer and its XML
# response parser. boto.fps still has Python 2 idioms in two places (urllib.quote, dict.has_key in
# its argument decorators), so this calls the undecorated methods; everything on the wire is boto's.
#
#   python3 fps_session.py <sandbox url> <access key id> <secret key>   -> prints one JSON line
import json
import sys
import urllib
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto.fps.connection as fps

url = sys.argv[1].rstrip('/')
key_id, secret = sys.argv[2], sys.argv[3]
endpoint = urllib.parse.urlparse(url)
fps.urllib.quote = urllib.parse.quote  # the Python 2 name cbui_url uses
conn = fps.FPSConnection(aws_access_key_id=key_id, aws_secret_access_key=secret,
                         host=endpoint.hostname, port=endpoint.port, is_secure=False)


def undecorated(method):
    """The function under boto's needs_caller_reference/requires wrappers."""
    f = method
    while f.__closure__:
        inner = [cell.cell_contents for cell in f.__closure__ if callable(cell.cell_contents)]
        if not inner:
            break
        f = inner[0]
    return f


def call(name, **params):
    method = getattr(fps.FPSConnection, name)
    return conn.get_object(method.action, params, method.response)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def approve(cbui_url):
    # boto signs for FPS's own CBUI host; the buyer is sent to the sandbox with the same query.
    query = urllib.parse.urlparse(cbui_url).query
    request = urllib.request.Request(f'{url}/cobranded-ui/actions/start?{query}', headers={'X-Sandbox-Decision': 'approve'})
    try:
        urllib.request.build_opener(NoRedirect).open(request)
    except urllib.error.HTTPError as e:
        if e.code != 302:
            raise
        return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(e.headers['Location']).query))
    raise AssertionError('the CBUI did not redirect')


def amount(name, value):
    return {f'{name}.Value': value, f'{name}.CurrencyCode': 'USD'}


out = {}
ref = str(uuid.uuid4())
returned = approve(undecorated(fps.FPSConnection.cbui_url)(
    conn, returnURL='https://shop.example.com/return', pipelineName='SetupPrepaid',
    callerReferenceSender=ref + ':sender', callerReferenceFunding=ref + ':funding', fundingAmount='50.00'))
out['cbuiStatus'] = returned['status']
funded = call('fund_prepaid', PrepaidInstrumentId=returned['prepaidInstrumentID'], SenderTokenId=returned['fundingTokenID'],
              CallerReference=ref + ':fund', **amount('FundingAmount', '50.00'))
out['fund'] = funded.FundPrepaidResult.TransactionStatus
pay = dict(SenderTokenId=returned['prepaidSenderTokenID'], CallerReference=ref + ':pay', ChargeFeeTo='Recipient',
           **amount('TransactionAmount', '12.50'))
paid = call('pay', **pay)
again = call('pay', **pay)
out['pay'] = paid.PayResult.TransactionStatus
out['replaySameId'] = again.PayResult.TransactionId == paid.PayResult.TransactionId
out['status'] = call('get_transaction_status', TransactionId=paid.PayResult.TransactionId).GetTransactionStatusResult.TransactionStatus
out['refund'] = call('refund', TransactionId=paid.PayResult.TransactionId, CallerReference=ref + ':refund',
                     **amount('RefundAmount', '2.50')).RefundResult.TransactionStatus
balance = call('get_prepaid_balance', PrepaidInstrumentId=returned['prepaidInstrumentID'])
out['availableBalance'] = str(balance.GetPrepaidBalanceResult.PrepaidBalance.AvailableBalance)
token = call('get_token_by_caller', TokenId=returned['prepaidSenderTokenID']).GetTokenByCallerResult
out['token'] = f'{token.TokenType} {token.TokenStatus}'
out['outstandingDebt'] = str(call('get_outstanding_debt_balance').GetOutstandingDebtBalanceResult.OutstandingDebt.OutstandingBalance)
try:
    call('pay', SenderTokenId=returned['prepaidSenderTokenID'], CallerReference=ref + ':too-much', **amount('TransactionAmount', '100.00'))
    out['tooMuch'] = 'accepted'
except Exception as e:  # boto raises its ResponseError subclass named after the FPS code
    out['tooMuch'] = type(e).__name__
print(json.dumps(out))
