export interface DetectedType {
  contentType: string;
  extension: string;
}

/** Bytes needed to tell every supported type apart. */
export const SNIFF_BYTES = 16;

/**
 * The content type decided by the bytes themselves, never by what a client claims. Only the image
 * formats the service accepts are recognised; anything else is `undefined`.
 */
export function detectImageType(head: Uint8Array): DetectedType | undefined {
  const b = head;
  if (
    b.length >= 8 &&
    b[0] === 0x89 &&
    b[1] === 0x50 &&
    b[2] === 0x4e &&
    b[3] === 0x47 &&
    b[4] === 0x0d &&
    b[5] === 0x0a &&
    b[6] === 0x1a &&
    b[7] === 0x0a
  ) {
    return { contentType: 'image/png', extension: 'png' };
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    return { contentType: 'image/jpeg', extension: 'jpg' };
  }
  if (
    b.length >= 12 &&
    String.fromCharCode(b[0]!, b[1]!, b[2]!, b[3]!) === 'RIFF' &&
    String.fromCharCode(b[8]!, b[9]!, b[10]!, b[11]!) === 'WEBP'
  ) {
    return { contentType: 'image/webp', extension: 'webp' };
  }
  return undefined;
}

export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;
