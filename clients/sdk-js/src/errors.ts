// PalaverError: the one error type every SDK Promise rejects with, built from a protocol
// `error` frame or a REST error body ({code, message, retry_after_ms?, position?}).

export interface ErrorBody {
  code?: unknown;
  message?: unknown;
  retry_after_ms?: unknown;
  position?: unknown;
}

export class PalaverError extends Error {
  /** A protocol error code (bad_request, not_found, rate_limited, …) or the SDK's own:
   *  'closed' (the client was closed first), 'timeout', 'protocol' (an answer the SDK cannot read). */
  readonly code: string;
  readonly retryAfterMs?: number;
  /** HTTP status, for REST errors. */
  readonly status?: number;
  /** GET /v1/search syntax errors: the 0-based character offset into `q`. */
  readonly position?: number;

  constructor(
    code: string,
    message: string,
    extra: { retryAfterMs?: number; status?: number; position?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'PalaverError';
    this.code = code;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.position !== undefined) this.position = extra.position;
  }

  /** From an `error` frame or a REST error body; `status` for REST. */
  static from(body: ErrorBody, status?: number): PalaverError {
    const code = typeof body.code === 'string' ? body.code : 'internal';
    const message = typeof body.message === 'string' ? body.message : code;
    const extra: { retryAfterMs?: number; status?: number; position?: number } = {};
    if (typeof body.retry_after_ms === 'number') extra.retryAfterMs = body.retry_after_ms;
    if (typeof body.position === 'number') extra.position = body.position;
    if (status !== undefined) extra.status = status;
    return new PalaverError(code, message, extra);
  }
}
