/**
 * Every request of the console goes through here: the session cookie rides along (same origin only), every
 * change carries the CSRF token the session answered with, and a 401 anywhere sends the operator back to
 * the login form.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
let sessionLost: () => void = () => {};

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function onSessionLost(handler: () => void): void {
  sessionLost = handler;
}

interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: unknown;
  /** The login form reports its own 401 instead of being sent back to itself. */
  keepSessionOn401?: boolean;
}

async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error?.message) {
      return new ApiError(response.status, parsed.error.code ?? 'error', parsed.error.message);
    }
  } catch {
    // Not our error shape (a proxy's page, say): the status says enough.
  }
  return new ApiError(
    response.status,
    'http_error',
    `The server answered ${response.status} ${response.statusText}; try again in a moment.`,
  );
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached; check that trendgen is running.');
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !options.keepSessionOn401) {
      csrfToken = null;
      sessionLost();
    }
    throw error;
  }
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : 'Something went wrong; reload the page.';

/** The same path under /api/v1, with each variable part encoded. */
export function apiPath(strings: TemplateStringsArray, ...parts: Array<string | number>): string {
  return strings.reduce(
    (path, piece, i) => path + piece + (i < parts.length ? encodeURIComponent(String(parts[i])) : ''),
    '/api/v1',
  );
}
