// The sandbox's RSA key pair and self-signed certificate, which sign return URLs and IPNs the way
// FPS's did. Generated once with the openssl CLI into the data dir and reused on every start, so
// merchants that cached the certificate keep verifying.
import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

export interface SigningIdentity {
  privateKeyPem: string;
  certificatePem: string;
}

export const KEY_FILE = 'sandbox-key.pem';
export const CERT_FILE = 'PKICert.pem';

/** Reads the key pair from dataDir, generating it first (RSA 2048, CN = commonName) if absent. */
export function ensureSigningIdentity(dataDir: string, commonName: string): SigningIdentity {
  const keyFile = path.join(dataDir, KEY_FILE);
  const certFile = path.join(dataDir, CERT_FILE);
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    mkdirSync(dataDir, { recursive: true });
    // Write beside and rename, so a crash mid-generation never leaves half a pair behind.
    const tmpKey = `${keyFile}.${process.pid}.tmp`;
    const tmpCert = `${certFile}.${process.pid}.tmp`;
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-sha256',
          '-days',
          '3650',
          '-subj',
          `/CN=${commonName.replace(/[/\\=]/g, '_')}/O=FPS sandbox`,
          '-keyout',
          tmpKey,
          '-out',
          tmpCert,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
    } catch (e) {
      rmSync(tmpKey, { force: true });
      rmSync(tmpCert, { force: true });
      const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`could not generate the sandbox certificate with openssl: ${stderr || (e as Error).message}`, {
        cause: e,
      });
    }
    renameSync(tmpKey, keyFile);
    renameSync(tmpCert, certFile);
  }
  const identity = { privateKeyPem: readFileSync(keyFile, 'utf8'), certificatePem: readFileSync(certFile, 'utf8') };
  // Two first starts racing on one data dir could leave one's key beside the other's certificate.
  const fromKey = createPublicKey(identity.privateKeyPem).export({ type: 'spki', format: 'der' });
  const fromCert = new X509Certificate(identity.certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new Error(`${keyFile} does not belong to ${certFile}; delete both and start again to generate a new pair`);
  }
  return identity;
}
