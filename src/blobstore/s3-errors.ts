import type { S3Settings } from '../config/config.ts';
import { tlsFailure } from '../lib/tls.ts';
import { BlobStoreError } from './blobstore.ts';

/** How the S3 driver reads the SDK's errors: what is missing, what is refused, what cannot be reached. */

// Network failures that mean "cannot reach the server" once the SDK's retries are spent.
const UNREACHABLE_CODES = new Set(
  'ECONNREFUSED ECONNRESET ENOTFOUND EAI_AGAIN ETIMEDOUT EHOSTUNREACH ENETUNREACH EPIPE'.split(' '),
);
const CREDENTIAL_ERRORS = new Set(
  'AccessDenied InvalidAccessKeyId SignatureDoesNotMatch CredentialsProviderError ExpiredToken InvalidToken'.split(
    ' ',
  ),
);

export interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number };
}

/** Turns an SDK error into one plain sentence that says what to check; never includes secrets. */
export function describeS3Error(
  error: unknown,
  key: string,
  where: {
    configuredBy?: string | undefined;
    endpoint: string;
    bucket: string;
    location: string;
    caFile?: string | undefined;
  },
): Error {
  if (error instanceof BlobStoreError) return error;
  const tls = describeTlsFailure(error, where);
  if (tls) return new BlobStoreError(tls, { cause: error });
  const err = (error ?? {}) as SdkError;
  const network = networkCode(err);
  if (network) {
    return new BlobStoreError(
      `The S3 endpoint ${where.endpoint} is unreachable (${network}): check ${where.configuredBy ? `the endpoint of ${where.configuredBy}` : 'S3_ENDPOINT'} and the network.`,
      { cause: error },
    );
  }
  if (hasName(err, 'NoSuchBucket')) {
    return new BlobStoreError(
      `The bucket ${where.bucket} does not exist at ${where.endpoint}: create it or correct the bucket in the s3:// URL.`,
      { cause: error },
    );
  }
  if ((err.name && CREDENTIAL_ERRORS.has(err.name)) || err.$metadata?.httpStatusCode === 403) {
    return new BlobStoreError(
      `The S3 endpoint ${where.endpoint} refused the credentials for bucket ${where.bucket} (${err.name}): check ${where.configuredBy ? `the credentials of ${where.configuredBy}` : 'AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY'} and the bucket's permissions.`,
      { cause: error },
    );
  }
  if (!err.$metadata) {
    const reason = err.code ?? err.message ?? String(error);
    return new BlobStoreError(`The S3 request for ${key} in ${where.location} failed (${reason}).`, {
      cause: error,
    });
  }
  const status = err.$metadata.httpStatusCode ? `, HTTP ${err.$metadata.httpStatusCode}` : '';
  // Servers put anything in a message (XML, several lines); one line of it is enough.
  const detail = (err.message ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);
  return new BlobStoreError(
    `The S3 request for ${key} in ${where.location} failed (${err.name}${status})${detail && detail !== err.name ? `: ${detail}` : '.'}`,
    { cause: error },
  );
}

function describeTlsFailure(
  error: unknown,
  where: { configuredBy?: string | undefined; endpoint: string; caFile?: string | undefined },
): string | undefined {
  const failure = tlsFailure(error);
  if (!failure) return undefined;
  const host = /^https?:\/\/(\[[^\]]+\]|[^:/]+)/.exec(where.endpoint)?.[1] ?? where.endpoint;
  // An offsite target of BACKUP_OFFSITE_TARGETS has its own ca= and endpoint= instead.
  const caSetting = where.configuredBy ? `the ca of ${where.configuredBy}` : 'S3_CA_FILE';
  const endpointSetting = where.configuredBy ? `the endpoint of ${where.configuredBy}` : 'S3_ENDPOINT';
  if (failure.kind === 'untrusted') {
    const trust = where.caFile ? `neither ${caSetting} (${where.caFile}) nor a public CA` : 'no public CA';
    return `The S3 endpoint ${where.endpoint} presented a certificate that ${trust} signed (${failure.detail}): set ${caSetting} to the file (PEM) of the CA that signed it.`;
  }
  if (failure.kind === 'hostname')
    return `The S3 endpoint ${where.endpoint} presented a certificate issued for ${failure.names ?? 'other names'}, not for ${host}: use in ${endpointSetting} a host name the certificate names, or have it reissued for ${host}.`;
  return `The S3 endpoint ${where.endpoint} presented a certificate that is not valid now (${failure.detail}): renew the server's certificate (or correct this machine's clock).`;
}

export function describeEndpoint(settings: S3Settings): string {
  if (!settings.endpoint) return `https://s3.${settings.region}.amazonaws.com`;
  try {
    const url = new URL(settings.endpoint);
    url.username = '';
    url.password = '';
    return url.href.replace(/\/$/, '');
  } catch {
    return settings.endpoint;
  }
}

function networkCode(err: SdkError, depth = 0): string | undefined {
  if (depth > 5 || !err) return undefined;
  if (err.code && UNREACHABLE_CODES.has(err.code)) return err.code;
  if (err.name === 'TimeoutError') return 'timeout';
  for (const inner of [err.cause, ...(err.errors ?? [])]) {
    const code = inner ? networkCode(inner as SdkError, depth + 1) : undefined;
    if (code) return code;
  }
  return undefined;
}

function hasName(error: unknown, name: string): boolean {
  return (error as SdkError | undefined)?.name === name;
}

export function isNotFound(error: unknown): boolean {
  const err = error as SdkError;
  if (err?.name === 'NoSuchBucket') return false;
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404;
}

export function isPreconditionFailed(error: unknown): boolean {
  const err = error as SdkError;
  return err?.name === 'PreconditionFailed' || err?.$metadata?.httpStatusCode === 412;
}

/** The range starts at or past the object's end (S3 answers an empty object's every range so). */
export function isRangeNotSatisfiable(error: unknown): boolean {
  const err = error as SdkError;
  return err?.name === 'InvalidRange' || err?.$metadata?.httpStatusCode === 416;
}
