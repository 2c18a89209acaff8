import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { PayloadTooLargeError } from '../objects/errors.ts';
import type { ObjectKind, ObjectRecord, ObjectStore } from '../objects/store.ts';
import { HttpError } from './errors.ts';

/**
 * Streams one uploaded image into the object store: a raw body, or the multipart field `field`.
 * The multipart parser's own limit sits one byte above ours, so an oversized file is always caught by the
 * spool (413) before the parser could silently truncate it.
 */
export async function storeUploadedImage(
  request: FastifyRequest,
  objects: ObjectStore,
  options: { kind: ObjectKind; maxBytes: number; field?: string },
): Promise<ObjectRecord> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (request.isMultipart()) {
    const file = await request.file({ limits: { fileSize: options.maxBytes + 1 } });
    if (!file)
      throw new HttpError(
        400,
        'missing_file',
        `The multipart body has no file field "${options.field ?? 'file'}".`,
      );
    if (file.fieldname !== (options.field ?? 'file')) {
      file.file.resume();
      throw new HttpError(
        400,
        'missing_file',
        `Send the image in the multipart field "${options.field ?? 'file'}".`,
      );
    }
    const record = await objects.put(file.file, {
      kind: options.kind,
      maxBytes: options.maxBytes,
      declaredType: file.mimetype,
      decode: true,
    });
    if (file.file.truncated) throw new PayloadTooLargeError(options.maxBytes);
    return record;
  }
  if (declared > options.maxBytes) throw new PayloadTooLargeError(options.maxBytes);
  const body = request.body as Readable | undefined;
  if (!body || typeof (body as Readable).pipe !== 'function') {
    throw new HttpError(
      415,
      'unsupported_media_type',
      'Send the image as the raw body (Content-Type image/png, image/jpeg or image/webp) or as multipart field "file".',
    );
  }
  return await objects.put(body, {
    kind: options.kind,
    maxBytes: options.maxBytes,
    declaredType: request.headers['content-type'],
    decode: true,
  });
}
