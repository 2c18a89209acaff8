import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';

/**
 * What went wrong in a TLS handshake, read from Node's error codes (OpenSSL's verification results and Node's
 * host name check), so that each client can say in one sentence which of its settings to change.
 */

export type TlsFailureKind = 'untrusted' | 'hostname' | 'expired';

export interface TlsFailure {
  kind: TlsFailureKind;
  /** Node's own words, e.g. "self-signed certificate in certificate chain". */
  detail: string;
  /** The names the server's certificate is issued for (`DNS:db.example.com, IP Address:10.0.0.5`), when known. */
  names?: string;
}

// OpenSSL's verification results that mean "no CA we trust signed this certificate".
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

interface ErrorLike {
  code?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
  cert?: { subjectaltname?: string; subject?: { CN?: string } };
}

/** The TLS verification failure inside `error` (or its causes), if that is what it is. */
export function tlsFailure(error: unknown, depth = 0): TlsFailure | undefined {
  if (!error || typeof error !== 'object' || depth > 5) return undefined;
  const err = error as ErrorLike;
  const detail = (err.message ?? err.code ?? '').replace(/\s+/g, ' ').trim();
  if (err.code && UNTRUSTED.has(err.code)) return { kind: 'untrusted', detail };
  if (err.code && EXPIRED.has(err.code)) return { kind: 'expired', detail };
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names =
      err.cert?.subjectaltname ?? (err.cert?.subject?.CN ? `CN=${err.cert.subject.CN}` : undefined);
    return { kind: 'hostname', detail, ...(names ? { names } : {}) };
  }
  for (const inner of [err.cause, ...(err.errors ?? [])]) {
    const found = tlsFailure(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** An HTTPS agent that trusts the CA in `caFile` (PEM) besides the public ones. */
export function privateCaAgent(caFile: string): Agent {
  return new Agent({
    keepAlive: true,
    maxSockets: 50,
    ca: [...rootCertificates, readFileSync(caFile, 'utf8')],
  });
}
