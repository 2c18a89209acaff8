import { ConfigError } from './errors.ts';
import { readableFile } from './values.ts';

/**
 * BACKUP_OFFSITE_TARGETS: more offsite targets (another region, another provider), each with its own endpoint,
 * region and credentials, apart from the object store's S3 settings. One variable, so that Compose files and
 * `.env` carry it like any other: entries separated by whitespace or commas, each
 * `NAME=s3://[ACCESS_KEY:SECRET@]bucket[/prefix][?endpoint=URL&region=REGION&path_style=true|false&ca=FILE]`.
 * Sentences about a wrong entry name the entry and never quote its credentials.
 */

/** The S3 settings of one target; the same shape as config.ts's S3Settings (which cannot be imported here). */
export interface OffsiteS3Settings {
  /** `BACKUP_OFFSITE_TARGETS target NAME`, for sentences about a failing request. */
  configuredBy: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  /** A CA (PEM) trusted for an https endpoint besides the usual public ones. */
  caFile: string | undefined;
}

export interface OffsiteTarget {
  name: string;
  /** `s3://bucket/prefix`, without credentials: what status, doctor and errors show. */
  url: string;
  s3: OffsiteS3Settings;
  /** The entry with its secret masked, for `trendgen config`. */
  shown: string;
}

const KEY = 'BACKUP_OFFSITE_TARGETS';
const NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** Names the other targets have. */
const RESERVED: Record<string, string> = { local: 'BACKUP_DIR', s3: 'BACKUP_S3_URI' };
const PARAMS = ['endpoint', 'region', 'path_style', 'ca'];
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
const FOLDER = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const REGION = /^[A-Za-z0-9-]{1,64}$/;
const FORM = 'NAME=s3://ACCESS_KEY:SECRET@bucket/prefix?endpoint=https://host:port&region=REGION';
const ENCODE = 'a secret holding ? # , % or spaces must be percent-encoded';

const fail = (message: string) => new ConfigError(message);

