export class PayloadTooLargeError extends Error {
  override name = 'PayloadTooLargeError';
  constructor(readonly limit: number) {
    super(`The upload is larger than the limit of ${limit} bytes (MAX_UPLOAD_SIZE).`);
  }
}

export class UnsupportedTypeError extends Error {
  override name = 'UnsupportedTypeError';
}

export class EmptyUploadError extends Error {
  override name = 'EmptyUploadError';
  constructor() {
    super('The upload is empty.');
  }
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`The object ${key} does not exist or was deleted.`);
  }
}

/** An upload that is not exactly one intact image within the pixel limit; the message says which and what to do. */
export class InvalidImageError extends Error {
  override name = 'InvalidImageError';
}
