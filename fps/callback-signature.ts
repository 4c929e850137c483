// RSA-SHA1 Signature Version 2 of what FPS sends back (return URLs and IPNs). The sandbox signs
// with its private key; the merchant verifies with the certificate from an allow-listed URL.
import { createSign, createVerify } from 'node:crypto';
import { signingHost, stringToSign, type Params } from './signature';

export const CALLBACK_SIGNATURE_METHOD = 'RSA-SHA1';
export const CALLBACK_SIGNATURE_VERSION = '2';

/** What both sides must agree on besides the parameters: the merchant's endpoint as FPS called it. */
export interface CallbackTarget {
  /** GET for return URLs, POST for IPNs. */
  httpMethod: string;
  /** The merchant's return/IPN URL without the callback parameters, e.g. https://shop.example.com/fps/ipn. */
  urlEndPoint: string;
}

export interface CallbackSigningOptions extends CallbackTarget {
  privateKeyPem: string;
  /** Where merchants fetch the certificate; it is itself part of the signed parameters. */
  certificateUrl: string;
}

export interface CallbackVerifyOptions extends CallbackTarget {
  /** PEM certificate (or public key) of the signer. */
  certificatePem: string;
}

/**
 * The Signature V2 string to sign: METHOD, lower-case host[:non-default port], path (at least
 * "/"), canonical query of `params` without `signature`. Any query string or fragment in
 * urlEndPoint is ignored: the callback's parameters travel in `params`. Throws TypeError for a
 * urlEndPoint that is not an absolute http(s) URL.
 */
export function callbackStringToSign(httpMethod: string, urlEndPoint: string, params: Params): string {
  const url = new URL(urlEndPoint);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`callback urlEndPoint must be http(s), got ${url.protocol}`);
  }
  // URL.host already drops a default port; signingHost also lower-cases (URL does too) — kept for
  // symmetry with the Query API signer.
  return stringToSign(httpMethod, signingHost(url.host, url.protocol), url.pathname, params, ['signature']);
}

/** Returns `params` plus signatureVersion=2, signatureMethod=RSA-SHA1, certificateUrl and signature. */
export function signCallbackParams(params: Params, options: CallbackSigningOptions): Record<string, string> {
  const { signature: _dropped, ...rest } = params;
  const withMeta: Record<string, string> = {
    ...rest,
    signatureVersion: CALLBACK_SIGNATURE_VERSION,
    signatureMethod: CALLBACK_SIGNATURE_METHOD,
    certificateUrl: options.certificateUrl,
  };
  const toSign = callbackStringToSign(options.httpMethod, options.urlEndPoint, withMeta);
  const signature = createSign('RSA-SHA1').update(toSign, 'utf8').sign(options.privateKeyPem, 'base64');
  return { ...withMeta, signature };
}

/**
 * True only when `signature` is a valid RSA-SHA1 signature of the string to sign under the given
 * certificate and the parameters declare signatureVersion=2 / signatureMethod=RSA-SHA1. Never
 * throws: a malformed URL, certificate or signature is simply "not verified".
 */
export function verifyCallbackSignature(params: Params, options: CallbackVerifyOptions): boolean {
  const signature = params.signature;
  if (!signature) return false;
  if (params.signatureVersion !== CALLBACK_SIGNATURE_VERSION) return false;
  if (params.signatureMethod !== CALLBACK_SIGNATURE_METHOD) return false;
  try {
    const toSign = callbackStringToSign(options.httpMethod, options.urlEndPoint, params);
    return createVerify('RSA-SHA1').update(toSign, 'utf8').verify(options.certificatePem, signature, 'base64');
  } catch {
    return false;
  }
}