function entriesOf(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

/** The parts of an entry as written; nothing decoded or checked. */
function split(entry: string) {
  const eq = entry.indexOf('=');
  const name = eq < 0 ? '' : entry.slice(0, eq);
  const url = eq < 0 ? entry : entry.slice(eq + 1);
  const rest = url.startsWith('s3://') ? url.slice('s3://'.length) : undefined;
  const question = rest?.indexOf('?') ?? -1;
  const main = rest === undefined ? '' : question < 0 ? rest : rest.slice(0, question);
  const query = rest === undefined || question < 0 ? '' : rest.slice(question + 1);
  // The last @ ends the credentials: buckets and prefixes never hold one, secrets may.
  const at = main.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : main.slice(0, at);
  const colon = userinfo?.indexOf(':') ?? -1;
  return {
    name,
    isS3: rest !== undefined,
    place: at < 0 ? main : main.slice(at + 1),
    query,
    key: userinfo === undefined ? undefined : colon < 0 ? userinfo : userinfo.slice(0, colon),
    secret: userinfo === undefined || colon < 0 ? undefined : userinfo.slice(colon + 1),
  };
}

/** Every secret the variable holds, as written and decoded, for the log scrubber; never throws. */
export function offsiteSecrets(value: string | undefined): string[] {
  const secrets: string[] = [];
  for (const entry of entriesOf(value ?? '')) {
    const { secret } = split(entry);
    if (!secret) continue;
    secrets.push(secret);
    try {
      secrets.push(decodeURIComponent(secret));
    } catch {
      // Refused by parseOffsiteTargets; the raw form is registered.
    }
  }
  return secrets;
}

/**
 * The targets BACKUP_OFFSITE_TARGETS lists, checked: names unique and not `local` or `s3`, every entry an S3
 * place with well-formed settings, no two targets (BACKUP_S3_URI included) at the same place.
 */
export function parseOffsiteTargets(
  env: {
    BACKUP_OFFSITE_TARGETS?: string | undefined;
    BACKUP_S3_URI?: string | undefined;
    S3_ENDPOINT?: string | undefined;
  },
  cwd: string,
): OffsiteTarget[] {
  const targets = entriesOf(env.BACKUP_OFFSITE_TARGETS ?? '').map((entry, i) =>
    parseEntry(entry, i + 1, cwd),
  );
  const seen = new Map<string, string>();
  if (env.BACKUP_S3_URI) seen.set(placeOf(env.BACKUP_S3_URI, env.S3_ENDPOINT), 'BACKUP_S3_URI');
  for (const target of targets) {
    if (targets.filter((t) => t.name === target.name).length > 1)
      throw fail(`${KEY} names the target ${target.name} twice: give each target its own name.`);
    const place = placeOf(target.url, target.s3.endpoint);
    const other = seen.get(place);
    if (other) {
      throw fail(
        `${KEY} target ${target.name} is the same bucket and prefix at the same endpoint as ${other === 'BACKUP_S3_URI' ? other : `target ${other}`}: each target must be a place of its own.`,
      );
    }
    seen.set(place, target.name);
  }
  return targets;
}

function placeOf(url: string, endpoint: string | undefined): string {
  return `${(endpoint ?? 'aws').replace(/\/+$/, '').toLowerCase()} ${url.replace(/\/+$/, '')}`;
}

function parseEntry(entry: string, position: number, cwd: string): OffsiteTarget {
  const parts = split(entry);
  if (!NAME.test(parts.name)) {
    throw fail(
      `${KEY} entry ${position} must start with its name and = (${FORM}); a name is 1 to 32 lower-case letters, digits or -, starting with a letter.`,
    );
  }
  const { name } = parts;
  const label = `${KEY} target ${name}`;
  if (RESERVED[name])
    throw fail(
      `${KEY} cannot name a target ${name}: that is ${RESERVED[name]}'s target; choose another name.`,
    );
  if (!parts.isS3) throw fail(`${label} must be an s3:// URL: ${FORM}.`);
  const [bucket = '', ...folders] = parts.place.replace(/\/+$/, '').split('/');
  if (!BUCKET.test(bucket))
    throw fail(`${label} names no valid bucket after s3:// (and its credentials; ${ENCODE}).`);
  if (folders.some((folder) => !FOLDER.test(folder)))
    throw fail(`${label} has a prefix that is not folders of [A-Za-z0-9._-] not starting with a dot.`);
  const { accessKeyId, secretAccessKey } = credentials(parts, label);
  const params = new URLSearchParams(parts.query);
  for (const key of new Set(params.keys())) {
    if (!PARAMS.includes(key))
      throw fail(`${label} has an unknown parameter ${key}: the parameters are ${PARAMS.join(', ')}.`);
    if (params.getAll(key).length > 1) throw fail(`${label} gives the parameter ${key} twice.`);
  }
  const endpoint = params.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !isEndpoint(endpoint)) {
    throw fail(
      `${label} has an endpoint that is not an http:// or https:// URL without credentials (such as endpoint=https://s3.example.com:9000).`,
    );
  }
  const region = params.get('region') ?? 'us-east-1';
  if (!REGION.test(region)) throw fail(`${label} has a region that is not a region name such as eu-west-1.`);
  const pathStyle = params.get('path_style') ?? 'true';
  if (pathStyle !== 'true' && pathStyle !== 'false')
    throw fail(`${label} has path_style=${pathStyle}: it must be true or false.`);
  const caFile = readableFile(`${label}'s ca`, params.get('ca') ?? undefined, cwd);
  const url = `s3://${[bucket, ...folders].join('/')}`;
  const shownQuery = [...params].map(([k, v]) => `${k}=${v}`).join('&');
  return {
    name,
    url,
    s3: {
      configuredBy: label,
      endpoint: endpoint?.replace(/\/+$/, ''),
      region,
      forcePathStyle: pathStyle === 'true',
      accessKeyId,
      secretAccessKey,
      caFile,
    },
    shown: `${name}=s3://${accessKeyId ? `${encodeURIComponent(accessKeyId)}:********@` : ''}${url.slice(5)}${shownQuery ? `?${shownQuery}` : ''}`,
  };
}

function credentials(
  parts: ReturnType<typeof split>,
  label: string,
): { accessKeyId: string | undefined; secretAccessKey: string | undefined } {
  if (parts.key === undefined) return { accessKeyId: undefined, secretAccessKey: undefined };
  if (!parts.key || !parts.secret) {
    throw fail(
      `${label} gives its credentials without an access key or a secret: write s3://ACCESS_KEY:SECRET@bucket, or neither for the SDK's default credentials.`,
    );
  }
  try {
    return { accessKeyId: decodeURIComponent(parts.key), secretAccessKey: decodeURIComponent(parts.secret) };
  } catch {
    throw fail(
      `${label} has a malformed percent-encoding in its credentials (a % not followed by two hexadecimal digits; ${ENCODE}).`,
    );
  }
}

function isEndpoint(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password;
  } catch {
    return false;
  }
}
